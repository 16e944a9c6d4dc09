/* SPDX-License-Identifier: MIT */
/* libemm-heap: every call, from several threads, cross-thread frees, errors, destroy. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "emm.h"
#include "emm-heap.h"
#include "tap.h"

#define MIB (1UL << 20)
#define THREADS 4
#define PER_THREAD 5000

static struct emm_heap *heap;
static void *handoff[THREADS][PER_THREAD];
static pthread_barrier_t barrier;

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed + i * 31);
}

static int same(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(seed + i * 31))
			return 0;
	return 1;
}

static size_t size_of(int t, int i)
{
	static const size_t sizes[] = { 8, 24, 100, 700, 3000, 9000, 20000, 300000 };

	/* One block in 64 is 300 KB: mimalloc's large pages. */
	return sizes[i % 64 ? (t + i) % 7 : 7] + (size_t)i % 13;
}

/* Each thread allocates and fills blocks, then checks and frees those its
 * neighbour allocated. */
static void *worker(void *arg)
{
	int t = (int)(intptr_t)arg, bad = 0, other = (t + 1) % THREADS;

	for (int i = 0; i < PER_THREAD; i++) {
		size_t n = size_of(t, i);

		handoff[t][i] = emm_heap_malloc(heap, n);
		if (!handoff[t][i])
			return (void *)1;
		fill(handoff[t][i], n, (unsigned)(t * PER_THREAD + i));
	}
	pthread_barrier_wait(&barrier);
	for (int i = 0; i < PER_THREAD; i++) {
		unsigned char *p = handoff[other][i];

		bad += !same(p, size_of(other, i), (unsigned)(other * PER_THREAD + i));
		bad += emm_heap_usable_size(heap, p) < size_of(other, i);
		emm_heap_free(heap, p);
	}
	return (void *)(intptr_t)bad;
}

static void test_threads(void)
{
	pthread_t th[THREADS];
	intptr_t bad = 0;
	void *r;

	pthread_barrier_init(&barrier, NULL, THREADS);
	for (int t = 0; t < THREADS; t++)
		pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
	for (int t = 0; t < THREADS; t++) {
		pthread_join(th[t], &r);
		bad += (intptr_t)r;
	}
	pthread_barrier_destroy(&barrier);
	is_int(bad, 0, "%d threads: %d blocks each of 8 B to 300 KB, checked and freed by another thread",
	       THREADS, PER_THREAD);
}

static void test_calls(void)
{
	static const size_t steps[] = { 8, 100, 5000, 200000, 40 * MIB, 16 };
	unsigned char *p, *q;
	size_t have = 8;
	int okay = 1;

	p = emm_heap_malloc(heap, 8);
	fill(p, 8, 7);
	for (size_t i = 1; i < sizeof(steps) / sizeof(steps[0]); i++) {
		size_t keep = have < steps[i] ? have : steps[i];

		p = emm_heap_realloc(heap, p, steps[i]);
		okay &= p && same(p, keep, 7) && emm_heap_usable_size(heap, p) >= steps[i];
		if (p)
			fill(p, steps[i], 7);
		have = steps[i];
	}
	ok(okay, "realloc through 8 B, 100 B, 5 KB, 200 KB, 40 MiB, 16 B keeps the data");
	emm_heap_free(heap, p);

	q = emm_heap_calloc(heap, 1000, 1000);
	okay = q != NULL;
	for (size_t i = 0; q && i < 1000000; i++)
		okay &= q[i] == 0;
	ok(okay, "calloc of 1 MB is zeroed");
	emm_heap_free(heap, q);
	q = emm_heap_realloc(heap, NULL, 50);
	ok(q && emm_heap_usable_size(heap, q) >= 50, "realloc of NULL allocates");
	emm_heap_free(heap, q);
	emm_heap_free(heap, NULL);
	ok(1, "free of NULL does nothing");

	okay = 1;
	for (size_t a = 8; a <= MIB; a <<= 1) {
		void *x = emm_heap_aligned_alloc(heap, a, a + 3);

		okay &= x && ((uintptr_t)x & (a - 1)) == 0 && emm_heap_usable_size(heap, x) >= a + 3;
		if (x)
			memset(x, 1, a + 3);
		emm_heap_free(heap, x);
	}
	ok(okay, "aligned_alloc from 8 B to 1 MiB alignment");
}

