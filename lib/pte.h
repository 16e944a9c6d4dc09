/* SPDX-License-Identifier: MIT */
/* PTE words and 2 MiB extents: their layout, the page lock, range locks. */
#ifndef EMM_PTE_H
#define EMM_PTE_H

#include "internal.h"

/*
 * The PTE word. The low 32 bits hold the lock and the flags, so a futex on
 * that half sleeps on the lock; the high 32 bits hold a frame index (while
 * resident) or a swap slot (while swapped).
 */
#define PTE_LOCKED	(1ULL << 0)
#define PTE_WAITERS	(1ULL << 1)
#define PTE_STATE_SHIFT	2
#define PTE_STATE_MASK	(3ULL << PTE_STATE_SHIFT)
#define PTE_MAP_SHIFT	4		/* the app view's protection, EMM_PROT_* */
#define PTE_MAP_MASK	(7ULL << PTE_MAP_SHIFT)
#define PTE_DIRTY	(1ULL << 7)
#define PTE_REFERENCED	(1ULL << 8)
#define PTE_ACTIVE	(1ULL << 9)	/* a refault (workingset.c): onto the active list */
#define PTE_PINNED	(1ULL << 10)
#define PTE_LRU		(1ULL << 11)
#define PTE_FILE	(1ULL << 12)	/* data has a home in a file or pager */
#define PTE_RA		(1ULL << 13)	/* read around a fault, not touched yet */
/* Resident: a page mapped around a first touch, not the one touched
 * (fault.c); the bit is the shadow's top one, which only a swapped page has. */
#define PTE_FA		(1ULL << 31)
/* Resident: evicted at its first turn on the inactive list unless a fault
 * touches it first: read back from swap beyond its refault distance
 * (workingset.c), or left behind by a sequential stream (swap_state.c); a
 * shadow bit too. */
#define PTE_COLD	(1ULL << 30)
/* Resident: revoked in a neighbour's zap (uffd_zap.c), not touched since; a
 * shadow bit too. */
#define PTE_AROUND	(1ULL << 29)
#define PTE_SHADOW_SHIFT 14		/* swapped: the clock at eviction (workingset.c) */
#define PTE_SHADOW_MASK	(0x3ffffULL << PTE_SHADOW_SHIFT)
#define PTE_VAL_SHIFT	32

enum pte_state { PTE_NONE, PTE_RESIDENT, PTE_SWAPPED };

static inline unsigned pte_state(uint64_t pte)
{
	return (pte & PTE_STATE_MASK) >> PTE_STATE_SHIFT;
}

static inline int pte_prot(uint64_t pte)
{
	return (int)((pte & PTE_MAP_MASK) >> PTE_MAP_SHIFT);
}

static inline uint64_t pte_mk(uint64_t pte, unsigned state, int prot)
{
	pte &= ~(PTE_STATE_MASK | PTE_MAP_MASK);
	return pte | (uint64_t)state << PTE_STATE_SHIFT | (uint64_t)prot << PTE_MAP_SHIFT;
}

/* The frame (resident) or swap slot (swapped) in the high half. */
static inline uint32_t pte_val(uint64_t pte)
{
	return (uint32_t)(pte >> PTE_VAL_SHIFT);
}

static inline uint64_t pte_set_val(uint64_t pte, uint32_t v)
{
	return (pte & ((1ULL << PTE_VAL_SHIFT) - 1)) | (uint64_t)v << PTE_VAL_SHIFT;
}

/* One 2 MiB extent of a reservation. */
struct extent {
	_Atomic uint32_t used;		/* PTEs of the extent not in PTE_NONE */
	_Atomic uint32_t flags;		/* EXT_*, changed with all its PTEs locked */
};
#define EXT_HUGE	0x1u		/* collapsed: one PMD, one unit on the LRU */

/*
 * The page lock and the word's changes under it run several times in
 * every fault: their common paths are inline, the wait and the wake-up out
 * of line in pte.c. Under make DEBUG=1 pte_unlock and pte_set_locked are
 * pte.c's, with their assertions (debug.h), for every caller.
 */
uint64_t pte_lock_wait(_Atomic uint64_t *p);
bool pte_trylock(_Atomic uint64_t *p, uint64_t *old);
void pte_wake(_Atomic uint64_t *p);
#ifdef EMM_DEBUG
void pte_unlock(_Atomic uint64_t *p, uint64_t val);
void pte_set_locked(_Atomic uint64_t *p, uint64_t val);
#else
/*
 * Async-signal-safe. Store the new value and drop the lock; release
 * publishes the page's new state (and the data written through the alias
 * view) to the next holder.
 */
