/* SPDX-License-Identifier: MIT */
/* 2 MiB huge pages: fault-time huge extents, the promotion scanner, splitting. */
#include <errno.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "memory.h"
#include "pte.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define SCAN_EXTENTS	64	/* extents the scanner looks at per wake-up */

/* Async-signal-safe. May the extent at a (PMD-aligned) be huge in vma? */
static bool vma_thp_allowed(const struct emm *mm, const struct emm_vma *vma, uintptr_t a)
{
	if (mm->cfg.thp == EMM_THP_NEVER || vma->policy != EMM_POLICY_ANON ||
	    (vma->flags & EMM_MAP_NOHUGEPAGE))
		return false;
	if (mm->cfg.thp == EMM_THP_MADVISE && !(vma->flags & EMM_MAP_HUGEPAGE))
		return false;
	return a >= vma->start && a + PMD_SIZE <= vma->end && vma->prot != EMM_PROT_NONE;
}

/* Async-signal-safe. Should a first touch at addr map its whole extent? */
bool thp_fault_eligible(struct rsv *r, const struct emm_vma *vma, uintptr_t addr)
{
	struct emm *mm = r->mm;
	long room = (long)((mm->cfg.mem_limit - mm->cfg.wmark_low) >> PAGE_SHIFT) -
		    (long)atomic_load_explicit(&mm->c.resident_pages, memory_order_relaxed);

	return vma_thp_allowed(mm, vma, ALIGN_DOWN(addr, PMD_SIZE)) &&
	       room >= (long)PTRS_PER_PMD && !extent_used(r, ALIGN_DOWN(addr, PMD_SIZE));
}

/*
 * Async-signal-safe. The extent at a is locked, resident and mapped
 * uniformly: make the kernel map it with one PMD, and make it one unit on
 * the LRU (its first frame stands for all 512).
 */
static int collapse_locked(struct rsv *r, uintptr_t a)
{
	struct emm *mm = r->mm;
	int err = backend_huge_begin(r, a);

	if (!err && madvise((void *)a, PMD_SIZE, MADV_COLLAPSE) < 0) {
		err = -errno;
		backend_huge_end(r, a);
	}
	if (err) {
		count_event(mm, thp_collapse_failed);
		return err;
	}
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
	return 0;
}

/*
 * Async-signal-safe. split_huge_pmd: the extent at a (all its PTEs locked)
 * becomes 512 pages again, each on the LRU by itself. The kernel splits
 * its PMD when part of it is changed.
 */
void split_huge_locked(struct rsv *r, uintptr_t a)
{
	struct emm *mm = r->mm;

	if (!(atomic_fetch_and_explicit(&extent_of(r, a)->flags, ~EXT_HUGE,
					memory_order_relaxed) & EXT_HUGE))
		return;
	backend_huge_end(r, a);
	if (pte_state(pte_locked_val(pte_of(r, a))) == PTE_RESIDENT)
		frame_set_huge(mm, pte_val(pte_locked_val(pte_of(r, a))), false);
	for (uintptr_t p = a + PAGE_SIZE; p < a + PMD_SIZE; p += PAGE_SIZE) {
		uint64_t v = pte_locked_val(pte_of(r, p));

		if (pte_state(v) == PTE_RESIDENT)
			lru_queue(mm, pte_val(v), PV_ADD);
	}
	count_event(mm, thp_split);
	atomic_fetch_sub_explicit(&mm->c.thp_extents, 1, memory_order_relaxed);
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

/* Is the locked extent at a ready for promotion: resident but for at most
 * max_none never-touched pages, every page mapped alike, none pinned? */
static bool extent_ready(struct rsv *r, uintptr_t a, const struct emm_vma *vma, long max_none)
{
	long none = 0;

	for (uintptr_t p = a; p < a + PMD_SIZE; p += PAGE_SIZE) {
		uint64_t v = pte_locked_val(pte_of(r, p));

		if (pte_state(v) == PTE_NONE && ++none <= max_none)
			continue;
		if (pte_state(v) != PTE_RESIDENT || (v & PTE_PINNED) ||
		    pte_prot(v) != target_prot(vma))
			return false;
	}
	return true;
}

/* The scanner looks at one extent: collapse it if it is hot and whole. */
static void scan_extent(struct rsv *r, uintptr_t a)
{
	struct emm *mm = r->mm;
	const struct emm_vma *vma = find_vma(r, a);
	long max_none = mm->cfg.thp_max_ptes_none;

	if (!vma || !vma_thp_allowed(mm, vma, a) || extent_huge(r, a) ||
	    atomic_load(&extent_of(r, a)->used) + (uint32_t)MAX(max_none, 0) < PTRS_PER_PMD)
		return;
	if (!trylock_extent(r, a, 0))
		return;
	if (extent_ready(r, a, vma, max_none) && !make_resident(r, vma, a, a + PMD_SIZE) &&
	    !backend_set_prot(r, a, a + PMD_SIZE, target_prot(vma), BACKEND_FORCE))
		collapse_locked(r, a);
	else
		unmake_fresh(r, a, a + PMD_SIZE);
	unlock_range(r, a, a + PMD_SIZE, 0, 0);
}

/* One round: up to SCAN_EXTENTS extents, resuming where the last stopped. */
static void scan_round(struct emm *mm, uintptr_t *cursor)
{
	int srcu = srcu_read_lock();
	unsigned budget = SCAN_EXTENTS;

	lru_add_drain_all(mm);	/* no frame of a candidate still waits to be listed */
	for (struct rsv *r = __atomic_load_n(&mm->rsvs, __ATOMIC_ACQUIRE); r && budget;
	     r = __atomic_load_n(&r->next, __ATOMIC_ACQUIRE)) {
		uintptr_t a = (*cursor >= r->start && *cursor < r->start + r->len) ? *cursor : r->start;

		for (; a < r->start + r->len && budget; a += PMD_SIZE) {
			if (!extent_used(r, a))
				continue;
			scan_extent(r, a);
			budget--;
		}
		*cursor = a < r->start + r->len ? a : 0;
		if (*cursor)
			break;
	}
	srcu_read_unlock(srcu);
}

/* The promotion scanner thread (khugepaged). */
static void *khugepaged(void *arg)
{
	struct emm *mm = arg;
	uintptr_t cursor = 0;
	sigset_t all;

	/* The application's signals go to its threads; faults stay deliverable
	 * (the oom callback may touch emm memory). */
	sig_fill_async(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	while (!atomic_load(&mm->khugepaged_stop)) {
		unsigned ms = mm->cfg.thp_scan_ms;
		struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
		uint32_t seen = atomic_load(&mm->khugepaged_wake);

		scan_round(mm, &cursor);
		syscall(SYS_futex, &mm->khugepaged_wake, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
	}
	return NULL;
}

int khugepaged_start(struct emm *mm)
{
	int err;

	if (mm->cfg.thp == EMM_THP_NEVER)
		return 0;
	err = pthread_create(&mm->khugepaged, NULL, khugepaged, mm);
	if (err)
		return -err;
	mm->khugepaged_started = true;
	return 0;
}

void khugepaged_stop(struct emm *mm)
{
	if (!mm->khugepaged_started)
		return;
	atomic_store(&mm->khugepaged_stop, true);
	atomic_fetch_add(&mm->khugepaged_wake, 1);
	syscall(SYS_futex, &mm->khugepaged_wake, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	pthread_join(mm->khugepaged, NULL);
	mm->khugepaged_started = false;
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
