/* SPDX-License-Identifier: MIT */
/* 2 MiB extents mapped as huge pages: eligibility, collapse, split; the scanner. */
#ifndef EMM_HUGE_MEMORY_H
#define EMM_HUGE_MEMORY_H

#include "backend.h"
#include "internal.h"
#include "pte.h"
#include "vma_tree.h"

/* Async-signal-safe. May the extent at a (PMD-aligned) be huge in vma? */
static inline bool vma_thp_allowed(const struct emm *mm, const struct emm_vma *vma, uintptr_t a)
{
	if (mm->cfg.thp == EMM_THP_NEVER || vma->policy != EMM_POLICY_ANON ||
	    (vma->flags & EMM_MAP_NOHUGEPAGE))
		return false;
	if (mm->cfg.thp == EMM_THP_MADVISE && !(vma->flags & EMM_MAP_HUGEPAGE))
		return false;
	return a >= vma->start && a + PMD_SIZE <= vma->end && vma->prot != EMM_PROT_NONE;
}

/* Async-signal-safe. Is the extent at a (PMD-aligned) empty, and may it be
 * huge in vma? Then no window of zeros made ahead of a stream, nor mapped
 * around a first touch, goes into it: its own first touch makes it one
 * huge page (do_huge_fault), or the readahead threads do whole ahead of
 * it (post_after), where a page mapped into it before would keep it 4 KiB
 * pages, and the stream's windows after it too. */
static inline bool huge_empty(struct rsv *r, const struct emm_vma *vma, uintptr_t a)
{
	return vma_thp_allowed(r->mm, vma, a) && !extent_used(r, a);
}

/* Async-signal-safe. Should a first touch at addr map its whole extent?
 * Inline: every first touch asks, and most are told no at once. */
static inline bool thp_fault_eligible(struct rsv *r, const struct emm_vma *vma, uintptr_t addr)
{
	struct emm *mm = r->mm;
	long room;

	if (!huge_empty(r, vma, ALIGN_DOWN(addr, PMD_SIZE)))
		return false;
	room = (long)((mm->cfg.mem_limit - mm->cfg.wmark_low) >> PAGE_SHIFT) -
	       (long)atomic_load_explicit(&mm->c.resident_pages, memory_order_relaxed);
	return room >= (long)PTRS_PER_PMD;
}

/* Async-signal-safe. May a readahead window, the extent at a, of a file
 * or of swap, be read into a fresh huge page and mapped whole? Only where
 * the VMA may be huge, on the signal backend (huge_fresh_physmem). Its
 * pages are clean copies: the extent is mapped without write, and split
 * before a page of it is written (do_huge_minor). */
static inline bool thp_stream_eligible(struct rsv *r, const struct emm_vma *vma, uintptr_t a)
{
	struct emm *mm = r->mm;

	return mm->backend->id == EMM_BACKEND_SIGNAL && mm->cfg.thp != EMM_THP_NEVER &&
	       (vma->policy == EMM_POLICY_FILE || vma->policy == EMM_POLICY_ANON) &&
	       !(vma->flags & EMM_MAP_NOHUGEPAGE) &&
	       (mm->cfg.thp == EMM_THP_ALWAYS || (vma->flags & EMM_MAP_HUGEPAGE)) &&
	       vma->prot != EMM_PROT_NONE && IS_ALIGNED(a, PMD_SIZE) &&
	       IS_ALIGNED(r->pgoff + (a - r->start), PMD_SIZE) && a >= vma->start &&
	       a + PMD_SIZE <= vma->end;
}

/* huge_memory.c */
int collapse_locked(struct rsv *r, uintptr_t a);
void extent_set_huge(struct rsv *r, uintptr_t a);
bool unset_huge_locked(struct rsv *r, uintptr_t a);
bool huge_clean(struct rsv *r, uintptr_t a);
int huge_fresh_physmem(struct rsv *r, uintptr_t a);
int huge_fresh_zeros(struct rsv *r, uintptr_t a);
void collapse_fresh(struct rsv *r, uintptr_t a);
void split_huge_locked(struct rsv *r, uintptr_t a);
void lock_range_split(struct rsv *r, uintptr_t s, uintptr_t e, uintptr_t *ls, uintptr_t *le);
void thp_split_range(struct rsv *r, uintptr_t s, uintptr_t e, bool all);

/* khugepaged.c */
int khugepaged_start(struct emm *mm);
void khugepaged_stop(struct emm *mm);

#endif /* EMM_HUGE_MEMORY_H */
