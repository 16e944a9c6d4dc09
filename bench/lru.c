/* SPDX-License-Identifier: MIT */
/* lru: threads faulting and reclaiming at once, with the per-CPU pagevecs on and off. */
#include "bench.h"

#include <emm.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The count of node-lock acquisitions is not in emm_stats: it is read from
 * the instance (struct emm, struct lru) as the library's own header lays it
 * out. Only the layout is used, no internal function, so the program still
 * links the library as users do.
 */
#undef PAGE_SIZE
#include "../lib/internal.h"
#include "../lib/lru.h"

#define DEFAULT_LIMIT	(64ULL << 20)
#define DEFAULT_THREADS	2
#define WORDS		(PAGE_SIZE / sizeof(uint64_t))
#define MIB		(1024.0 * 1024.0)

enum { ON, OFF, NR_MODES };

static const char *const mode_name[NR_MODES] = { "pagevec on", "pagevec off" };

/*
 * What the threads write. Zeros: a page stays all-zero, so reclaim drops it
 * with no I/O and the next pass faults it in afresh: the fault, LRU and
 * reclaim paths alone. Data: every evicted page goes to swap and comes back.
 */
struct pattern {
	const char *name;
	bool zero;
	unsigned passes;	/* writes of every page of each region */
};

static const struct pattern patterns[] = {
	{ "zero", true, 4 },
	{ "data", false, 2 },
};

#define NR_PATTERNS	(sizeof(patterns) / sizeof(patterns[0]))

/* One pattern in one mode, best of the runs; the counters go with the best. */
struct result {
	uint64_t ns;
	uint64_t drains;	/* node-lock acquisitions for LRU operations */
	struct emm_stats st;	/* growth over the timed part */
	uint64_t bad;		/* words that read back wrong, all runs */
};

struct lrub {
	uint64_t size, limit;	/* each thread's region; the budget */
	size_t pages;		/* per region */
	unsigned threads;
	struct result res[NR_PATTERNS][NR_MODES];
};

/* One thread's region. */
struct worker {
	volatile uint64_t *p;
	size_t pages;
	unsigned id;
	const struct pattern *pat;
	_Atomic bool *go;
	pthread_t tid;
	bool started;
};

static int complain(const char *what, int err)
{
	fprintf(stderr, "emm-bench: lru: %s: %s\n", what, strerror(-err));
	return err;
}

/* The word a page holds after a pass: for data never zero, so eviction must write it. */
static uint64_t stamp(const struct worker *w, size_t pg, unsigned pass)
{
	return w->pat->zero ? 0 : ((uint64_t)w->id << 48 | (uint64_t)pass << 32 | pg) + 1;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(w->go))
		;	/* the threads start together: a short spin, not a sleep */
	for (unsigned pass = 0; pass < w->pat->passes; pass++)
		for (size_t pg = 0; pg < w->pages; pg++)
			w->p[pg * WORDS] = stamp(w, pg, pass);
	return NULL;
}

/* Read every page back (untimed): the last pass's words must be there. */
static uint64_t verify(const struct worker *w)
{
	uint64_t bad = 0;

	for (size_t pg = 0; pg < w->pages; pg++)
		bad += w->p[pg * WORDS] != stamp(w, pg, w->pat->passes - 1);
	return bad;
}


static uint64_t drains(struct emm *mm)
{
	return atomic_load_explicit(&mm->lru->drains, memory_order_relaxed);
}

/* The threads' writes, timed from the start signal to the last join.
 * Worker 0 runs on this thread, and so does one a thread could not be made for. */
static uint64_t run_threads(struct worker *w, unsigned n)
{
	uint64_t t0;

	for (unsigned t = 1; t < n; t++)
		w[t].started = pthread_create(&w[t].tid, NULL, worker_main, &w[t]) == 0;
	t0 = bench_now_ns();
	atomic_store(w[0].go, true);
	worker_main(&w[0]);
	for (unsigned t = 1; t < n; t++) {
		if (w[t].started)
			pthread_join(w[t].tid, NULL);
		else
			worker_main(&w[t]);
	}
	return bench_now_ns() - t0;
}

static struct emm_stats stats_delta(const struct emm_stats *a, const struct emm_stats *b)
{
	struct emm_stats d;

	bench_stats_delta(a, b, &d);
	return d;
}

/* Time the threads on a fresh instance's regions, and keep the best run. */
static void measure(struct lrub *b, struct emm *mm, struct worker *w, struct result *r)
{
	struct emm_stats s0, s1;
	uint64_t ns, d0, bad = 0;

	bench_stats(mm, &s0);
	d0 = drains(mm);
	ns = run_threads(w, b->threads);
	d0 = drains(mm) - d0;
	bench_stats(mm, &s1);
	for (unsigned t = 0; t < b->threads; t++)
		bad += verify(&w[t]);
	if (!r->ns || ns < r->ns) {
		r->ns = ns;
		r->drains = d0;
		r->st = stats_delta(&s0, &s1);
	}
	r->bad += bad;
}

