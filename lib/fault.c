/* SPDX-License-Identifier: MIT */
/* The fault handler: handle_mm_fault and the do_*_page handlers, fault-around;
 * mapping and coalescing are fault_map.c's. */
#include <errno.h>
#include <time.h>

#include "debug.h"
#include "backend.h"
#include "fault.h"
#include "fault_map.h"
#include "huge_memory.h"
#include "lru.h"
#include "memory.h"
#include "physmem.h"
#include "pte.h"
#include "swap_state.h"
#include "util.h"
#include "vma.h"

#define HUGE_ROOM_TRIES		160	/* a stream's huge first touch short of room: */
#define HUGE_ROOM_WAIT_NS	50000	/* waits for it between tries */

/* Async-signal-safe. Does prot allow the access (EMM_PROT_* bits)? */
static bool prot_allows(int prot, int access)
{
	if (access & EMM_PROT_WRITE)
		return prot & EMM_PROT_WRITE;
	if (access & EMM_PROT_EXEC)
		return prot & EMM_PROT_EXEC;
	return prot != EMM_PROT_NONE;
}

/* Async-signal-safe. Is this access an error against the VMA itself? */
bool vma_access_error(const struct emm_vma *vma, int access)
{
	return vma->policy == EMM_POLICY_GUARD || !prot_allows(vma->prot, access);
}

/*
 * Async-signal-safe. The window around the locked page at addr: its
 * neighbours inside [lo, hi) in the same state (never touched, or
 * swapped) that can be locked now. Always inline: it runs on every first
 * touch and swap-in and its loops are usually over at once, but gcc -O2
 * kept it a call, which cost 25 instructions per fault (callgrind).
 */
static inline __attribute__((always_inline))
void fault_around(struct rsv *r, uintptr_t addr, uintptr_t lo, uintptr_t hi,
		  uintptr_t *sp, uintptr_t *ep)
{
	unsigned state = pte_state(locked_val(r, addr));
	uintptr_t s = addr, e = addr + PAGE_SIZE;
	uint64_t old;

	while (e < hi && pte_trylock(pte_of(r, e), &old)) {
		if (pte_state(old) != state) {
			pte_unlock(pte_of(r, e), old);
			break;
		}
		e += PAGE_SIZE;
	}
	while (s > lo && pte_trylock(pte_of(r, s - PAGE_SIZE), &old)) {
		if (pte_state(old) != state) {
			pte_unlock(pte_of(r, s - PAGE_SIZE), old);
			break;
		}
		s -= PAGE_SIZE;
	}
	*sp = s;
	*ep = e;
}

/* Async-signal-safe. What a failed map_locked (err, -errno) turns into:
 * short of kernel VMAs, a coalesced mapping; otherwise SIGBUS. No PTE lock
 * is held on entry (the failure unlocked the range) or on exit. */
static enum fault_result map_failed(struct rsv *r, const struct emm_vma *vma, uintptr_t addr,
				    int access, int err)
{
	if (err == -EAGAIN || err == -ENOMEM)
		return coalesce(r, vma, addr, access) ? FAULT_SIGBUS : FAULT_DONE;
	return FAULT_SIGBUS;
}

static bool stream_ahead(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e,
			 int how);

/*
 * Async-signal-safe. May the first touch at addr make its extent huge?
 * Where thp_fault_eligible says so; and along a stream of first touches
 * (the last window ended where this extent starts) even short of room:
 * the reclaim threads make it while this thread waits, in steps of
 * HUGE_ROOM_WAIT_NS, and at last it reclaims here, as it would for 4 KiB
 * pages, rather than the extent being mapped 4 KiB at a time, a fault
 * each 16 pages and a page-table entry each page. First touch of 4 GiB of
 * EMM_MAP_HUGEPAGE memory under a 1 GiB budget (uffd-sigbus, 2-vCPU VM):
 * 486 of its 2,048 extents were 4 KiB pages, 441 of them along the
 * stream, for want of room. Waits of 0.5 ms left the thread asleep long
 * after the room was made (emm-bench out-of-core --hugepage wrote back
 * at 576 and 538 MiB/s against 676 and 600 before).
 */
