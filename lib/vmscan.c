/* SPDX-License-Identifier: MIT */
/* Reclaim: shrink_active_list, shrink_inactive_list, shrink_page_list (the
 * writing and freeing are pageout.c's), range reclaim. */
#include <stdlib.h>

#include "backend.h"
#include "huge_memory.h"
#include "lru.h"
#include "physmem.h"
#include "pte.h"
#include "srcu.h"
#include "swap.h"
#include "pageout.h"
#include "vma.h"
#include "vmscan.h"
#include "vmscan_batch.h"
#include "workingset.h"

/* Async-signal-safe. Lock the page frame f describes, if it still does and
 * nobody holds it now (reclaim never waits on a page lock). */
static bool scan_lock(struct emm *mm, uint32_t f, uint32_t ppn, struct scan *sp)
{
	struct rsv *r = rsv_of_ppn(mm, ppn);
	uint64_t old;
	uintptr_t addr;

	if (!r)
		return false;
	addr = r->start + (((uint64_t)ppn << PAGE_SHIFT) - r->pgoff);
	if (!pte_trylock(pte_of(r, addr), &old))
		return false;
	if (pte_state(old) != PTE_RESIDENT || pte_val(old) != f) {
		pte_unlock(pte_of(r, addr), old);
		return false;
	}
	*sp = (struct scan){ .f = f, .r = r, .addr = addr };
	return true;
}

static uint64_t pval(const struct scan *sp)
{
	return pte_locked_val(pte_of(sp->r, sp->addr));
}

static bool scan_before(const struct scan *a, const struct scan *b)
{
	return a->r != b->r ? a->r < b->r : a->addr < b->addr;
}

/* Async-signal-safe. Address order, so neighbours are revoked and freed as
 * one range (an insertion sort: batches come off the list mostly sorted). */
static void sort_scan(struct scan *sp, unsigned n)
{
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j && scan_before(&sp[j], &sp[j - 1]); j--) {
			struct scan t = sp[j];

			sp[j] = sp[j - 1];
			sp[j - 1] = t;
		}
}

/* Async-signal-safe. Take a batch off a list and lock its pages; frames
 * whose page is busy go back where they came from. */
static unsigned isolate_locked(struct emm *mm, struct lruvec *lv, int list, struct reclaim *rc)
{
	unsigned n = lru_isolate(mm, lv, list, rc->f, rc->ppn, rc->batch), got = 0;

	for (unsigned i = 0; i < n; i++) {
		struct scan *sp = &rc->sp[got];

		if (!scan_lock(mm, rc->f[i], rc->ppn[i], sp)) {
			lru_putback(mm, rc->f[i], list, false);
			continue;
		}
		/* A page after the head of a huge extent, listed by a per-CPU
		 * pagevec drained after the collapse (it was queued before):
		 * off the lists, as extent_set_huge took the others. Evicted
		 * by itself, it would leave the extent marked huge with a
		 * hole, on userfaultfd not registered for write-protection;
		 * read back, a clean copy there cannot be mapped without
		 * write, and its reads fault again and again (seen: the
		 * out-of-core bench, 2 GiB under 512 MiB, EMM_MAP_HUGEPAGE,
		 * spinning for minutes at 37 K minor faults a second). */
		if (extent_huge(sp->r, sp->addr) && !IS_ALIGNED(sp->addr, PMD_SIZE)) {
			pte_unlock(pte_of(sp->r, sp->addr), pval(sp));
			continue;
		}
		/* A huge extent is one unit: its head stands for all of it. */
		if (extent_huge(sp->r, sp->addr) && IS_ALIGNED(sp->addr, PMD_SIZE)) {
			if (!trylock_extent(sp->r, sp->addr, sp->addr)) {
				pte_unlock(pte_of(sp->r, sp->addr), pval(sp));
				lru_putback(mm, rc->f[i], list, false);
				continue;
			}
			sp->huge = true;
		}
		got++;
	}
	sort_scan(rc->sp, got);
	return got;
}

/* Async-signal-safe. The ranges revoke_batch revokes: runs of mapped
 * neighbours in one reservation whose act is act, a huge extent alone. */
