/* SPDX-License-Identifier: MIT */
/* emmstat: a running process's emm instances, a line per interval each, as vmstat shows the kernel's. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "stats_shm.h"

#define MAX_INSTANCES	64
#define PUBLISH_WAIT_MS	200	/* for the publisher to answer a request */

/* The counters emmstat shows, by their names in struct emm_stats. */
enum { RESIDENT, LIMIT, SWAP_USED, FAULTS, MINOR, MAJOR, SWAPIN, SWAPOUT, PGSCAN, DIRECT, REVOKES, THP,
       NR_SHOWN };
static const char *const shown[NR_SHOWN] = {
	"resident_bytes", "limit_bytes", "swap_used_bytes", "faults", "faults_minor", "faults_major",
	"swapins", "swapouts", "pgscan", "pgsteal_direct", "revokes", "thp_collapse",
};

struct instance {
	char name[NAME_MAX + 1];
	struct stats_shm_page *page;
	bool writable;			/* can ask for a fresh copy */
	bool seen;			/* still in /dev/shm at the last look */
	bool have_prev;
	bool stale;			/* the publisher did not answer */
	uint64_t prev[NR_SHOWN], cur[NR_SHOWN];
	uint64_t prev_ns, cur_ns;
};

static struct instance inst[MAX_INSTANCES];
static int ninst;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct stats_shm_page *map_object(const char *name, bool *writable)
{
	char path[NAME_MAX + 16];
	struct stats_shm_page *pg;
	int fd;

	snprintf(path, sizeof(path), "/%s", name);
	*writable = true;
	fd = shm_open(path, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0 && errno == EACCES) {
		*writable = false;
		fd = shm_open(path, O_RDONLY | O_CLOEXEC, 0);
	}
	if (fd < 0)
		return NULL;
	pg = mmap(NULL, sizeof(*pg), *writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
		  fd, 0);
	close(fd);
	if (pg == MAP_FAILED)
		return NULL;
	if (memcmp(pg->magic, STATS_SHM_MAGIC, sizeof(STATS_SHM_MAGIC)) ||
	    pg->version != STATS_SHM_VERSION) {
		munmap(pg, sizeof(*pg));
		return NULL;
	}
	return pg;
}

static struct instance *find_instance(const char *name)
{
	for (int i = 0; i < ninst; i++)
		if (!strcmp(inst[i].name, name))
			return &inst[i];
	return NULL;
}

static void add_instance(const char *name)
{
	struct instance *in = &inst[ninst];

	if (ninst == MAX_INSTANCES)
		return;
	memset(in, 0, sizeof(*in));
	in->page = map_object(name, &in->writable);
	if (!in->page)
		return;
	snprintf(in->name, sizeof(in->name), "%s", name);
	in->seen = true;
	ninst++;
}

static void drop_unseen(void)
{
	int j = 0;

	for (int i = 0; i < ninst; i++) {
		if (inst[i].seen)
			inst[j++] = inst[i];
		else
			munmap(inst[i].page, sizeof(*inst[i].page));
	}
	ninst = j;
}

/* The instances of pid as /dev/shm has them now: new ones are added, gone
 * ones dropped. */