static bool huge_fault_ok(struct rsv *r, const struct emm_vma *vma, uintptr_t addr)
{
	uintptr_t a = ALIGN_DOWN(addr, PMD_SIZE);

	if (thp_fault_eligible(r, vma, addr))
		return true;
	if (atomic_load_explicit(&r->fa_next, memory_order_relaxed) != a || !huge_empty(r, vma, a))
		return false;
	/* The reclaim threads make the room while the program goes on, on
	 * another CPU; a short wait for them costs less than reclaiming here,
	 * and much less than the extent made of 4 KiB pages. */
	for (int i = 0; i < HUGE_ROOM_TRIES; i++) {
		if (page_room_unstalled(r, vma, a, PTRS_PER_PMD))
			return true;
		nanosleep(&(struct timespec){ 0, HUGE_ROOM_WAIT_NS }, NULL);
	}
	return page_charge_room(r, vma, a, PTRS_PER_PMD);
}

/*
 * Async-signal-safe. A first touch in an eligible, empty extent: map all of
 * it and collapse it, one fault for 512 pages. The PTE at addr is locked
 * on entry. FAULT_DONE: mapped, every PTE of the extent unlocked.
 * FAULT_FALLBACK when it cannot (a neighbour busy, no memory): nothing
 * changed, the PTE at addr still locked, and the caller maps the 4 KiB way.
 */
static enum fault_result do_huge_fault(struct rsv *r, const struct emm_vma *vma,
				       uintptr_t addr, int access)
{
	uintptr_t a = ALIGN_DOWN(addr, PMD_SIZE);
	int prot = target_prot(vma);
	/* Along a stream, where the next extent may be made ahead whole
	 * (post_after): the threads make it. */
	bool ahead = atomic_load_explicit(&r->fa_next, memory_order_relaxed) == a &&
		     thp_stream_eligible(r, vma, a + PMD_SIZE);

	if (!trylock_extent(r, a, ALIGN_DOWN(addr, PAGE_SIZE)))
		return FAULT_FALLBACK;
	if (make_resident(r, vma, a, a + PMD_SIZE, EMM_PROT_NONE) ||
	    backend_grant(r, a, a + PMD_SIZE, prot, fresh_holes(r, vma, a))) {
		unmake_fresh(r, a, a + PMD_SIZE);
		for (uintptr_t p = a; p < a + PMD_SIZE; p += PAGE_SIZE)
			if (p != ALIGN_DOWN(addr, PAGE_SIZE))
				pte_unlock(pte_of(r, p), pte_locked_val(pte_of(r, p)));
		return FAULT_FALLBACK;
	}
	collapse_fresh(r, a);
	unlock_range(r, a, a + PMD_SIZE, access, 0);
	count_event(r->mm, faults_zero);
	atomic_store_explicit(&r->fa_next, a + PMD_SIZE, memory_order_relaxed);
	atomic_store_explicit(&r->fa_win, PMD_SIZE, memory_order_relaxed);
	if (ahead)
		stream_ahead(r, vma, a, a + PMD_SIZE, AHEAD_NONE);
	return FAULT_DONE;
}

/*
 * Async-signal-safe. A huge extent whose access was revoked (reclaim
 * sampled it as one unit), or one read ahead whole and not mapped yet, is
 * touched: map all of it, mark it referenced and active (a stream's
 * window: ask for the next ones). One read ahead (readahead.c) is a clean
 * copy of its file or slots: mapped without write, and before a page of
 * it is written it becomes 512 pages, so that each is dirtied by itself;
 * the access then faults again. No PTE lock is held on entry or on exit
 * (it takes and drops the extent's). FAULT_DONE, or FAULT_SIGBUS when the
 * backend could not map it.
 */