static unsigned collect_runs(struct reclaim *rc, unsigned n, uint8_t act)
{
	struct scan *sp = rc->sp;
	unsigned nr = 0;

	for (unsigned i = 0; i < n; i++) {
		unsigned j = i;

		if (sp[i].act != act || !pte_prot(pval(&sp[i])))
			continue;
		while (!sp[i].huge && next_to(sp, j, n) && sp[j + 1].act == act &&
		       !sp[j + 1].huge && pte_prot(pval(&sp[j + 1])))
			j++;
		rc->run[nr] = (struct run){ .first = i, .last = j };
		rc->iov[nr] = (struct iovec){ .iov_base = (void *)sp[i].addr,
					      .iov_len = sp[i].huge ? PMD_SIZE
								    : (j - i + 1) * PAGE_SIZE };
		rc->rsv[nr++] = sp[i].r;
		i = j;
	}
	return nr;
}

/*
 * Async-signal-safe. The app view loses access to the mapped pages of
 * rc->sp[0..n) whose act is act (locked, sorted): all the runs in one call
 * where the backend can (one TLB flush for the batch), else a call per
 * run. A page the kernel would not revoke is kept: nothing mapped is ever
 * evicted.
 */
static void revoke_batch(struct reclaim *rc, unsigned n, uint8_t act)
{
	unsigned nr = collect_runs(rc, n, act), k;
	struct revoke_vec v = { .n = nr, .iov = rc->iov, .rsv = rc->rsv };

	if (!nr)
		return;
	for (k = backend_revoke_many(rc->rsv[0]->mm, &v); k < nr; k++) {
		uintptr_t s = (uintptr_t)rc->iov[k].iov_base;

		if (backend_revoke(rc->rsv[k], s, s + rc->iov[k].iov_len, BACKEND_FORCE))
			for (unsigned i = rc->run[k].first; i <= rc->run[k].last; i++)
				rc->sp[i].act = ACT_KEEP;
	}
}

/* Async-signal-safe. Unlock a scanned page, clearing bits of its word
 * (and the rest of its extent, for a huge one). */
static void scan_unlock(struct scan *sp, uint64_t clear)
{
	if (sp->huge)
		unlock_untouched(sp->r, sp->addr + PAGE_SIZE, sp->addr + PMD_SIZE);
	sp->huge = false;
	pte_unlock(pte_of(sp->r, sp->addr), pval(sp) & ~clear);
}

/* Async-signal-safe. Deactivate a batch from the active tail: revoke
 * access (the data stays), so the next touch is a minor fault that proves
 * the page is in use; move to the inactive list. */
static void shrink_active_list(struct emm *mm, struct lruvec *lv, struct reclaim *rc)
{
	unsigned n = isolate_locked(mm, lv, LRU_ACTIVE, rc);
	struct scan *sp = rc->sp;

	for (unsigned i = 0; i < n; i++)
		sp[i].act = (pval(&sp[i]) & PTE_PINNED) ? ACT_KEEP : ACT_SAMPLE;
	revoke_batch(rc, n, ACT_SAMPLE);
	for (unsigned i = 0; i < n; i++) {
		bool pinned = sp[i].act == ACT_KEEP;

		lru_putback(mm, sp[i].f, pinned ? LRU_ACTIVE : LRU_INACTIVE, false);
		if (!pinned)
			count_event(mm, pgdeactivate);
		scan_unlock(&sp[i], PTE_REFERENCED | PTE_COLD);
	}
}

/* Async-signal-safe. A clean huge extent goes whole (physmem punched):
 * the pages after its first give up their frames, each keeping its swap
 * slot in its PTE (a file's: never-touched again). */
static void evict_tails(struct emm *mm, struct rsv *r, uintptr_t a)
{
	for (uintptr_t p = a + PAGE_SIZE; p < a + PMD_SIZE; p += PAGE_SIZE) {
		uint64_t old = pte_locked_val(pte_of(r, p)), val = 0;
		uint32_t f = pte_val(old), slot = frame_take_slot(mm->lru, f);

		if (slot)
			val = pte_set_val(pte_mk(workingset_eviction(mm), PTE_SWAPPED, 0), slot);
		atomic_fetch_add_explicit(&frame_lruvec(mm->lru, f)->pgsteal, 1,
					  memory_order_relaxed);
		frame_free(mm, f);
		atomic_fetch_sub_explicit(&r->resident, 1, memory_order_relaxed);
		pte_set_used(r, p, old, val);
		pte_unlock(pte_of(r, p), val);
	}
	count_events(mm, pgsteal, PTRS_PER_PMD - 1);
}

/* Async-signal-safe. The page is out of memory now (physmem punched): free
 * its frame; the PTE keeps the slot (0: a zero page; fa_zero counts one
 * that was mapped around a first touch, for fa_pays). */
