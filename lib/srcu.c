/* SPDX-License-Identifier: MIT */
/* Sleepable read-copy-update: lock-free readers (the fault path), writers wait. */
#include <sched.h>

#include "debug.h"
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

/* Async-signal-safe. Release: the reader's loads happen before the writer frees. */
void srcu_read_unlock(int idx)
{
	debug_srcu_leave();
	atomic_fetch_sub_explicit(&emm_srcu.cnt[idx], 1, memory_order_release);
}

static void srcu_wait_idle(unsigned i)
{
	/* Acquire pairs with the readers' release in srcu_read_unlock. */
	while (atomic_load_explicit(&emm_srcu.cnt[i], memory_order_acquire))
		sched_yield();
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
