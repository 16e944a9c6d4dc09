/* SPDX-License-Identifier: MIT */
/* emm-bench heap: a multi-threaded allocation workload on libemm-heap, plain mimalloc and glibc malloc; then under a budget. */
#include "bench.h"
#include "kswap.h"

#include <emm.h>
#include <emm-heap.h>
#include <mimalloc.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB		(1024.0 * 1024.0)
#define DEFAULT_OPS	(1ULL << 21)	/* per thread */
#define BATCH		32		/* blocks handed to the next thread at once */
#define GOAL		(1 / 1.1)	/* libemm-heap / mimalloc, no pressure */

/* glibc's own entry points: this program's malloc is mimalloc's, since it
 * links libmimalloc through the companion. */
extern void *__libc_malloc(size_t n);
extern void __libc_free(void *p);

struct allocator {
	const char *name;
	void *(*alloc)(void *ctx, size_t n);
	void (*release)(void *ctx, void *p);
	void *ctx;
};

static void *glibc_alloc(void *ctx, size_t n) { return __libc_malloc(n); }
static void glibc_free(void *ctx, void *p) { __libc_free(p); }
static void *mi_alloc(void *ctx, size_t n) { return mi_malloc(n); }
static void mi_release(void *ctx, void *p) { mi_free(p); }
static void *heap_alloc(void *ctx, size_t n) { return emm_heap_malloc(ctx, n); }
static void heap_release(void *ctx, void *p) { emm_heap_free(ctx, p); }

/* Blocks one thread hands to the next, which frees them. */
struct mailbox {
	pthread_mutex_t lock;
	void *p[4 * BATCH];
	unsigned n;
};

struct run {
	const struct allocator *a;
	unsigned threads;
	size_t slots;			/* live blocks per thread */
	uint64_t ops;			/* per thread */
	struct mailbox *box;
	pthread_barrier_t start;
	uint64_t bad;
};

struct worker {
	struct run *r;
	unsigned id;
	uint64_t bad;
};

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

/* Mostly small, some medium, a few large: 70% 16-256 B, 20% to 4 KiB, 9% to
 * 32 KiB, 1% to 256 KiB; about 3.6 KB on average. */
static size_t size_of(uint64_t v)
{
	unsigned pick = (unsigned)(v % 100);
	size_t span = pick < 70 ? 240 : pick < 90 ? 3840 : pick < 99 ? 28672 : 229376;
	size_t base = pick < 70 ? 16 : pick < 90 ? 256 : pick < 99 ? 4096 : 32768;

	return base + (size_t)(v >> 8) % span;
}

#define AVG_SIZE 3600

/* A block holds its size and a tag in its first words, its last byte too. */
static void *get(struct worker *w, size_t n, uint64_t tag)
{
	uint64_t *p = w->r->a->alloc(w->r->a->ctx, n);

	if (!p)
		return NULL;
	p[0] = n;
	p[1] = tag;
	((unsigned char *)p)[n - 1] = (unsigned char)tag;
	return p;
}

static void put(struct worker *w, uint64_t *p)
{
	w->bad += ((unsigned char *)p)[p[0] - 1] != (unsigned char)p[1];
	w->r->a->release(w->r->a->ctx, p);
}

/* Free what the previous thread handed over; hand a batch to the next. */
static void exchange(struct worker *w, void **slots, uint64_t *x)
{
	struct mailbox *in = &w->r->box[w->id], *out = &w->r->box[(w->id + 1) % w->r->threads];
	void *mine[4 * BATCH];
	unsigned n;

	pthread_mutex_lock(&in->lock);
	n = in->n;
	memcpy(mine, in->p, n * sizeof(void *));
	in->n = 0;
	pthread_mutex_unlock(&in->lock);
	for (unsigned i = 0; i < n; i++)
		put(w, mine[i]);
	pthread_mutex_lock(&out->lock);
	for (unsigned i = 0; i < BATCH && out->n < 4 * BATCH; i++) {
		size_t k = next(x) % w->r->slots;

		if (slots[k]) {
			out->p[out->n++] = slots[k];
			slots[k] = NULL;
		}
	}
	pthread_mutex_unlock(&out->lock);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->r;
	uint64_t x = 0x9e3779b97f4a7c15ULL * (w->id + 1);
	void **slots = calloc(r->slots, sizeof(void *));

	for (size_t k = 0; slots && k < r->slots; k++)
		slots[k] = get(w, size_of(next(&x)), k);
	pthread_barrier_wait(&r->start);
	for (uint64_t i = 0; slots && i < r->ops; i++) {
		size_t k = next(&x) % r->slots;

		if (slots[k])
			put(w, slots[k]);
		slots[k] = get(w, size_of(next(&x)), i);
		if (r->threads > 1 && i % 256 == 0)
			exchange(w, slots, &x);
	}
	pthread_barrier_wait(&r->start);
	for (size_t k = 0; slots && k < r->slots; k++)
		if (slots[k])
			put(w, slots[k]);
	free(slots);
	w->bad += !slots;
	return NULL;
}

