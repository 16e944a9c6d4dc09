/* SPDX-License-Identifier: MIT */
/* Reclaim: shrink_active_list, shrink_inactive_list, shrink_page_list, kswapd. */
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "swap.h"

/* One page taken off a list for reclaim, its PTE locked. */
struct scan {
	uint32_t f;
	struct rsv *r;
	uintptr_t addr;
};

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
	*sp = (struct scan){ f, r, addr };
	return true;
}

/* Async-signal-safe. Take a batch off a list and lock its pages; frames
 * whose page is busy go back where they came from. */
static unsigned isolate_locked(struct emm *mm, struct lruvec *lv, int list, struct scan *sp)
{
	uint32_t f[SWAP_CLUSTER_MAX], ppn[SWAP_CLUSTER_MAX];
	unsigned n = lru_isolate(mm, lv, list, f, ppn, SWAP_CLUSTER_MAX), got = 0;

	for (unsigned i = 0; i < n; i++) {
		if (scan_lock(mm, f[i], ppn[i], &sp[got]))
			got++;
		else
			lru_putback(mm, f[i], list, false);
	}
	/* Address order, so neighbours are revoked and freed as one range. */
	for (unsigned i = 1; i < got; i++)
		for (unsigned j = i; j && (sp[j - 1].r > sp[j].r ||
			(sp[j - 1].r == sp[j].r && sp[j - 1].addr > sp[j].addr)); j--) {
			struct scan t = sp[j];

			sp[j] = sp[j - 1];
			sp[j - 1] = t;
		}
	return got;
}

static uint64_t pval(const struct scan *sp)
{
	return pte_locked_val(pte_of(sp->r, sp->addr));
}

/* Async-signal-safe. Is sp[i + 1] the page right after sp[i]? */
static bool next_to(const struct scan *sp, unsigned i, unsigned n)
{
	return i + 1 < n && sp[i + 1].r == sp[i].r && sp[i + 1].addr == sp[i].addr + PAGE_SIZE;
}

/* Async-signal-safe. The app view loses access to the pages marked in
 * take[] (locked, sorted), a run of neighbours per mprotect. */
static void revoke_batch(struct scan *sp, const bool *take, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned j = i;

		if (!take[i])
			continue;
		while (next_to(sp, j, n) && take[j + 1])
			j++;
		app_protect(sp[i].r, sp[i].addr, sp[j].addr + PAGE_SIZE, EMM_PROT_NONE, true);
		i = j;
	}
}

/* Async-signal-safe. Unlock a scanned page, clearing bits of its word. */
static void scan_unlock(const struct scan *sp, uint64_t clear)
{
	pte_unlock(pte_of(sp->r, sp->addr), pval(sp) & ~clear);
}

/* Async-signal-safe. Deactivate a batch from the active tail: revoke
 * access (the data stays), so the next touch is a minor fault that proves
 * the page is in use; move to the inactive list. */
static void shrink_active_list(struct emm *mm, struct lruvec *lv)
{
	struct scan sp[SWAP_CLUSTER_MAX];
	bool take[SWAP_CLUSTER_MAX] = { 0 };
	unsigned n = isolate_locked(mm, lv, LRU_ACTIVE, sp);

	for (unsigned i = 0; i < n; i++)
		take[i] = !(pval(&sp[i]) & PTE_PINNED) && pte_prot(pval(&sp[i]));
	revoke_batch(sp, take, n);
	for (unsigned i = 0; i < n; i++) {
		bool pinned = pval(&sp[i]) & PTE_PINNED;

		lru_putback(mm, sp[i].f, pinned ? LRU_ACTIVE : LRU_INACTIVE, false);
		if (!pinned)
			count_event(mm, pgdeactivate);
		scan_unlock(&sp[i], PTE_REFERENCED);
	}
}

/* Async-signal-safe. Is the page all zeros? Then it needs no slot. */
static bool page_is_zero(const void *p)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < PAGE_SIZE / sizeof(*w); i++)
		if (w[i])
			return false;
	return true;
}

/* Async-signal-safe. The page is out of memory now: free its frame and
 * physmem; the PTE keeps the slot (0: never touched again, reads zero). */
static void evict(struct emm *mm, const struct scan *sp, uint32_t slot)
{
	uint64_t old = pval(sp), val;

	mm->lru->frames[sp->f].slot = 0;	/* the slot moves to the PTE */
	frame_free(mm, sp->f);
	atomic_fetch_sub_explicit(&sp->r->resident, 1, memory_order_relaxed);
	val = slot ? pte_set_val(pte_mk(0, PTE_SWAPPED, 0), slot) : 0;
	pte_set_used(sp->r, sp->addr, old, val);
	pte_set_locked(pte_of(sp->r, sp->addr), val);
	count_event(mm, pgsteal);
	atomic_fetch_add_explicit(&mm->lru->node[0].pgsteal, 1, memory_order_relaxed);
}

