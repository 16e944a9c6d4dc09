/* SPDX-License-Identifier: MIT */
/* Asynchronous readahead: threads read the next windows of a stream, of
 * swap or of a file, while the program reads the one before them. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "backend.h"
#include "emm_numa.h"
#include "futex.h"
#include "huge_memory.h"
#include "kswapd.h"
#include "memory.h"
#include "physmem.h"
#include "readahead.h"
#include "srcu.h"
#include "util.h"
#include "vma_tree.h"

#define RA_QUEUE	16	/* windows waiting; a post that finds none free is dropped */
#define RA_THREADS	6	/* each reads its window a round at a time: together they
				 * keep several reads in flight (swap_state.c) */

/* A window to read: [s, e) of r, state RA_FREE -> RA_FILLING -> RA_READY ->
 * RA_FREE. Its PTEs are locked from the post on. */
enum { RA_FREE, RA_FILLING, RA_READY };

struct ra_req {
	_Atomic uint32_t state;
	int prot;			/* what the window is mapped with */
	int cpu;			/* of the fault that asked: LOCAL pages go to its node */
	bool none;			/* never-touched pages (of a file, or zeros), not swapped ones */
	struct rsv *r;
	uintptr_t s, e;
};

/* One thread: its queue, and its direct reclaim's work space. */
struct ra_worker {
	struct readahead *ra;
	struct reclaim *rc;
};

struct readahead {
	pthread_t thread[RA_THREADS];
	struct ra_worker worker[RA_THREADS];
	unsigned started;
	_Atomic bool stop;
	_Atomic uint32_t wake;		/* futex word: bumped by each post */
	struct ra_req q[RA_QUEUE];
};

/* Async-signal-safe. A slot of the queue in state from, now RA_FILLING
 * (its owner's), or NULL. */
static struct ra_req *slot_claim(struct readahead *ra, uint32_t from)
{
	for (unsigned i = 0; i < RA_QUEUE; i++) {
		uint32_t want = from;

		/* Acquire: a taker sees what the post's release published. */
		if (atomic_compare_exchange_strong_explicit(&ra->q[i].state, &want, RA_FILLING,
							    memory_order_acquire,
							    memory_order_relaxed))
			return &ra->q[i];
	}
	return NULL;
}

/* Async-signal-safe. Lock the run of pages to read from s, up to e: its
 * end. Swapped pages; with none, never-touched ones. */
static uintptr_t lock_run(struct rsv *r, uintptr_t s, uintptr_t e, bool none)
{
	unsigned want = none ? PTE_NONE : PTE_SWAPPED;
	uintptr_t a;

	for (a = s; a < e; a += PAGE_SIZE) {
		uint64_t old;

		if (!pte_trylock(pte_of(r, a), &old))
			break;
		if (pte_state(old) != want) {
			pte_unlock(pte_of(r, a), old);
			break;
		}
	}
	return a;
}

/* Async-signal-safe. Unlock the pages a window locked and did not read. */
static void unlock_unread(struct rsv *r, uintptr_t s, uintptr_t e)
{
	for (uintptr_t a = s; a < e; a += PAGE_SIZE)
		pte_unlock(pte_of(r, a), locked_val(r, a));
}

/*
 * Async-signal-safe, never waits; inside r's read section, [s, e) inside
 * one anonymous or FILE VMA. Have a thread read the swapped pages of
 * [s, e) back, or its never-touched ones (none) in from the file or as
 * zeros, and map them prot: the run that can be locked now is locked
 * here, so that a fault on it waits for the thread rather than reading it
 * a second time. A hint: nothing happens when the run is empty, the queue
 * full or the instance without threads (a child after fork). Returns the
 * pages queued.
 */
unsigned readahead_post(struct rsv *r, uintptr_t s, uintptr_t e, int prot, bool none)
{
	struct readahead *ra = r->mm->readahead;
	struct ra_req *q;

	if (!ra || mm_foreign(r->mm))
		return 0;
	/* Pages still resident from before (a marker kept) start no window. */
	while (s < e && pte_state(atomic_load_explicit(pte_of(r, s), memory_order_relaxed)) ==
			PTE_RESIDENT)
		s += PAGE_SIZE;
	q = slot_claim(ra, RA_FREE);
	if (!q)
		return 0;
	e = lock_run(r, s, e, none);
	if (e == s) {
		atomic_store_explicit(&q->state, RA_FREE, memory_order_relaxed);
		return 0;
	}
	q->prot = prot;
	q->cpu = numa_fault_cpu();
	q->none = none;
	q->r = r;
	q->s = s;
	q->e = e;
	/* Release: the thread that sees RA_READY sees the rest. */
	atomic_store_explicit(&q->state, RA_READY, memory_order_release);
	atomic_fetch_add_explicit(&ra->wake, 1, memory_order_relaxed);
	futex_wake(&ra->wake, 1);
	return (unsigned)((e - s) >> PAGE_SHIFT);
}

