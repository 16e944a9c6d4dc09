/* SPDX-License-Identifier: MIT */
/* Sleepable read-copy-update: lock-free readers (the fault path), writers wait. */
#include "debug.h"
#include "futex.h"
#include "internal.h"
#include "srcu.h"

/* Async-signal-safe. The last reader left while a writer waits. */
void srcu_wake_writer(struct emm_srcu *sp)
{
	atomic_fetch_add_explicit(&sp->wake, 1, memory_order_relaxed);
	futex_wake(&sp->wake, INT32_MAX);
}

#ifdef EMM_DEBUG
/* srcu.h's inline read side, counting the caller's read sections. */

/*
 * Async-signal-safe. seq_cst: the increment must be ordered before the
 * reader's loads of the tables it protects, against the writer's flip and
 * counter check (a store-load pattern that acquire/release does not order).
 */
int srcu_read_lock(struct emm_srcu *sp)
{
	unsigned i = atomic_load_explicit(&sp->idx, memory_order_relaxed) & 1;

	atomic_fetch_add_explicit(&sp->cnt[i], 1, memory_order_seq_cst);
	debug_srcu_enter();
	return (int)i;
}

/*
 * Async-signal-safe. The last reader out wakes a waiting writer. seq_cst on
 * the decrement and on the load of waiters, against the writer's seq_cst
 * store of waiters and load of the count: one of the two sees the other
 * (store-load), so a writer never sleeps through the last reader leaving.
 * The decrement also releases the reader's loads before the writer frees.
 */
void srcu_read_unlock(struct emm_srcu *sp, int idx)
{
	debug_srcu_leave();
	if (atomic_fetch_sub_explicit(&sp->cnt[idx], 1, memory_order_seq_cst) == 1 &&
	    atomic_load_explicit(&sp->waiters, memory_order_seq_cst))
		srcu_wake_writer(sp);
}
#endif

/* Sleep until no reader holds index i: writers do not spin. */
static void srcu_wait_idle(struct emm_srcu *sp, unsigned i)
{
	atomic_store_explicit(&sp->waiters, 1, memory_order_seq_cst);
	for (;;) {
		uint32_t seen = atomic_load_explicit(&sp->wake, memory_order_relaxed);

		/* seq_cst: see srcu_read_unlock; acquire for the readers' loads. */
		if (!atomic_load_explicit(&sp->cnt[i], memory_order_seq_cst))
			break;
		futex_wait(&sp->wake, seen, 10);	/* the timeout is only a safety net */
	}
	atomic_store_explicit(&sp->waiters, 0, memory_order_relaxed);
}

/*
 * Wait until every reader that may have seen the tables as they were before
 * the caller published new ones has left, sleeping (futex) meanwhile.
 * Writers of one srcu serialise on its wlock; those of others do not wait.
 */
void synchronize_srcu(struct emm_srcu *sp)
{
	unsigned i;

	DEBUG_NOT_IN_HANDLER();
	DEBUG_NOT_IN_SRCU();	/* it would wait for itself */
	mutex_lock(&sp->wlock);
	/* seq_cst: the flip is ordered after the caller's publication. */
	i = atomic_fetch_xor_explicit(&sp->idx, 1, memory_order_seq_cst) & 1;
	srcu_wait_idle(sp, i);
	/* Readers that took the new index before the flip was visible. */
	i = atomic_fetch_xor_explicit(&sp->idx, 1, memory_order_seq_cst) & 1;
	srcu_wait_idle(sp, i);
	mutex_unlock(&sp->wlock);
}
