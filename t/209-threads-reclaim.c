/* SPDX-License-Identifier: MIT */
/* Two threads write and verify own and shared pages through a 16 MiB budget while reclaim runs. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "emm.h"
#include "tap.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LIMIT (16 * MIB)
#define OWN (40 * MIB)		/* each thread's own pages */
#define SHARED (16 * MIB)	/* pages both threads write, each its own word */
#define LEN (2 * OWN + SHARED)	/* 96 MiB */
#define WORDS_PER_PAGE (PAGE / 8)
#define NTHREADS 2
#define SLOT(t) (3 + (t) * 256)	/* a thread's word in a shared page, apart */
#define MAX_ITERS 8
#define MAX_SECONDS 20

static uint64_t *mem;
static struct timespec start;
static pthread_barrier_t go;

struct worker {
	pthread_t thread;
	int t;
	unsigned iters;
	size_t bad_own, bad_shared, bad_foreign;
};

static uint64_t pattern(int t, unsigned gen, uint64_t word)
{
	uint64_t s = word ^ (uint64_t)gen << 40 ^ (uint64_t)(t + 1) << 56;

	return tap_rand(&s) | 1;
}

static double elapsed(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
}

static uint64_t *own_base(int t)
{
	return mem + (size_t)t * (OWN / 8);
}

static uint64_t *shared_base(void)
{
	return mem + NTHREADS * (OWN / 8);
}

static void write_pass(struct worker *w, unsigned gen)
{
	uint64_t *own = own_base(w->t), *sh = shared_base();

	for (size_t i = 0; i < OWN / 8; i++)
		own[i] = pattern(w->t, gen, i);
	for (size_t pg = 0; pg < SHARED / PAGE; pg++)
		sh[pg * WORDS_PER_PAGE + SLOT(w->t)] = pattern(w->t, gen, pg);
}

/* The i-th of n pages to verify: forward in odd generations, backward in
 * even ones (readahead follows both; random order would make each page a
 * major fault of its own, too slow for the time this test has). */
static size_t page_at(size_t i, size_t n, unsigned gen)
{
	return gen % 2 ? i : n - 1 - i;
}

static void verify_own(struct worker *w, unsigned gen)
{
	const size_t n = OWN / PAGE;
	const uint64_t *own = own_base(w->t);

	for (size_t i = 0; i < n; i++) {
		size_t pg = page_at(i, n, gen);
		const uint64_t *p = own + pg * WORDS_PER_PAGE;

		for (size_t k = 0; k < WORDS_PER_PAGE; k++)
			if (p[k] != pattern(w->t, gen, pg * WORDS_PER_PAGE + k)) {
				w->bad_own++;
				break;
			}
	}
}

/* Our word holds what we wrote; the words nobody writes stay zero. */
static void verify_shared(struct worker *w, unsigned gen)
{
	const size_t n = SHARED / PAGE;
	const uint64_t *sh = shared_base();

	for (size_t i = 0; i < n; i++) {
		size_t pg = page_at(i, n, gen);
		const uint64_t *p = sh + pg * WORDS_PER_PAGE;

		w->bad_shared += p[SLOT(w->t)] != pattern(w->t, gen, pg);
		for (size_t k = 0; k < WORDS_PER_PAGE; k++)
			if (k != SLOT(0) && k != SLOT(1) && p[k]) {
				w->bad_foreign++;
				break;
			}
	}
}

static void *work(void *arg)
{
	struct worker *w = arg;

	pthread_barrier_wait(&go);
	for (unsigned gen = 1; gen <= MAX_ITERS && elapsed() < MAX_SECONDS; gen++) {
		write_pass(w, gen);
		verify_own(w, gen);
		verify_shared(w, gen);
		w->iters++;
	}
	return NULL;
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 512 * MIB);
	EMM_OPTS(emm_stats, st);
	struct worker w[NTHREADS];
	size_t bad = 0, foreign = 0;
	struct emm *mm;
	void *r;

	plan(9);
	if (!is_int(emm_open(&o, &mm), 0, "emm_open: 16 MiB budget"))
		bail("cannot open an instance");
	is_int(emm_reserve(mm, LEN, &r), 0, "reserve 96 MiB");
	is_int(emm_map(mm, r, LEN, NULL), 0, "map it");
	mem = r;
	pthread_barrier_init(&go, NULL, NTHREADS);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (int t = 0; t < NTHREADS; t++) {
		w[t] = (struct worker){ .t = t };
		if (pthread_create(&w[t].thread, NULL, work, &w[t]))
			bail("pthread_create");
	}
	for (int t = 0; t < NTHREADS; t++) {
		pthread_join(w[t].thread, NULL);
		diag("thread %d: %u iterations, %zu own pages wrong, %zu shared words wrong, "
		     "%zu shared pages with stray words", t, w[t].iters, w[t].bad_own,
		     w[t].bad_shared, w[t].bad_foreign);
		bad += w[t].bad_own + w[t].bad_shared;
		foreign += w[t].bad_foreign;
	}
	emm_stats(mm, &st);
	diag("%.1f s; swapouts %" PRIu64 ", swapins %" PRIu64 ", majors %" PRIu64
	     ", minors %" PRIu64 ", faults_wp %" PRIu64, elapsed(), st.swapouts, st.swapins,
	     st.faults_major, st.faults_minor, st.faults_wp);
	ok(w[0].iters >= 1 && w[1].iters >= 1, "both threads finished at least one iteration");
	is_int(bad, 0, "every verification passed");
	is_int(foreign, 0, "no word of a shared page changed that neither thread writes");
	ok(st.swapouts > 0, "swapouts > 0");
	ok(st.swapins > 0, "swapins > 0");
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