static enum fault_result do_huge_minor(struct rsv *r, const struct emm_vma *vma, uintptr_t addr,
				       int access)
{
	uintptr_t a = ALIGN_DOWN(addr, PMD_SIZE);
	int prot = target_prot(vma), err = 0;
	uint64_t head, ref = PTE_REFERENCED;
	bool clean;

	lock_range(r, a, a + PMD_SIZE);
	clean = page_clean_copy(r, pte_locked_val(pte_of(r, a)));
	if (clean)
		prot &= ~EMM_PROT_WRITE;
	if (extent_huge(r, a) && clean && (access & EMM_PROT_WRITE)) {
		split_huge_locked(r, a);
	} else if (extent_huge(r, a) &&
		   !prot_allows(pte_prot(pte_locked_val(pte_of(r, addr))), access)) {
		err = backend_set_prot(r, a, a + PMD_SIZE, prot, BACKEND_FORCE);
		head = pte_locked_val(pte_of(r, a));	/* mapped now */
		if (!err) {
			count_event(r->mm, faults_minor);
			if ((head & PTE_RA) && stream_ahead(r, vma, a, 0, AHEAD_HIT)) {
				ref = 0;
				/* A stream of first touches goes on after it. */
				atomic_store_explicit(&r->fa_next, a + PMD_SIZE,
						      memory_order_relaxed);
			} else
				lru_queue(r->mm, pte_val(head), PV_ACTIVATE);
			pte_set_locked(pte_of(r, a), (head & ~PTE_RA) | ref);
			/* Mapped writable: a clean copy among its pages is
			 * one no longer (unlock_range). */
			unlock_range(r, a, a + PMD_SIZE, 0, 0);
			return FAULT_DONE;
		}
	}
	unlock_untouched(r, a, a + PMD_SIZE);
	return err ? FAULT_SIGBUS : FAULT_DONE;
}

/*
 * Async-signal-safe. Are the zero pages mapped around first touches used?
 * Reclaim counts those it evicts still all zeros (fa_zero, vmscan.c evict)
 * of those mapped (fa_mapped): when a quarter or more were never written,
 * a first touch outside a stream maps its own page alone, as the kernel
 * always does for anonymous memory; one in 32 still maps around, to keep
 * the count. Without eviction nothing is counted, and fault-around stays.
 * Measured on a 2-vCPU VM, emm-bench heap (large blocks whose first and
 * last words alone are written), uffd-sigbus: 41 K swap-ins against 16 K,
 * 0.12 against 0.25 M operations a second; Lua, SQLite and Python through
 * the preload as before.
 */
static bool fa_pays(struct rsv *r)
{
	uint32_t mapped = atomic_load_explicit(&r->fa_mapped, memory_order_relaxed);
	uint32_t zero = atomic_load_explicit(&r->fa_zero, memory_order_relaxed);

	if (mapped < 256 || 4 * zero < mapped)
		return true;
	return atomic_fetch_add_explicit(&r->clean_seq, 1, memory_order_relaxed) % 32 == 0;
}

/*
 * Async-signal-safe. The fault-around window of a first touch at addr: the
 * aligned group of fault_around pages, while fa_pays; when the touch
 * continues the last window (or the VMA was advised EMM_ADV_SEQUENTIAL), a
 * window ahead that doubles each time, up to 32 groups (at most 2 MiB), as
 * readahead grows for a stream: true then. fault_around 1 turns both off,
 * and so does EMM_ADV_RANDOM, as MADV_RANDOM does in Linux: under random
 * access the neighbours would be charged to the budget, zero pages as much
 * as pages read, and mostly never used. An anonymous stream's window stays
 * one group without room to spare (past half the budget): zero pages
 * mapped ahead of a heap that grows under its budget take the place of
 * pages it uses. The sqlite3 shell under libemm-preload.so at 64 MiB
 * (uffd, three alternating pairs) swapped in 337 to 513 pages so, 605 to
 * 1,439 with windows of up to 2 MiB; first touch of 4 GiB under 1 GiB
 * (uffd-sigbus) 796 to 881 MiB/s against 792 to 939. A window stops
 * where an empty extent that may be huge begins (huge_empty).
 */