static inline void pte_unlock(_Atomic uint64_t *p, uint64_t val)
{
	uint64_t old = atomic_exchange_explicit(p, val & ~(PTE_LOCKED | PTE_WAITERS),
						memory_order_release);

	if (old & PTE_WAITERS)
		pte_wake(p);
}

/* Async-signal-safe. Change the word of a page whose lock the caller
 * holds, keeping the lock bits (a waiter may be setting PTE_WAITERS). */
static inline void pte_set_locked(_Atomic uint64_t *p, uint64_t val)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);

	val &= ~(PTE_LOCKED | PTE_WAITERS);
	while (!atomic_compare_exchange_weak_explicit(p, &old,
			val | (old & (PTE_LOCKED | PTE_WAITERS)),
			memory_order_relaxed, memory_order_relaxed))
		;
}
#endif

/*
 * Async-signal-safe. Take the page's lock; returns the word as it was,
 * without the lock bits. Acquire pairs with the release in pte_unlock so
 * the holder sees everything the previous holder wrote.
 */
static inline uint64_t pte_lock(_Atomic uint64_t *p)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);

	if (!(old & PTE_LOCKED) &&
	    atomic_compare_exchange_strong_explicit(p, &old, old | PTE_LOCKED,
						    memory_order_acquire, memory_order_relaxed))
		return old & ~(PTE_LOCKED | PTE_WAITERS);
	return pte_lock_wait(p);
}

static inline _Atomic uint64_t *pte_of(struct rsv *r, uintptr_t addr)
{
	return &r->pte[(addr - r->start) >> PAGE_SHIFT];
}
static inline struct extent *extent_of(struct rsv *r, uintptr_t addr)
{
	return &r->ext[(addr - r->start) >> PMD_SHIFT];
}

/* Async-signal-safe. Keep the extent's count of non-empty PTEs; PTE lock held. */
static inline void pte_set_used(struct rsv *r, uintptr_t addr, uint64_t old, uint64_t val)
{
	bool was = pte_state(old) != PTE_NONE, is = pte_state(val) != PTE_NONE;

	if (was != is)
		atomic_fetch_add_explicit(&extent_of(r, addr)->used, is ? 1 : (uint32_t)-1,
					  memory_order_relaxed);
}
static inline uint64_t pte_locked_val(_Atomic uint64_t *p)
{
	return atomic_load_explicit(p, memory_order_relaxed) & ~(PTE_LOCKED | PTE_WAITERS);
}

/* Async-signal-safe. The word of a page whose lock the caller holds. */
static inline uint64_t locked_val(struct rsv *r, uintptr_t addr)
{
	return pte_locked_val(pte_of(r, addr));
}

/* Async-signal-safe. Does the extent hold any page that is not PTE_NONE? */
static inline bool extent_used(struct rsv *r, uintptr_t a)
{
	return atomic_load_explicit(&extent_of(r, a)->used, memory_order_relaxed) != 0;
}

/* Async-signal-safe. Is the extent at a collapsed (EXT_HUGE)? */
static inline bool extent_huge(struct rsv *r, uintptr_t a)
{
	return atomic_load_explicit(&extent_of(r, a)->flags, memory_order_relaxed) & EXT_HUGE;
}
/* Async-signal-safe. Is every PTE of [s, e) locked (by someone: the word
 * does not say by whom)? For debug assertions. */
static inline bool pte_range_locked(struct rsv *r, uintptr_t s, uintptr_t e)
{
	for (uintptr_t a = ALIGN_DOWN(s, PAGE_SIZE); a < e; a += PAGE_SIZE)
		if (!(atomic_load_explicit(pte_of(r, a), memory_order_relaxed) & PTE_LOCKED))
			return false;
	return true;
}

void lock_range(struct rsv *r, uintptr_t s, uintptr_t e);
void unlock_untouched(struct rsv *r, uintptr_t s, uintptr_t e);
bool trylock_extent(struct rsv *r, uintptr_t a, uintptr_t held);
bool trylock_holes(struct rsv *r, uintptr_t s, uintptr_t e);

#endif /* EMM_PTE_H */
