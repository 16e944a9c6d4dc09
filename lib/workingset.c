/* SPDX-License-Identifier: MIT */
/*
 * Refault distance, as the kernel's mm/workingset.c. Every eviction and
 * every activation ages the instance's non-resident clock by one. An
 * evicted page's swapped PTE keeps the clock's reading (its shadow); when
 * the page is read back, the clock has moved on by its refault distance:
 * how many pages the inactive list would have needed to hold it until
 * now. A distance no longer than the active list means that the page, had
 * it been given an active page's place, would still be resident: it is a
 * part of the working set that the inactive list is too short to see, and
 * it goes onto the active list at once instead of waiting there for a
 * second touch it would not live to take. Others go onto the inactive
 * list, as before.
 *
 * The kernel compares the distance with the whole active list; emm with
 * an eighth of it (ACTIVE_SHIFT). Each page activated pushes another out
 * to be sampled, and emm learns that a sampled page is in use from a
 * minor fault, where the kernel reads an accessed bit. Measured on a
 * 2-vCPU VM, uffd, through libemm-preload.so: SQLite at 48 MiB ran 15%
 * slower with all of the list than with half (60% of its refaults
 * activated instead of 25%, deactivations tripled, swap-ins +15%). Half
 * against an eighth: a Perl hash of 300,000 keys under 44 MiB (half its
 * peak) swapped in 298 K pages against 113 K (46.0 s against 26.5, one
 * run each; the kernel's swap is OOM-killed there), 150,000 keys under
 * 23 MiB 142 K against 80 K; Lua under half its peak 124 to 126 K
 * against 111 to 114 K, under 64 MiB 394 to 398 K against 373 to 383 K;
 * Python under half its peak 70 to 72 K against 76 to 77 K; SQLite and
 * sort as many; with no activation at all, Perl 154 K and Python 77 to
 * 78 K.
 *
 * A shadow has the 18 bits of PTE_SHADOW_MASK, in units of 1 << age_shift
 * events, the shift chosen at open so that the budget fits in 1/32 of the
 * clock's range: a page evicted long enough ago for its distance to wrap
 * looks recent one time in 32 at the most (more often if emm_set_limit
 * raises the budget far above the one the instance opened with).
 */
#include "lru.h"
#include "pte.h"
#include "workingset.h"

/* A refault is activated within 1/2^ACTIVE_SHIFT of the active list. */
#define ACTIVE_SHIFT	3

/* At open: the clock's unit, from the budget (the frame table's size
 * when there is none). */
void workingset_init(struct emm *mm)
{
	struct lru *lru = mm->lru;
	uint64_t pages = mm->cfg.mem_limit ? mm->cfg.mem_limit >> PAGE_SHIFT : lru->cap;
	unsigned shift = 0;

	while ((pages >> shift) > (PTE_SHADOW_MASK >> PTE_SHADOW_SHIFT) / 32)
		shift++;
	lru->age_shift = shift;
}

/* Async-signal-safe. A page leaves memory for its swap slot: age the
 * clock; the shadow its swapped PTE keeps (PTE_SHADOW_MASK bits). */
uint64_t workingset_eviction(struct emm *mm)
{
	struct lru *lru = mm->lru;
	uint64_t age = atomic_fetch_add_explicit(&lru->nonresident_age, 1, memory_order_relaxed);

	return ((age >> lru->age_shift) << PTE_SHADOW_SHIFT) & PTE_SHADOW_MASK;
}

/*
 * Async-signal-safe. The swapped PTE value swapped is being read back: is
 * its refault distance within the active list (summed over the nodes, as
 * the clock is the instance's)? Counts workingset_refault, and
 * workingset_activate when it is; the caller puts the page on the active
 * list then (PTE_ACTIVE), which ages the clock too.
 */
bool workingset_refault(struct emm *mm, uint64_t swapped)
{
	struct lru *lru = mm->lru;
	uint64_t mask = PTE_SHADOW_MASK >> PTE_SHADOW_SHIFT, active = 0;
	uint64_t now = atomic_load_explicit(&lru->nonresident_age, memory_order_relaxed);
	uint64_t dist = ((now >> lru->age_shift) - ((swapped & PTE_SHADOW_MASK) >> PTE_SHADOW_SHIFT)) &
			mask;

	if (!(mm->cfg.flags & CFG_WORKINGSET))
		return false;
	count_event(mm, workingset_refault);
	for (int n = 0; n < lru->nnodes; n++)
		active += atomic_load_explicit(&lru->node[n].nr[LRU_ACTIVE], memory_order_relaxed);
	if (dist > (active >> ACTIVE_SHIFT) >> lru->age_shift)
		return false;
	count_event(mm, workingset_activate);
	return true;
}
