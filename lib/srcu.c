/* SPDX-License-Identifier: MIT */
/* Sleepable read-copy-update: lock-free readers (the fault path), writers wait. */
#include "debug.h"
#include "futex.h"
#include "internal.h"
#include "srcu.h"

struct emm_srcu emm_srcu;

/*
 * Async-signal-safe. seq_cst: the increment must be ordered before the
 * reader's loads of the tables it protects, against the writer's flip and
 * counter check (a store-load pattern that acquire/release does not order).
 */
int srcu_read_lock(void)
{
	unsigned i = atomic_load_explicit(&emm_srcu.idx, memory_order_relaxed) & 1;

	atomic_fetch_add_explicit(&emm_srcu.cnt[i], 1, memory_order_seq_cst);
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
void srcu_read_unlock(int idx)
{
	debug_srcu_leave();
	if (atomic_fetch_sub_explicit(&emm_srcu.cnt[idx], 1, memory_order_seq_cst) == 1 &&
	    atomic_load_explicit(&emm_srcu.waiters, memory_order_seq_cst)) {
		atomic_fetch_add_explicit(&emm_srcu.wake, 1, memory_order_relaxed);
		futex_wake(&emm_srcu.wake, INT32_MAX);
	}
}

/* Sleep until no reader holds index i: writers do not spin. */
static void srcu_wait_idle(unsigned i)
{
	atomic_store_explicit(&emm_srcu.waiters, 1, memory_order_seq_cst);
	for (;;) {
		uint32_t seen = atomic_load_explicit(&emm_srcu.wake, memory_order_relaxed);

		/* seq_cst: see srcu_read_unlock; acquire for the readers' loads. */
		if (!atomic_load_explicit(&emm_srcu.cnt[i], memory_order_seq_cst))
			break;
		futex_wait(&emm_srcu.wake, seen, 10);	/* the timeout is only a safety net */
	}
	atomic_store_explicit(&emm_srcu.waiters, 0, memory_order_relaxed);
}

/*
 * Wait until every reader that may have seen the tables as they were before
 * the caller published new ones has left. Writers serialise on a mutex.
 */
void synchronize_srcu(void)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	unsigned i;

	DEBUG_NOT_IN_HANDLER();
	DEBUG_NOT_IN_SRCU();	/* it would wait for itself */
	pthread_mutex_lock(&lock);
	/* seq_cst: the flip is ordered after the caller's publication. */
	i = atomic_fetch_xor_explicit(&emm_srcu.idx, 1, memory_order_seq_cst) & 1;
	srcu_wait_idle(i);
	/* Readers that took the new index before the flip was visible. */
	i = atomic_fetch_xor_explicit(&emm_srcu.idx, 1, memory_order_seq_cst) & 1;
	srcu_wait_idle(i);
	pthread_mutex_unlock(&lock);
}