static void evict(struct emm *mm, struct scan *sp)
{
	uint64_t old = pval(sp), val;

	if (sp->huge && unset_huge_locked(sp->r, sp->addr))
		evict_tails(mm, sp->r, sp->addr);

	if ((old & PTE_FA) && !sp->slot)
		atomic_fetch_add_explicit(&sp->r->fa_zero, 1, memory_order_relaxed);
	frame_set_slot(mm->lru, sp->f, 0);	/* the slot moves to the PTE */
	frame_free(mm, sp->f);
	atomic_fetch_sub_explicit(&sp->r->resident, 1, memory_order_relaxed);
	val = sp->slot ? pte_set_val(pte_mk(workingset_eviction(mm), PTE_SWAPPED, 0), sp->slot) : 0;
	pte_set_used(sp->r, sp->addr, old, val);
	pte_unlock(pte_of(sp->r, sp->addr), val);
	atomic_fetch_add_explicit(&frame_lruvec(mm->lru, sp->f)->pgsteal, 1, memory_order_relaxed);
	count_event(mm, pgsteal);
}

/*
 * Async-signal-safe. shrink_page_list: evict the locked, unmapped pages
 * whose act is ACT_EVICT. Clean pages with a slot and zero pages go at
 * once; dirty ones are written in one batch and freed only once the write
 * is confirmed. A page that cannot go (swap full, write failed) stays
 * resident and dirty, back on the active list. Every ACT_EVICT page is
 * unlocked here. Returns pages freed. From physmem to the slot or file,
 * PTEs included, the pages move whole: in one fork gate section (lock.c).
 */
static long shrink_page_list(struct emm *mm, struct reclaim *rc, unsigned n)
{
	struct scan *sp = rc->sp;
	long freed = 0;

	for (unsigned i = 0; i < n; i++) {
		uint32_t slot = frame_slot(mm->lru, sp[i].f);

		sp[i].write = sp[i].filewrite = sp[i].gone = false;
		if (sp[i].act != ACT_EVICT)
			continue;
		DEBUG_ASSERT(pte_prot(pval(&sp[i])) == EMM_PROT_NONE);	/* nothing mapped goes */
		if (sp[i].whole)
			continue;	/* writeout_huge */
		if (pval(&sp[i]) & PTE_FILE) {
			/* Its home is its file or pager: clean, just drop it. */
			sp[i].gone = !(pval(&sp[i]) & PTE_DIRTY);
			sp[i].filewrite = !sp[i].gone;
			sp[i].slot = 0;
		} else if (slot && !(pval(&sp[i]) & PTE_DIRTY)) {
			/* Goes as clean: a write emm did not see would be lost. */
			DEBUG_ASSERT(swap_slot_holds(mm->swap, slot, rsv_alias(sp[i].r, sp[i].addr)));
			sp[i].gone = true;
			sp[i].slot = slot;
		} else {
			if (slot)	/* dirty, its slot stale (backend_ops.harvest) */
				forget_slot(mm, sp[i].f);
			sp[i].write = true;	/* or dropped by writeout if all zeros */
		}
	}
	fork_gate_enter();
	writeback_files(mm, sp, n);
	writeout_huge(mm, rc, n);
	writeout(mm, rc, n);
	punch_gone(rc, n);
	for (unsigned i = 0; i < n; i++) {
		if (sp[i].gone) {
			evict(mm, &sp[i]);
			freed += sp[i].huge ? PTRS_PER_PMD : 1;
		} else if (sp[i].act == ACT_EVICT) {
			lru_putback(mm, sp[i].f, LRU_ACTIVE, false);
			scan_unlock(&sp[i], 0);
		}
	}
	fork_gate_leave();
	return freed;
}

/*
 * Async-signal-safe. A mapped page that goes at its first turn at the
 * inactive tail, without the lap that would show it in use: a zero page
 * mapped around a first touch (no I/O), or one marked PTE_COLD (pte.h).
 */
static bool evict_unsampled(const struct scan *sp, uint64_t v)
{
	return !sp->huge &&
	       ((v & PTE_COLD) || ((v & PTE_FA) && swap_page_is_zero(rsv_alias(sp->r, sp->addr))));
}

/*
 * Async-signal-safe. A batch from the inactive tail. Referenced since it
 * was last revoked: back to the active list. Mapped but never sampled:
 * revoke it and give it another lap, but for the pages evict_unsampled
 * names: they go now. Unmapped and unreferenced: evict.
 */
