/* SPDX-License-Identifier: MIT */
/* Helpers several tests share: emm_stats as a value, a millisecond clock, a temporary file, a random order, words that name their address or page, a thread's name, the emm-uffd threads' sleeps, the first CPUs allowed, the threads there before a test, a child process. */
#ifndef EMM_T_UTIL_H
#define EMM_T_UTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"

#define UTIL_FN static __attribute__((unused))

/* The name of thread tid of this process (an entry of /proc/self/task)
 * in comm; "" where it cannot be read. */
UTIL_FN void task_comm(const char *tid, char *comm, size_t cap)
{
	char path[300];
	FILE *f;

	comm[0] = '\0';
	snprintf(path, sizeof(path), "/proc/self/task/%s/comm", tid);
	f = fopen(path, "r");
	if (f && fgets(comm, (int)cap, f))
		comm[strcspn(comm, "\n")] = '\0';
	if (f)
		fclose(f);
}

/* The voluntary context switches of this process's emm-uffd threads so
 * far (each one a sleep after which it was woken, or is sleeping now);
 * how many such threads there are in *n. */
UTIL_FN uint64_t service_sleeps(int *n)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	uint64_t sum = 0;

	*n = 0;
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[300], line[128], comm[32];
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		task_comm(e->d_name, comm, sizeof(comm));
		if (strncmp(comm, "emm-uffd", 8))
			continue;
		(*n)++;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
		f = fopen(path, "r");
		while (f && fgets(line, sizeof(line), f))
			if (!strncmp(line, "voluntary_ctxt_switches:", 24))
				sum += strtoull(line + 24, NULL, 10);
		if (f)
			fclose(f);
	}
	closedir(d);
	return sum;
}

/* The first n CPUs this process may run on, in *out; false if fewer. */
UTIL_FN bool first_cpus(unsigned n, cpu_set_t *out)
{
	cpu_set_t all;
	unsigned got = 0;

	CPU_ZERO(out);
	if (sched_getaffinity(0, sizeof(all), &all))
		return false;
	for (int c = 0; c < CPU_SETSIZE && got < n; c++)
		if (CPU_ISSET(c, &all)) {
			CPU_SET(c, out);
			got++;
		}
	return got == n;
}

/* The threads of this process there before a test (a sanitizer's own,
 * say): not emm's. */
static int util_before[64] __attribute__((unused)), util_nbefore __attribute__((unused));

UTIL_FN bool thread_was_there(int tid)
{
	for (int i = 0; i < util_nbefore; i++)
		if (util_before[i] == tid)
			return true;
	return false;
}

UTIL_FN void *util_nothing(void *arg)
{
	return arg;
}

/* Note the threads there now. ThreadSanitizer starts a thread of its own
 * at the first pthread_create, named as the program: start one first, so
 * that it is there before. */
UTIL_FN void note_threads(void)
{
	pthread_t t;
	struct dirent *e;
	DIR *d;

	if (pthread_create(&t, NULL, util_nothing, NULL) == 0)
		pthread_join(t, NULL);
	d = opendir("/proc/self/task");
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.' && util_nbefore < 64)
			util_before[util_nbefore++] = atoi(e->d_name);
	if (d)
		closedir(d);
}

UTIL_FN struct emm_stats stats(struct emm *mm)
{
	EMM_OPTS(emm_stats, st);

	if (emm_stats(mm, &st))
		bail("emm_stats failed");
	return st;
}

/* An instance opened with o, or NULL when the backend it names is not
 * offered here: then n tests are skipped, saying so. */
UTIL_FN struct emm *open_or_skip(const struct emm_opts *o, const char *name, int n)
{
	struct emm *mm;
	char why[128];
	int err = emm_open(o, &mm);

	if (!err)
		return mm;
	snprintf(why, sizeof(why), "%s: not offered here (%s)", name, strerror(-err));
	skip(n, why);
	return NULL;
}

/* run once for each backend, by its name (a backend not offered here
 * skips in run, open_or_skip). */
UTIL_FN void each_backend(void (*run)(int backend, const char *name))
{
	run(EMM_BACKEND_SIGNAL, "signal");
	run(EMM_BACKEND_UFFD, "uffd");
	run(EMM_BACKEND_UFFD_SIGBUS, "uffd-sigbus");
}

/*
 * Run child(backend) in a child process, its standard output in out (n
 * bytes, the first line, NUL-terminated): child ends with _exit. For a
 * test that may die of a signal or leave threads running when it fails.
 * Returns its wait status.
 */
