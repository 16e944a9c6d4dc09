/* SPDX-License-Identifier: MIT */
/* A futex mutex for the fault path: sleeps instead of spinning, no allocation. */
#include <unistd.h>

#include "futex.h"
#include "internal.h"

/* 0: free, 1: held, 2: held and someone may sleep on it. */

/* Async-signal-safe, provided every holder runs with signals blocked (as
 * emm's handler and emm's API calls do): no handler can then interrupt a
 * holder and wait for the lock it holds. Acquire pairs with the release in
 * mutex_unlock. */
void mutex_lock(_Atomic uint32_t *m)
{
	uint32_t c = 0;

	if (atomic_compare_exchange_strong_explicit(m, &c, 1, memory_order_acquire,
						    memory_order_relaxed))
		return;
	if (c != 2)
		c = atomic_exchange_explicit(m, 2, memory_order_acquire);
	while (c != 0) {
		futex_wait(m, 2, -1);
		c = atomic_exchange_explicit(m, 2, memory_order_acquire);
	}
}

/* Async-signal-safe. Acquire: as mutex_lock. */
bool mutex_trylock(_Atomic uint32_t *m)
{
	uint32_t c = 0;

	return atomic_compare_exchange_strong_explicit(m, &c, 1, memory_order_acquire,
						       memory_order_relaxed);
}

/* Async-signal-safe. Release: the holder's writes reach the next holder. */
void mutex_unlock(_Atomic uint32_t *m)
{
	if (atomic_exchange_explicit(m, 0, memory_order_release) == 2)
		futex_wake(m, 1);
}
