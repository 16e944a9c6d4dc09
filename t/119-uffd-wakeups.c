/* SPDX-License-Identifier: MIT */
/* On the uffd backend a fault wakes one sleeping service thread, not all of them: four threads, one program thread's minor faults, the service threads' sleeps counted; and how many there are by default. So on one CPU: where the process may run on 2 to 4, the threads are pinned and a fault wakes all that sleep (t/230). */
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
#define PAGES	2048UL		/* 8 MiB */
#define ROUNDS	4
#define THREADS	4

/* Without uffd_threads: one service thread a CPU, but never fewer than 4
 * (a thread serving a major fault sleeps on its read), nor more than 16. */
static void default_threads(void)
{
	EMM_OPTS(emm_opts, o, .backend = EMM_BACKEND_UFFD);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int want = cpus < 4 ? 4 : cpus > 16 ? 16 : (int)cpus, n = 0;
	struct emm *mm;

	unsetenv("EMM_UFFD_THREADS");
	if (emm_open(&o, &mm) < 0) {
		skip(1, "a second uffd instance cannot be opened");
		return;
	}
	service_sleeps(&n);
	is_int(n, want, "by default %d service threads on %ld CPUs", want, cpus);
	emm_close(mm);
}

int main(void)
{
	/* One page a fault: no fault-around, random advice. */
	EMM_OPTS(emm_opts, o, .backend = EMM_BACKEND_UFFD, .uffd_threads = THREADS,
		 .thp = EMM_THP_NEVER, .fault_around = 1);
	uint64_t faults = 0, sleeps = 0, bad = 0;
	struct emm *mm;
	int n = 0;
	char *p;

	cpu_set_t one;

	plan(6);
	if (!first_cpus(1, &one))
		bail("sched_getaffinity: %s", strerror(errno));
	if (sched_setaffinity(0, sizeof(one), &one))
		bail("sched_setaffinity: %s", strerror(errno));
	if (!(mm = open_or_skip(&o, "uffd", 6)))
		return 0;
	is_int(emm_reserve(mm, PAGES * PAGE, (void **)&p), 0, "reserve 8 MiB");
	is_int(emm_map(mm, p, PAGES * PAGE, NULL), 0, "map it");
	emm_advise(mm, p, PAGES * PAGE, EMM_ADV_RANDOM);
	for (uint64_t i = 0; i < PAGES; i++)
		*(volatile uint64_t *)(p + i * PAGE) = i | 1;
	service_sleeps(&n);
	is_int(n, THREADS, "%d service threads", THREADS);
	for (int r = 0; r < ROUNDS; r++) {
		uint64_t f0, s0;

		/* Revoked, resident: the next read of each page is a minor
		 * fault served by a service thread. */
		emm_advise(mm, p, PAGES * PAGE, EMM_ADV_COLD);
		f0 = stats(mm).faults_minor;
		s0 = service_sleeps(&n);
		for (uint64_t i = 0; i < PAGES; i++)
			bad += *(volatile uint64_t *)(p + i * PAGE) != (i | 1);
		sleeps += service_sleeps(&n) - s0;
		faults += stats(mm).faults_minor - f0;
	}
	is_int(bad, 0, "every page read back right");
	/* Each fault wakes one sleeping thread, which sleeps again once it
	 * has served it (and polled a while): one sleep a fault at most. When
	 * every sleeping thread was woken for each fault (poll(2)), 1.8 to 2.1
	 * on two CPUs, 3.8 on this one. */
	diag("%llu minor faults, %llu service-thread sleeps (%.2f a fault)",
	     (unsigned long long)faults, (unsigned long long)sleeps,
	     faults ? (double)sleeps / (double)faults : 0.0);
	ok(faults >= ROUNDS * PAGES / 2 && 2 * sleeps <= 3 * faults,
	   "a fault wakes one sleeping service thread: %.2f sleeps a fault (at most 1.5)",
	   faults ? (double)sleeps / (double)faults : 0.0);
	emm_close(mm);
	default_threads();
	return 0;
}
