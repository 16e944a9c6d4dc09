/* SPDX-License-Identifier: MIT */
/* Thousands of one-page VMAs of alternating protection: emm_map and emm_protect refuse what the kernel VMAs allowed cannot hold (emm's max_kernel_vmas, or a really lowered vm.max_map_count), and every mapped page stays readable. */
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "emm.h"
#include "probe.h"
#include "tap.h"
#include "util.h"

#define PAGE	4096UL
#define MAX_KVMAS 2000
#define NVMAS	3000
#define OLD	64		/* pages of an older VMA, written first */
#define SYSCTL	"/proc/sys/vm/max_map_count"
#define HEADROOM 6000		/* vm.max_map_count lowered to the maps in use plus this */
/* Held while the sysctl is lowered: a second run of this test at the same
 * time (two builds' suites side by side) waits, and so reads the machine's
 * value, not the first run's lowered one, and puts back the right value. */
#define LOCK	"/tmp/emm-t109-max_map_count.lock"

/* What exhausting the kernel VMAs gave. */
struct outcome {
	int mapped, first_err, protect_err, bad_reads, bad_old, unmap_err, close_err;
	long maps;			/* the process's kernel VMAs at the most */
	uint64_t kernel_vmas;		/* emm's, by its statistics */
};

/* The process's kernel VMAs now: the lines of /proc/self/maps. */
static long map_count(void)
{
	char buf[65536];
	long n = 0;
	ssize_t got;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while ((got = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < got; i++)
			n += buf[i] == '\n';
	close(fd);
	return n;
}

/* Map one-page VMAs until emm refuses, then read and write them all. */
static void exhaust(const struct emm_opts *o, struct outcome *out)
{
	EMM_OPTS(emm_map_opts, rw, .prot = EMM_PROT_READ | EMM_PROT_WRITE, .trap = trap);
	EMM_OPTS(emm_map_opts, ro, .prot = EMM_PROT_READ, .trap = trap);
	struct emm *mm;
	char *old, *base;

	memset(out, 0, sizeof(*out));
	if (emm_open(o, &mm) || emm_reserve(mm, 2 << 20, (void **)&old) ||
	    emm_reserve(mm, (NVMAS * PAGE + (2 << 20) - 1) & ~((2UL << 20) - 1), (void **)&base))
		bail("emm_open/emm_reserve failed");
	if (emm_map(mm, old, OLD * PAGE, &rw))
		bail("emm_map of the older VMA failed");
	fill_words(old, OLD * PAGE, word_value);
	for (int i = 0; i < NVMAS && !out->first_err; i++) {
		out->first_err = emm_map(mm, base + i * PAGE, PAGE, i % 2 ? &ro : &rw);
		out->mapped += !out->first_err;
	}
	out->protect_err = emm_protect(mm, old + 5 * PAGE, PAGE, EMM_PROT_READ);
	for (int i = 0; i < out->mapped; i++)
		out->bad_reads += access_once(base + i * PAGE, 8, 0, 0) != NONE;
	for (int i = 0; i < out->mapped; i += 2)
		out->bad_reads += access_once(base + i * PAGE, 8, 1, (uint64_t)i) != NONE;
	for (int i = 0; i < out->mapped; i += 2)
		out->bad_reads += *(volatile uint64_t *)(base + i * PAGE) != (uint64_t)i;
	for (int i = 0; i < OLD; i++)
		out->bad_old += access_once(old + i * PAGE, 8, 0, 0) != NONE;
	out->bad_old += (int)count_bad_words(old, OLD * PAGE, word_value);
	out->maps = map_count();
	out->kernel_vmas = stats(mm).kernel_vmas;
	out->unmap_err = emm_unmap(mm, base, (size_t)out->mapped * PAGE);
	out->close_err = emm_close(mm);
}

/* What the checks of both cases have in common. */
static void check_reads(const struct outcome *out)
{
	is_int(out->first_err, -ENOMEM, "emm_map refuses with -ENOMEM once the layout needs too many kernel VMAs");
	is_int(out->protect_err, -ENOMEM, "emm_protect that would split the older VMA: -ENOMEM");
	is_int(out->bad_reads, 0, "every mapped page reads (and every writable one writes)");
	is_int(out->bad_old, 0, "the older VMA still reads back");
	is_int(out->unmap_err, 0, "unmap them");
	is_int(out->close_err, 0, "emm_close");
}

static void max_kernel_vmas_case(void)
{
	EMM_OPTS(emm_opts, o, .max_kernel_vmas = MAX_KVMAS);
	struct outcome out;

	exhaust(&o, &out);
	diag("%d one-page VMAs mapped under max_kernel_vmas %d; kernel_vmas %" PRIu64,
	     out.mapped, MAX_KVMAS, out.kernel_vmas);
	check_reads(&out);
	ok(out.mapped > MAX_KVMAS / 2 && out.mapped <= MAX_KVMAS, "after about max_kernel_vmas of them");
	ok(out.kernel_vmas <= MAX_KVMAS, "emm's kernel VMAs stayed within max_kernel_vmas");
}

/* The sysctl's value when the test began: put back by restore_sysctl. */
static char saved[32];
static size_t saved_len;

/* Async-signal-safe. */
static int write_sysctl(const char *val, size_t len)
{
	int fd = open(SYSCTL, O_WRONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : write(fd, val, len);

	if (fd >= 0)
		close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

/* Async-signal-safe: whatever ends the test puts the sysctl back. */
static void restore_and_die(int sig)
{
	write_sysctl(saved, saved_len);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void restore_on_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGALRM, SIGPIPE };

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], restore_and_die);
}

