/* SPDX-License-Identifier: MIT */
/* Frames (struct page), per-node LRU lists, per-CPU pagevecs. */
#ifndef EMM_LRU_H
#define EMM_LRU_H

#include "internal.h"

#define PAGEVEC_SIZE	15
enum { LRU_INACTIVE, LRU_ACTIVE };
enum { PV_ADD, PV_ACTIVATE, PV_DEACTIVATE, PV_ADD_ACTIVE, NR_PV };

struct frame {
	uint32_t next, prev;		/* list links; top bits: on a list, active */
	uint32_t ppn;			/* physmem page; all ones when free */
	uint32_t slot;			/* swap slot kept while clean, or 0 */
};

struct lruvec {
	_Atomic uint32_t lock;		/* the node's lru_lock: lists and free frames */
	int node;
	_Atomic uint64_t nr[2];		/* frames on the inactive and active lists; written
					 * under lock, read without it by reclaim (relaxed) */
	uint32_t free_head;
	size_t top, end;		/* the node's range of the frame table */
	_Atomic long resident;		/* its frames in use */
	_Atomic long limit;		/* its share of the budget, in pages */
	bool limit_set;			/* by emm_set_node_limit */
	_Atomic uint64_t pgscan, pgsteal, swapouts, swapins;
};

struct pagevec {
	unsigned nr;
	uint32_t frame[PAGEVEC_SIZE];
	uint32_t ppn[PAGEVEC_SIZE];
};

struct cpu_lru {
	_Atomic uint32_t lock;		/* only ever tried: a busy CPU slot is bypassed */
	int node;			/* of the frames in free[] */
	struct pagevec pv[NR_PV];
	unsigned nfree;
	uint32_t free[32];
} __attribute__((aligned(64)));

struct lru {
	struct frame *frames;
	size_t frames_len, cap;
	size_t base, per_node;		/* node n owns frames base + n * per_node on */
	int nnodes;
	bool batching;			/* per-CPU pagevecs on (the default) */
	unsigned ncpu;
	struct cpu_lru *cpu;
	_Atomic uint64_t drains;	/* node-lock acquisitions for pagevecs */
	_Atomic uint64_t nonresident_age;	/* evictions and activations (workingset.c) */
	unsigned age_shift;		/* a shadow's unit: 1 << age_shift of them */
	struct lruvec node[EMM_MAX_NODES];
};

/*
 * Outside lru.c a frame's fields are read and written only through these,
 * as the kernel's folio_* helpers: the list links and their flag bits
 * belong to lru.c (frame_on_lru, frame_active, frame_set_huge); the others
 * are the callers', under the page's PTE lock.
 */

/* Async-signal-safe. n pages went onto the active list, or out of memory:
 * the clock refault distances are read on (workingset.c) moves on. */
static inline void lru_age_nonresident(struct lru *lru, uint64_t n)
{
	atomic_fetch_add_explicit(&lru->nonresident_age, n, memory_order_relaxed);
}

/* Async-signal-safe. Frames on one of lv's lists, read without its lock:
 * a hint for how much to scan, never trusted for more. */
static inline long lru_size(struct lruvec *lv, int list)
{
	return (long)atomic_load_explicit(&lv->nr[list], memory_order_relaxed);
}

/* Async-signal-safe. A page went from the inactive list to the active. */
static inline void count_activate(struct emm *mm)
{
	lru_age_nonresident(mm->lru, 1);
	count_event(mm, pgactivate);
}

/* Async-signal-safe. The swap slot the page keeps while clean, or 0. */
static inline uint32_t frame_slot(const struct lru *lru, uint32_t f)
{
	return lru->frames[f].slot;
}

/* Async-signal-safe. The page's data is now also in slot (0: nowhere). */
static inline void frame_set_slot(struct lru *lru, uint32_t f, uint32_t slot)
{
	lru->frames[f].slot = slot;
}

/* Async-signal-safe. The page's slot, which it keeps no more: the caller
 * frees it (swap_free) or hands it on. */
static inline uint32_t frame_take_slot(struct lru *lru, uint32_t f)
{
	uint32_t slot = lru->frames[f].slot;

	if (slot)
		lru->frames[f].slot = 0;
	return slot;
}

int lru_init(struct emm *mm);
void lru_destroy(struct emm *mm);
uint32_t frame_alloc(struct emm *mm, uint32_t ppn, int node);
void lru_split_limit(struct emm *mm);
void frame_free(struct emm *mm, uint32_t f);
bool frame_on_lru(const struct lru *lru, uint32_t f);
int frame_active(const struct lru *lru, uint32_t f);
struct lruvec *frame_lruvec(struct lru *lru, uint32_t f);
void lru_queue(struct emm *mm, uint32_t f, int op);
void lru_add_drain_all(struct emm *mm);
unsigned lru_isolate(struct emm *mm, struct lruvec *lv, int list, uint32_t *f, uint32_t *ppn,
		     unsigned n);
void lru_putback(struct emm *mm, uint32_t f, int list, bool tail);
void lru_take(struct emm *mm, uint32_t f);
void frame_set_huge(struct emm *mm, uint32_t f, bool huge);

#endif /* EMM_LRU_H */