static bool first_touch_window(struct rsv *r, const struct emm_vma *vma, uintptr_t addr,
			       uintptr_t *lo, uintptr_t *hi)
{
	uintptr_t next = ALIGN_DOWN(addr, PMD_SIZE) + PMD_SIZE;
	uintptr_t n = (uintptr_t)r->mm->cfg.fault_around << PAGE_SHIFT;
	uintptr_t last = atomic_load_explicit(&r->fa_next, memory_order_relaxed);
	uintptr_t win = atomic_load_explicit(&r->fa_win, memory_order_relaxed);

	*lo = addr;
	*hi = addr + PAGE_SIZE;
	if (vma->flags & VMA_RANDOM)
		return false;
	if (n > PAGE_SIZE && (addr == last || (vma->flags & VMA_SEQUENTIAL))) {
		win = MIN(MAX(2 * win, n), MIN(32 * n, PMD_SIZE));
		if (!vma_backed(vma) && win > n &&
		    !page_has_spare(r, vma, addr, (long)(win >> PAGE_SHIFT)))
			win = n;
		*hi = MIN(addr + win, vma->end);
		if (*hi > next && huge_empty(r, vma, next))
			*hi = next;
		return true;
	}
	if (fa_pays(r)) {
		*lo = MAX(ALIGN_DOWN(addr, n), vma->start);
		*hi = MIN(ALIGN_DOWN(addr, n) + n, vma->end);
	}
	return false;
}

/* Async-signal-safe. Have the threads read a stream's next windows: after
 * [s, e) of never-touched or swapped pages (how), or after the marker at s
 * (AHEAD_HIT; false if it is none). They map them as a fault would. */
static bool stream_ahead(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e,
			 int how)
{
	int prot = target_prot(vma);
	bool dirty = (prot & EMM_PROT_WRITE) && swap_predict_write(r, vma);
	long n;

	prot = dirty ? prot : prot & ~EMM_PROT_WRITE;
	n = how == AHEAD_HIT ? swap_readahead_hit(r, vma, s, prot)
			     : swap_readahead_next(r, vma, s, e, prot, how == AHEAD_NONE);
	swap_note_clean(r, vma, target_prot(vma), dirty || how == AHEAD_NONE, (uint32_t)MAX(n, 0));
	return n >= 0;
}

/* Async-signal-safe. What a fault maps [s, e) with first: without write
 * when the pages are to stay clean, and then map_written grants it to
 * the page written; but a page written alone is mapped writable at once,
 * one grant, not two. Random writes to swapped pages, 2-vCPU VM,
 * uffd-sigbus, six alternating pairs: 106.8 to 137.5 us each against
 * 130.5 to 149.7 (random reads: 106 to 107 either way). */
static int first_prot(int prot, bool clean, uintptr_t s, uintptr_t e, int access)
{
	return clean && !((access & EMM_PROT_WRITE) && e - s == PAGE_SIZE) ? prot & ~EMM_PROT_WRITE
									    : prot;
}

/*
 * Async-signal-safe. A never-touched page: map it and its neighbours.
 * Anonymous ones read zero; FILE and PAGER ones are read in (readahead for
 * a stream), mapped without write access while clean, the written page
 * alone with it. The PTE at addr is locked on entry (PTE_NONE); no PTE lock
 * is held on exit, whatever the result. FAULT_DONE or FAULT_SIGBUS.
 */