/* One fresh instance in one mode: a region per thread, in one reservation. */
static int run_once(struct lrub *b, size_t pat, int mode)
{
	EMM_OPTS(emm_opts, eo, .mem_limit = b->limit,
		 .swap_size = 2 * b->size * b->threads,
		 .flags = mode == OFF ? EMM_OPEN_NO_PAGEVEC : 0);
	struct worker *w = calloc(b->threads, sizeof(*w));
	_Atomic bool go = false;
	struct emm *mm;
	void *p;
	int err;

	if (!w)
		return complain("memory for the benchmark", -ENOMEM);
	err = emm_open(&eo, &mm);
	if (err < 0) {
		free(w);
		return complain("emm_open", err);
	}
	err = emm_reserve(mm, b->size * b->threads, &p);
	if (err == 0)
		err = emm_map(mm, p, b->size * b->threads, NULL);
	if (err == 0) {
		for (unsigned t = 0; t < b->threads; t++)
			w[t] = (struct worker){ .p = (uint64_t *)((char *)p + t * b->size),
						.pages = b->pages, .id = t,
						.pat = &patterns[pat], .go = &go };
		measure(b, mm, w, &b->res[pat][mode]);
	}
	emm_close(mm);
	free(w);
	return err < 0 ? complain("emm", err) : 0;
}

static void report(const struct lrub *b, size_t pat, int mode)
{
	const struct result *r = &b->res[pat][mode];
	const struct emm_stats *st = &r->st;
	uint64_t touched = (uint64_t)b->pages * b->threads * patterns[pat].passes;

	printf("%-4s %-11s %9.0f pages/s  %.3f lock acquisitions per page  (%.2f s; drains %llu,"
	       " faults %llu zero %llu major %llu minor %llu, swapouts %llu swapins %llu,"
	       " pgscan %llu pgsteal %llu pgactivate %llu pgdeactivate %llu",
	       patterns[pat].name, mode_name[mode], bench_rate(touched, r->ns),
	       (double)r->drains / touched, r->ns / 1e9, (unsigned long long)r->drains,
	       (unsigned long long)st->faults, (unsigned long long)st->faults_zero,
	       (unsigned long long)st->faults_major, (unsigned long long)st->faults_minor,
	       (unsigned long long)st->swapouts, (unsigned long long)st->swapins,
	       (unsigned long long)st->pgscan, (unsigned long long)st->pgsteal,
	       (unsigned long long)st->pgactivate, (unsigned long long)st->pgdeactivate);
	if (r->bad)
		printf("; %llu WRONG words", (unsigned long long)r->bad);
	printf(")\n");
}

static void ratios(const struct lrub *b, size_t pat)
{
	const struct result *on = &b->res[pat][ON], *off = &b->res[pat][OFF];

	printf("%-4s pagevec on/off: pages/s %.2fx, lock acquisitions per page %.3fx\n",
	       patterns[pat].name, on->ns ? (double)off->ns / on->ns : 0,
	       off->drains ? (double)on->drains / off->drains : 0);
}

int bench_lru(const struct bench_opts *o)
{
	struct lrub b = { .size = o->size, .limit = o->limit ? o->limit : DEFAULT_LIMIT,
			  .pages = o->size / PAGE_SIZE,
			  .threads = o->threads ? o->threads : DEFAULT_THREADS };

	printf("lru: %u thread(s), each writing one word per page of its own %.0f MiB region,\n"
	       "  under a %.0f MiB budget, a fresh instance per run; pagevec on (the default)\n"
	       "  against off (EMM_OPEN_NO_PAGEVEC), best of %u run(s) each.\n"
	       "  zero: %u passes writing zeros (reclaim drops the pages, no I/O);\n"
	       "  data: %u passes writing data (every evicted page goes to swap and back).\n"
	       "  Lock acquisitions: node-lock takes for LRU add/activate/deactivate (the\n"
	       "  instance's lru drains counter); pages: pages written\n",
	       b.threads, b.size / MIB, b.limit / MIB, o->runs, patterns[0].passes,
	       patterns[1].passes);
	if (b.limit >= b.size * b.threads)
		printf("  note: the budget holds every region, so little is reclaimed\n");
	/* Alternate the modes, so drift in the machine hits both alike. */
	for (size_t pat = 0; pat < NR_PATTERNS; pat++) {
		for (unsigned r = 0; r < o->runs; r++)
			for (int mode = 0; mode < NR_MODES; mode++)
				if (run_once(&b, pat, mode) < 0)
					return 1;
		for (int mode = 0; mode < NR_MODES; mode++)
			report(&b, pat, mode);
		ratios(&b, pat);
	}
	return 0;
}
