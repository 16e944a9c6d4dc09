/* SPDX-License-Identifier: MIT */
/* PTE words: the per-page lock (a CAS bit, waiters sleep on a futex). */
#include <unistd.h>

#include "futex.h"
#include "debug.h"
#include "internal.h"
#include "pte.h"

/* The futex sleeps on the 32-bit half of the word that holds the lock bit. */
static uint32_t *pte_futex_word(_Atomic uint64_t *p)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return (uint32_t *)p + 1;
#else
	return (uint32_t *)p;
#endif
}

/*
 * Async-signal-safe. pte_lock (pte.h) found the lock taken, or lost a
 * race for it: wait for it on the futex. Acquire as in pte_lock.
 */
uint64_t pte_lock_wait(_Atomic uint64_t *p)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);

	for (;;) {
		if (!(old & PTE_LOCKED)) {
			if (atomic_compare_exchange_weak_explicit(p, &old, old | PTE_LOCKED,
					memory_order_acquire, memory_order_relaxed))
				return old & ~(PTE_LOCKED | PTE_WAITERS);
			continue;
		}
		if (!(old & PTE_WAITERS) &&
		    !atomic_compare_exchange_weak_explicit(p, &old, old | PTE_WAITERS,
				memory_order_relaxed, memory_order_relaxed))
			continue;
		futex_wait(pte_futex_word(p), (uint32_t)(old | PTE_WAITERS), -1);
		old = atomic_load_explicit(p, memory_order_relaxed);
	}
}

/* Async-signal-safe. Take the lock only if it is free now. */
bool pte_trylock(_Atomic uint64_t *p, uint64_t *oldp)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);

	while (!(old & PTE_LOCKED)) {
		/* Acquire: as in pte_lock. */
		if (atomic_compare_exchange_weak_explicit(p, &old, old | PTE_LOCKED,
				memory_order_acquire, memory_order_relaxed)) {
			*oldp = old & ~PTE_WAITERS;
			return true;
		}
	}
	return false;
}

/* Async-signal-safe. pte_unlock dropped a lock that has waiters. */
void pte_wake(_Atomic uint64_t *p)
{
	futex_wake(pte_futex_word(p), INT32_MAX);
}

#ifdef EMM_DEBUG
/* pte.h's inline pte_unlock and pte_set_locked, with their contracts checked. */

/*
 * Async-signal-safe. Store the new value and drop the lock; release
 * publishes the page's new state (and the data written through the alias
 * view) to the next holder.
 */
void pte_unlock(_Atomic uint64_t *p, uint64_t val)
{
	uint64_t old = atomic_exchange_explicit(p, val & ~(PTE_LOCKED | PTE_WAITERS),
						memory_order_release);

	DEBUG_ASSERT(old & PTE_LOCKED);
	if (old & PTE_WAITERS)
		pte_wake(p);
}

/* Async-signal-safe. Change the word of a page whose lock the caller
 * holds, keeping the lock bits (a waiter may be setting PTE_WAITERS). */
void pte_set_locked(_Atomic uint64_t *p, uint64_t val)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);

	DEBUG_ASSERT(old & PTE_LOCKED);
	val &= ~(PTE_LOCKED | PTE_WAITERS);
	while (!atomic_compare_exchange_weak_explicit(p, &old,
			val | (old & (PTE_LOCKED | PTE_WAITERS)),
			memory_order_relaxed, memory_order_relaxed))
		;
}
#endif

/* Async-signal-safe. Lock the PTEs of [s, e) in ascending order. */
void lock_range(struct rsv *r, uintptr_t s, uintptr_t e)
{
	for (uintptr_t a = s; a < e; a += PAGE_SIZE)
		pte_lock(pte_of(r, a));
}

/* Async-signal-safe. Unlock [s, e) leaving every word as it is. */
void unlock_untouched(struct rsv *r, uintptr_t s, uintptr_t e)
{
	for (uintptr_t a = s; a < e; a += PAGE_SIZE)
		pte_unlock(pte_of(r, a), locked_val(r, a));
}

/* Async-signal-safe. Lock every page of [s, e), each unlocked now and
 * with no physmem (never touched, or swapped): a punch across them then
 * frees nothing a fault has filled meanwhile. False, none of them left
 * locked, if one is otherwise. */
bool trylock_holes(struct rsv *r, uintptr_t s, uintptr_t e)
{
	for (uintptr_t a = s; a < e; a += PAGE_SIZE) {
		uint64_t old;

		if (pte_trylock(pte_of(r, a), &old)) {
			if (pte_state(old) != PTE_RESIDENT)
				continue;
			pte_unlock(pte_of(r, a), old);
		}
		unlock_untouched(r, s, a);
		return false;
	}
	return true;
}

/* Async-signal-safe. Lock every PTE of the extent at a but the one at
 * held, which the caller holds; false (nothing left locked) if one is busy. */
bool trylock_extent(struct rsv *r, uintptr_t a, uintptr_t held)
{
	for (uintptr_t p = a; p < a + PMD_SIZE; p += PAGE_SIZE) {
		uint64_t old;

		if (p == held)
			continue;
		if (!pte_trylock(pte_of(r, p), &old)) {
			for (uintptr_t q = a; q < p; q += PAGE_SIZE)
				if (q != held)
					pte_unlock(pte_of(r, q), pte_locked_val(pte_of(r, q)));
			return false;
		}
	}
	return true;
}

/* Async-signal-safe. The caller holds the PTE locks of [s, e). */
void backend_set_pte_prot(struct rsv *r, uintptr_t s, uintptr_t e, int prot)
{
	/* One compare-and-swap per word, not an and then an or: a waiter may
	 * set PTE_WAITERS meanwhile, nobody else changes the word. */
	for (uintptr_t a = s; a < e; a += PAGE_SIZE) {
		_Atomic uint64_t *p = pte_of(r, a);
		uint64_t old = atomic_load_explicit(p, memory_order_relaxed);

		while (!atomic_compare_exchange_weak_explicit(p, &old,
				(old & ~PTE_MAP_MASK) | (uint64_t)prot << PTE_MAP_SHIFT,
				memory_order_relaxed, memory_order_relaxed))
			;
	}
}
