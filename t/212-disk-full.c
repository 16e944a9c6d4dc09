/* SPDX-License-Identifier: MIT */
/* Swap on a full disk: pages stay, the out-of-memory callback is told, and failed writes do not repeat at every fault. */
#include <sched.h>
#include <stdatomic.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE	4096UL
#define MIB	(1UL << 20)
#define LIMIT	(4 * MIB)
#define LEN	(48 * MIB)
#define FS_SIZE	"8m"
/* Pages that cannot go anywhere: about LEN - LIMIT - FS_SIZE of them. A
 * write that fails costs one batch of at most 64 pages; with the back-off
 * a batch fails about once per 100 ms look at the disk. */
#define MAX_FAILED_WRITES 4096

static _Atomic unsigned long oom_calls;

static void on_oom(struct emm *mm, uint64_t excess, void *arg)
{
	(void)mm, (void)excess, (void)arg;
	atomic_fetch_add(&oom_calls, 1);
}

/* A tmpfs of FS_SIZE at dir, in a mount namespace of this process's own:
 * it goes away with the process, whatever way it ends. */
static const char *small_fs(char *dir, size_t cap)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, cap, "%s/emm-full-XXXXXX", tmp && *tmp ? tmp : "/var/tmp");
	if (!mkdtemp(dir))
		return "mkdtemp failed";
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", dir, "tmpfs", 0, "size=" FS_SIZE ",mode=0700")) {
		rmdir(dir);
		return "cannot mount a small tmpfs in a mount namespace of its own (needs root)";
	}
	return NULL;
}

int main(void)
{
	char dir[4096], path[4200];
	const char *why = small_fs(dir, sizeof(dir));
	struct emm *mm;
	uint64_t *mem;
	struct emm_stats st;
	long t0;

	if (why)
		skip_all(why);
	plan(5);
	snprintf(path, sizeof(path), "%s/swap", dir);
	{
		EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_path = path,
			 .swap_size = 64 * MIB, .oom = on_oom);

		if (!is_int(emm_open(&o, &mm), 0, "emm_open: swap on an " FS_SIZE " file system"))
			bail("emm_open failed");
	}
	if (emm_reserve(mm, LEN, (void **)&mem) || emm_map(mm, mem, LEN, NULL))
		bail("emm_reserve/emm_map failed");
	t0 = now_ms();
	fill_words(mem, LEN, word_value);
	st = stats(mm);
	diag("wrote %lu MiB in %ld ms: io_errors %" PRIu64 ", swapouts %" PRIu64
	     ", resident %" PRIu64 " MiB, faults %" PRIu64, LEN / MIB, now_ms() - t0,
	     st.io_errors, st.swapouts, st.resident_bytes / MIB, st.faults);
	is_int(count_bad_words(mem, LEN, word_value), 0, "every word reads back");
	ok(atomic_load(&oom_calls) > 0, "the out-of-memory callback was called");
	ok(st.io_errors <= MAX_FAILED_WRITES, "failed writes stay few (%" PRIu64 ")", st.io_errors);
	is_int(emm_close(mm), 0, "emm_close");
	umount2(dir, MNT_DETACH);
	rmdir(dir);
	return done_testing();
}
