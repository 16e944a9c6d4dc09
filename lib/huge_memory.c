/* SPDX-License-Identifier: MIT */
/* 2 MiB huge pages: which extents may be huge, collapsing and splitting them. */
#include <errno.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "huge_memory.h"
#include "lru.h"
#include "physmem.h"
#include "pte.h"
#include "util.h"
#include "vma.h"


#define COLLAPSE_TRIES 4	/* MADV_COLLAPSE calls on an EAGAIN streak */
static const long collapse_wait_ns[COLLAPSE_TRIES - 1] = { 100000, 1000000, 10000000 };

/*
 * Async-signal-safe. MADV_COLLAPSE of the 2 MiB at p (the app view's or the
 * alias view's). EAGAIN is the kernel's "transient": a page of the extent
 * was locked or held by someone for a moment (an I/O in flight, another
 * CPU's LRU batch). Try again after 0.1, 1 and 10 ms; ENOMEM (no huge page
 * to be had) is final. 0 or -errno.
 */
static int collapse_retry(void *p)
{
	for (int tries = 0; madvise(p, PMD_SIZE, MADV_COLLAPSE) < 0; tries++) {
		struct timespec ts = { 0, 0 };

		if (errno != EAGAIN || tries == COLLAPSE_TRIES - 1)
			return -errno;
		ts.tv_nsec = collapse_wait_ns[tries];
		nanosleep(&ts, NULL);
	}
	return 0;
}

/*
 * Async-signal-safe. The extent at a is locked, resident and mapped
 * uniformly: make the kernel map it with one PMD, and make it one unit on
 * the LRU (its first frame stands for all 512).
 */
int collapse_locked(struct rsv *r, uintptr_t a)
{
	int err = backend_huge_begin(r, a);

	if (!err && (err = collapse_retry((void *)a)))
		backend_huge_end(r, a);
	if (err) {
		count_event(r->mm, thp_collapse_failed);
		return err;
	}
	extent_set_huge(r, a);
	return 0;
}

/*
 * Async-signal-safe. The extent at a is locked, resident and one huge page
 * in physmem: make it one unit on the LRU (its first frame stands for all
 * 512) and count it.
 */
void extent_set_huge(struct rsv *r, uintptr_t a)
{
	struct emm *mm = r->mm;

	DEBUG_RANGE_LOCKED(r, a, a + PMD_SIZE);
	for (uintptr_t p = a + PAGE_SIZE; p < a + PMD_SIZE; p += PAGE_SIZE) {
		uint64_t v = pte_locked_val(pte_of(r, p));

		if (v & PTE_LRU)
			lru_take(mm, pte_val(v));
		pte_set_locked(pte_of(r, p), v | PTE_LRU);	/* no list of its own */
	}
	frame_set_huge(mm, pte_val(pte_locked_val(pte_of(r, a))), true);
	atomic_fetch_or_explicit(&extent_of(r, a)->flags, EXT_HUGE, memory_order_relaxed);
	count_event(mm, thp_collapse);
	atomic_fetch_add_explicit(&mm->c.thp_extents, 1, memory_order_relaxed);
}

/*
 * Async-signal-safe. The extent at a, all its PTEs locked and none of its
 * pages in physmem, is about to be read whole: make its physmem one fresh
 * huge page first, so that the read fills it and the program's first
 * access to each page costs next to nothing (emm-tuning(7)): one page
 * allocated, then MADV_COLLAPSE of the alias view's extent. On the
 * userfaultfd backends the kernel refuses to fill holes (EBUSY): the
 * caller asks only on signal. 0, or -errno with the extent's physmem
 * empty again.
 */
int huge_fresh_physmem(struct rsv *r, uintptr_t a)
{
	int err = huge_fresh_zeros(r, a);

	if (err) {
		physmem_punch(r, a, PMD_SIZE);
		count_event(r->mm, thp_collapse_failed);
	}
	return err;
}

/*
 * Async-signal-safe. backend_huge_fresh's make for a first touch: the
 * extent at a (all its PTEs locked, resident, not mapped but maybe its
 * first page) gets one huge page of zeros in physmem, with the data of
 * the page physmem holds. On failure what physmem holds stays: on
 * userfaultfd a thread may have touched the extent, and been given a page
 * by the kernel, while it was out of the registration (backend-uffd.c);
 * the grant that follows fills the holes around it, and the collapse after
 * it (collapse_fresh) copies, or counts its own failure.
 */
int huge_fresh_zeros(struct rsv *r, uintptr_t a)
{
	int err = physmem_fill(r, a, PAGE_SIZE);

	return err ? err : collapse_retry(rsv_alias(r, a));
}