static enum fault_result do_none_page(struct rsv *r, const struct emm_vma *vma,
				      uintptr_t addr, int access)
{
	int prot = target_prot(vma), first, err;
	uintptr_t s, e, lo, hi;
	uint64_t fa = 0;
	bool stream;

	if (huge_fault_ok(r, vma, addr) && do_huge_fault(r, vma, addr, access) == FAULT_DONE)
		return FAULT_DONE;
	stream = first_touch_window(r, vma, addr, &lo, &hi);
	fault_around(r, addr, lo, hi, &s, &e);
	first = first_prot(prot, vma_backed(vma), s, e, access);
	err = map_locked(r, vma, s, e, first);
	if (err == -EIO && e - s > PAGE_SIZE) {
		/* A neighbour's read failed, maybe not this page's: try it alone. */
		if (pte_state(pte_lock(pte_of(r, addr))) != PTE_NONE) {
			pte_unlock(pte_of(r, addr), locked_val(r, addr));
			return FAULT_DONE;
		}
		s = addr;
		e = addr + PAGE_SIZE;
		first = first_prot(prot, vma_backed(vma), s, e, access);
		err = map_locked(r, vma, s, e, first);
	}
	if (!err && first != prot && (access & EMM_PROT_WRITE))
		err = map_written(r, s, e, addr, prot);
	if (err)
		return map_failed(r, vma, addr, access, err);
	atomic_store_explicit(&r->fa_next, e, memory_order_relaxed);
	atomic_store_explicit(&r->fa_win, e - s, memory_order_relaxed);
	if (!vma_backed(vma)) {
		if (e - s > PAGE_SIZE)	/* one page: the access that retries fills it */
			backend_populate(r, s, e, prot);
		count_event(r->mm, faults_zero);
		if (!stream && e - s > PAGE_SIZE) {	/* fa_pays' sample */
			fa = PTE_FA;
			count_tries(&r->fa_mapped, &r->fa_zero, (uint32_t)((e - s) >> PAGE_SHIFT) - 1,
				    4096);
		}
	}
	unlock_range(r, s, addr, access, fa);
	unlock_range(r, addr, addr + PAGE_SIZE, access, 0);
	unlock_range(r, addr + PAGE_SIZE, e, access, fa);
	if (stream && (vma->policy == EMM_POLICY_FILE || !vma_backed(vma)))
		stream_ahead(r, vma, s, e, AHEAD_NONE);
	return FAULT_DONE;
}

/*
 * Async-signal-safe. A swap-in of a window around addr failed (err,
 * -errno; the range is unlocked). If addr itself came in, a neighbour's
 * read failed, not this page's: the access retries. Else as map_failed.
 */
static enum fault_result swapin_failed(struct rsv *r, const struct emm_vma *vma, uintptr_t addr,
				       int access, int err)
{
	if (err != -EAGAIN && err != -ENOMEM &&
	    pte_state(atomic_load(pte_of(r, addr))) != PTE_SWAPPED)
		return FAULT_DONE;
	return map_failed(r, vma, addr, access, err);
}

/*
 * Async-signal-safe. do_swap_page for a cluster read around addr: all of
 * the locked [s, e) is read, the page at addr alone mapped; the others
 * stay unmapped with PTE_RA until touched (do_resident_page). Exits with
 * no PTE lock held. FAULT_DONE or FAULT_SIGBUS.
 */
static enum fault_result swap_read_around(struct rsv *r, const struct emm_vma *vma,
					  uintptr_t addr, uintptr_t s, uintptr_t e, int access,
					  bool dirty)
{
	int prot = target_prot(vma), err;

	err = map_locked(r, vma, s, e, EMM_PROT_NONE);
	if (!err)
		err = map_written(r, s, e, addr, (dirty || (access & EMM_PROT_WRITE)) ? prot
							: prot & ~EMM_PROT_WRITE);
	if (err)
		return swapin_failed(r, vma, addr, access, err);
	count_tries(&r->ra_read, &r->ra_hits, (uint32_t)((e - s) >> PAGE_SHIFT) - 1, 1024);
	/* A fault next to it continues a stream (swap_readahead). */
	atomic_store_explicit(&r->ra_lo, s, memory_order_relaxed);
	atomic_store_explicit(&r->ra_hi, e, memory_order_relaxed);
	swap_note_clean(r, vma, prot, dirty, !(access & EMM_PROT_WRITE));
	unlock_range(r, s, addr, 0, PTE_RA);
	unlock_range(r, addr, addr + PAGE_SIZE, access, 0);
	unlock_range(r, addr + PAGE_SIZE, e, 0, PTE_RA);
	count_event(r->mm, faults_major);
	return FAULT_DONE;
}

/*
 * Async-signal-safe. A swapped page (major fault): read it back, with its
 * neighbours when the access is a stream. Clean pages keep their slot and
 * are mapped read-only, so a write is seen (faults_wp). The PTE at addr is
 * locked on entry (PTE_SWAPPED); no PTE lock is held on exit, whatever the
 * result. FAULT_DONE or FAULT_SIGBUS.
 */
