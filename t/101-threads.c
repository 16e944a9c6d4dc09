/* SPDX-License-Identifier: MIT */
/* Four threads first-touching the same 64 MiB at once, in different orders: no write lost. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LEN (64 * MIB)
#define PAGES (LEN / PAGE)
#define WORDS_PER_PAGE (PAGE / 8)
#define NTHREADS 4
#define SLOT(t) ((t) * (WORDS_PER_PAGE / NTHREADS))	/* a word per thread, apart */

static uint64_t *mem;
static pthread_barrier_t start;

static uint64_t value(int t, size_t pg)
{
	return (uint64_t)(t + 1) << 48 | pg;
}

/* The i-th page thread t touches: ascending, descending, shuffled, strided. */
static size_t page_at(int t, size_t i, const uint32_t *shuffled)
{
	switch (t) {
	case 0:
		return i;
	case 1:
		return PAGES - 1 - i;
	case 2:
		return shuffled[i];
	default:
		return (i * 7919) % PAGES;	/* 7919 is prime, so every page once */
	}
}

struct worker {
	pthread_t tid;
	int t;
	const uint32_t *shuffled;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	pthread_barrier_wait(&start);
	for (size_t i = 0; i < PAGES; i++) {
		size_t pg = page_at(w->t, i, w->shuffled);

		mem[pg * WORDS_PER_PAGE + SLOT(w->t)] = value(w->t, pg);
	}
	return NULL;
}

static void verify(void)
{
	size_t lost = 0, stray = 0;

	for (size_t pg = 0; pg < PAGES; pg++) {
		uint64_t *p = mem + pg * WORDS_PER_PAGE;

		for (int t = 0; t < NTHREADS; t++)
			if (p[SLOT(t)] != value(t, pg) && lost++ < 5)
				diag("page %zu slot of thread %d: 0x%" PRIx64, pg, t, p[SLOT(t)]);
		stray += p[1] != 0 || p[WORDS_PER_PAGE - 1] != 0;
	}
	is_int(lost, 0, "every slot of every page holds its writer's value");
	is_int(stray, 0, "words no thread wrote still read zero");
}

int main(void)
{
	struct worker w[NTHREADS];
	uint64_t seed = 0x5eed0101;
	uint32_t *shuffled = random_order(PAGES, &seed);
	EMM_OPTS(emm_stats, st);
	struct emm *mm;
	void *r;
	int started = 0;

	plan(7);
	is_int(emm_open(NULL, &mm), 0, "emm_open");
	ok(emm_reserve(mm, LEN, &r) == 0 && emm_map(mm, r, LEN, NULL) == 0, "reserve and map 64 MiB");
	mem = r;
	pthread_barrier_init(&start, NULL, NTHREADS);
	for (int t = 0; t < NTHREADS; t++) {
		w[t] = (struct worker){ .t = t, .shuffled = shuffled };
		started += pthread_create(&w[t].tid, NULL, work, &w[t]) == 0;
	}
	if (started != NTHREADS)
		bail("pthread_create failed");
	for (int t = 0; t < NTHREADS; t++)
		pthread_join(w[t].tid, NULL);
	verify();
	is_int(emm_stats(mm, &st), 0, "emm_stats");
	diag("faults %" PRIu64 ", faults_zero %" PRIu64, st.faults, st.faults_zero);
	ok(st.faults_zero <= PAGES, "faults_zero %" PRIu64 " <= %lu pages", st.faults_zero, PAGES);
	is_int(st.resident_bytes, LEN, "resident_bytes is 64 MiB");
	emm_close(mm);
	free(shuffled);
	return done_testing();
}
