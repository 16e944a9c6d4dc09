/* SPDX-License-Identifier: MIT */
/*
 * Memory operations under the PTE locks: pages get a frame and their data
 * (zero, swap, file, pager), are mapped, made dirty, dropped; and the range
 * operations of the API built on them (prefault, unpin, willneed, zap).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "debug.h"
#include "backend.h"
#include "filemap.h"
#include "huge_memory.h"
#include "kswapd.h"
#include "lru.h"
#include "memory.h"
#include "emm_numa.h"
#include "physmem.h"
#include "pte.h"
#include "swap.h"
#include "vma.h"
#include "workingset.h"

#define IO_BATCH	64	/* pages per swap read request built on the stack */

/* Async-signal-safe. Is the resident page clean, with a copy of its data
 * elsewhere (its swap slot, its file, its pager)? Then a write must fault,
 * so it is mapped without write access. */
bool page_clean_copy(struct rsv *r, uint64_t val)
{
	if (pte_state(val) != PTE_RESIDENT || (val & PTE_DIRTY))
		return false;
	return (val & PTE_FILE) || frame_slot(r->mm->lru, pte_val(val));
}

/* Async-signal-safe. The page is about to be written: its swap copy is stale. */
static uint64_t page_dirty(struct rsv *r, uint64_t val)
{
	uint32_t slot = frame_take_slot(r->mm->lru, pte_val(val));

	if (slot)
		swap_free(r->mm->swap, slot);
	return val | PTE_DIRTY;
}

/*
 * Async-signal-safe. Unlock [s, e) after mapping it: a page mapped
 * writable is dirty; a frame new to the LRU is queued on this CPU's add
 * pagevec; set holds extra bits (referenced, pinned).
 */
void unlock_range(struct rsv *r, uintptr_t s, uintptr_t e, int access, uint64_t set)
{
	DEBUG_RANGE_LOCKED(r, s, e);
	for (uintptr_t a = s; a < e; a += PAGE_SIZE) {
		uint64_t val = locked_val(r, a);

		if (pte_state(val) == PTE_RESIDENT) {
			if ((pte_prot(val) & EMM_PROT_WRITE) &&
			    ((access & EMM_PROT_WRITE) || page_clean_copy(r, val)))
				val = page_dirty(r, val);
			if (!(val & PTE_LRU)) {
				lru_queue(r->mm, pte_val(val),
					  (val & PTE_ACTIVE) ? PV_ADD_ACTIVE : PV_ADD);
				val = (val | PTE_LRU) & ~PTE_ACTIVE;
			}
			val = (val & ~PTE_AROUND) | set;	/* touched with a neighbour */
		}
		pte_unlock(pte_of(r, a), val);
	}
}

/* Async-signal-safe. Can a minor fault map this locked neighbour (value
 * v) with its own page: resident, not mapped, pinned or read around, and
 * no clean copy whose mapping must wait for a write to be seen? */
static bool minor_ok(struct rsv *r, uint64_t v)
{
	return pte_state(v) == PTE_RESIDENT && pte_prot(v) == EMM_PROT_NONE &&
	       !(v & (PTE_RA | PTE_PINNED)) && !page_clean_copy(r, v);
}

/*
 * Async-signal-safe. The fault-around of a minor fault at the locked addr:
 * the run of neighbours inside its aligned group of fault_around pages
 * (and vma) that minor_ok takes and that can be locked now; [*sp, *ep),
 * locked on return. Reclaim revokes pages in runs, and a program that
 * touches one page of a run mostly touches its neighbours too: mapped
 * together, they cost one trap, a round trip to a service thread on
 * uffd, instead of one each (SQLite at a 64 MiB budget: 14,000 minor
 * faults against 900).
 */