/* Operations per second of the timed phase (all threads), 0 on failure. */
static double run_workload(const struct allocator *a, unsigned threads, size_t slots,
			   uint64_t ops, uint64_t *bad)
{
	struct run r = { .a = a, .threads = threads, .slots = slots, .ops = ops };
	struct worker w[256];
	pthread_t th[256];
	uint64_t t0, t1;

	r.box = calloc(threads, sizeof(*r.box));
	if (!r.box)
		return 0;
	for (unsigned i = 0; i < threads; i++)
		pthread_mutex_init(&r.box[i].lock, NULL);
	pthread_barrier_init(&r.start, NULL, threads + 1);
	for (unsigned i = 0; i < threads; i++) {
		w[i] = (struct worker){ .r = &r, .id = i };
		pthread_create(&th[i], NULL, work, &w[i]);
	}
	pthread_barrier_wait(&r.start);
	t0 = bench_now_ns();
	pthread_barrier_wait(&r.start);
	t1 = bench_now_ns();
	*bad = 0;
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		*bad += w[i].bad;
	}
	for (unsigned i = 0; i < threads; i++)	/* what is left in the mailboxes */
		for (unsigned k = 0; k < r.box[i].n; k++)
			a->release(a->ctx, r.box[i].p[k]);
	pthread_barrier_destroy(&r.start);
	free(r.box);
	return bench_rate(ops * threads, t1 - t0);
}

struct heap_run {
	double rate;
	uint64_t bad, peak_region;
	struct emm_stats delta;
};

/* The workload on a fresh instance and heap with the given budget. */
static int on_emm(uint64_t limit, unsigned threads, size_t slots, uint64_t ops,
		  struct heap_run *hr)
{
	EMM_OPTS(emm_opts, eo, .mem_limit = limit, .swap_size = 16 * limit + (1ULL << 30));
	EMM_OPTS(emm_heap_stats, hs);
	struct emm_stats a, b;
	struct allocator al = { "libemm-heap", heap_alloc, heap_release, NULL };
	struct emm_heap *h;
	struct emm *mm;
	int err = emm_open(&eo, &mm);

	if (!err && (err = emm_heap_create(mm, 64ULL << 30, NULL, &h)))
		emm_close(mm);
	if (err)
		return err;
	al.ctx = h;
	bench_stats(mm, &a);
	hr->rate = run_workload(&al, threads, slots, ops, &hr->bad);
	bench_stats(mm, &b);
	bench_stats_delta(&a, &b, &hr->delta);
	emm_heap_stats(h, &hs);
	hr->peak_region = hs.region_used_bytes;
	emm_heap_destroy(h);
	emm_close(mm);
	return hr->rate > 0 ? 0 : -ENOMEM;
}

struct kswap_arg {
	unsigned threads;
	size_t slots;
	uint64_t ops;
};

struct kswap_out {
	double rate;
	uint64_t bad;
};

static int kswap_child(void *arg, void *out)
{
	struct kswap_arg *ka = arg;
	struct kswap_out *ko = out;
	struct allocator al = { "mimalloc", mi_alloc, mi_release, NULL };

	ko->rate = run_workload(&al, ka->threads, ka->slots, ka->ops, &ko->bad);
	return ko->rate > 0 ? 0 : 1;
}

static double best(const struct allocator *a, const struct bench_opts *o, unsigned threads,
		   size_t slots, uint64_t ops, uint64_t *bad)
{
	double top = 0;

	for (unsigned i = 0; i < o->runs; i++) {
		uint64_t b = 0;
		double r = run_workload(a, threads, slots, ops, &b);

		*bad += b;
		top = r > top ? r : top;
	}
	return top;
}

static void line(const char *what, double rate, double ref, uint64_t bad)
{
	printf("%-30s %8.2f Mops/s", what, rate / 1e6);
	if (ref > 0)
		printf("  %.3fx", rate / ref);
	if (bad)
		printf("  %llu WRONG blocks", (unsigned long long)bad);
	printf("\n");
}

