/* SPDX-License-Identifier: MIT */
/* The frame table (mem_map), per-node LRU lists, and per-CPU pagevecs. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "lru.h"
#include "emm_numa.h"

/*
 * Frames are indices into one lazily backed array. Frame 0 is "none"; the
 * next two per node are the sentinels of its inactive and active lists.
 * A frame is 16 bytes: list links (their top bits say which list it is on),
 * the physmem page it describes, and the swap slot it keeps while clean.
 */
#define FRAME_ONLRU	0x80000000u	/* in next: on a list */
#define FRAME_ACTIVE	0x80000000u	/* in prev: on the active list */
#define FRAME_HUGE	0x40000000u	/* in prev: stands for a huge extent */
#define FRAME_IDX	0x3fffffffu
#define PPN_FREE	0xffffffffu
#define FRAME_CACHE	32

static uint32_t sentinel(int node, int list)
{
	return 1 + 2 * (uint32_t)node + (uint32_t)list;
}

/* Async-signal-safe. List primitives; the node lock is held. */
static void list_link(struct lru *lru, uint32_t f, uint32_t prev, uint32_t next)
{
	struct frame *fr = lru->frames;

	fr[f].next = (fr[f].next & ~FRAME_IDX) | next;
	fr[f].prev = (fr[f].prev & ~FRAME_IDX) | prev;
	fr[prev].next = (fr[prev].next & ~FRAME_IDX) | f;
	fr[next].prev = (fr[next].prev & ~FRAME_IDX) | f;
}

static void list_del(struct lru *lru, uint32_t f)
{
	struct frame *fr = lru->frames;
	uint32_t prev = fr[f].prev & FRAME_IDX, next = fr[f].next & FRAME_IDX;

	fr[prev].next = (fr[prev].next & ~FRAME_IDX) | next;
	fr[next].prev = (fr[next].prev & ~FRAME_IDX) | prev;
	fr[f].next &= ~FRAME_ONLRU;
	fr[f].prev &= ~FRAME_ACTIVE;
}

/* Async-signal-safe. Pages a listed frame stands for: the lists count
 * pages, as the kernel's do, so a huge extent's frame weighs 512. */
static uint64_t frame_weight(const struct lru *lru, uint32_t f)
{
	return (lru->frames[f].prev & FRAME_HUGE) ? PTRS_PER_PMD : 1;
}

/* Async-signal-safe. Put f on a list of its node; node lock held. */
static void list_add_to(struct lru *lru, struct lruvec *lv, uint32_t f, int list, bool tail)
{
	uint32_t s = sentinel(lv->node, list);
	struct frame *fr = lru->frames;

	if (tail)
		list_link(lru, f, fr[s].prev & FRAME_IDX, s);
	else
		list_link(lru, f, s, fr[s].next & FRAME_IDX);
	fr[f].next |= FRAME_ONLRU;
	if (list == LRU_ACTIVE)
		fr[f].prev |= FRAME_ACTIVE;
	atomic_fetch_add_explicit(&lv->nr[list], frame_weight(lru, f), memory_order_relaxed);
}

static void list_remove(struct lru *lru, struct lruvec *lv, uint32_t f)
{
	atomic_fetch_sub_explicit(&lv->nr[frame_active(lru, f)], frame_weight(lru, f),
				  memory_order_relaxed);
	list_del(lru, f);
}

bool frame_on_lru(const struct lru *lru, uint32_t f)
{
	return lru->frames[f].next & FRAME_ONLRU;
}

/* Async-signal-safe. Off its list, if it is on one; node lock held. */
static void take_locked(struct lru *lru, struct lruvec *lv, uint32_t f)
{
	if (frame_on_lru(lru, f))
		list_remove(lru, lv, f);
}

int frame_active(const struct lru *lru, uint32_t f)
{
	return (lru->frames[f].prev & FRAME_ACTIVE) ? LRU_ACTIVE : LRU_INACTIVE;
}

/* Async-signal-safe. The node a frame's page lives on: each node hands
 * out frames from its own range of the table. */
struct lruvec *frame_lruvec(struct lru *lru, uint32_t f)
{
	size_t n = (f - lru->base) / lru->per_node;

	return &lru->node[n < (size_t)lru->nnodes ? n : 0];
}

