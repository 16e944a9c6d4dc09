/* SPDX-License-Identifier: MIT */
/* Sleepable read-copy-update: lock-free readers, writers wait for them. */
#ifndef EMM_SRCU_H
#define EMM_SRCU_H

#include "internal.h"

struct emm_srcu {
	_Atomic unsigned idx;
	_Atomic long cnt[2];
};
int srcu_read_lock(void);
void srcu_read_unlock(int idx);
void synchronize_srcu(void);

#endif /* EMM_SRCU_H */
