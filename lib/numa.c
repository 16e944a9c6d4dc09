/* SPDX-License-Identifier: MIT */
/* The NUMA calls: nodes, per-node statistics, and migrating pages between nodes. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "backend.h"
#include "huge_memory.h"
#include "internal.h"
#include "options.h"
#include "lru.h"
#include "emm_numa.h"
#include "physmem.h"
#include "pte.h"
#include "range.h"

EMM_API int emm_numa_nodes(struct emm *mm)
{
	return mm ? mm->lru->nnodes : -EINVAL;
}

EMM_API int emm_node_stats(struct emm *mm, int node, struct emm_node_stats *st)
{
	struct emm_node_stats s = { .sz = sizeof(s) };
	struct lruvec *lv;

	if (!mm || !st || node < 0 || node >= mm->lru->nnodes)
		return -EINVAL;
	if (mm_foreign(mm))
		return -ECHILD;
	backend_quiesce(mm);
	lv = &mm->lru->node[node];
	s.resident_bytes = (uint64_t)MAX(atomic_load(&lv->resident), 0) * PAGE_SIZE;
	s.active_bytes = atomic_load_explicit(&lv->nr[LRU_ACTIVE], memory_order_relaxed) * PAGE_SIZE;
	s.inactive_bytes = atomic_load_explicit(&lv->nr[LRU_INACTIVE], memory_order_relaxed) *
			   PAGE_SIZE;
	s.limit_bytes = (uint64_t)lv->limit * PAGE_SIZE;
	s.pgscan = atomic_load(&lv->pgscan);
	s.pgsteal = atomic_load(&lv->pgsteal);
	s.swapouts = atomic_load(&lv->swapouts);
	s.swapins = atomic_load(&lv->swapins);
	return stats_put(st, &s, sizeof(s));
}

/* Give the locked, resident page at a a frame of node, keeping its place
 * on the LRU (the kind of list, or its pending add). */
static void move_frame(struct rsv *r, uintptr_t a, int node)
{
	struct emm *mm = r->mm;
	struct lru *lru = mm->lru;
	uint64_t v = pte_locked_val(pte_of(r, a));
	uint32_t old = pte_val(v), f;
	int list;
	bool listed;

	if (frame_lruvec(lru, old)->node == node || !(f = frame_alloc(mm, rsv_ppn(r, a), node)))
		return;
	frame_set_slot(lru, f, frame_take_slot(lru, old));
	listed = frame_on_lru(lru, old);
	list = frame_active(lru, old);
	frame_free(mm, old);
	pte_set_locked(pte_of(r, a), pte_set_val(v, f));
	if (listed)
		lru_putback(mm, f, list, false);
	else if (v & PTE_LRU)
		lru_queue(mm, f, PV_ADD);
}

/* The kernel moves a page only where one mapping holds it: drop the alias
 * view's (the data stays in physmem), then move the app view's pages. */
static int move_physical(struct rsv *r, uintptr_t s, uintptr_t e, int node)
{
	void *pages[64];
	unsigned n = 0;
	int ret = 0;

	madvise(rsv_alias(r, s), e - s, MADV_DONTNEED);
	for (uintptr_t a = s; a <= e; a += PAGE_SIZE) {
		if (a < e && pte_state(pte_locked_val(pte_of(r, a))) == PTE_RESIDENT)
			pages[n++] = (void *)a;
		if (n && (n == ARRAY_SIZE(pages) || a == e)) {
			int err = numa_move(pages, n, node, NULL);

			ret = ret ? ret : (err < 0 ? err : 0);
			n = 0;
		}
	}
	return ret;
}

static int migrate_range(struct rsv *r, uintptr_t s, uintptr_t e, void *arg)
{
	int node = *(int *)arg, ret = 0;

	thp_split_range(r, s, e, true);
	for (uintptr_t c = s; c < e;) {
		uintptr_t ce = MIN(ALIGN_DOWN(c, PMD_SIZE) + PMD_SIZE, e), ls, le;
		int err;

		if (!extent_used(r, c)) {
			c = ce;
			continue;
		}
		lock_range_split(r, c, ce, &ls, &le);
		for (uintptr_t a = c; a < ce; a += PAGE_SIZE)
			if (pte_state(pte_locked_val(pte_of(r, a))) == PTE_RESIDENT)
				move_frame(r, a, node);
		err = numa_topology()->real ? move_physical(r, c, ce, node) : 0;
		ret = ret ? ret : err;
		unlock_untouched(r, ls, le);
		c = ce;
	}
	return ret;
}

/* Move the resident pages of a range to a node, and onto its LRU. */
EMM_API int emm_migrate(struct emm *mm, void *addr, size_t len, int node)
{
	if (!mm || node < 0 || node >= mm->lru->nnodes)
		return -EINVAL;
	return with_range(mm, addr, len, migrate_range, &node);
}