/* A ready window, taken off the queue. */
static bool ra_take(struct readahead *ra, struct ra_req *out)
{
	struct ra_req *q = slot_claim(ra, RA_READY);

	if (!q)
		return false;
	*out = (struct ra_req){ .prot = q->prot, .cpu = q->cpu, .none = q->none, .r = q->r,
				.s = q->s, .e = q->e };
	atomic_store_explicit(&q->state, RA_FREE, memory_order_release);
	return true;
}

/* Remember s as the marker of a window read, or zeroed (swap_readahead_hit). */
static void mark_window(struct rsv *r, uintptr_t s, bool zero)
{
	unsigned k = atomic_fetch_add_explicit(&r->ra_mark_seq, 1, memory_order_relaxed);

	atomic_store_explicit(&r->ra_mark[k % RA_MARKS], s | (zero ? RA_MARK_ZERO : 0),
			      memory_order_relaxed);
}

/*
 * The locked extent at s, its physmem one fresh huge page: read it (zero:
 * its never-touched pages are that page's zeros) and leave it resident,
 * unmapped, one unit: the first touch of any page of it maps it whole
 * (do_huge_minor), and asks for the stream's next windows, as the marker
 * of a window does. Unlocks the range; on failure, the extent is
 * never-touched again.
 */
static void ra_read_huge(struct rsv *r, const struct emm_vma *vma, uintptr_t s, bool zero)
{
	uintptr_t e = s + PMD_SIZE;

	if (make_resident_warm(r, vma, s, e)) {
		uintptr_t run = 0;

		/* What came in stays, unmapped; the rest gives its physmem back. */
		unmake_fresh(r, s, e);
		for (uintptr_t a = s; a <= e; a += PAGE_SIZE) {
			bool hole = a < e && pte_state(locked_val(r, a)) != PTE_RESIDENT;

			if (hole && !run)
				run = a;
			if (!hole && run) {
				physmem_punch(r, run, a - run);
				run = 0;
			}
		}
		unlock_range(r, s, e, 0, 0);
		return;
	}
	extent_set_huge(r, s);
	mark_window(r, s, zero);
	unlock_range(r, s, s + PAGE_SIZE, 0, PTE_RA);
	unlock_range(r, s + PAGE_SIZE, e, 0, 0);
}

/*
 * Read the locked [s, e) of vma (swapped pages, or a file's never-touched
 * ones; an anonymous VMA's never-touched ones get zeroed pages) and map it
 * prot (without write, clean pages keep their copy and a write is seen;
 * with it, they are dirty), but for its first page: left unmapped with
 * PTE_RA, it is the marker whose touch asks for more (swap_readahead_hit).
 * Unlocks the range. A failure leaves what came in resident and unmapped.
 * A window that would pass the node's share or the budget, reclaim
 * notwithstanding, is not read: it is a hint.
 */