/* Async-signal-safe. This CPU's pagevecs, locked, or NULL when another
 * thread on this CPU holds them. */
static struct cpu_lru *cpu_get(struct lru *lru, int *cpup)
{
	int cpu = sched_getcpu();
	struct cpu_lru *c = &lru->cpu[(unsigned)(cpu < 0 ? 0 : cpu) % lru->ncpu];

	if (cpup)
		*cpup = cpu < 0 ? 0 : cpu;
	return mutex_trylock(&c->lock) ? c : NULL;
}

/* Async-signal-safe. Take up to n free frames off the node's list. */
static unsigned take_free(struct lru *lru, struct lruvec *lv, uint32_t *out, unsigned n)
{
	unsigned got = 0;

	mutex_lock(&lv->lock);
	while (got < n && lv->free_head) {
		uint32_t f = lv->free_head;

		lv->free_head = lru->frames[f].next & FRAME_IDX;
		out[got++] = f;
	}
	while (got < n && lv->top < lv->end)
		out[got++] = (uint32_t)lv->top++;
	mutex_unlock(&lv->lock);
	return got;
}

/*
 * Async-signal-safe. A frame on node for physmem page ppn, charged to the
 * budget; 0 when the node's frames are exhausted. From this CPU's cache
 * when it holds the node's frames, refilled a batch at a time so the node
 * lock is taken once per FRAME_CACHE frames.
 */
uint32_t frame_alloc(struct emm *mm, uint32_t ppn, int node)
{
	struct lru *lru = mm->lru;
	struct cpu_lru *c = cpu_get(lru, NULL);
	uint32_t f = 0;

	if (c && c->nfree && c->node != node) {
		mutex_unlock(&c->lock);
		c = NULL;
	}
	if (c) {
		if (!c->nfree) {
			c->node = node;
			c->nfree = take_free(lru, &lru->node[node], c->free, FRAME_CACHE);
		}
		if (c->nfree)
			f = c->free[--c->nfree];
		mutex_unlock(&c->lock);
	} else {
		take_free(lru, &lru->node[node], &f, 1);
	}
	if (!f)
		return 0;
	/* Under the node lock: a pagevec entry queued while f held another
	 * page may still be applied, and pagevec_apply reads f under it. */
	mutex_lock(&frame_lruvec(lru, f)->lock);
	lru->frames[f] = (struct frame){ .ppn = ppn };
	mutex_unlock(&frame_lruvec(lru, f)->lock);
	count_event(mm, resident_pages);
	atomic_fetch_add_explicit(&lru->node[node].resident, 1, memory_order_relaxed);
	return f;
}

/* Async-signal-safe. Give f back: off its list, free, uncharged. The
 * page's PTE lock is held, and the caller has dealt with f's slot. */
void frame_free(struct emm *mm, uint32_t f)
{
	struct lru *lru = mm->lru;
	struct lruvec *lv = frame_lruvec(lru, f);

	mutex_lock(&lv->lock);
	take_locked(lru, lv, f);
	lru->frames[f].ppn = PPN_FREE;
	lru->frames[f].slot = 0;
	lru->frames[f].next = lv->free_head;
	lv->free_head = f;
	mutex_unlock(&lv->lock);
	atomic_fetch_sub_explicit(&mm->c.resident_pages, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&lv->resident, 1, memory_order_relaxed);
}

/* Async-signal-safe. Apply a pagevec: node lock held. An entry whose frame
 * was freed (or reused for another page) since it was queued is skipped. */
static void pagevec_apply(struct emm *mm, struct lruvec *lv, int op, struct pagevec *pv)
{
	struct lru *lru = mm->lru;

	for (unsigned i = 0; i < pv->nr; i++) {
		uint32_t f = pv->frame[i];
		bool on = frame_on_lru(lru, f);

		if (lru->frames[f].ppn != pv->ppn[i])
			continue;
		if (op == PV_ADD && !on) {
			list_add_to(lru, lv, f, LRU_INACTIVE, false);
		} else if (op == PV_ADD_ACTIVE && !on) {
			list_add_to(lru, lv, f, LRU_ACTIVE, false);
			lru_age_nonresident(lru, 1);
		} else if (op == PV_ACTIVATE && on && frame_active(lru, f) == LRU_INACTIVE) {
			list_remove(lru, lv, f);
			list_add_to(lru, lv, f, LRU_ACTIVE, false);
			count_activate(mm);
		} else if (op == PV_DEACTIVATE && on) {
			if (frame_active(lru, f) == LRU_ACTIVE)
				count_event(mm, pgdeactivate);
			list_remove(lru, lv, f);
			list_add_to(lru, lv, f, LRU_INACTIVE, true);
		}
	}
	pv->nr = 0;
}

