/* SPDX-License-Identifier: MIT */
/*
 * The uffd backend's service threads: pinned one to each CPU the process
 * may run on, in turn, where it may run on 2 to 4 (a fault then wakes the
 * one on the faulting thread's CPU, which runs as soon as that thread
 * sleeps); left to roam on 1 CPU or more than 4. Either way the faults are
 * served: pages paged out and read back hold what was written. Each case
 * runs in a child that first restricts its own CPUs.
 */
#include <dirent.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE	4096UL
#define PAGES	64

/* Pages written, paged out, read back: how many came back wrong, or -1. */
static long round_trip(struct emm *mm)
{
	uint64_t *p;
	long bad = 0;

	if (emm_reserve(mm, PAGES * PAGE, (void **)&p) || emm_map(mm, p, PAGES * PAGE, NULL))
		return -1;
	for (unsigned i = 0; i < PAGES; i++)
		p[i * (PAGE / 8)] = 0x5eed0000u + i;
	if (emm_advise(mm, p, PAGES * PAGE, EMM_ADV_PAGEOUT) < 0)
		return -1;
	for (unsigned i = 0; i < PAGES; i++)
		bad += p[i * (PAGE / 8)] != 0x5eed0000u + i;
	return bad;
}

/*
 * In a child on its first ncpu CPUs: prints the service threads, those
 * pinned to one of those CPUs, the CPUs they cover, those allowed all of
 * them, and the pages that came back wrong.
 */
static void child(int ncpu)
{
	EMM_OPTS(emm_opts, o, .backend = EMM_BACKEND_UFFD, .swap_size = 16UL << 20);
	unsigned threads = 0, pinned = 0, roam = 0;
	cpu_set_t set, covered;
	struct dirent *d;
	struct emm *mm;
	long bad;
	DIR *dir;

	if (!first_cpus((unsigned)ncpu, &set) || sched_setaffinity(0, sizeof(set), &set))
		_exit(2);
	if (emm_open(&o, &mm))
		_exit(3);
	bad = round_trip(mm);
	CPU_ZERO(&covered);
	if (!(dir = opendir("/proc/self/task")))
		_exit(4);
	while ((d = readdir(dir))) {
		cpu_set_t a, in;

		char comm[32];

		if (d->d_name[0] == '.')
			continue;
		task_comm(d->d_name, comm, sizeof(comm));
		if (strncmp(comm, "emm-uffd", 8))
			continue;
		threads++;
		if (sched_getaffinity(atoi(d->d_name), sizeof(a), &a))
			_exit(5);
		CPU_AND(&in, &a, &set);
		if (CPU_COUNT(&a) == 1 && CPU_COUNT(&in) == 1) {
			pinned++;
			CPU_OR(&covered, &covered, &a);
		}
		roam += CPU_EQUAL(&a, &set);
	}
	closedir(dir);
	emm_close(mm);
	dprintf(1, "%u %u %d %u %ld\n", threads, pinned, CPU_COUNT(&covered), roam, bad);
	_exit(0);
}

/* Runs child on ncpu CPUs; false (and a failed test) if it failed. */
static bool run(int ncpu, unsigned *threads, unsigned *pinned, int *covered, unsigned *roam,
		long *bad)
{
	char out[96];
	int st = in_child(child, ncpu, out, sizeof(out));

	if (!WIFEXITED(st) || WEXITSTATUS(st) ||
	    sscanf(out, "%u %u %d %u %ld", threads, pinned, covered, roam, bad) != 5) {
		ok(0, "on %d CPU(s): the child ran (status %#x, \"%s\")", ncpu, st, out);
		return false;
	}
	return true;
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .backend = EMM_BACKEND_UFFD);
	unsigned threads, pinned, roam;
	cpu_set_t set;
	struct emm *mm;
	int covered;
	long bad;

	plan(3);
	if (!(mm = open_or_skip(&o, "uffd", 3)))
		return done_testing();
	emm_close(mm);

	if (!first_cpus(2, &set))
		skip(1, "fewer than 2 CPUs: nothing to pin to");
	else if (run(2, &threads, &pinned, &covered, &roam, &bad))
		ok(threads >= 2 && pinned == threads && covered == 2 && bad == 0,
		   "on 2 CPUs: %u service threads, %u pinned to one CPU each, covering %d; "
		   "%ld of %d pages wrong after a round trip", threads, pinned, covered, bad, PAGES);

	if (run(1, &threads, &pinned, &covered, &roam, &bad))
		ok(threads >= 1 && bad == 0, "on 1 CPU: %u service threads; %ld of %d pages wrong",
		   threads, bad, PAGES);

	if (!first_cpus(5, &set))
		skip(1, "fewer than 5 CPUs: cannot show threads left unpinned above 4");
	else if (run(5, &threads, &pinned, &covered, &roam, &bad))
		ok(threads >= 1 && pinned == 0 && roam == threads && bad == 0,
		   "on 5 CPUs: %u service threads, %u pinned, %u allowed all 5; %ld of %d pages "
		   "wrong", threads, pinned, roam, bad, PAGES);
	return done_testing();
}
