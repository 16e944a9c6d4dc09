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

void synchronize_srcu(struct emm_srcu *sp);
void srcu_wake_writer(struct emm_srcu *sp);

/*
 * The read side runs twice in every fault (rsv_enter): inline, but under
 * make DEBUG=1 srcu.c's, which count the caller's read sections (debug.h).
 */
#ifdef EMM_DEBUG
int srcu_read_lock(struct emm_srcu *sp);
void srcu_read_unlock(struct emm_srcu *sp, int idx);
#else
/*
 * Async-signal-safe. seq_cst: the increment must be ordered before the
 * reader's loads of the tables it protects, against the writer's flip and
 * counter check (a store-load pattern that acquire/release does not order).
 */
static inline int srcu_read_lock(struct emm_srcu *sp)
{
	unsigned i = atomic_load_explicit(&sp->idx, memory_order_relaxed) & 1;

	atomic_fetch_add_explicit(&sp->cnt[i], 1, memory_order_seq_cst);
	return (int)i;
}

/*
 * Async-signal-safe. The last reader out wakes a waiting writer. seq_cst on
 * the decrement and on the load of waiters, against the writer's seq_cst
 * store of waiters and load of the count: one of the two sees the other
 * (store-load), so a writer never sleeps through the last reader leaving.
 * The decrement also releases the reader's loads before the writer frees.
 */
static inline void srcu_read_unlock(struct emm_srcu *sp, int idx)
{
	if (atomic_fetch_sub_explicit(&sp->cnt[idx], 1, memory_order_seq_cst) == 1 &&
	    atomic_load_explicit(&sp->waiters, memory_order_seq_cst))
		srcu_wake_writer(sp);
}
#endif

#endif /* EMM_SRCU_H */