/* Async-signal-safe. Apply a pagevec, each entry on the node its frame
 * belongs to: one lock per run of entries of one node. */
static void pagevec_drain(struct emm *mm, int op, struct pagevec *pv)
{
	struct lru *lru = mm->lru;
	unsigned i = 0;

	while (i < pv->nr) {
		struct lruvec *lv = frame_lruvec(lru, pv->frame[i]);
		struct pagevec run = { 0 };

		while (i < pv->nr && frame_lruvec(lru, pv->frame[i]) == lv) {
			run.frame[run.nr] = pv->frame[i];
			run.ppn[run.nr++] = pv->ppn[i++];
		}
		mutex_lock(&lv->lock);
		pagevec_apply(mm, lv, op, &run);
		mutex_unlock(&lv->lock);
		atomic_fetch_add_explicit(&lru->drains, 1, memory_order_relaxed);
	}
	pv->nr = 0;
}

/*
 * Async-signal-safe. Queue an LRU operation on frame f (whose PTE lock the
 * caller holds) in this CPU's pagevec; a full pagevec drains under the node
 * lock. With batching off, or the pagevec busy, apply it at once.
 */
void lru_queue(struct emm *mm, uint32_t f, int op)
{
	struct lru *lru = mm->lru;
	struct cpu_lru *c = lru->batching ? cpu_get(lru, NULL) : NULL;
	struct pagevec one = { .nr = 1, .frame = { f }, .ppn = { lru->frames[f].ppn } };
	struct pagevec *pv;

	if (!c) {
		pagevec_drain(mm, op, &one);
		return;
	}
	pv = &c->pv[op];
	pv->frame[pv->nr] = f;
	pv->ppn[pv->nr] = lru->frames[f].ppn;
	if (++pv->nr == PAGEVEC_SIZE)
		pagevec_drain(mm, op, pv);
	mutex_unlock(&c->lock);
}

/* Async-signal-safe. Drain every CPU's pagevecs (lru_add_drain_all);
 * a CPU whose pagevecs are busy right now is left for next time. */
void lru_add_drain_all(struct emm *mm)
{
	struct lru *lru = mm->lru;

	for (unsigned i = 0; i < lru->ncpu; i++) {
		struct cpu_lru *c = &lru->cpu[i];

		if (!mutex_trylock(&c->lock))
			continue;
		for (int op = 0; op < NR_PV; op++)
			pagevec_drain(mm, op, &c->pv[op]);
		mutex_unlock(&c->lock);
	}
}

/*
 * Async-signal-safe. Take up to n frames off the tail of a list
 * (isolate_lru_pages), noting the page each describes. They are on no list
 * until put back.
 */
unsigned lru_isolate(struct emm *mm, struct lruvec *lv, int list, uint32_t *f, uint32_t *ppn,
		     unsigned n)
{
	struct lru *lru = mm->lru;
	uint32_t s = sentinel(lv->node, list);
	unsigned got = 0;

	mutex_lock(&lv->lock);
	while (got < n && (lru->frames[s].prev & FRAME_IDX) != s) {
		uint32_t x = lru->frames[s].prev & FRAME_IDX;

		list_remove(lru, lv, x);
		f[got] = x;
		ppn[got++] = lru->frames[x].ppn;
	}
	mutex_unlock(&lv->lock);
	count_events(mm, pgscan, got);
	atomic_fetch_add_explicit(&lv->pgscan, got, memory_order_relaxed);
	return got;
}

/* Async-signal-safe. Put an isolated frame back on a list; its PTE lock is held. */
void lru_putback(struct emm *mm, uint32_t f, int list, bool tail)
{
	struct lru *lru = mm->lru;
	struct lruvec *lv = frame_lruvec(lru, f);

	mutex_lock(&lv->lock);
	if (!frame_on_lru(lru, f) && lru->frames[f].ppn != PPN_FREE)
		list_add_to(lru, lv, f, list, tail);
	mutex_unlock(&lv->lock);
}