/* Async-signal-safe. Punch the physmem of the evicted pages, by runs. */
static void punch_evicted(struct scan *sp, const bool *gone, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned j = i;

		if (!gone[i])
			continue;
		while (next_to(sp, j, n) && gone[j + 1])
			j++;
		physmem_punch(sp[i].r, sp[i].addr, sp[j].addr + PAGE_SIZE - sp[i].addr);
		i = j;
	}
}

/* Async-signal-safe. Write the pages marked in write[] to fresh slots, in
 * one batch; the ones written are marked in gone[]. */
static unsigned writeout(struct emm *mm, struct scan *sp, const bool *write, bool *gone,
			 uint32_t *slot, unsigned n)
{
	struct swap_io io[SWAP_CLUSTER_MAX];
	unsigned idx[SWAP_CLUSTER_MAX], k = 0, got, ok = 0;
	uint32_t slots[SWAP_CLUSTER_MAX];

	for (unsigned i = 0; i < n; i++)
		if (write[i])
			idx[k++] = i;
	got = mm->swap ? swap_alloc_batch(mm->swap, slots, k) : 0;	/* full: the rest stay */
	for (unsigned j = 0; j < got; j++)
		io[j] = (struct swap_io){ slots[j], rsv_alias(sp[idx[j]].r, sp[idx[j]].addr), 0 };
	if (got)
		swap_writepages(mm->swap, io, got);
	for (unsigned j = 0; j < got; j++) {
		if (io[j].err) {
			swap_free(mm->swap, io[j].slot);
			count_event(mm, io_errors);
			continue;
		}
		gone[idx[j]] = true;
		slot[idx[j]] = io[j].slot;
		count_event(mm, swapouts);
		atomic_fetch_add_explicit(&mm->lru->node[0].swapouts, 1, memory_order_relaxed);
		ok++;
	}
	return ok;
}

/*
 * Async-signal-safe. shrink_page_list: evict the locked, unmapped pages
 * marked in take[]. Clean pages with a slot and zero pages go at once;
 * dirty ones are written in one batch and freed only once the write is
 * confirmed. A page that cannot go (swap full, write failed) stays resident
 * and dirty, back on the active list. Returns pages freed.
 */
static long shrink_page_list(struct emm *mm, struct scan *sp, const bool *take, unsigned n)
{
	bool write[SWAP_CLUSTER_MAX] = { 0 }, gone[SWAP_CLUSTER_MAX] = { 0 };
	uint32_t slot[SWAP_CLUSTER_MAX] = { 0 };
	long freed = 0;

	for (unsigned i = 0; i < n; i++) {
		uint64_t v = pval(&sp[i]);
		struct frame *f = &mm->lru->frames[sp[i].f];

		if (!take[i])
			continue;
		if (f->slot && !(v & PTE_DIRTY)) {
			gone[i] = true;
			slot[i] = f->slot;
		} else if (page_is_zero(rsv_alias(sp[i].r, sp[i].addr))) {
			if (f->slot)
				swap_free(mm->swap, f->slot);
			gone[i] = true;
		} else {
			write[i] = true;
		}
	}
	writeout(mm, sp, write, gone, slot, n);
	punch_evicted(sp, gone, n);
	for (unsigned i = 0; i < n; i++) {
		if (gone[i]) {
			evict(mm, &sp[i], slot[i]);
			freed++;
		} else if (take[i]) {
			lru_putback(mm, sp[i].f, LRU_ACTIVE, false);
			scan_unlock(&sp[i], 0);
			continue;
		}
		if (gone[i])
			pte_unlock(pte_of(sp[i].r, sp[i].addr), pval(&sp[i]));
	}
	return freed;
}

/*
 * Async-signal-safe. A batch from the inactive tail. Referenced since it
 * was last revoked: back to the active list. Mapped but never sampled:
 * revoke it and give it another lap. Unmapped and unreferenced: evict.
 */
