/* SPDX-License-Identifier: MIT */
/* emmstat on this test's PID shows its instance's counters changing under a workload; reading changes nothing. */
#include <dirent.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define MIB	(1UL << 20)
#define LIMIT	(8 * MIB)
#define AREA	(16 * MIB)	/* twice the budget: it swaps */

static char emmstat[4096];
static _Atomic int stop;

/* The objects of pid in /dev/shm. */
static int objects_of(pid_t pid)
{
	char prefix[32];
	struct dirent *de;
	DIR *d = opendir("/dev/shm");
	int n = 0;

	snprintf(prefix, sizeof(prefix), "emm.%d.", (int)pid);
	while (d && (de = readdir(d)))
		n += !strncmp(de->d_name, prefix, strlen(prefix));
	if (d)
		closedir(d);
	return n;
}

static int shm_objects(void)
{
	return objects_of(getpid());
}

/* Run emmstat on pid; its output in buf, its exit status back. */
static int run_emmstat_on(pid_t pid, const char *args, char *buf, size_t cap)
{
	char cmd[8192];
	size_t len = 0;
	FILE *p;
	/* TEST_RUNNER: what runs a program of this build (an emulator). */
	const char *runner = getenv("TEST_RUNNER");

	snprintf(cmd, sizeof(cmd), "%s %s %d %s 2>&1", runner ? runner : "", emmstat, (int)pid,
		 args);
	p = popen(cmd, "r");
	if (!p)
		bail("popen: %s", strerror(errno));
	while (len + 1 < cap && fgets(buf + len, (int)(cap - len), p))
		len += strlen(buf + len);
	buf[len] = '\0';
	return WEXITSTATUS(pclose(p));
}

static int run_emmstat(const char *args, char *buf, size_t cap)
{
	return run_emmstat_on(getpid(), args, buf, cap);
}

/* Show emmstat's lines as diagnostics. */
static void show(const char *out)
{
	char copy[8192], *save, *line;

	snprintf(copy, sizeof(copy), "%s", out);
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		diag("%s", line);
}

struct line {
	char backend[16], res[16], lim[16], swap[16];
	double flt, minflt, majflt, swapin, swapout, pgscan, direct, revoke;
	unsigned inst;
	unsigned long thp;
};

/* emmstat's data lines, parsed; the number found. */
static int parse(const char *out, struct line *l, int max)
{
	int n = 0;

	for (const char *p = out; p && *p && n < max; p = strchr(p, '\n'), p = p ? p + 1 : p) {
		if (sscanf(p, "%u %15s %15s %15s %15s %lf %lf %lf %lf %lf %lf %lf %lf %lu", &l[n].inst,
			   l[n].backend, l[n].res, l[n].lim, l[n].swap, &l[n].flt, &l[n].minflt,
			   &l[n].majflt, &l[n].swapin, &l[n].swapout, &l[n].pgscan, &l[n].direct,
			   &l[n].revoke, &l[n].thp) == 14)
			n++;
	}
	return n;
}

static void *workload(void *arg)
{
	volatile char *p = arg;

	for (size_t i = 0; !atomic_load(&stop); i = (i + 97 * 4096) % AREA)
		p[i]++;
	return NULL;
}

/* An object left by a process that died without emm_close goes at the
 * next emm_open. */
static void check_reaped(void)
{
	char name[64];
	struct emm *mm;
	pid_t pid = fork();
	int fd;

	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	snprintf(name, sizeof(name), "/emm.%d.0", (int)pid);
	fd = shm_open(name, O_RDWR | O_CREAT, 0600);
	if (fd < 0)
		bail("shm_open: %s", strerror(errno));
	close(fd);
	if (emm_open(NULL, &mm))
		bail("emm_open");
	ok(shm_unlink(name) < 0 && errno == ENOENT, "a dead process's object is gone at emm_open");
	emm_close(mm);
}

/* A child that opens an instance, says so on fd, waits ms, and leaves
 * without emm_close: by exit (its atexit handlers run) or by _exit. */
static pid_t child_leaving(int fd, int ms, bool by_exit)
{
	pid_t pid = fork();
	struct emm *mm;

	if (pid < 0)
		bail("fork: %s", strerror(errno));
	if (pid)
		return pid;
	if (emm_open(NULL, &mm) || write(fd, "r", 1) != 1)
		_exit(1);
	usleep((useconds_t)ms * 1000);
	if (by_exit)
		exit(0);
	_exit(0);
}

/* A program that exits without emm_close leaves no object behind; one
 * that dies (here, _exit) does, and emmstat on it stops once it has
 * exited, even before its parent reaps it. */