static long shrink_inactive_list(struct emm *mm, struct lruvec *lv, struct reclaim *rc)
{
	unsigned n = isolate_locked(mm, lv, LRU_INACTIVE, rc);
	struct scan *sp = rc->sp;
	long freed;

	for (unsigned i = 0; i < n; i++) {
		uint64_t v = pval(&sp[i]);

		if ((v & (PTE_PINNED | PTE_REFERENCED)))
			sp[i].act = ACT_KEEP;
		else if (pte_prot(v) && !evict_unsampled(&sp[i], v))
			sp[i].act = ACT_SAMPLE;
		else
			sp[i].act = ACT_EVICT;
		if (sp[i].act == ACT_EVICT && sp[i].huge && !huge_clean(sp[i].r, sp[i].addr)) {
			/* Cold as a whole: written whole (writeout_huge), or
			 * split, the rest following page by page. */
			sp[i].whole = huge_whole_ok(mm, rc, &sp[i]);
			if (sp[i].whole)
				continue;
			split_huge_locked(sp[i].r, sp[i].addr);
			unlock_untouched(sp[i].r, sp[i].addr + PAGE_SIZE, sp[i].addr + PMD_SIZE);
			sp[i].huge = false;
		}
	}
	revoke_batch(rc, n, ACT_SAMPLE);
	revoke_batch(rc, n, ACT_EVICT);	/* the zero pages still mapped */
	freed = shrink_page_list(mm, rc, n);
	for (unsigned i = 0; i < n; i++) {
		if (sp[i].act == ACT_EVICT)
			continue;
		if (sp[i].act == ACT_SAMPLE) {
			lru_putback(mm, sp[i].f, LRU_INACTIVE, false);
		} else {
			lru_putback(mm, sp[i].f, LRU_ACTIVE, false);
			if (!(pval(&sp[i]) & PTE_PINNED))
				count_activate(mm);
		}
		scan_unlock(&sp[i], PTE_REFERENCED | PTE_COLD);
	}
	return freed;
}

/*
 * Async-signal-safe. Reclaim up to nr pages from the node: keep the
 * inactive list at least 1/inactive_ratio of the active one, and shrink
 * it. Gives up after two laps of both lists. The active list may so grow
 * to inactive_ratio (EMM_INACTIVE_RATIO, 4 unless set) times the inactive
 * one before reclaim deactivates from it: each deactivation of a page in
 * use costs emm a minor fault, where the kernel reads an accessed bit for
 * free. Which ratio pays depends on the program; what 1, 2, 4 and 8 cost:
 * emm-tuning(7), "The LRU".
 */
long shrink_node_with(struct emm *mm, int node, long nr, struct reclaim *rc)
{
	struct lruvec *lv = &mm->lru->node[node];
	int srcu = srcu_read_lock(&mm->srcu);
	long freed = 0, laps;

	lru_add_drain_all(mm);
	rc->swap_full = false;
	/* Batches no larger than what is still wanted: a small node is not
	 * emptied by one, and emm_reclaim frees no more than it was asked. */
	rc->batch = (unsigned)MIN((long)rc->max, MAX(nr, 1));
	laps = 2 * (lru_size(lv, LRU_ACTIVE) + lru_size(lv, LRU_INACTIVE)) / rc->batch + 2;
	for (long i = 0; i < laps && freed < nr && !rc->swap_full; i++) {
		rc->batch = (unsigned)MIN((long)rc->max, nr - freed);
		if (mm->cfg.inactive_ratio * lru_size(lv, LRU_INACTIVE) < lru_size(lv, LRU_ACTIVE) ||
		    !lru_size(lv, LRU_INACTIVE))
			shrink_active_list(mm, lv, rc);
		if (!lru_size(lv, LRU_INACTIVE) && !lru_size(lv, LRU_ACTIVE))
			break;
		freed += shrink_inactive_list(mm, lv, rc);
	}
	srcu_read_unlock(&mm->srcu, srcu);
	return freed;
}

/* Async-signal-safe. Reclaim from a faulting (or API) thread, in batches
 * small enough for its stack. */
long shrink_node(struct emm *mm, int node, long nr)
{
	RECLAIM_ON_STACK(rc, SWAP_CLUSTER_MAX);

	return shrink_node_with(mm, node, nr, &rc);
}

/* A thread's batch work space; its arrays uncleared, as on the stack. */
struct reclaim *reclaim_alloc(unsigned n)
{
	struct reclaim *rc = malloc(sizeof(*rc) + n * (sizeof(struct scan) + sizeof(struct swap_io) +
				    sizeof(struct iovec) + sizeof(struct run) + sizeof(struct rsv *) +
				    sizeof(uintptr_t) + 3 * sizeof(uint32_t) + sizeof(unsigned)));
	char *p = (char *)(rc + 1);