static long shrink_inactive_list(struct emm *mm, struct lruvec *lv)
{
	struct scan sp[SWAP_CLUSTER_MAX];
	bool sample[SWAP_CLUSTER_MAX] = { 0 }, evict_it[SWAP_CLUSTER_MAX] = { 0 };
	unsigned n = isolate_locked(mm, lv, LRU_INACTIVE, sp);
	long freed;

	for (unsigned i = 0; i < n; i++) {
		uint64_t v = pval(&sp[i]);
		bool pinned = v & PTE_PINNED, mapped = pte_prot(v), ref = v & PTE_REFERENCED;

		sample[i] = !pinned && mapped && !ref;
		evict_it[i] = !pinned && !mapped && !ref;
	}
	revoke_batch(sp, sample, n);
	freed = shrink_page_list(mm, sp, evict_it, n);
	for (unsigned i = 0; i < n; i++) {
		uint64_t v;

		if (evict_it[i])
			continue;
		v = pval(&sp[i]);
		if (sample[i]) {
			lru_putback(mm, sp[i].f, LRU_INACTIVE, false);
		} else {
			lru_putback(mm, sp[i].f, LRU_ACTIVE, false);
			if (!(v & PTE_PINNED))
				count_event(mm, pgactivate);
		}
		scan_unlock(&sp[i], PTE_REFERENCED);
	}
	return freed;
}

/*
 * Async-signal-safe. Reclaim up to nr pages from the node: keep the
 * inactive list at least as long as the active one, and shrink it. Gives
 * up after two laps of both lists.
 */
long shrink_node(struct emm *mm, long nr, bool direct)
{
	struct lruvec *lv = &mm->lru->node[0];
	int srcu = srcu_read_lock();
	long freed = 0, laps;

	lru_add_drain_all(mm);
	laps = 2 * (long)(lv->nr[LRU_ACTIVE] + lv->nr[LRU_INACTIVE]) / SWAP_CLUSTER_MAX + 2;
	for (long i = 0; i < laps && freed < nr; i++) {
		if (lv->nr[LRU_INACTIVE] < lv->nr[LRU_ACTIVE] || !lv->nr[LRU_INACTIVE])
			shrink_active_list(mm, lv);
		if (!lv->nr[LRU_INACTIVE] && !lv->nr[LRU_ACTIVE])
			break;
		freed += shrink_inactive_list(mm, lv);
	}
	srcu_read_unlock(srcu);
	(void)direct;
	return freed;
}

/* Async-signal-safe. No slot left for a dirty page. */
static bool swap_exhausted(struct emm *mm)
{
	return !mm->swap || swap_slots_used(mm->swap) >= swap_slots_total(mm->swap);
}

/* Async-signal-safe. Watermarks, in pages of resident memory. */
static long limit_pages(const struct emm *mm)
{
	return (long)(mm->cfg.mem_limit >> PAGE_SHIFT);
}

static long resident(const struct emm *mm)
{
	return (long)atomic_load_explicit(&mm->c.resident_pages, memory_order_relaxed);
}

static long wmark(const struct emm *mm, uint64_t headroom)
{
	return limit_pages(mm) - (long)(headroom >> PAGE_SHIFT);
}