void minor_window(struct rsv *r, const struct emm_vma *vma, uintptr_t addr, uintptr_t *sp,
		  uintptr_t *ep)
{
	uintptr_t n = (uintptr_t)r->mm->cfg.fault_around << PAGE_SHIFT;
	uintptr_t lo = MAX(ALIGN_DOWN(addr, n), vma->start), hi = MIN(ALIGN_DOWN(addr, n) + n, vma->end);
	uintptr_t s = addr, e = addr + PAGE_SIZE;
	uint64_t old;

	while (e < hi && pte_trylock(pte_of(r, e), &old)) {
		if (!minor_ok(r, old)) {
			pte_unlock(pte_of(r, e), old);
			break;
		}
		e += PAGE_SIZE;
	}
	while (s > lo && pte_trylock(pte_of(r, s - PAGE_SIZE), &old)) {
		if (!minor_ok(r, old)) {
			pte_unlock(pte_of(r, s - PAGE_SIZE), old);
			break;
		}
		s -= PAGE_SIZE;
	}
	*sp = s;
	*ep = e;
}

/* Async-signal-safe. page_node on a machine of several nodes. */
static int policy_node(struct rsv *r, const struct emm_vma *vma, uintptr_t a)
{
	int n = numa_policy_node(vma->numa_policy, vma->numa_nodes, rsv_ppn(r, a) + r->mm->ino_bias);

	return n < 0 || n >= r->mm->lru->nnodes ? 0 : n;
}

/* Async-signal-safe. The node a new page of vma at a lands on: the one its
 * memory policy gives (what the kernel does with a memfd page). Inline for
 * the machines of one node, where the answer needs no policy. */
static inline int page_node(struct rsv *r, const struct emm_vma *vma, uintptr_t a)
{
	return r->mm->lru->nnodes == 1 ? 0 : policy_node(r, vma, a);
}

/* Async-signal-safe. The share of the budget, in pages, of the node a new
 * page of vma at a lands on. */
long page_node_share(struct rsv *r, const struct emm_vma *vma, uintptr_t a)
{
	return atomic_load_explicit(&r->mm->lru->node[page_node(r, vma, a)].limit,
				    memory_order_relaxed);
}

/* Async-signal-safe. Charge pages more on the node a new page of vma at a
 * lands on (mm_charge, which may reclaim): is there room for them now,
 * within the node's share and the budget? What only may come in (a window
 * read ahead) does not come in without it. make_resident charges the
 * pages again: below the low watermark, as after this, that costs a few
 * loads. */
bool page_charge_room(struct rsv *r, const struct emm_vma *vma, uintptr_t a, long pages)
{
	int n = page_node(r, vma, a);

	mm_charge(r->mm, n, pages);
	return mm_has_room(r->mm, n, pages);
}

/* Async-signal-safe. May pages more come in at a (vma's page) with no
 * direct reclaim (mm_room_unstalled)? */
bool page_room_unstalled(struct rsv *r, const struct emm_vma *vma, uintptr_t a, long pages)
{
	return mm_room_unstalled(r->mm, page_node(r, vma, a), pages);
}

/* Async-signal-safe. May pages more come in at a (vma's page) with room
 * to spare (mm_has_spare)? */
bool page_has_spare(struct rsv *r, const struct emm_vma *vma, uintptr_t a, long pages)
{
	return mm_has_spare(r->mm, page_node(r, vma, a), pages);
}

/* Async-signal-safe. A new frame for the locked, never-touched page at a
 * (or a swapped one about to be read); file: its data lives in a file or
 * pager. */
static int alloc_page(struct rsv *r, const struct emm_vma *vma, uintptr_t a, bool file)
{
	uint32_t f = frame_alloc(r->mm, rsv_ppn(r, a), page_node(r, vma, a));
	uint64_t old = locked_val(r, a), val;

	if (!f)
		return -ENOMEM;
	val = pte_set_val(pte_mk(old & ~(PTE_DIRTY | PTE_LRU | PTE_REFERENCED | PTE_ACTIVE |
					 PTE_FILE | PTE_RA | PTE_SHADOW_MASK), PTE_RESIDENT,
				 pte_prot(old)), f);
	if (file)
		val |= PTE_FILE;
	pte_set_used(r, a, old, val);
	pte_set_locked(pte_of(r, a), val);
	atomic_fetch_add_explicit(&r->resident, 1, memory_order_relaxed);
	return 0;
}

