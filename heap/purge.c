/* SPDX-License-Identifier: MIT */
/* Freed heap memory back to emm: mimalloc's decommits, at once under pressure, else lazily. */
#include <errno.h>
#include <sys/mman.h>
#include <time.h>

#include "internal.h"

/*
 * A decommitted range goes back to emm (EMM_ADV_DONTNEED: out of physmem and
 * swap, zeros next time). Done at every decommit, that costs a system call
 * and, when mimalloc reuses the range, a fault per page cluster: in an
 * allocation-heavy program far more than mimalloc's own madvise costs on
 * anonymous memory. So while the instance is well under its limit, whole
 * 64 KiB steps are only marked pending; a commit of a pending step (mimalloc
 * always commits before reuse) just clears the mark, and the pending steps
 * are dropped together when the instance comes under pressure -- resident
 * at half the limit or more, or anything in swap (freed data there would
 * cost swap space and I/O), looked at every PRESSURE_MS -- or at
 * emm_heap_collect. Dead data is then never written to swap, and never
 * costs a fault while memory is plentiful.
 */

#define STEP		(1UL << COMMIT_SHIFT)
#define PRESSURE_MS	10

static void bits(_Atomic uint64_t *map, uintptr_t lo, uintptr_t hi, bool set)
{
	for (uintptr_t i = lo; i < hi; i++) {
		uint64_t bit = 1ULL << (i & 63);

		if (set)
			atomic_fetch_or_explicit(&map[i >> 6], bit, memory_order_relaxed);
		else
			atomic_fetch_and_explicit(&map[i >> 6], ~bit, memory_order_relaxed);
	}
}

/* Whole steps inside [p, p + len), as indexes [*lo, *hi). */
static void steps_inside(struct emm_heap *h, const void *p, size_t len, uintptr_t *lo,
			 uintptr_t *hi)
{
	uintptr_t off = (uintptr_t)((const char *)p - h->base);

	*lo = (off + STEP - 1) >> COMMIT_SHIFT;
	*hi = (off + len) >> COMMIT_SHIFT;
	if (*hi < *lo)
		*hi = *lo;
}

int purge_drop(struct emm_heap *h, void *p, size_t len)
{
	uintptr_t lo = ((uintptr_t)p + OS_PAGE - 1) & ~(OS_PAGE - 1);
	uintptr_t hi = ((uintptr_t)p + len) & ~(OS_PAGE - 1);
	int err = hi > lo ? emm_advise(h->mm, (void *)lo, hi - lo, EMM_ADV_DONTNEED) : 0;

	/* A forked child: the heap is its private copy of the parent's (emm(7),
	 * fork), and fresh zero pages replace the freed ones (MADV_DONTNEED
	 * would not: some of the copy maps physmem privately). */
	if (err == -ECHILD && mmap((void *)lo, hi - lo, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
				   -1, 0) == MAP_FAILED)
		err = -errno;
	else if (err == -ECHILD)
		err = 0;
	if (err) {
		errno = -err;
		return -1;
	}
	return 0;
}

/* Drop every pending step, in runs. Called with purge_lock held. */
static void flush_locked(struct emm_heap *h)
{
	size_t words = h->committed_len / sizeof(uint64_t);

	for (size_t w = 0; w < words; w++) {
		uint64_t m = atomic_exchange_explicit(&h->pending[w], 0, memory_order_relaxed);

		while (m) {
			unsigned first = (unsigned)__builtin_ctzll(m), n = 0;

			while (first + n < 64 && (m >> (first + n) & 1))
				n++;
			m &= n == 64 ? 0 : ~(((1ULL << n) - 1) << first);
			purge_drop(h, h->base + ((w * 64 + first) << COMMIT_SHIFT), (size_t)n * STEP);
		}
	}
}

/* Both layers' free memory: mimalloc's pending steps, empty slabs. */
void purge_flush(struct emm_heap *h)
{
	pthread_mutex_lock(&h->purge_lock);
	flush_locked(h);
	pthread_mutex_unlock(&h->purge_lock);
	slab_flush(h);
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Whether the instance is at half its limit or more, or swaps; looked at
 * every PRESSURE_MS at most. Coming under pressure drops what is pending. */
bool purge_pressure(struct emm_heap *h)
{
	long now = now_ms(), then = atomic_load_explicit(&h->checked_ms, memory_order_relaxed);
	EMM_OPTS(emm_stats, st);
	bool was, now_under;

	if (now - then < PRESSURE_MS ||
	    !atomic_compare_exchange_strong_explicit(&h->checked_ms, &then, now,
						    memory_order_relaxed, memory_order_relaxed))
		return atomic_load_explicit(&h->pressure, memory_order_relaxed);
	if (emm_stats(h->mm, &st))
		return true;
	now_under = st.resident_bytes * 2 >= st.limit_bytes || st.swap_used_bytes;
	was = atomic_exchange_explicit(&h->pressure, now_under, memory_order_relaxed);
	if (!was && now_under)
		purge_flush(h);
	return now_under;
}

int purge_decommit(struct emm_heap *h, void *p, size_t len)
{
	uintptr_t lo, hi;
	int err = 0;

	steps_inside(h, p, len, &lo, &hi);
	bits(h->committed, lo, hi, false);
	if (purge_pressure(h))
		return purge_drop(h, p, len);
	pthread_mutex_lock(&h->purge_lock);
	bits(h->pending, lo, hi, true);
	pthread_mutex_unlock(&h->purge_lock);
	/* The ends that are not whole steps go now (mimalloc's are whole). */
	if (lo == hi)
		return purge_drop(h, p, len);
	if ((char *)p < h->base + (lo << COMMIT_SHIFT))
		err = purge_drop(h, p, (size_t)(h->base + (lo << COMMIT_SHIFT) - (char *)p));
	if ((char *)p + len > h->base + (hi << COMMIT_SHIFT))
		err |= purge_drop(h, h->base + (hi << COMMIT_SHIFT),
				  (size_t)((char *)p + len - (h->base + (hi << COMMIT_SHIFT))));
	return err;
}

/* A reset range is reused without a commit: it can only go at once. */
int purge_reset(struct emm_heap *h, void *p, size_t len)
{
	return purge_pressure(h) ? purge_drop(h, p, len) : 0;
}

/* After this, no drop of the range can be under way or to come. */
void purge_commit(struct emm_heap *h, void *p, size_t len)
{
	uintptr_t off = (uintptr_t)((char *)p - h->base);
	uintptr_t lo = off >> COMMIT_SHIFT, hi = (off + len + STEP - 1) >> COMMIT_SHIFT;

	pthread_mutex_lock(&h->purge_lock);
	bits(h->pending, lo, hi, false);
	pthread_mutex_unlock(&h->purge_lock);
	bits(h->committed, lo, hi, true);
}

uint64_t purge_committed_bytes(struct emm_heap *h)
{
	uint64_t n = 0;

	for (size_t i = 0; i < h->committed_len / sizeof(uint64_t); i++)
		n += (uint64_t)__builtin_popcountll(atomic_load_explicit(&h->committed[i],
									 memory_order_relaxed));
	return n << COMMIT_SHIFT;
}