/* Async-signal-safe. */
static void futex_wake_one(_Atomic uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Async-signal-safe. Wake the reclaim thread if it sleeps. */
static void wakeup_kswapd(struct emm *mm)
{
	if (!mm->kswapd_started || atomic_load_explicit(&mm->kswapd_running, memory_order_relaxed))
		return;
	atomic_fetch_add_explicit(&mm->kswapd_wake, 1, memory_order_relaxed);
	futex_wake_one(&mm->kswapd_wake);
}

/*
 * Async-signal-safe. pages more are about to become resident: above the
 * low watermark wake the reclaim thread; past min, reclaim a batch here
 * (direct reclaim). When nothing can be reclaimed the budget is exceeded,
 * never the data dropped.
 */
void mm_charge(struct emm *mm, long pages)
{
	if (resident(mm) + pages <= wmark(mm, mm->cfg.wmark_low))
		return;
	wakeup_kswapd(mm);
	if (resident(mm) + pages <= wmark(mm, mm->cfg.wmark_min))
		return;
	/* With swap full only clean and zero pages can go: leave that to the
	 * reclaim thread rather than scan the lists at every fault. */
	if (swap_exhausted(mm)) {
		count_event(mm, oom_events);
		return;
	}
	for (int i = 0; i < 4 && resident(mm) + pages > wmark(mm, mm->cfg.wmark_min); i++)
		if (!shrink_node(mm, MAX(pages, SWAP_CLUSTER_MAX), true))
			break;
}

static void kswapd_sleep(struct emm *mm, uint32_t seen, long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	syscall(SYS_futex, &mm->kswapd_wake, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
}

/* The budget is exceeded and nothing more can go: tell the program. */
static void out_of_memory(struct emm *mm)
{
	long over = resident(mm) - limit_pages(mm);

	if (over <= 0)
		return;
	count_event(mm, oom_events);
	if (mm->cfg.oom)
		mm->cfg.oom(mm, (uint64_t)over << PAGE_SHIFT, mm->cfg.oom_arg);
}

/* The reclaim thread: sleeps until resident memory passes the low
 * watermark, then reclaims down to the high one. */
static void *kswapd(void *arg)
{
	struct emm *mm = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	while (!atomic_load(&mm->kswapd_stop)) {
		uint32_t seen = atomic_load(&mm->kswapd_wake);

		if (resident(mm) <= wmark(mm, mm->cfg.wmark_low)) {
			atomic_store(&mm->kswapd_running, false);
			kswapd_sleep(mm, seen, 1000);
			atomic_store(&mm->kswapd_running, true);
			continue;
		}
		while (!atomic_load(&mm->kswapd_stop) &&
		       resident(mm) > wmark(mm, mm->cfg.wmark_high)) {
			if (!shrink_node(mm, SWAP_CLUSTER_MAX, false)) {
				out_of_memory(mm);
				kswapd_sleep(mm, atomic_load(&mm->kswapd_wake), 10);
				break;
			}
		}
	}
	return NULL;
}

int kswapd_start(struct emm *mm)
{
	int err;

	atomic_store(&mm->kswapd_running, true);
	err = pthread_create(&mm->kswapd, NULL, kswapd, mm);
	if (err)
		return -err;
	mm->kswapd_started = true;
	return 0;
}

void kswapd_stop(struct emm *mm)
{
	if (!mm->kswapd_started)
		return;
	atomic_store(&mm->kswapd_stop, true);
	atomic_fetch_add(&mm->kswapd_wake, 1);
	futex_wake_one(&mm->kswapd_wake);
	pthread_join(mm->kswapd, NULL);
	mm->kswapd_started = false;
}

/* Lock the resident, unpinned pages of [*at, e), up to a batch, taking
 * them off the LRU. Signals blocked; locks taken in address order. */
static unsigned collect(struct rsv *r, uintptr_t *at, uintptr_t e, struct scan *sp)
{
	unsigned n = 0;

	for (; *at < e && n < SWAP_CLUSTER_MAX; *at += PAGE_SIZE) {
		uint64_t v;

		if (IS_ALIGNED(*at, PMD_SIZE) && !atomic_load(&extent_of(r, *at)->used)) {
			*at = MIN(*at + PMD_SIZE, e) - PAGE_SIZE;
			continue;
		}
		v = pte_lock(pte_of(r, *at));
		if (pte_state(v) != PTE_RESIDENT || (v & PTE_PINNED)) {
			pte_unlock(pte_of(r, *at), v);
			continue;
		}
		sp[n] = (struct scan){ pte_val(v), r, *at };
		lru_take(r->mm, sp[n++].f);
	}
	return n;
}

/* EMM_ADV_PAGEOUT: write out and free the range's pages now. Signals
 * blocked, mm->lock held. Returns pages freed. */
long pageout_range(struct rsv *r, uintptr_t s, uintptr_t e)
{
	struct scan sp[SWAP_CLUSTER_MAX];
	bool all[SWAP_CLUSTER_MAX];
	int srcu = srcu_read_lock();
	long freed = 0;

	for (unsigned i = 0; i < SWAP_CLUSTER_MAX; i++)
		all[i] = true;
	for (uintptr_t at = s; at < e;) {
		unsigned n = collect(r, &at, e, sp);

		revoke_batch(sp, all, n);
		freed += shrink_page_list(r->mm, sp, all, n);
	}
	srcu_read_unlock(srcu);
	return freed;
}

/* EMM_ADV_COLD: revoke the range's pages and move them to the inactive
 * tail, first in line for reclaim. Signals blocked, mm->lock held. */
void deactivate_range(struct rsv *r, uintptr_t s, uintptr_t e)
{
	struct scan sp[SWAP_CLUSTER_MAX];
	bool all[SWAP_CLUSTER_MAX];

	for (unsigned i = 0; i < SWAP_CLUSTER_MAX; i++)
		all[i] = true;
	for (uintptr_t at = s; at < e;) {
		unsigned n = collect(r, &at, e, sp);

		revoke_batch(sp, all, n);
		for (unsigned i = 0; i < n; i++) {
			lru_putback(r->mm, sp[i].f, LRU_INACTIVE, true);
			count_event(r->mm, pgdeactivate);
			scan_unlock(&sp[i], PTE_REFERENCED);
		}
	}
}
