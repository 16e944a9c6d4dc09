/* SPDX-License-Identifier: MIT */
/* The swap rings' bounce buffers, registered with io_uring where the memory-lock limit allows (fdinfo's UserBufs) and plain vectors where it does not: either way every page comes back from swap as written. */
#include <dirent.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE	4096UL
#define MIB	(1UL << 20)
#define LIMIT	(8 * MIB)
#define LEN	(64 * MIB)

struct outcome {
	int rings, with_bufs;	/* io_uring instances; those with a buffer registered */
	long bad;		/* words read back wrong; -1: no instance */
	uint64_t swapins;
};

/* The io_uring instances of this process, and how many have a registered
 * buffer, from /proc/self/fdinfo. */
static void count_rings(struct outcome *o)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char path[300], link[64], line[128];
		ssize_t n;
		unsigned bufs;
		FILE *f;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (!strstr(link, "io_uring"))
			continue;
		o->rings++;
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%s", e->d_name);
		f = fopen(path, "r");
		while (f && fgets(line, sizeof(line), f))
			if (sscanf(line, "UserBufs: %u", &bufs) == 1) {
				o->with_bufs += bufs > 0;
				break;
			}
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
}

/* 64 MiB written under 8 MiB, paged out, read back in order (readahead
 * windows through the bounce buffers) and checked. */
static struct outcome round_trip(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 2 * LEN);
	struct outcome r = { .bad = -1 };
	struct emm *mm;
	char *mem;

	if (emm_open(&o, &mm))
		return r;
	if (emm_reserve(mm, LEN, (void **)&mem) || emm_map(mm, mem, LEN, NULL)) {
		emm_close(mm);
		return r;
	}
	count_rings(&r);
	fill_words(mem, LEN, word_value);
	emm_advise(mm, mem, LEN, EMM_ADV_PAGEOUT);
	r.bad = (long)count_bad_words(mem, LEN, word_value);
	r.swapins = stats(mm).swapins;
	emm_close(mm);
	return r;
}

/* In a child: 1 MiB of memory may be locked, room for the rings' own
 * memory but not for 4 MiB of bounce buffers, CAP_IPC_LOCK dropped where
 * held (it lifts the limit), then the same round trip. */
static struct outcome round_trip_unlockable(void)
{
	struct outcome r = { .bad = -1 };
	int fd[2];
	pid_t pid;

	if (pipe(fd) < 0 || (pid = fork()) < 0)
		return r;
	if (pid == 0) {
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct caps[2];
		struct rlimit little = { MIB, MIB };

		close(fd[0]);
		if (syscall(SYS_capget, &h, caps) == 0) {
			caps[0].effective &= ~(1u << CAP_IPC_LOCK);
			syscall(SYS_capset, &h, caps);
		}
		setrlimit(RLIMIT_MEMLOCK, &little);
		r = round_trip();
		_exit(write(fd[1], &r, sizeof(r)) == sizeof(r) ? 0 : 1);
	}
	close(fd[1]);
	if (read(fd[0], &r, sizeof(r)) != sizeof(r))
		r.bad = -1;
	close(fd[0]);
	waitpid(pid, NULL, 0);
	return r;
}

int main(void)
{
	struct outcome a, b;

	plan(6);
	a = round_trip();
	if (a.bad < 0)
		bail("emm_open/emm_reserve/emm_map failed");
	diag("%d rings, %d with the bounce buffers registered; %" PRIu64 " swap-ins", a.rings,
	     a.with_bufs, a.swapins);
	is_int(a.bad, 0, "every word reads back through the rings as they are made");
	ok(a.swapins >= LEN / PAGE / 2, "the read back came from swap");
	if (a.rings == 0 || geteuid() != 0)
		skip(1, a.rings ? "not root: the memory-lock limit decides which rings register"
				: "no io_uring rings here");
	else
		ok(a.with_bufs == a.rings, "as root, every ring has the bounce buffers registered");

	b = round_trip_unlockable();
	diag("1 MiB lockable: %d rings, %d with buffers; %" PRIu64 " swap-ins", b.rings,
	     b.with_bufs, b.swapins);
	if (b.rings == 0)
		skip(1, "no io_uring rings under a 1 MiB memory-lock limit here");
	else
		ok(b.with_bufs == 0, "with 1 MiB lockable, rings are made without the buffers");
	is_int(b.bad, 0, "every word reads back through plain vectors");
	ok(b.swapins >= LEN / PAGE / 2, "that read back came from swap too");
	return done_testing();
}