UTIL_FN int in_child(void (*child)(int backend), int backend, char *out, size_t n)
{
	int fd[2], st = 0;
	ssize_t got;
	pid_t pid;

	fflush(stdout);
	if (pipe(fd) || (pid = fork()) < 0)
		bail("pipe, fork");
	if (pid == 0) {
		dup2(fd[1], 1);
		close(fd[0]);
		child(backend);
		_exit(99);
	}
	close(fd[1]);
	got = read(fd[0], out, n - 1);
	close(fd[0]);
	out[got > 0 ? got : 0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	waitpid(pid, &st, 0);
	return st;
}

UTIL_FN long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/*
 * A read-write temporary file emm-<name>-XXXXXX in $TMPDIR, else /var/tmp
 * (a disk, where /tmp may be memory). With a path buffer the name stays
 * there and the file stays; without one it is unlinked at once.
 */
UTIL_FN int tmp_file(const char *name, char *path, size_t cap)
{
	const char *dir = getenv("TMPDIR");
	char own[4096];
	int fd;

	if (!path) {
		path = own;
		cap = sizeof(own);
	}
	snprintf(path, cap, "%s/emm-%s-XXXXXX", dir && *dir ? dir : "/var/tmp", name);
	fd = mkstemp(path);
	if (fd < 0)
		bail("mkstemp in %s: %s", path, strerror(errno));
	if (path == own)
		unlink(path);
	return fd;
}

/* 0 .. n-1 shuffled (Fisher-Yates) by the generator *seed, in malloc'd memory. */
UTIL_FN uint32_t *random_order(uint32_t n, uint64_t *seed)
{
	uint32_t *order = malloc(n * sizeof(*order));

	if (!order)
		bail("out of memory");
	for (uint32_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = tap_rand(seed) % (i + 1);
		uint32_t t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	return order;
}

/* The word the tests write at p: its address, scrambled; never zero, so a
 * word reading zero was never written. */
UTIL_FN uint64_t word_value(const uint64_t *p)
{
	return (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ULL | 1;
}

/* Each word of [p, p + len) gets value(its address). */
UTIL_FN void fill_words(void *p, size_t len, uint64_t (*value)(const uint64_t *))
{
	uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = value(w + i);
}

/* The words of [p, p + len) that do not hold what fill_words wrote; the
 * first five said in a diag. */
UTIL_FN size_t count_bad_words(const void *p, size_t len, uint64_t (*value)(const uint64_t *))
{
	const uint64_t *w = p;
	size_t bad = 0;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != value(w + i) && bad++ < 5)
			diag("%p: got 0x%" PRIx64, (const void *)(w + i), w[i]);
	return bad;
}

/* One word in each page of [off, off + len) of mem: its offset, mixed with gen. */
UTIL_FN void stamp_pages(char *mem, size_t off, size_t len, uint64_t gen)
{
	for (size_t a = off; a < off + len; a += 4096)
		*(uint64_t *)(mem + a) = a ^ gen;
}

/* Pages of [off, off + len) whose word is not what stamp_pages wrote. */
UTIL_FN size_t bad_stamps(const char *mem, size_t off, size_t len, uint64_t gen)
{
	size_t bad = 0;

	for (size_t a = off; a < off + len; a += 4096)
		bad += *(const volatile uint64_t *)(mem + a) != (a ^ gen);
	return bad;
}

/* Wait until the reclaim thread has stolen no page for 100 ms: with the
 * budget raised above what is resident, it then has nothing to do, and
 * what the test measures next is not changed under it. */
UTIL_FN void reclaim_settle(struct emm *mm)
{
	uint64_t last = UINT64_MAX;

	for (int still = 0; still < 5; usleep(20000)) {
		uint64_t steal = stats(mm).pgsteal;

		still = steal == last ? still + 1 : 0;
		last = steal;
	}
}

/* The kernel VMAs emm may create under vm.max_map_count max: lib/util.c
 * leaves the application max/8 of it, 4096 at least. */
UTIL_FN long emm_vma_share(long max)
{
	long left = max / 8 > 4096 ? max / 8 : 4096;

	return max - left > 64 ? max - left : 64;
}

/*
 * Is mm's backend signal, with a share of vm.max_map_count below need
 * kernel VMAs? Near its share, the signal backend maps whole clusters
 * around a fault (coalesce) to make fewer VMAs: more than a test of what
 * a fault maps expects. The kernel's default is 65530.
 */
UTIL_FN bool signal_vmas_short(struct emm *mm, long need)
{
	char buf[32] = "";
	int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	long max = n > 0 ? strtol(buf, NULL, 10) : 65530;

	if (fd >= 0)
		close(fd);
	return emm_backend(mm) == EMM_BACKEND_SIGNAL && emm_vma_share(max) < need;
}

/* Install h (plain) or sa (SA_SIGINFO) for sig, nothing blocked, no flags. */
UTIL_FN void set_handler(int sig, void (*h)(int), void (*sa)(int, siginfo_t *, void *))
{
	struct sigaction act = { .sa_flags = sa ? SA_SIGINFO : 0 };

	if (sa)
		act.sa_sigaction = sa;
	else
		act.sa_handler = h;
	sigemptyset(&act.sa_mask);
	if (sigaction(sig, &act, NULL))
		bail("sigaction: %s", strerror(errno));
}

/* Fill [0, len) of fd with word(off) at each 8-byte offset off, a MiB at
 * a time (a last word cut short by len is cut in the file too). */
UTIL_FN void fill_file_words(int fd, uint64_t len, uint64_t (*word)(uint64_t off))
{
	const size_t chunk = 1 << 20;
	uint64_t *buf = malloc(chunk);

	if (!buf)
		bail("out of memory");
	for (uint64_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;

		for (size_t i = 0; i < (n + 7) / 8; i++)
			buf[i] = word(off + i * 8);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			bail("pwrite: %s", strerror(errno));
	}
	free(buf);
}

/* A fresh region of len in mm, every word written (word_value), then
 * paged out whole. */
UTIL_FN uint64_t *paged_out_region(struct emm *mm, size_t len)
{
	void *r;

	if (emm_reserve(mm, len, &r) || emm_map(mm, r, len, NULL))
		bail("cannot reserve and map %zu MiB", len >> 20);
	fill_words(r, len, word_value);
	if (emm_advise(mm, r, len, EMM_ADV_PAGEOUT))
		bail("cannot page the region out");
	return r;
}

#endif /* EMM_T_UTIL_H */