static void budget_runs(const struct bench_opts *o, unsigned threads, size_t slots,
			uint64_t live, double free_rate)
{
	uint64_t limit = o->limit ? o->limit : live / 4, ops = o->ops ? o->ops / 16 : DEFAULT_OPS / 16;
	struct kswap_arg ka = { threads, slots, ops };
	struct kswap_out ko = { 0 };
	struct bench_kswap k;
	struct heap_run hr = { 0 };
	struct bench_kswap_faults before;
	int err;

	printf("under a budget of %.0f MiB (live data %.0f MiB), %llu operations per thread:\n",
	       limit / MIB, live / MIB, (unsigned long long)ops);
	err = on_emm(limit, threads, slots, ops, &hr);
	if (err) {
		printf("libemm-heap under the budget: %s\n", strerror(-err));
		return;
	}
	line("libemm-heap, budget", hr.rate, free_rate, hr.bad);
	printf("  %.3fx the unconstrained libemm-heap run; swapouts %llu, swapins %llu, faults %llu\n",
	       hr.rate / free_rate, (unsigned long long)hr.delta.swapouts,
	       (unsigned long long)hr.delta.swapins, (unsigned long long)hr.delta.faults);
	/* What the faults were, and the revokes: each a TLB flush, where the
	 * kernel's reclaim flushes once for a batch (emm-tuning(7)). */
	printf("  faults: %llu major, %llu minor (pages reclaim revoked, found in use), %llu zero;"
	       " revokes %llu\n", (unsigned long long)hr.delta.faults_major,
	       (unsigned long long)hr.delta.faults_minor, (unsigned long long)hr.delta.faults_zero,
	       (unsigned long long)hr.delta.revokes);
	bench_data("heap", "budget", "libemm-heap", hr.rate, "ops/s");
	err = bench_kswap_setup(&k, limit, 4 * live + (256ULL << 20));
	if (err) {
		printf("kernel swap baseline skipped: %s\n", k.why);
		return;
	}
	before = bench_kswap_faults(&k);
	err = bench_kswap_run(&k, kswap_child, &ka, &ko, sizeof(ko));
	if (!err) {
		struct bench_kswap_faults after = bench_kswap_faults(&k);

		line("mimalloc, kernel swap (cgroup)", ko.rate, free_rate, ko.bad);
		/* The cgroup's swap-ins and major faults, as emm-bench clients
		 * counts them, for the swap-ins of emm's line above. */
		printf("  swapins %llu, major faults %llu\n",
		       (unsigned long long)(after.swapins - before.swapins),
		       (unsigned long long)(after.major - before.major));
		printf("  libemm-heap / kernel swap: %.3fx (cgroup peak usage %.0f MiB)\n",
		       hr.rate / ko.rate, bench_kswap_max_usage(&k) / MIB);
		bench_data("heap", "budget", "mimalloc-kernel-swap", ko.rate, "ops/s");
	} else {
		printf("kernel swap baseline failed: %s\n", k.why);
	}
	bench_kswap_teardown(&k);
}

int bench_heap(const struct bench_opts *o)
{
	unsigned threads = o->threads ? o->threads : 2;
	uint64_t ops = o->ops ? o->ops : DEFAULT_OPS, bad[3] = { 0 };
	size_t slots = o->size / AVG_SIZE / threads + 1;
	struct allocator glibc = { "glibc malloc", glibc_alloc, glibc_free, NULL };
	struct allocator mi = { "mimalloc", mi_alloc, mi_release, NULL };
	struct heap_run hr = { 0 };
	double rg, rm, re = 0;
	int err;

	printf("heap: %u thread(s), %zu live blocks each (16 B - 256 KiB, about %.0f MiB in all),\n"
	       "  %llu free+malloc per thread, every 256th a batch of %d handed to the next thread\n"
	       "  (figures are indicative on a shared machine)\n", threads, slots,
	       (double)slots * threads * AVG_SIZE / MIB, (unsigned long long)ops, BATCH);
	rg = best(&glibc, o, threads, slots, ops, &bad[0]);
	rm = best(&mi, o, threads, slots, ops, &bad[1]);
	for (unsigned i = 0; i < o->runs; i++) {
		/* No pressure: a budget of 4x the live data. */
		err = on_emm(4 * o->size + (64ULL << 20), threads, slots, ops, &hr);
		if (err) {
			fprintf(stderr, "emm-bench: heap: %s\n", strerror(-err));
			return 1;
		}
		bad[2] += hr.bad;
		re = hr.rate > re ? hr.rate : re;
	}
	line("glibc malloc", rg, rm, bad[0]);
	line("mimalloc", rm, 0, bad[1]);
	line("libemm-heap, no pressure", re, rm, bad[2]);
	printf("  libemm-heap / mimalloc %.3f (goal >= %.3f: %s)\n", re / rm, GOAL,
	       re / rm >= GOAL ? "met" : "NOT met");
	bench_data("heap", "unconstrained", "glibc", rg, "ops/s");
	bench_data("heap", "unconstrained", "mimalloc", rm, "ops/s");
	bench_data("heap", "unconstrained", "libemm-heap", re, "ops/s");
	budget_runs(o, threads, slots, hr.peak_region ? hr.peak_region : o->size, re);
	return bad[0] || bad[1] || bad[2];
}
