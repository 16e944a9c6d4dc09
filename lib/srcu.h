/* SPDX-License-Identifier: MIT */
/*
 * Sleepable read-copy-update: lock-free readers, writers wait for them.
 * One per instance (mm->srcu: its reservation list and VMA tables) and one
 * for the process-wide reservation registry (physmem.c), so a slow fault in
 * one instance never delays a writer of another.
 */
#ifndef EMM_SRCU_H
#define EMM_SRCU_H

#include "internal.h"

int srcu_read_lock(struct emm_srcu *sp);
void srcu_read_unlock(struct emm_srcu *sp, int idx);
void synchronize_srcu(struct emm_srcu *sp);

#endif /* EMM_SRCU_H */