static void scan_instances(pid_t pid)
{
	char prefix[32];
	struct dirent *de;
	DIR *d = opendir("/dev/shm");

	for (int i = 0; i < ninst; i++)
		inst[i].seen = false;
	snprintf(prefix, sizeof(prefix), STATS_SHM_PREFIX "%d.", (int)pid);
	while (d && (de = readdir(d))) {
		struct instance *in;

		if (strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		if ((in = find_instance(de->d_name)))
			in->seen = true;
		else
			add_instance(de->d_name);
	}
	if (d)
		closedir(d);
	drop_unseen();
}

/* Ask the publisher for a fresh copy and wait (a little) for it. */
static bool request_copy(struct stats_shm_page *pg)
{
	uint32_t seq = atomic_load_explicit(&pg->seq, memory_order_acquire);
	uint64_t deadline = now_ns() + PUBLISH_WAIT_MS * 1000000ull;

	atomic_fetch_add(&pg->request, 1);
	syscall(SYS_futex, &pg->request, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	while (atomic_load_explicit(&pg->seq, memory_order_acquire) == seq) {
		struct timespec ts = { 0, 10 * 1000000 };

		if (now_ns() > deadline)
			return false;
		syscall(SYS_futex, &pg->seq, FUTEX_WAIT, seq, &ts, NULL, 0);
	}
	return true;
}

static uint64_t field_value(struct stats_shm_page *pg, const char *name)
{
	for (uint32_t i = 0; i < pg->nfields && i < STATS_SHM_FIELDS; i++)
		if (!strncmp(pg->field[i].name, name, STATS_SHM_NAME_LEN))
			return atomic_load_explicit(&pg->field[i].value, memory_order_relaxed);
	return 0;
}

/* Read the page under its seqlock. */
static void read_page(struct instance *in)
{
	struct stats_shm_page *pg = in->page;
	uint32_t s1, s2;

	in->stale = in->writable ? !request_copy(pg) : true;
	do {
		while ((s1 = atomic_load_explicit(&pg->seq, memory_order_acquire)) & 1)
			sched_yield();
		for (int k = 0; k < NR_SHOWN; k++)
			in->cur[k] = field_value(pg, shown[k]);
		in->cur_ns = atomic_load_explicit(&pg->published_ns, memory_order_relaxed);
		/* Acquire fence: the values above are read before seq again. */
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load_explicit(&pg->seq, memory_order_relaxed);
	} while (s1 != s2);
}

/* Bytes as a short figure: 512K, 12.5M, 3.0G. */
static const char *human(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "KMGTP";
	double x = (double)v / 1024;
	int u = 0;

	while (x >= 1024 && units[u + 1]) {
		x /= 1024;
		u++;
	}
	snprintf(buf, len, x < 10 && u ? "%.1f%c" : "%.0f%c", x, units[u]);
	return buf;
}

static void print_header(void)
{
	printf("%4s %-11s %8s %7s %8s %8s %8s %8s %8s %9s %8s %8s %8s %5s\n", "inst", "backend",
	       "resident", "limit", "swapused", "flt/s", "minflt/s", "majflt/s", "swapin/s",
	       "swapout/s", "pgscan/s", "direct/s", "revoke/s", "thp");
}

static double rate(const struct instance *in, int k)
{
	double secs = (double)(in->cur_ns - in->prev_ns) / 1e9;

	return secs > 0 ? (double)(in->cur[k] - in->prev[k]) / secs : 0;
}

static void print_line(struct instance *in)
{
	char r[16], l[16], s[16];

	printf("%4u %-11s %8s %7s %8s %8.0f %8.0f %8.0f %8.0f %9.0f %8.0f %8.0f %8.0f %5" PRIu64
	       "%s\n",
	       in->page->instance, in->page->backend, human(in->cur[RESIDENT], r, sizeof(r)),
	       human(in->cur[LIMIT], l, sizeof(l)), human(in->cur[SWAP_USED], s, sizeof(s)),
	       rate(in, FAULTS), rate(in, MINOR), rate(in, MAJOR), rate(in, SWAPIN), rate(in, SWAPOUT),
	       rate(in, PGSCAN), rate(in, DIRECT), rate(in, REVOKES), in->cur[THP],
	       in->stale ? " (stale)" : "");
}

/* One interval: read every instance; print those that have a previous
 * sample to compare with. */
static int sample(pid_t pid)
{
	int printed = 0;

	scan_instances(pid);
	for (int i = 0; i < ninst; i++) {
		struct instance *in = &inst[i];

		read_page(in);
		if (in->have_prev) {
			print_line(in);
			printed++;
		}
		memcpy(in->prev, in->cur, sizeof(in->prev));
		in->prev_ns = in->cur_ns;
		in->have_prev = true;
	}
	fflush(stdout);
	return printed;
}

static void sleep_for(double secs)
{
	struct timespec ts = { (time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9) };

	while (!stop && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * Whether pid has exited: gone, or a zombie its parent has not reaped yet
 * (kill(pid, 0) still succeeds on one). A process killed before it closed
 * its instances leaves their objects behind, and the figures in them stop:
 * emmstat must not go on printing them.
 */
static bool exited(pid_t pid)
{
	char path[64], buf[512], *paren;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kill(pid, 0) < 0 && errno == ESRCH;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	/* The state follows the command name, which may hold ')'. */
	paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

static int usage(void)
{
	fprintf(stderr, "usage: emmstat PID [INTERVAL [COUNT]]\n");
	return 2;
}

int main(int argc, char **argv)
{
	char *end;
	long pid;
	double interval = 1;
	long count = -1;

	if (argc < 2 || argc > 4)
		return usage();
	pid = strtol(argv[1], &end, 10);
	if (*end || pid <= 0)
		return usage();
	if (argc > 2 && ((interval = strtod(argv[2], &end)) <= 0 || *end))
		return usage();
	if (argc > 3 && ((count = strtol(argv[3], &end, 10)) <= 0 || *end))
		return usage();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	scan_instances((pid_t)pid);
	if (!ninst || exited((pid_t)pid)) {
		fprintf(stderr, "emmstat: process %ld publishes no emm statistics (%s)\n", pid,
			exited((pid_t)pid) ? "it has exited, or there is no such process"
			: "no emm instance open, or EMM_STATS_SHM=0");
		return 1;
	}
	print_header();
	sample((pid_t)pid);
	while (!stop && count != 0) {
		sleep_for(interval);
		if (stop)
			break;
		if (exited((pid_t)pid)) {
			fprintf(stderr, "emmstat: process %ld has exited\n", pid);
			return 0;
		}
		sample((pid_t)pid);
		if (!ninst) {
			fprintf(stderr, "emmstat: process %ld has no emm instance any more\n", pid);
			return 0;
		}
		if (count > 0)
			count--;
	}
	return 0;
}