/* Async-signal-safe. Undo alloc_page or a failed swap-in: the page goes
 * back to what it was (never touched, or swapped in slot). */
static void unalloc_page(struct rsv *r, uintptr_t a, uint32_t slot)
{
	uint64_t val = locked_val(r, a);

	frame_free(r->mm, pte_val(val));
	atomic_fetch_sub_explicit(&r->resident, 1, memory_order_relaxed);
	physmem_punch(r, a, PAGE_SIZE);
	pte_set_locked(pte_of(r, a), slot ? pte_set_val(pte_mk(val & ~PTE_FA, PTE_SWAPPED, 0), slot)
				      : pte_mk(pte_set_val(val, 0), PTE_NONE, 0));
	pte_set_used(r, a, val, locked_val(r, a));
}

/* What swapin_place needs: the batch's pages and how to map them. */
struct swapin_map {
	struct rsv *r;
	const uintptr_t *pages;
	const struct swap_io *io;
	int prot;
	uintptr_t nomap;	/* a page to leave unmapped, or 0 */
};

/* Async-signal-safe; the pages' PTE locks held. A swap_place hook: the
 * backend fills and maps the checked pages in one step where it can; the
 * page to leave unmapped is copied into physmem through the alias view.
 * Pages of neighbouring homes are neighbours in the app view. */
static unsigned swapin_place(void *arg, const struct swap_io *io, unsigned n, const void *buf)
{
	const struct swapin_map *m = arg;
	uintptr_t s = m->pages[io - m->io], e = s + (uintptr_t)n * PAGE_SIZE;
	unsigned done = 0;

	if (s == m->nomap) {
		memcpy(rsv_alias(m->r, s), buf, PAGE_SIZE);
		done = 1;
	} else if (m->nomap > s && m->nomap < e) {
		e = m->nomap;	/* placed up to it; it and the rest are written */
	}
	return done + (unsigned)(backend_place(m->r, s + done * PAGE_SIZE, e,
					       (const char *)buf + done * PAGE_SIZE, m->prot) >>
				 PAGE_SHIFT);
}

/*
 * Async-signal-safe. Read n swapped, locked pages (their addresses in
 * pages[]) into physmem with one batch of I/O; prot (not EMM_PROT_NONE):
 * the backend may map them so already (backend_place), but the page at
 * nomap. warm: their physmem is mapped in the alias view already (a fresh
 * huge page), so the read goes straight there, not through a bounce
 * buffer and a copy into physmem. A page whose read
 * fails (or fails its checksum) stays swapped; the first error is returned.
 */
static int swapin_batch(struct rsv *r, const struct emm_vma *vma, const uintptr_t *pages,
			unsigned n, int prot, uintptr_t nomap, bool warm)
{
	struct swap_io io[IO_BATCH];
	uint64_t shadow[IO_BATCH];
	struct swapin_map map = { r, pages, io, prot, nomap };
	struct swap_place pl = { swapin_place, &map };
	int err = 0;

	fork_gate_enter();	/* from the slot to physmem, whole (lock.c) */
	for (unsigned i = 0; i < n; i++) {
		shadow[i] = locked_val(r, pages[i]);
		io[i] = (struct swap_io){ .slot = pte_val(locked_val(r, pages[i])),
					  .page = rsv_alias(r, pages[i]),
					  .flags = warm ? 0 : SWAP_IO_HOME,
					  .home = (uint64_t)rsv_ppn(r, pages[i]) << PAGE_SHIFT };
		if (alloc_page(r, vma, pages[i], false) < 0) {
			while (i--)
				unalloc_page(r, pages[i], io[i].slot);
			fork_gate_leave();
			return -ENOMEM;
		}
	}
	swap_readpages_place(r->mm->swap, io, n, prot == EMM_PROT_NONE ? NULL : &pl);
	for (unsigned i = 0; i < n; i++) {
		uint32_t f;

		if (io[i].err) {
			unalloc_page(r, pages[i], io[i].slot);
			count_event(r->mm, io_errors);
			err = err ? err : io[i].err;
			continue;
		}
		f = pte_val(locked_val(r, pages[i]));
		frame_set_slot(r->mm->lru, f, io[i].slot);
		if (workingset_refault(r->mm, shadow[i]))	/* unlock_range: active list */
			pte_set_locked(pte_of(r, pages[i]), locked_val(r, pages[i]) | PTE_ACTIVE);
		else if (r->mm->cfg.flags & CFG_COLD_REFAULT)
			pte_set_locked(pte_of(r, pages[i]), locked_val(r, pages[i]) | PTE_COLD);
		count_event(r->mm, swapins);
		atomic_fetch_add_explicit(&frame_lruvec(r->mm->lru, f)->swapins, 1,
					  memory_order_relaxed);
	}
	fork_gate_leave();
	return err;
}