static void test_errors(struct emm *mm)
{
	struct { struct emm_heap_opts o; uint64_t more; } big = { { .sz = sizeof(big) }, 1 };
	struct emm_heap_opts small = { .sz = 2 };
	struct emm_heap *h = NULL;
	void *p;

	is_int(emm_heap_create(NULL, MIB, NULL, &h), -EINVAL, "create with mm NULL: -EINVAL");
	is_int(emm_heap_create(mm, 0, NULL, &h), -EINVAL, "create of length 0: -EINVAL");
	is_int(emm_heap_create(mm, MIB, NULL, NULL), -EINVAL, "create with hp NULL: -EINVAL");
	is_int(emm_heap_create(mm, MIB, &small, &h), -EINVAL, "options with sz 2: -EINVAL");
	is_int(emm_heap_create(mm, MIB, &big.o, &h), -EINVAL, "unknown non-zero option bytes: -EINVAL");
	errno = 0;
	p = emm_heap_malloc(NULL, 8);
	ok(!p && errno == EINVAL, "malloc on heap NULL: NULL, errno EINVAL");
	errno = 0;
	p = emm_heap_aligned_alloc(heap, 24, 100);
	ok(!p && errno == EINVAL, "aligned_alloc of alignment 24: NULL, errno EINVAL");
	errno = 0;
	p = emm_heap_calloc(heap, SIZE_MAX / 2, 4);
	ok(!p && errno == ENOMEM, "calloc whose size overflows: NULL, errno ENOMEM");
	errno = 0;
	p = emm_heap_malloc(heap, 1UL << 40);
	ok(!p && errno == ENOMEM, "malloc larger than the region: NULL, errno ENOMEM");
	is_int(emm_heap_collect(NULL, 0), -EINVAL, "collect of NULL: -EINVAL");
	is_int(emm_heap_stats(heap, NULL), -EINVAL, "stats into NULL: -EINVAL");
	is_int(emm_heap_destroy(NULL), -EINVAL, "destroy of NULL: -EINVAL");
}

static void test_stats(void)
{
	EMM_OPTS(emm_heap_stats, a);
	EMM_OPTS(emm_heap_stats, b);
	struct { size_t sz; uint64_t allocated; uint64_t canary; } old = { 16, 0, 42 };
	void *p;

	is_int(emm_heap_stats(heap, &a), 0, "stats");
	p = emm_heap_malloc(heap, 4 * MIB);
	memset(p, 1, 4 * MIB);
	emm_heap_stats(heap, &b);
	ok(b.allocated_bytes >= a.allocated_bytes + 4 * MIB, "allocated grows by 4 MiB (%llu -> %llu)",
	   (unsigned long long)a.allocated_bytes, (unsigned long long)b.allocated_bytes);
	ok(b.region_used_bytes >= 4 * MIB && b.resident_bytes >= 4 * MIB,
	   "region used %llu and resident %llu bytes hold it",
	   (unsigned long long)b.region_used_bytes, (unsigned long long)b.resident_bytes);
	emm_heap_free(heap, p);
	emm_heap_stats(heap, &b);
	ok(b.allocated_bytes == a.allocated_bytes, "free gives the 4 MiB back to allocated");
	ok(emm_heap_stats(heap, (struct emm_heap_stats *)&old) == 0 && old.sz == 16 &&
	   old.canary == 42, "an older, shorter struct: no byte written past its sz");
}

static void *hold(void *arg)
{
	void *p = emm_heap_malloc(heap, 100);

	pthread_barrier_wait(&barrier);		/* allocated */
	pthread_barrier_wait(&barrier);		/* destroy refused */
	emm_heap_free(heap, p);
	return NULL;
}

static int mapped_at(const void *p)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int hit = 0;

	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (uintptr_t)p >= lo && (uintptr_t)p < hi)
			hit = 1;
	}
	if (f)
		fclose(f);
	return hit;
}

static void test_destroy(void)
{
	pthread_t th;
	void *p = emm_heap_malloc(heap, 64);

	pthread_barrier_init(&barrier, NULL, 2);
	pthread_create(&th, NULL, hold, NULL);
	pthread_barrier_wait(&barrier);
	is_int(emm_heap_destroy(heap), -EBUSY, "destroy while another thread has a heap in it: -EBUSY");
	pthread_barrier_wait(&barrier);
	pthread_join(th, NULL);
	pthread_barrier_destroy(&barrier);
	ok(mapped_at(p), "the region is mapped before destroy");
	is_int(emm_heap_destroy(heap), 0, "destroy once the other threads ended (a block still allocated)");
	ok(!mapped_at(p), "no mapping is left where the region was");
}

int main(void)
{
	struct emm *mm;
	int err;

	plan(1 + 5 + 12 + 5 + 4 + 1);
	err = emm_open(NULL, &mm);
	if (err)
		bail("emm_open: %s", strerror(-err));
	err = emm_heap_create(mm, 1UL << 30, NULL, &heap);
	if (err)
		bail("emm_heap_create: %s", strerror(-err));
	test_threads();
	test_calls();
	test_errors(mm);
	test_stats();
	test_destroy();
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
