/* SPDX-License-Identifier: MIT */
/* Refault distance: which swapped pages come back as the working set (workingset.c). */
#ifndef EMM_WORKINGSET_H
#define EMM_WORKINGSET_H

#include "internal.h"

void workingset_init(struct emm *mm);
uint64_t workingset_eviction(struct emm *mm);
bool workingset_refault(struct emm *mm, uint64_t swapped);

#endif /* EMM_WORKINGSET_H */