static void ra_read(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e, int prot,
		    bool zero)
{
	long n = (long)((e - s) >> PAGE_SHIFT);
	bool huge;
	int err;

	prot &= target_prot(vma);	/* the VMA's, if it changed since */
	/* Clean copies not where the stream is expected to write: each write
	 * would split. Zeros where a stream of first touches makes huge
	 * extents (swap_state.c, post_after). */
	huge = e - s == PMD_SIZE && (zero || !(prot & EMM_PROT_WRITE)) &&
	       thp_stream_eligible(r, vma, s);

	/* Zeros cost the program no I/O to make itself: only with room to
	 * spare for what all the threads make at once, never at the price of
	 * reclaim or of passing the budget; but for a huge extent, which the
	 * program would make itself at that price a moment later (fault.c,
	 * huge_fault_ok), and which is made here on another CPU: reclaimed
	 * for, room made for what all the threads make at once. */
	if (zero && !huge ? !page_has_spare(r, vma, s, RA_THREADS * n)
			  : !page_charge_room(r, vma, s, zero ? RA_THREADS * n : n)) {
		unlock_unread(r, s, e);
		return;
	}
	if (huge && !huge_fresh_physmem(r, s)) {
		ra_read_huge(r, vma, s, zero);
		return;
	}
	if (huge && zero) {	/* the program's own first touch tries again */
		unlock_unread(r, s, e);
		return;
	}
	err = make_resident_but(r, vma, s, e, prot, s);
	/* Zeros: the marker's page is made now, as a minor fault maps only
	 * what physmem has; the others are made as they are mapped. */
	if (!err && zero)
		err = physmem_fill(r, s, PAGE_SIZE);
	if (!err && e - s > PAGE_SIZE && prot != EMM_PROT_NONE)
		err = backend_grant(r, s + PAGE_SIZE, e, prot, zero ? BACKEND_HOLES | BACKEND_ZERO : 0);
	if (err) {
		unmake_fresh(r, s, e);
		unlock_range(r, s, e, 0, 0);
		return;
	}
	if (zero && e - s > PAGE_SIZE && prot != EMM_PROT_NONE)
		backend_populate(r, s + PAGE_SIZE, e, prot);
	mark_window(r, s, zero);
	unlock_range(r, s, s + PAGE_SIZE, 0, PTE_RA);
	unlock_range(r, s + PAGE_SIZE, e, 0, 0);
}

/*
 * One window. Its reservation stays valid: releasing it zaps every page,
 * which waits for these locks. Its VMA is looked up again in the
 * instance's read section; if it changed meanwhile (unmapped, mapped
 * again as another kind), nothing is read.
 */
static void ra_window(const struct ra_req *q)
{
	struct rsv *r = q->r;
	int idx = srcu_read_lock(&r->mm->srcu);
	const struct emm_vma *vma = find_vma(r, q->s);

	if (vma && q->e <= vma->end && !(vma->flags & VMA_RANDOM) &&
	    ((q->none && vma->policy == EMM_POLICY_FILE) || !vma_backed(vma)))
		ra_read(r, vma, q->s, q->e, q->prot, q->none && !vma_backed(vma));
	else
		unlock_unread(r, q->s, q->e);
	srcu_read_unlock(&r->mm->srcu, idx);
}

static void *ra_thread(void *arg)
{
	struct ra_worker *w = arg;
	struct readahead *ra = w->ra;
	sigset_t all;

	/* The application's signals go to its threads. */
	sig_fill_async(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	reclaim_thread_attach(w->rc);
	while (!atomic_load(&ra->stop)) {
		uint32_t seen = atomic_load(&ra->wake);
		struct ra_req q;

		if (ra_take(ra, &q)) {
			numa_set_fault_cpu(q.cpu);
			ra_window(&q);
			numa_set_fault_cpu(-1);
		} else
			futex_wait(&ra->wake, seen, THREAD_IDLE_MS);
	}
	return NULL;
}

/* The threads, unless EMM_READAHEAD_ASYNC=0. */
int readahead_start(struct emm *mm)
{
	struct readahead *ra;

	if (!(mm->cfg.flags & CFG_RA_ASYNC))
		return 0;
	ra = calloc(1, sizeof(*ra));
	if (!ra)
		return -ENOMEM;
	mm->readahead = ra;
	for (; ra->started < RA_THREADS; ra->started++) {
		struct ra_worker *w = &ra->worker[ra->started];
		int err;

		w->ra = ra;
		w->rc = reclaim_space_alloc();
		if (!w->rc)
			return -ENOMEM;
		err = thread_start(&ra->thread[ra->started], "emm-ra", (int)ra->started, ra_thread, w);
		if (err)
			return err;
	}
	return 0;
}

/* Stop the threads; windows still queued are unlocked unread. No post
 * may come in any more (no fault is being served). */
void readahead_stop(struct emm *mm)
{
	struct readahead *ra = mm->readahead;
	struct ra_req q;

	if (!ra)
		return;
	atomic_store(&ra->stop, true);
	atomic_fetch_add(&ra->wake, 1);
	futex_wake(&ra->wake, RA_THREADS);
	for (unsigned i = 0; i < ra->started; i++)
		pthread_join(ra->thread[i], NULL);
	while (ra_take(ra, &q))
		unlock_unread(q.r, q.s, q.e);
	for (unsigned i = 0; i < RA_THREADS; i++)
		free(ra->worker[i].rc);
	mm->readahead = NULL;
	free(ra);
}