/* Async-signal-safe. Read a run of fresh FILE/PAGER pages, maybe mapped
 * prot already (filemap_read) unless nomap is among them; on failure they
 * go back to never-touched. */
static int fill_run(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e, int prot,
		    uintptr_t nomap)
{
	int err = filemap_read(r, vma, s, e, nomap >= s && nomap < e ? EMM_PROT_NONE : prot);

	if (err) {
		for (uintptr_t a = s; a < e; a += PAGE_SIZE)
			unalloc_page(r, a, 0);
		count_event(r->mm, io_errors);
		return -EIO;	/* whatever the source said: not a VMA shortage */
	}
	count_event(r->mm, faults_major);
	return 0;
}

/*
 * Async-signal-safe. Every page of the locked range [s, e) of vma gets
 * physmem: never-touched pages a zeroed frame, or their data from the file
 * or pager; swapped pages their data back, and with a prot other than
 * EMM_PROT_NONE, maybe mapped so already (swapin_batch), but the page at
 * nomap (0: none): the caller grants the range next. The budget is charged
 * first (direct reclaim when it is exhausted). warm: swapin_batch's.
 */
static int resident_in(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e,
		       int prot, uintptr_t nomap, bool warm)
{
	uintptr_t swapped[IO_BATCH], run = 0;
	bool backed = vma_backed(vma);
	unsigned nsw = 0;
	long need = 0;
	int err = 0;

	DEBUG_RANGE_LOCKED(r, s, e);

	for (uintptr_t a = s; a < e; a += PAGE_SIZE)
		need += pte_state(locked_val(r, a)) != PTE_RESIDENT;
	if (need)
		mm_charge(r->mm, page_node(r, vma, s), need);
	if (backed)
		fork_gate_enter();	/* from the file or pager to physmem, whole */
	for (uintptr_t a = s; a <= e && !err; a += PAGE_SIZE) {
		unsigned st = a < e ? pte_state(locked_val(r, a)) : PTE_RESIDENT;

		if (run && st != PTE_NONE) {
			err = fill_run(r, vma, run, a, prot, nomap);
			run = 0;
		}
		if (err || a == e)
			break;
		if (st == PTE_NONE) {
			err = alloc_page(r, vma, a, backed);
			if (!err && backed && !run)
				run = a;
		} else if (st == PTE_SWAPPED) {
			swapped[nsw++] = a;
		}
		if (nsw == IO_BATCH) {
			err = swapin_batch(r, vma, swapped, nsw, prot, nomap, warm);
			nsw = 0;
		}
	}
	if (nsw && !err)
		err = swapin_batch(r, vma, swapped, nsw, prot, nomap, warm);
	if (backed)
		fork_gate_leave();
	if (need)
		mm_charged(r->mm, page_node(r, vma, s));
	return err;
}

/* Async-signal-safe. resident_in, swapped pages read through the bounce
 * buffers. */
int make_resident_but(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e,
		      int prot, uintptr_t nomap)
{
	return resident_in(r, vma, s, e, prot, nomap, false);
}

/* Async-signal-safe. make_resident_but with no page left out. */
int make_resident(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e, int prot)
{
	return resident_in(r, vma, s, e, prot, 0, false);
}