/* Async-signal-safe. Is every page of the huge extent at a (all its PTEs
 * locked) a clean copy of its file or swap slot, none pinned: read ahead
 * whole and not written since, for reclaim to drop whole? */
bool huge_clean(struct rsv *r, uintptr_t a)
{
	for (uintptr_t p = a; p < a + PMD_SIZE; p += PAGE_SIZE) {
		uint64_t v = pte_locked_val(pte_of(r, p));

		if (pte_state(v) != PTE_RESIDENT || (v & (PTE_DIRTY | PTE_PINNED)) ||
		    !((v & PTE_FILE) || frame_slot(r->mm->lru, pte_val(v))))
			return false;
	}
	return true;
}

/* Async-signal-safe. The extent at a (all its PTEs locked) is no longer
 * one unit; its pages are not listed yet. False if it was not huge. */
bool unset_huge_locked(struct rsv *r, uintptr_t a)
{
	DEBUG_RANGE_LOCKED(r, a, a + PMD_SIZE);
	if (!(atomic_fetch_and_explicit(&extent_of(r, a)->flags, ~EXT_HUGE,
					memory_order_relaxed) & EXT_HUGE))
		return false;
	backend_huge_end(r, a);
	if (pte_state(pte_locked_val(pte_of(r, a))) == PTE_RESIDENT)
		frame_set_huge(r->mm, pte_val(pte_locked_val(pte_of(r, a))), false);
	atomic_fetch_sub_explicit(&r->mm->c.thp_extents, 1, memory_order_relaxed);
	return true;
}

/*
 * Async-signal-safe. split_huge_pmd: the extent at a (all its PTEs locked)
 * becomes 512 pages again, each on the LRU by itself. The kernel splits
 * its PMD when part of it is changed.
 */
void split_huge_locked(struct rsv *r, uintptr_t a)
{
	struct emm *mm = r->mm;

	if (!unset_huge_locked(r, a))
		return;
	for (uintptr_t p = a + PAGE_SIZE; p < a + PMD_SIZE; p += PAGE_SIZE) {
		uint64_t v = pte_locked_val(pte_of(r, p));

		if (pte_state(v) == PTE_RESIDENT)
			lru_queue(mm, pte_val(v), PV_ADD);
	}
	count_event(mm, thp_split);
}

/*
 * Async-signal-safe. Lock [s, e), inside one extent, and make sure that
 * extent is not huge: one the caller split may have been collapsed again
 * since by the promotion scanner, which takes no mm->lock. Then all of it
 * is locked and split. *ls and *le say what is locked, for
 * unlock_untouched; no other PTE lock of the extent may be held.
 */
void lock_range_split(struct rsv *r, uintptr_t s, uintptr_t e, uintptr_t *ls, uintptr_t *le)
{
	uintptr_t h = ALIGN_DOWN(s, PMD_SIZE);

	*ls = s, *le = e;
	for (lock_range(r, s, e); extent_huge(r, h) && *le - *ls < PMD_SIZE;
	     lock_range(r, *ls, *le)) {
		unlock_untouched(r, *ls, *le);
		*ls = h, *le = h + PMD_SIZE;
	}
	if (extent_huge(r, h))
		split_huge_locked(r, h);
}

/* Split the huge extents [s, e) covers only in part (all: every one).
 * Signals blocked, mm->lock held. */
void thp_split_range(struct rsv *r, uintptr_t s, uintptr_t e, bool all)
{
	for (uintptr_t a = ALIGN_DOWN(s, PMD_SIZE); a < e; a += PMD_SIZE) {
		bool partial = a < s || a + PMD_SIZE > e;

		if (!extent_huge(r, a) || !(all || partial))
			continue;
		lock_range(r, a, a + PMD_SIZE);
		split_huge_locked(r, a);
		unlock_untouched(r, a, a + PMD_SIZE);
	}
}

/* Async-signal-safe. The extent at a was just made resident and mapped, all
 * its PTEs locked: collapse it. The kernel collapses what is there, so it
 * gets one page to start from; failing that, every page is populated. */
void collapse_fresh(struct rsv *r, uintptr_t a)
{
	if (r->mm->backend->id == EMM_BACKEND_SIGNAL)	/* a userfaultfd grant mapped it all */
		madvise((void *)a, PAGE_SIZE, MADV_POPULATE_WRITE);
	if (collapse_locked(r, a) < 0)
		backend_populate(r, a, a + PMD_SIZE, EMM_PROT_READ | EMM_PROT_WRITE);
}
