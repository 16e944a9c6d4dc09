/* SPDX-License-Identifier: MIT */
/* 2 MiB extents mapped as huge pages: eligibility, collapse, split; the scanner. */
#ifndef EMM_HUGE_MEMORY_H
#define EMM_HUGE_MEMORY_H

#include "internal.h"

/* huge_memory.c */
bool vma_thp_allowed(const struct emm *mm, const struct emm_vma *vma, uintptr_t a);
bool thp_fault_eligible(struct rsv *r, const struct emm_vma *vma, uintptr_t addr);
int collapse_locked(struct rsv *r, uintptr_t a);
void collapse_fresh(struct rsv *r, uintptr_t a);
void split_huge_locked(struct rsv *r, uintptr_t a);
void thp_split_range(struct rsv *r, uintptr_t s, uintptr_t e, bool all);

/* khugepaged.c */
int khugepaged_start(struct emm *mm);
void khugepaged_stop(struct emm *mm);

#endif /* EMM_HUGE_MEMORY_H */