/*
 * Async-signal-safe. make_resident, unmapped (EMM_PROT_NONE), of a range
 * whose physmem is one fresh huge page (huge_fresh_physmem), mapped in the
 * alias view by the collapse that made it: swapped pages are read into it
 * where it is. Through the bounce buffers each 256 KiB went to a bounce
 * buffer and was then copied into physmem; reading 4 GiB of
 * EMM_MAP_HUGEPAGE memory back in order under a 1 GiB budget (signal,
 * 2-vCPU VM), four alternating pairs: 1,401 to 1,824 MiB/s against 989
 * to 1,249, with 3.0 to 3.9 s of CPU against 4.0 to 4.8.
 */
int make_resident_warm(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e)
{
	return resident_in(r, vma, s, e, EMM_PROT_NONE, 0, true);
}

/*
 * Async-signal-safe. make_resident failed part way: pages it gave a frame
 * that never got mapped go back to never-touched (their contents are zero:
 * a swapped page that came back keeps its data and stays resident).
 */
void unmake_fresh(struct rsv *r, uintptr_t s, uintptr_t e)
{
	DEBUG_RANGE_LOCKED(r, s, e);
	for (uintptr_t a = s; a < e; a += PAGE_SIZE) {
		uint64_t val = locked_val(r, a);

		if (pte_state(val) == PTE_RESIDENT && !(val & PTE_LRU) &&
		    !page_clean_copy(r, val))
			unalloc_page(r, a, 0);
	}
}

/* Async-signal-safe. The protection a locked page gets for an access:
 * without write while it is clean with a copy elsewhere and the access
 * does not write. */
int page_want(struct rsv *r, uint64_t val, int prot, int access)
{
	if (!(access & EMM_PROT_WRITE) && page_clean_copy(r, val))
		return prot & ~EMM_PROT_WRITE;
	return prot;
}


/* Async-signal-safe. Map the locked, resident [s, e) for access, a run of
 * equal protection per call. */
static int map_runs(struct rsv *r, uintptr_t s, uintptr_t e, int prot, int access)
{
	uintptr_t run = s;
	int run_prot = -1;

	for (uintptr_t a = s; a <= e; a += PAGE_SIZE) {
		int want = a < e ? page_want(r, locked_val(r, a), prot, access) : -2;

		if (want == run_prot)
			continue;
		if (run_prot >= 0) {
			int err = backend_set_prot(r, run, a, run_prot,
						   BACKEND_FORCE | BACKEND_HOLES);

			if (err)
				return err;
		}
		run = a;
		run_prot = want;
	}
	return 0;
}

/*
 * Make [s, e) of one VMA resident and mapped for access, a PMD-sized
 * chunk at a time. Signals blocked, mm->lock held.
 */
int prefault_range(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e,
		   int access, bool pin)
{
	int prot = target_prot(vma);
	int err = 0;

	for (uintptr_t c = s; c < e && !err;) {
		uintptr_t ce = MIN(ALIGN_DOWN(c, PMD_SIZE) + PMD_SIZE, e);

		lock_range(r, c, ce);
		/* What map_runs gives a page read back: page_want of a clean copy. */
		err = make_resident(r, vma, c, ce,
				    (access & EMM_PROT_WRITE) ? prot : prot & ~EMM_PROT_WRITE);
		if (!err)
			err = map_runs(r, c, ce, prot, access);
		if (err) {
			unmake_fresh(r, c, ce);
			unlock_range(r, c, ce, 0, 0);
			break;
		}
		backend_populate(r, c, ce, (access & EMM_PROT_WRITE) ? prot : prot & ~EMM_PROT_WRITE);
		unlock_range(r, c, ce, access, pin ? PTE_PINNED : 0);
		c = ce;
	}
	return err == -EBADMSG ? -EIO : err;
}

/* Async-signal-safe. Forget a locked page: frame, slot, state. */
static void drop_page(struct rsv *r, uintptr_t a)
{
	uint64_t old = locked_val(r, a);
	struct emm *mm = r->mm;

	if (pte_state(old) == PTE_RESIDENT) {
		uint32_t slot = frame_take_slot(mm->lru, pte_val(old));

		if (slot)
			swap_free(mm->swap, slot);
		frame_free(mm, pte_val(old));
		atomic_fetch_sub_explicit(&r->resident, 1, memory_order_relaxed);
	} else if (pte_state(old) == PTE_SWAPPED) {
		swap_free(mm->swap, pte_val(old));
	}
	pte_set_used(r, a, old, 0);
	pte_set_locked(pte_of(r, a), 0);
}

