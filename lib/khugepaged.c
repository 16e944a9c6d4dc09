/* SPDX-License-Identifier: MIT */
/* khugepaged: the promotion scanner that collapses hot, fully resident extents. */
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "futex.h"
#include "backend.h"
#include "huge_memory.h"
#include "lru.h"
#include "memory.h"
#include "pte.h"
#include "srcu.h"
#include "util.h"
#include "vma.h"

#define SCAN_EXTENTS	64	/* extents the scanner looks at per wake-up */

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
	/* Again, locked: a first-touch fault may have collapsed it since. */
	if (!extent_huge(r, a) && extent_ready(r, a, vma, max_none) &&
	    !make_resident(r, vma, a, a + PMD_SIZE, EMM_PROT_NONE) &&
	    !backend_set_prot(r, a, a + PMD_SIZE, target_prot(vma),
			      BACKEND_FORCE | BACKEND_HOLES))
		collapse_locked(r, a);
	else
		unmake_fresh(r, a, a + PMD_SIZE);
	unlock_range(r, a, a + PMD_SIZE, 0, 0);
}

/* One round: up to SCAN_EXTENTS extents, resuming where the last stopped. */
static void scan_round(struct emm *mm, uintptr_t *cursor)
{
	int srcu = srcu_read_lock(&mm->srcu);
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
	srcu_read_unlock(&mm->srcu, srcu);
}

/* Is there a VMA some extent of which may become huge? */
static bool thp_candidates(struct emm *mm)
{
	int srcu = srcu_read_lock(&mm->srcu);
	bool any = false;

	for (struct rsv *r = __atomic_load_n(&mm->rsvs, __ATOMIC_ACQUIRE); r && !any;
	     r = __atomic_load_n(&r->next, __ATOMIC_ACQUIRE))
		for (const struct emm_vma *v = vma_next(r, 0); v && !any; v = vma_next(r, v->end))
			any = vma_thp_allowed(mm, v, ALIGN_UP(v->start, PMD_SIZE));
	srcu_read_unlock(&mm->srcu, srcu);
	return any;
}

/*
 * The promotion scanner thread (khugepaged). While no VMA may have huge
 * pages (the default mode, EMM_THP_MADVISE, and none advised), it sleeps
 * until a VMA changes (vma.c wakes it), or THREAD_IDLE_MS at most, rather
 * than wake every thp_scan_ms, which costs the program's page-table
 * changes on a guest (internal.h says how much).
 */
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
		uint32_t seen;

		/* Idle first, then the count, then the VMAs (seq_cst, paired
		 * with khugepaged_kick in vma.c): a VMA published before the
		 * kick saw idle is seen here, and one after it moves the
		 * count, so the wait returns at once. */
		atomic_exchange_explicit(&mm->khugepaged_idle, true, memory_order_seq_cst);
		seen = atomic_load_explicit(&mm->khugepaged_wake, memory_order_seq_cst);
		if (!thp_candidates(mm)) {
			futex_wait(&mm->khugepaged_wake, seen, THREAD_IDLE_MS);
			continue;
		}
		atomic_store(&mm->khugepaged_idle, false);
		scan_round(mm, &cursor);
		futex_wait(&mm->khugepaged_wake, seen, ms);
	}
	return NULL;
}

int khugepaged_start(struct emm *mm)
{
	int err;

	if (mm->cfg.thp == EMM_THP_NEVER)
		return 0;
	err = thread_start(&mm->khugepaged, "emm-khugepaged", -1, khugepaged, mm);
	if (err)
		return err;
	mm->khugepaged_started = true;
	return 0;
}

void khugepaged_stop(struct emm *mm)
{
	if (!mm->khugepaged_started)
		return;
	atomic_store(&mm->khugepaged_stop, true);
	atomic_fetch_add(&mm->khugepaged_wake, 1);
	futex_wake(&mm->khugepaged_wake, 1);
	pthread_join(mm->khugepaged, NULL);
	mm->khugepaged_started = false;
}