/* An instance opened, used and closed before the limit is lowered: what
 * emm read of it then must not outlive the next emm_open. */
static void warm_up(void)
{
	EMM_OPTS(emm_map_opts, ro, .prot = EMM_PROT_READ);
	struct emm *mm;
	char *p;

	if (emm_open(NULL, &mm) || emm_reserve(mm, 2 << 20, (void **)&p) ||
	    emm_map(mm, p, PAGE, &ro) || emm_protect(mm, p, PAGE, EMM_PROT_NONE) ||
	    emm_close(mm))
		bail("an instance before lowering the limit failed");
}

/*
 * vm.max_map_count really lowered, in a child, which opens emm after that
 * (and after an instance was opened and closed with the old limit):
 * emm reads the limit at emm_open, refuses at emm_map and emm_protect with
 * -ENOMEM, and no read of a mapped page fails. The parent puts the old
 * value back whatever happens to the child.
 */
static void sysctl_case(void)
{
	struct outcome *out = mmap(NULL, sizeof(*out), PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int lock = open(LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600), fd, st;
	long max, lim;
	char val[32];
	ssize_t n;
	pid_t pid;

	if (lock < 0 || flock(lock, LOCK_EX))
		bail("locking " LOCK ": %s", strerror(errno));
	fd = open(SYSCTL, O_RDONLY | O_CLOEXEC);
	if (out == MAP_FAILED || fd < 0 || (n = read(fd, saved, sizeof(saved) - 1)) <= 0)
		bail("reading " SYSCTL ": %s", strerror(errno));
	close(fd);
	saved_len = (size_t)n;
	warm_up();
	max = map_count() + HEADROOM;
	lim = emm_vma_share(max);
	snprintf(val, sizeof(val), "%ld\n", max);
	restore_on_signals();
	if (write_sysctl(val, strlen(val)))
		bail("writing " SYSCTL ": %s", strerror(errno));
	tap_flush();
	pid = fork();
	if (pid == 0) {
		alarm(120);
		exhaust(NULL, out);
		_exit(0);
	}
	while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (write_sysctl(saved, saved_len))
		bail("putting " SYSCTL " back: %s", strerror(errno));
	close(lock);
	if (pid < 0)
		bail("fork: %s", strerror(errno));
	if (!ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child with vm.max_map_count %ld ran through", max))
		diag("status 0x%x", st);
	diag("%d one-page VMAs mapped under vm.max_map_count %ld (emm's share %ld); process maps %ld, "
	     "kernel_vmas %" PRIu64, out->mapped, max, lim, out->maps, out->kernel_vmas);
	check_reads(out);
	ok(out->mapped > lim / 2 && out->kernel_vmas <= (uint64_t)lim,
	   "emm read the lowered limit at emm_open: about its share of it mapped, no more");
	ok(out->maps > 0 && out->maps < max, "the process stayed below vm.max_map_count");
	munmap(out, sizeof(*out));
}

int main(void)
{
	probe_install();
	plan(17);
	if (geteuid() != 0)
		skip(9, "not root: vm.max_map_count cannot be lowered");
	else if (getenv("T_SYSCTL") && !strcmp(getenv("T_SYSCTL"), "keep"))
		skip(9, "T_SYSCTL=keep: vm.max_map_count is the whole machine's, and another "
		     "suite runs beside this one");
	else
		sysctl_case();
	max_kernel_vmas_case();
	return done_testing();
}
