/* SPDX-License-Identifier: MIT */
/*
 * The uffd backend's service threads pinned on 2 CPUs, four of them: one
 * a CPU polls the userfaultfd, and only those wake for a fault; the other
 * two sleep until both pollers are busy (uffd_service.c). So a thread
 * faulting alone wakes the service threads about twice a fault, not four
 * times; and four threads faulting at once are all served, with what they
 * wrote. Each case runs in a child restricted to 2 CPUs.
 */
#include <pthread.h>
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
#define PAGES	512
#define ROUNDS	4
#define WORKERS	4

/* In the child, on 2 CPUs: an instance with o, PAGES pages mapped, each
 * with its stamp; exits the child if that fails. */
static uint64_t *written(const struct emm_opts *o, struct emm **mm)
{
	cpu_set_t set;
	uint64_t *p;

	if (!first_cpus(2, &set) || sched_setaffinity(0, sizeof(set), &set))
		_exit(2);
	if (emm_open(o, mm) || emm_reserve(*mm, PAGES * PAGE, (void **)&p) ||
	    emm_map(*mm, p, PAGES * PAGE, NULL))
		_exit(3);
	for (unsigned i = 0; i < PAGES; i++)
		p[i * (PAGE / 8)] = 0x5eed0000u + i;
	return p;
}

/* Alone: pages revoked (their data kept) and touched again, one minor
 * fault each, one at a time. Prints service threads, faults, sleeps. */
static void child_alone(int unused)
{
	EMM_OPTS(emm_opts, o, .backend = EMM_BACKEND_UFFD, .uffd_threads = 4,
		 .fault_around = 1);
	uint64_t before, after;
	struct emm_stats a, b;
	struct emm *mm;
	uint64_t *p;
	long bad = 0;
	int threads;

	(void)unused;
	p = written(&o, &mm);
	a = stats(mm);
	before = service_sleeps(&threads);
	for (unsigned r = 0; r < ROUNDS; r++) {
		if (emm_advise(mm, p, PAGES * PAGE, EMM_ADV_COLD) < 0)
			_exit(4);
		for (unsigned i = 0; i < PAGES; i++)
			bad += p[i * (PAGE / 8)] != 0x5eed0000u + i;
	}
	b = stats(mm);	/* waits for the service threads (emm_stats) */
	after = service_sleeps(&threads);
	emm_close(mm);
	dprintf(1, "%d %llu %llu %ld\n", threads, (unsigned long long)(b.faults - a.faults),
		(unsigned long long)(after - before), bad);
	_exit(0);
}

struct worker {
	uint64_t *p;
	unsigned first;
	long bad;
};

static void *reader(void *arg)
{
	struct worker *w = arg;

	for (unsigned i = w->first; i < PAGES; i += WORKERS)
		w->bad += w->p[i * (PAGE / 8)] != 0x5eed0000u + i;
	return NULL;
}

/* Four threads at once: pages paged out and read back, each thread every
 * fourth. Prints the faults served and the pages that came back wrong. */
static void child_together(int unused)
{
	EMM_OPTS(emm_opts, o, .backend = EMM_BACKEND_UFFD, .uffd_threads = 4,
		 .swap_size = 16UL << 20, .fault_around = 1);
	struct worker w[WORKERS];
	pthread_t t[WORKERS];
	struct emm_stats a, b;
	struct emm *mm;
	uint64_t *p;
	long bad = 0;

	(void)unused;
	p = written(&o, &mm);
	if (emm_advise(mm, p, PAGES * PAGE, EMM_ADV_PAGEOUT) < 0)
		_exit(4);
	a = stats(mm);
	for (unsigned i = 0; i < WORKERS; i++) {
		w[i] = (struct worker){ .p = p, .first = i };
		if (pthread_create(&t[i], NULL, reader, &w[i]))
			_exit(5);
	}
	for (unsigned i = 0; i < WORKERS; i++) {
		pthread_join(t[i], NULL);
		bad += w[i].bad;
	}
	b = stats(mm);
	emm_close(mm);
	dprintf(1, "%llu %ld\n", (unsigned long long)(b.faults - a.faults), bad);
	_exit(0);
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .backend = EMM_BACKEND_UFFD);
	unsigned long long faults, sleeps;
	int threads;
	char out[96];
	cpu_set_t set;
	struct emm *mm;
	long bad;
	int st;

	plan(2);
	if (!(mm = open_or_skip(&o, "uffd", 2)))
		return done_testing();
	emm_close(mm);
	if (!first_cpus(2, &set)) {
		skip(2, "fewer than 2 CPUs: the service threads are not pinned");
		return done_testing();
	}

	st = in_child(child_alone, 0, out, sizeof(out));
	if (!WIFEXITED(st) || WEXITSTATUS(st) ||
	    sscanf(out, "%d %llu %llu %ld", &threads, &faults, &sleeps, &bad) != 4)
		ok(0, "alone: the child ran (status %#x, \"%s\")", st, out);
	else
		ok(threads == 4 && faults >= PAGES && bad == 0 && sleeps < 3 * faults,
		   "one thread faulting alone on 2 CPUs: %llu faults woke the %d service threads "
		   "%llu times (%.2f a fault, under 3: the two pollers, not all four); %ld pages "
		   "wrong", faults, threads, sleeps, faults ? (double)sleeps / (double)faults : 0.0,
		   bad);

	st = in_child(child_together, 0, out, sizeof(out));
	if (!WIFEXITED(st) || WEXITSTATUS(st) || sscanf(out, "%llu %ld", &faults, &bad) != 2)
		ok(0, "together: the child ran (status %#x, \"%s\")", st, out);
	else
		ok(faults >= 1 && bad == 0,
		   "%d threads faulting at once on 2 CPUs: %llu faults served, %ld of %d pages "
		   "wrong", WORKERS, faults, bad, PAGES);
	return done_testing();
}