static enum fault_result do_swap_page(struct rsv *r, const struct emm_vma *vma,
				      uintptr_t addr, int access)
{
	int prot = target_prot(vma), first, err, ra;
	uintptr_t s = addr, e = addr + PAGE_SIZE, lo, hi;
	bool dirty = (prot & EMM_PROT_WRITE) && swap_predict_write(r, vma);

	swap_readahead(r, vma, addr, &lo, &hi, &ra);
	fault_around(r, addr, lo, hi, &s, &e);
	if (ra == RA_UNMAPPED && e - s > PAGE_SIZE)
		return swap_read_around(r, vma, addr, s, e, access, dirty);
	/* The pages read stay clean (mapped without write) but the one
	 * written, unless the program is expected to write them all. */
	first = first_prot(prot, !dirty, s, e, access);
	err = map_locked(r, vma, s, e, first);
	if (!err && first != prot && (access & EMM_PROT_WRITE))
		err = map_written(r, s, e, addr, prot);
	if (err)
		return swapin_failed(r, vma, addr, access, err);
	atomic_store_explicit(&r->ra_lo, s, memory_order_relaxed);
	atomic_store_explicit(&r->ra_hi, e, memory_order_relaxed);
	swap_note_clean(r, vma, prot, dirty,
			(uint32_t)((e - s) >> PAGE_SHIFT) - !!(access & EMM_PROT_WRITE));
	unlock_range(r, s, e, access, 0);
	count_event(r->mm, faults_major);
	if (ra == RA_STREAM)
		stream_ahead(r, vma, s, e, AHEAD_SWAP);
	return FAULT_DONE;
}

/* Async-signal-safe. A resident page the app view does not (fully) map:
 * a minor fault (deactivated page) or a write to a clean swap-cache page.
 * The PTE at addr is locked on entry (its value val); no PTE lock is held
 * on exit, whatever the result. FAULT_DONE or FAULT_SIGBUS. */
static enum fault_result do_resident_page(struct rsv *r, const struct emm_vma *vma, uintptr_t addr,
					  int access, uint64_t val)
{
	int prot = target_prot(vma), err;
	uintptr_t s = addr, e = addr + PAGE_SIZE;
	uint64_t ref = PTE_REFERENCED;
	bool swap_clean;

	if (prot_allows(pte_prot(val), access)) {
		/* Raced with another fault; or the kernel dropped the mapping on
		 * its own (a userfaultfd view: a PMD split, its reclaim). */
		backend_grant(r, addr, addr + PAGE_SIZE, pte_prot(val), BACKEND_FORCE | BACKEND_REMAP);
		pte_unlock(pte_of(r, addr), locked_val(r, addr));	/* harvest may mark it dirty */
		/* Nothing was faulted in: not a fault of its own, as with
		 * uffd_remap (the kernel may deliver one fault twice). */
		count_events(r->mm, faults, -(uint64_t)1);
		return FAULT_DONE;
	}
	if (extent_huge(r, addr)) {
		pte_unlock(pte_of(r, addr), val);
		return do_huge_minor(r, vma, addr, access);
	}
	swap_clean = !(val & PTE_FILE) && page_clean_copy(r, val) && (prot & EMM_PROT_WRITE);
	if (!(access & EMM_PROT_WRITE) && page_clean_copy(r, val) &&
	    !(swap_clean && swap_predict_write(r, vma)))
		prot &= ~EMM_PROT_WRITE;
	if (pte_prot(val) == EMM_PROT_NONE && !(val & PTE_RA) && !page_clean_copy(r, val) &&
	    !(vma->flags & VMA_RANDOM))
		minor_window(r, vma, addr, &s, &e);
	err = backend_set_prot(r, s, e, prot, 0);
	if (err) {
		unlock_untouched(r, s, addr);
		unlock_untouched(r, addr + PAGE_SIZE, e);
		pte_unlock(pte_of(r, addr), locked_val(r, addr));
		return coalesce(r, vma, addr, access) ? FAULT_SIGBUS : FAULT_DONE;
	}
	if (swap_clean)
		swap_note_clean(r, vma, target_prot(vma), prot & EMM_PROT_WRITE, 1);
	if (pte_prot(val) == EMM_PROT_NONE) {
		count_event(r->mm, faults_minor);
		/* The first touch of a page read around: a hit. Of a stream's
		 * marker: no more a reference than the stream's other pages. */
		if ((val & PTE_RA) && stream_ahead(r, vma, addr, 0, AHEAD_HIT))
			ref = 0;
		else if (val & PTE_RA)
			atomic_fetch_add_explicit(&r->ra_hits, 1, memory_order_relaxed);
		else
			lru_queue(r->mm, pte_val(val), PV_ACTIVATE);	/* second touch */
		if (val & PTE_AROUND)
			count_event(r->mm, refault_around);
	} else {
		count_event(r->mm, faults_wp);
		if (swap_clean)
			atomic_fetch_add_explicit(&r->clean_writes, 1, memory_order_relaxed);
	}
	pte_set_locked(pte_of(r, addr), locked_val(r, addr) & ~(PTE_RA | PTE_FA | PTE_COLD | PTE_AROUND));
	/* Neighbours mapped with it count as touched: reclaim activates
	 * them. The kernel maps its fault-around young too, but activates a
	 * page only at its second reference. Measured on uffd, marked against
	 * not: SQLite at 48 MiB 25.7 K swap-ins against 30.0 K, Python at
	 * 64 MiB 31.2 K against 13.9 K, Lua at 64 MiB the same. */
	unlock_range(r, s, addr, 0, PTE_REFERENCED);
	unlock_range(r, addr + PAGE_SIZE, e, 0, PTE_REFERENCED);
	unlock_range(r, addr, addr + PAGE_SIZE, access, ref);
	return FAULT_DONE;
}