/*
 * Drop every page of [s, e): the app view loses access, physmem gives the
 * memory back, swap slots are freed, the PTEs return to never-touched. No
 * fault can be in the range (its VMAs are gone and synchronize_srcu has
 * run, or the caller holds it off). Signals blocked.
 */
void zap_range(struct rsv *r, uintptr_t s, uintptr_t e, bool revoke)
{
	for (uintptr_t a = s; a < e; a = ALIGN_DOWN(a, PMD_SIZE) + PMD_SIZE) {
		uintptr_t ae = MIN(ALIGN_DOWN(a, PMD_SIZE) + PMD_SIZE, e), ls, le;

		if (!extent_used(r, a))
			continue;
		lock_range_split(r, a, ae, &ls, &le);
		if (revoke)
			backend_revoke(r, a, ae, BACKEND_FORCE);
		physmem_punch(r, a, ae - a);
		for (uintptr_t p = a; p < ae; p += PAGE_SIZE)
			drop_page(r, p);
		unlock_untouched(r, ls, le);
	}
}

/* Pinned pages of [s, e) may be evicted again. Signals blocked. */
void unpin_range(struct rsv *r, uintptr_t s, uintptr_t e)
{
	for (uintptr_t a = s; a < e; a += PAGE_SIZE) {
		if (IS_ALIGNED(a, PMD_SIZE) && !extent_used(r, a)) {
			a = MIN(a + PMD_SIZE, e) - PAGE_SIZE;
			continue;
		}
		pte_unlock(pte_of(r, a), pte_lock(pte_of(r, a)) & ~PTE_PINNED);
	}
}

/* Is the locked page one WILLNEED reads in? */
static bool willneed_page(struct rsv *r, const struct emm_vma *vma, uintptr_t a)
{
	unsigned st = pte_state(locked_val(r, a));

	return st == PTE_SWAPPED || (st == PTE_NONE && vma_backed(vma));
}

/* Read one locked run in and unlock it: the pages stay unmapped until
 * touched (then a minor fault). */
static int willneed_run(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e)
{
	int err = make_resident(r, vma, s, e, EMM_PROT_NONE);

	if (err)
		unmake_fresh(r, s, e);
	unlock_range(r, s, e, 0, 0);
	return err;
}

/* EMM_ADV_WILLNEED on one VMA piece: read its swapped pages back now,
 * and the never-touched pages of FILE and PAGER VMAs, by runs of at most
 * 32 pages. Signals blocked, mm->lock held. */
static int willneed_vma(struct rsv *r, const struct emm_vma *vma, void *arg)
{
	uintptr_t run = 0;
	int err = 0;

	(void)arg;
	for (uintptr_t a = vma->start; a < vma->end && !err; a += PAGE_SIZE) {
		if (!vma_backed(vma) && !run && IS_ALIGNED(a, PMD_SIZE) && !extent_used(r, a)) {
			a = MIN(a + PMD_SIZE, vma->end) - PAGE_SIZE;
			continue;
		}
		pte_lock(pte_of(r, a));
		if (!willneed_page(r, vma, a)) {
			pte_unlock(pte_of(r, a), locked_val(r, a));
			if (run)
				err = willneed_run(r, vma, run, a);
			run = 0;
			continue;
		}
		if (!run)
			run = a;
		if (a + PAGE_SIZE - run == IO_BATCH * PAGE_SIZE) {
			err = willneed_run(r, vma, run, a + PAGE_SIZE);
			run = 0;
		}
	}
	if (run && !err)
		err = willneed_run(r, vma, run, vma->end);
	return err == -EBADMSG ? -EIO : err;
}

int willneed_range(struct rsv *r, uintptr_t s, uintptr_t e)
{
	return walk_vmas(r, s, e, willneed_vma, NULL);
}