static void check_exit(void)
{
	char out[8192], c;
	int fds[2], status = -1;
	pid_t pid;

	if (pipe(fds))
		bail("pipe: %s", strerror(errno));
	pid = child_leaving(fds[1], 0, true);
	waitpid(pid, &status, 0);
	if (read(fds[0], &c, 1) != 1)
		bail("the child did not open an instance");
	ok(status == 0 && objects_of(pid) == 0,
	   "exit without emm_close: no statistics object left (status %d)", status);
	pid = child_leaving(fds[1], 500, false);
	if (read(fds[0], &c, 1) != 1)
		bail("the child did not open an instance");
	status = run_emmstat_on(pid, "0.1", out, sizeof(out));
	show(out);
	ok(status == 0 && strstr(out, "has exited"),
	   "emmstat stops when the process it watches exits (status %d)", status);
	waitpid(pid, NULL, 0);
	close(fds[0]);
	close(fds[1]);
}

static void check_off(void)
{
	struct emm *mm;

	setenv("EMM_STATS_SHM", "0", 1);
	if (emm_open(NULL, &mm))
		bail("emm_open");
	is_int(shm_objects(), 0, "EMM_STATS_SHM=0: no statistics object");
	emm_close(mm);
	unsetenv("EMM_STATS_SHM");
}

/* emmstat only asks emm's own publisher thread: the program's counters
 * are what they were. */
/* The name emmstat prints for an EMM_BACKEND_* value. */
static const char *backend_name(int b)
{
	switch (b) {
	case EMM_BACKEND_UFFD: return "uffd";
	case EMM_BACKEND_UFFD_SIGBUS: return "uffd-sigbus";
	default: return "signal";
	}
}

static void check_idle(struct emm *mm)
{
	struct emm_stats a, b;
	struct line l[8];
	char out[8192];
	int rc;

	a = stats(mm);
	rc = run_emmstat("0.1 2", out, sizeof(out));
	b = stats(mm);
	show(out);
	is_int(rc, 0, "emmstat PID 0.1 2 exits 0");
	is_int(parse(out, l, 8), 2, "two lines, one per interval");
	ok(!strcmp(l[0].backend, backend_name(emm_backend(mm))) && !strcmp(l[0].lim, "8.0M"),
	   "the line names the backend in use and the 8 MiB limit");
	ok(!memcmp(&a, &b, sizeof(a)), "reading changed none of the program's counters");
	ok(strstr(out, "direct/s") && l[1].direct == 0,
	   "a direct/s column, 0 while nothing runs");
	ok(strstr(out, "revoke/s") && l[1].revoke == 0,
	   "a revoke/s column, 0 while nothing runs");
}

static void check_busy(char *area)
{
	pthread_t t;
	struct line l[8];
	char out[8192];
	int n, moving = 0, swapping = 0;

	/* Written once, half of it is in the swap file: the workload's
	 * stride, which no readahead window follows, swaps pages in and out. */
	memset(area, 1, AREA);
	if (pthread_create(&t, NULL, workload, area))
		bail("pthread_create");
	is_int(run_emmstat("0.25 3", out, sizeof(out)), 0, "emmstat under a workload exits 0");
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	show(out);
	n = parse(out, l, 8);
	is_int(n, 3, "three lines");
	/* How much the workload thread runs in each interval is up to the
	 * scheduler: the lines must show it running, not how evenly. */
	for (int i = 0; i < n; i++) {
		moving += l[i].flt > 0;
		swapping += l[i].majflt > 0 && l[i].swapin + l[i].swapout > 0;
	}
	ok(moving > 0, "faults per second show (%d of %d lines)", moving, n);
	ok(swapping > 0, "major faults and swap traffic per second show (%d of %d lines)", swapping,
	   n);
}

int main(int argc, char **argv)
{
	char self[4096], out[8192];
	struct emm *mm;
	void *area;

	snprintf(self, sizeof(self), "%s", argv[0]);
	snprintf(emmstat, sizeof(emmstat), "%s/../tools/emmstat", dirname(self));
	if (access("/dev/shm", W_OK) != 0) {
		printf("1..0 # SKIP no writable /dev/shm for the statistics page\n");
		return 0;
	}
	if (access(emmstat, X_OK) != 0)
		bail("%s is not built (make tools/emmstat)", emmstat);
	plan(18);
	check_off();
	check_exit();

	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT);
	if (emm_open(&o, &mm) || emm_reserve(mm, AREA, &area) || emm_map(mm, area, AREA, NULL))
		bail("setting up");
	is_int(shm_objects(), 1, "emm_open made one statistics object");
	check_reaped();
	check_idle(mm);
	check_busy(area);
	emm_close(mm);
	is_int(shm_objects(), 0, "emm_close removed it");
	is_int(run_emmstat("0.1 1", out, sizeof(out)), 1, "emmstat on a process without instances: exit 1");
	show(out);
	ok(strstr(out, "no emm instance") != NULL, "and says why");
	return tap_failed != 0;
}