static size_t frame_capacity(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);

	/* Frames never outnumber the machine's pages by much: twice is room
	 * for the budget, pages over it when swap is full, and headroom. */
	return MIN((size_t)(pages > 0 ? pages : 1 << 20) * 2, (size_t)FRAME_IDX);
}

int lru_init(struct emm *mm)
{
	struct lru *lru = calloc(1, sizeof(*lru));
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);

	if (!lru)
		return -ENOMEM;
	lru->ncpu = ncpu > 0 ? (unsigned)ncpu : 1;
	lru->cpu = calloc(lru->ncpu, sizeof(*lru->cpu));
	lru->cap = frame_capacity();
	lru->frames_len = ALIGN_UP(lru->cap * sizeof(struct frame), PAGE_SIZE);
	lru->frames = mmap(NULL, lru->frames_len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!lru->cpu || lru->frames == MAP_FAILED) {
		free(lru->cpu);
		free(lru);
		return -ENOMEM;
	}
	lru->nnodes = MIN(numa_topology()->nnodes, EMM_MAX_NODES);
	lru->batching = !(mm->cfg.flags & EMM_OPEN_NO_PAGEVEC);
	lru->base = 1 + 2 * (size_t)lru->nnodes;
	lru->per_node = (lru->cap - lru->base) / (size_t)lru->nnodes;
	for (int n = 0; n < lru->nnodes; n++) {
		struct lruvec *lv = &lru->node[n];

		lv->node = n;
		lv->top = lru->base + (size_t)n * lru->per_node;
		lv->end = lv->top + lru->per_node;
		for (int l = 0; l < 2; l++) {
			uint32_t s = sentinel(n, l);

			lru->frames[s].next = lru->frames[s].prev = s;
		}
	}
	mm->lru = lru;
	lru_split_limit(mm);
	return 0;
}

void lru_destroy(struct emm *mm)
{
	struct lru *lru = mm->lru;

	if (!lru)
		return;
	munmap(lru->frames, lru->frames_len);
	free(lru->cpu);
	free(lru);
	mm->lru = NULL;
}

/* Async-signal-safe. Take frame f (its PTE lock held) off whatever list it
 * is on, as isolation does for a batch. */
void lru_take(struct emm *mm, uint32_t f)
{
	struct lru *lru = mm->lru;
	struct lruvec *lv = frame_lruvec(lru, f);

	mutex_lock(&lv->lock);
	take_locked(lru, lv, f);
	mutex_unlock(&lv->lock);
}

/*
 * Each node's share of the budget: proportional to its memory (equal
 * shares where hwloc did not say), unless emm_set_node_limit set one.
 */
void lru_split_limit(struct emm *mm)
{
	const struct numa_topo *t = numa_topology();
	struct lru *lru = mm->lru;
	uint64_t total = 0, limit = mm->cfg.mem_limit >> PAGE_SHIFT;

	for (int n = 0; n < lru->nnodes; n++)
		total += t->node_mem[n];
	for (int n = 0; n < lru->nnodes; n++) {
		struct lruvec *lv = &lru->node[n];

		if (lv->limit_set)
			continue;
		lv->limit = total ? (long)(limit * (t->node_mem[n] >> 12) / (total >> 12))
				  : (long)(limit / (uint64_t)lru->nnodes);
	}
}

/* Async-signal-safe. Frame f (its PTE locks held) now stands for a whole
 * huge extent, or for its own page again. */
void frame_set_huge(struct emm *mm, uint32_t f, bool huge)
{
	struct lru *lru = mm->lru;
	struct lruvec *lv = frame_lruvec(lru, f);
	bool on;

	mutex_lock(&lv->lock);
	on = frame_on_lru(lru, f);
	if (on)
		atomic_fetch_sub_explicit(&lv->nr[frame_active(lru, f)], frame_weight(lru, f),
					  memory_order_relaxed);
	lru->frames[f].prev = huge ? lru->frames[f].prev | FRAME_HUGE
				   : lru->frames[f].prev & ~FRAME_HUGE;
	if (on)
		atomic_fetch_add_explicit(&lv->nr[frame_active(lru, f)], frame_weight(lru, f),
					  memory_order_relaxed);
	mutex_unlock(&lv->lock);
}