/*
 * Async-signal-safe. DESIGN.md steps 4-8 for one fault at addr inside vma,
 * whose access the caller has checked. Called inside mm->srcu's read
 * section, no PTE lock held; it locks the PTE at addr and hands it to the
 * do_* handler for its state, which unlocks it. Returns with no PTE lock
 * held: FAULT_DONE or FAULT_SIGBUS. Static, so that it is part of
 * do_user_fault, not one more call on every fault.
 */
static enum fault_result handle_mm_fault(struct rsv *r, uintptr_t addr, int access,
					 const struct emm_vma *vma)
{
	uint64_t val;

	addr = ALIGN_DOWN(addr, PAGE_SIZE);
	count_event(r->mm, faults);
	val = pte_lock(pte_of(r, addr));
	switch (pte_state(val)) {
	case PTE_NONE:
		return do_none_page(r, vma, addr, access);
	case PTE_SWAPPED:
		return do_swap_page(r, vma, addr, access);
	default:
		return do_resident_page(r, vma, addr, access, val);
	}
}

/*
 * Async-signal-safe. DESIGN.md steps 2-8 for a backend: the VMA at addr,
 * the access check, then handle_mm_fault. *vmap gets the VMA (NULL for a
 * bad area). Called inside mm->srcu's read section, no lock held; returns
 * with none held. Any enum fault_result but FAULT_FALLBACK.
 */
enum fault_result do_user_fault(struct rsv *r, uintptr_t addr, int access,
				const struct emm_vma **vmap)
{
	const struct emm_vma *vma;
	enum fault_result ret;

	DEBUG_IN_SRCU();
	vma = find_vma(r, addr);
	*vmap = vma;
	if (!vma || vma_access_error(vma, access)) {
		count_event(r->mm, faults_bad);
		return vma ? FAULT_ACCESS : FAULT_BAD_AREA;
	}
	atomic_fetch_add_explicit(&r->mm->faulting, 1, memory_order_relaxed);
	ret = handle_mm_fault(r, addr, access, vma);
	atomic_fetch_sub_explicit(&r->mm->faulting, 1, memory_order_relaxed);
	return ret;
}