	if (!rc)
		return NULL;
	*rc = (struct reclaim){ .max = n };
	rc->sp = (struct scan *)p, p += n * sizeof(struct scan);
	rc->io = (struct swap_io *)p, p += n * sizeof(struct swap_io);
	rc->iov = (struct iovec *)p, p += n * sizeof(struct iovec);
	rc->run = (struct run *)p, p += n * sizeof(struct run);
	rc->rsv = (struct rsv **)p, p += n * sizeof(struct rsv *);
	rc->addr = (uintptr_t *)p, p += n * sizeof(uintptr_t);
	rc->f = (uint32_t *)p, p += n * sizeof(uint32_t);
	rc->ppn = (uint32_t *)p, p += n * sizeof(uint32_t);
	rc->slots = (uint32_t *)p, p += n * sizeof(uint32_t);
	rc->idx = (unsigned *)p;
	return rc;
}

/* Lock the resident, unpinned pages of [*at, e), up to a batch, taking
 * them off the LRU; act is what reclaim is to do with them. Signals
 * blocked; locks taken in address order. */
static unsigned collect(struct rsv *r, uintptr_t *at, uintptr_t e, struct scan *sp,
			unsigned max, uint8_t act)
{
	unsigned n = 0;

	for (; *at < e && n < max; *at += PAGE_SIZE) {
		uint64_t v;

		if (IS_ALIGNED(*at, PMD_SIZE) && !atomic_load(&extent_of(r, *at)->used)) {
			*at = MIN(*at + PMD_SIZE, e) - PAGE_SIZE;
			continue;
		}
		v = pte_lock(pte_of(r, *at));
		if (extent_huge(r, *at)) {
			/* Collapsed since the caller split the range (the
			 * promotion scanner): split it again, or its pages
			 * would go one by one while it is one unit. No page
			 * of it is in the batch (collapsing takes all their
			 * locks), so its locks come next in address order. */
			pte_unlock(pte_of(r, *at), v);
			thp_split_range(r, *at, *at + PAGE_SIZE, true);
			*at -= PAGE_SIZE;	/* and look at this page again */
			continue;
		}
		if (pte_state(v) != PTE_RESIDENT || (v & PTE_PINNED)) {
			pte_unlock(pte_of(r, *at), v);
			continue;
		}
		sp[n] = (struct scan){ .f = pte_val(v), .r = r, .addr = *at, .act = act };
		lru_take(r->mm, sp[n++].f);
	}
	return n;
}

/* Range reclaim's batch when the range is larger than SWAP_CLUSTER_MAX:
 * a batch costs a revoke and a punch, each a TLB flush, and writes its
 * dirty pages together (emm-tuning(7), "Eviction"). */
#define RANGE_BATCH	512

/*
 * EMM_ADV_PAGEOUT (pageout): write out and free the resident, unpinned
 * pages of [s, e) now; EMM_ADV_COLD: revoke them and move them to the
 * inactive tail, first in line for reclaim. Signals blocked, mm->lock held
 * (not the fault path: the batch space may be allocated). Pages freed.
 */
long reclaim_range(struct rsv *r, uintptr_t s, uintptr_t e, bool pageout)
{
	RECLAIM_ON_STACK(small, SWAP_CLUSTER_MAX);
	struct reclaim *big = e - s > SWAP_CLUSTER_MAX * PAGE_SIZE ? reclaim_alloc(RANGE_BATCH) : NULL;
	struct reclaim *rc = big ? big : &small;
	uint8_t act = pageout ? ACT_EVICT : ACT_SAMPLE;
	int srcu = srcu_read_lock(&r->mm->srcu);
	long freed = 0;

	for (uintptr_t at = s; at < e;) {
		unsigned n = collect(r, &at, e, rc->sp, rc->max, act);

		revoke_batch(rc, n, act);
		if (pageout)
			freed += shrink_page_list(r->mm, rc, n);
		for (unsigned i = 0; i < n; i++) {
			bool keep = rc->sp[i].act == ACT_KEEP;

			if (pageout && !keep)
				continue;	/* evicted and unlocked */
			lru_putback(r->mm, rc->sp[i].f, keep ? LRU_ACTIVE : LRU_INACTIVE, !keep);
			if (!pageout)
				count_event(r->mm, pgdeactivate);
			scan_unlock(&rc->sp[i], pageout ? 0 : PTE_REFERENCED | PTE_COLD);
		}
	}
	srcu_read_unlock(&r->mm->srcu, srcu);
	free(big);
	return freed;
}
