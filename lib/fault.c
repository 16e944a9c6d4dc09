/* SPDX-License-Identifier: MIT */
/* The fault path shared by the backends: PTE states, fault-around, swap-in, coalescing. */
#include <errno.h>
#include <sys/mman.h>

#include "internal.h"
#include "numa.h"
#include "swap.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

#define SWAP_RA_MIN	32	/* swap-in readahead window, in pages: it starts */
#define SWAP_RA_MAX	64	/* here and doubles along a stream up to here */
#define IO_BATCH	64	/* pages per swap read request built on the stack */

/* Async-signal-safe. The word of a page whose lock the caller holds. */
static uint64_t locked_val(struct rsv *r, uintptr_t addr)
{
	return pte_locked_val(pte_of(r, addr));
}

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

/* Async-signal-safe. Is the resident page clean, with a copy of its data
 * elsewhere (its swap slot, its file, its pager)? Then a write must fault,
 * so it is mapped without write access. */
static bool page_clean_copy(struct rsv *r, uint64_t val)
{
	if (pte_state(val) != PTE_RESIDENT || (val & PTE_DIRTY))
		return false;
	return (val & PTE_FILE) || r->mm->lru->frames[pte_val(val)].slot;
}

/* Async-signal-safe. Do never-touched pages of this VMA have data elsewhere? */
static bool vma_backed(const struct emm_vma *vma)
{
	return vma->policy == EMM_POLICY_FILE || vma->policy == EMM_POLICY_PAGER;
}

/* Async-signal-safe. The page is about to be written: its swap copy is stale. */
static uint64_t page_dirty(struct rsv *r, uint64_t val)
{
	struct frame *f = &r->mm->lru->frames[pte_val(val)];

	if (f->slot) {
		swap_free(r->mm->swap, f->slot);
		f->slot = 0;
	}
	return val | PTE_DIRTY;
}

/*
 * Async-signal-safe. Unlock [s, e) after mapping it: a page mapped
 * writable is dirty; a frame new to the LRU is queued on this CPU's add
 * pagevec; set holds extra bits (referenced, pinned).
 */
void unlock_range(struct rsv *r, uintptr_t s, uintptr_t e, int access, uint64_t set)
{
	for (uintptr_t a = s; a < e; a += PAGE_SIZE) {
		uint64_t val = locked_val(r, a);

		if (pte_state(val) == PTE_RESIDENT) {
			if ((pte_prot(val) & EMM_PROT_WRITE) &&
			    ((access & EMM_PROT_WRITE) || page_clean_copy(r, val)))
				val = page_dirty(r, val);
			if (!(val & PTE_LRU)) {
				lru_queue(r->mm, pte_val(val), PV_ADD);
				val |= PTE_LRU;
			}
			val |= set;
		}
		pte_unlock(pte_of(r, a), val);
	}
}

/* Async-signal-safe. The protection a page of vma gets when mapped. */
int target_prot(const struct emm_vma *vma)
{
	return vma->policy == EMM_POLICY_GUARD ? EMM_PROT_NONE : vma->prot;
}

/* Async-signal-safe. Let the kernel fill the page tables of a fresh cluster
 * in one call rather than one trap per page. */
static void populate(struct rsv *r, uintptr_t s, uintptr_t e, int prot)
{
	/* A userfaultfd's UFFDIO_CONTINUE has filled them already; and a
	 * service thread must never fault on the app view itself. */
	if (e - s > PAGE_SIZE && !r->mm->uffd)
		madvise((void *)s, e - s, (prot & EMM_PROT_WRITE) ? MADV_POPULATE_WRITE
								 : MADV_POPULATE_READ);
}

/* Async-signal-safe. The node a new page of vma at a lands on: the one its
 * memory policy gives (what the kernel does with a memfd page). */
static int page_node(struct rsv *r, const struct emm_vma *vma, uintptr_t a)
{
	int n;

	if (r->mm->lru->nnodes == 1)
		return 0;
	n = numa_policy_node(vma->numa_policy, vma->numa_nodes, rsv_ppn(r, a) + r->mm->ino_bias);
	return n < 0 || n >= r->mm->lru->nnodes ? 0 : n;
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
					 PTE_FILE), PTE_RESIDENT, pte_prot(old)), f);
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
	pte_set_locked(pte_of(r, a), slot ? pte_set_val(pte_mk(val, PTE_SWAPPED, 0), slot)
				      : pte_mk(pte_set_val(val, 0), PTE_NONE, 0));
	pte_set_used(r, a, val, locked_val(r, a));
}

/*
 * Async-signal-safe. Read n swapped, locked pages (their addresses in
 * pages[]) into physmem with one batch of I/O. A page whose read fails (or
 * fails its checksum) stays swapped; the first error is returned.
 */
static int swapin_batch(struct rsv *r, const struct emm_vma *vma, const uintptr_t *pages,
			unsigned n)
{
	struct swap_io io[IO_BATCH];
	int err = 0;

	for (unsigned i = 0; i < n; i++) {
		io[i].slot = pte_val(locked_val(r, pages[i]));
		io[i].page = rsv_alias(r, pages[i]);
		if (alloc_page(r, vma, pages[i], false) < 0) {
			while (i--)
				unalloc_page(r, pages[i], io[i].slot);
			return -ENOMEM;
		}
	}
	swap_readpages(r->mm->swap, io, n);
	for (unsigned i = 0; i < n; i++) {
		uint32_t f;

		if (io[i].err) {
			unalloc_page(r, pages[i], io[i].slot);
			count_event(r->mm, io_errors);
			err = err ? err : io[i].err;
			continue;
		}
		f = pte_val(locked_val(r, pages[i]));
		r->mm->lru->frames[f].slot = io[i].slot;
		count_event(r->mm, swapins);
		atomic_fetch_add_explicit(&frame_lruvec(r->mm->lru, f)->swapins, 1,
					  memory_order_relaxed);
	}
	return err;
}

/* Async-signal-safe. Read a run of fresh FILE/PAGER pages; on failure
 * they go back to never-touched. */
static int fill_run(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e)
{
	int err = filemap_read(r, vma, s, e);

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
 * or pager; swapped pages their data back. The budget is charged first
 * (direct reclaim when it is exhausted).
 */
int make_resident(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e)
{
	uintptr_t swapped[IO_BATCH], run = 0;
	bool backed = vma_backed(vma);
	unsigned nsw = 0;
	long need = 0;
	int err = 0;

	for (uintptr_t a = s; a < e; a += PAGE_SIZE)
		need += pte_state(locked_val(r, a)) != PTE_RESIDENT;
	if (need)
		mm_charge(r->mm, page_node(r, vma, s), need);
	for (uintptr_t a = s; a <= e && !err; a += PAGE_SIZE) {
		unsigned st = a < e ? pte_state(locked_val(r, a)) : PTE_RESIDENT;

		if (run && st != PTE_NONE) {
			err = fill_run(r, vma, run, a);
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
			err = swapin_batch(r, vma, swapped, nsw);
			nsw = 0;
		}
	}
	if (nsw && !err)
		err = swapin_batch(r, vma, swapped, nsw);
	return err;
}

/*
 * Async-signal-safe. make_resident failed part way: pages it gave a frame
 * that never got mapped go back to never-touched (their contents are zero:
 * a swapped page that came back keeps its data and stays resident).
 */
void unmake_fresh(struct rsv *r, uintptr_t s, uintptr_t e)
{
	for (uintptr_t a = s; a < e; a += PAGE_SIZE) {
		uint64_t val = locked_val(r, a);

		if (pte_state(val) == PTE_RESIDENT && !(val & PTE_LRU) &&
		    !page_clean_copy(r, val))
			unalloc_page(r, a, 0);
	}
}

/*
 * Async-signal-safe. The window around the locked page at addr: its
 * neighbours inside [lo, hi) in the same state (never touched, or
 * swapped) that can be locked now.
 */
static void fault_around(struct rsv *r, uintptr_t addr, uintptr_t lo, uintptr_t hi,
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

/* Async-signal-safe. The protection a locked page gets for an access:
 * without write while it is clean with a copy elsewhere and the access
 * does not write. */
static int page_want(struct rsv *r, uint64_t val, int prot, int access)
{
	if (!(access & EMM_PROT_WRITE) && page_clean_copy(r, val))
		return prot & ~EMM_PROT_WRITE;
	return prot;
}

/* Async-signal-safe. Does the locked range hold pages that mapping would
 * cost I/O or a clean copy: swapped ones, or clean FILE/PAGER/swap-cache
 * ones (mapping them writable would make them dirty)? */
static bool range_has_copies(struct rsv *r, uintptr_t s, uintptr_t e)
{
	for (uintptr_t a = s; a < e; a += PAGE_SIZE) {
		uint64_t v = locked_val(r, a);

		if (pte_state(v) == PTE_SWAPPED || page_clean_copy(r, v))
			return true;
	}
	return false;
}

/*
 * Async-signal-safe. One coalescing step over the locked [s, e): map it
 * all alike, where that costs no I/O and dirties nothing (never-touched
 * and dirty pages); else revoke it all and map the faulting page alone.
 * Either way the runs inside merge into one or three.
 */
static int coalesce_step(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e,
			 uintptr_t addr, int access, bool force)
{
	int prot = target_prot(vma), err;

	if (!range_has_copies(r, s, e)) {
		err = make_resident(r, vma, s, e);
		return err ? err : app_protect(r, s, e, prot, force);
	}
	err = app_protect(r, s, e, EMM_PROT_NONE, true);
	if (!err)
		err = make_resident(r, vma, addr, addr + PAGE_SIZE);
	if (!err)
		err = app_protect(r, addr, addr + PAGE_SIZE,
				  page_want(r, locked_val(r, addr), prot, access), force);
	return err;
}

/*
 * Async-signal-safe. Near the kernel-VMA budget: coalesce a whole aligned
 * cluster around addr (growing until it fits) so that runs merge instead
 * of multiplying. No PTE lock is held on entry.
 */
static int coalesce(struct rsv *r, const struct emm_vma *vma, uintptr_t addr, int access)
{
	static const unsigned shifts[] = { PMD_SHIFT, PMD_SHIFT + 4, PMD_SHIFT + 9, 63 };

	addr = ALIGN_DOWN(addr, PAGE_SIZE);
	for (size_t k = 0; k < ARRAY_SIZE(shifts); k++) {
		uintptr_t sz = (uintptr_t)1 << MIN(shifts[k], 62);
		uintptr_t s = MAX(ALIGN_DOWN(addr, sz), vma->start);
		uintptr_t e = MIN(ALIGN_DOWN(addr, sz) + sz, vma->end);
		int err;

		if (shifts[k] == 63)
			s = vma->start, e = vma->end;
		lock_range(r, s, e);
		err = coalesce_step(r, vma, s, e, addr, access, k + 1 == ARRAY_SIZE(shifts));
		if (!err) {
			unlock_range(r, s, e, access, 0);
			return FAULT_DONE;
		}
		unmake_fresh(r, s, e);
		unlock_range(r, s, e, 0, 0);
		if (err != -EAGAIN)
			return FAULT_SIGBUS;
	}
	return FAULT_SIGBUS;
}

/* Async-signal-safe. Give the locked [s, e) physmem and map it; on
 * failure everything is unlocked again and the error returned. */
static int map_locked(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e,
		      int prot)
{
	int err = make_resident(r, vma, s, e);

	if (!err)
		err = app_protect(r, s, e, prot, false);
	if (err) {
		unmake_fresh(r, s, e);
		unlock_range(r, s, e, 0, 0);
	}
	return err;
}

/* Async-signal-safe. After map_locked mapped [s, e) without write, give
 * the written page write access; on failure unlock the range, as a failed
 * map_locked does. */
static int map_written(struct rsv *r, uintptr_t s, uintptr_t e, uintptr_t addr, int prot)
{
	int err = app_protect(r, addr, addr + PAGE_SIZE, prot, false);

	if (err)
		unlock_range(r, s, e, 0, 0);
	return err;
}

/* Async-signal-safe. What a failed map_locked turns into: short of kernel
 * VMAs, a coalesced mapping; otherwise SIGBUS. */
static int map_failed(struct rsv *r, const struct emm_vma *vma, uintptr_t addr, int access,
		      int err)
{
	if (err == -EAGAIN || err == -ENOMEM)
		return coalesce(r, vma, addr, access);
	return FAULT_SIGBUS;
}

/*
 * Async-signal-safe. The fault-around window of a first touch at addr: the
 * aligned group of fault_around pages; when the touch continues the last
 * window (or the VMA was advised EMM_ADV_SEQUENTIAL), a window ahead that
 * doubles each time, up to 32 groups (at most 2 MiB), as readahead grows
 * for a stream. fault_around 1 turns both off; EMM_ADV_RANDOM reads one
 * page of a FILE or PAGER VMA.
 */
static void first_touch_window(struct rsv *r, const struct emm_vma *vma, uintptr_t addr,
			       uintptr_t *lo, uintptr_t *hi)
{
	uintptr_t n = (uintptr_t)r->mm->cfg.fault_around << PAGE_SHIFT;
	uintptr_t last = atomic_load_explicit(&r->fa_next, memory_order_relaxed);
	uintptr_t win = atomic_load_explicit(&r->fa_win, memory_order_relaxed);

	*lo = MAX(ALIGN_DOWN(addr, n), vma->start);
	*hi = MIN(ALIGN_DOWN(addr, n) + n, vma->end);
	if ((vma->flags & VMA_RANDOM) && vma_backed(vma)) {
		*lo = addr;
		*hi = addr + PAGE_SIZE;
	} else if (n > PAGE_SIZE && (addr == last || (vma->flags & VMA_SEQUENTIAL))) {
		win = MIN(MAX(2 * win, n), MIN(32 * n, PMD_SIZE));
		*lo = addr;
		*hi = MIN(addr + win, vma->end);
	}
}

/*
 * Async-signal-safe. A never-touched page: map it and its neighbours.
 * Anonymous ones read zero; FILE and PAGER ones are read in (readahead for
 * a stream), mapped without write access while clean, the written page
 * alone with it.
 */
static int do_none_page(struct rsv *r, const struct emm_vma *vma, uintptr_t addr, int access)
{
	int prot = target_prot(vma), err;
	uintptr_t s, e, lo, hi;

	if (thp_fault_eligible(r, vma, addr) && do_huge_fault(r, vma, addr, access) == 0)
		return FAULT_DONE;
	first_touch_window(r, vma, addr, &lo, &hi);
	fault_around(r, addr, lo, hi, &s, &e);
	err = map_locked(r, vma, s, e, vma_backed(vma) ? prot & ~EMM_PROT_WRITE : prot);
	if (err == -EIO && e - s > PAGE_SIZE) {
		/* A neighbour's read failed, maybe not this page's: try it alone. */
		if (pte_state(pte_lock(pte_of(r, addr))) != PTE_NONE) {
			pte_unlock(pte_of(r, addr), locked_val(r, addr));
			return FAULT_DONE;
		}
		s = addr;
		e = addr + PAGE_SIZE;
		err = map_locked(r, vma, s, e, vma_backed(vma) ? prot & ~EMM_PROT_WRITE : prot);
	}
	if (!err && vma_backed(vma) && (access & EMM_PROT_WRITE))
		err = map_written(r, s, e, addr, prot);
	if (err)
		return map_failed(r, vma, addr, access, err);
	atomic_store_explicit(&r->fa_next, e, memory_order_relaxed);
	atomic_store_explicit(&r->fa_win, e - s, memory_order_relaxed);
	if (!vma_backed(vma)) {
		populate(r, s, e, prot);
		count_event(r->mm, faults_zero);
	}
	unlock_range(r, s, e, access, 0);
	return FAULT_DONE;
}

/*
 * Async-signal-safe. The readahead window of a swap-in at addr: forward
 * when it continues the last window upwards, backward when it continues it
 * downwards (or always forward under EMM_ADV_SEQUENTIAL), none for random
 * access or under EMM_ADV_RANDOM.
 */
static void swap_readahead(struct rsv *r, const struct emm_vma *vma, uintptr_t addr,
			   uintptr_t *lo, uintptr_t *hi)
{
	uintptr_t last_lo = atomic_load_explicit(&r->ra_lo, memory_order_relaxed);
	uintptr_t last_hi = atomic_load_explicit(&r->ra_hi, memory_order_relaxed);
	uintptr_t n = MIN(MAX(2 * (last_hi - last_lo), SWAP_RA_MIN << PAGE_SHIFT),
			  SWAP_RA_MAX << PAGE_SHIFT);

	*lo = addr;
	*hi = addr + PAGE_SIZE;
	if (vma->flags & VMA_RANDOM)
		return;
	if ((vma->flags & VMA_SEQUENTIAL) || (addr >= last_hi && addr - last_hi < 4 * PAGE_SIZE))
		*hi = MIN(addr + n, vma->end);
	else if (addr < last_lo && last_lo - addr <= 4 * PAGE_SIZE)
		*lo = MAX(addr + PAGE_SIZE - n, vma->start);
}

/*
 * Async-signal-safe. A swapped page (major fault): read it back, with its
 * neighbours when the access is a stream. Clean pages keep their slot and
 * are mapped read-only, so a write is seen (faults_wp).
 */
static int do_swap_page(struct rsv *r, const struct emm_vma *vma, uintptr_t addr, int access)
{
	int prot = target_prot(vma), err;
	uintptr_t s = addr, e = addr + PAGE_SIZE, lo, hi;

	swap_readahead(r, vma, addr, &lo, &hi);
	fault_around(r, addr, lo, hi, &s, &e);
	/* The pages read stay clean (mapped without write) but the one written. */
	err = map_locked(r, vma, s, e, prot & ~EMM_PROT_WRITE);
	if (!err && (access & EMM_PROT_WRITE))
		err = map_written(r, s, e, addr, prot);
	if (err && e - s > PAGE_SIZE && err != -EAGAIN && err != -ENOMEM &&
	    pte_state(atomic_load(pte_of(r, addr))) != PTE_SWAPPED)
		return FAULT_DONE;	/* a page read ahead failed, not this one: retry */
	if (err)
		return map_failed(r, vma, addr, access, err);
	atomic_store_explicit(&r->ra_lo, s, memory_order_relaxed);
	atomic_store_explicit(&r->ra_hi, e, memory_order_relaxed);
	unlock_range(r, s, e, access, 0);
	count_event(r->mm, faults_major);
	return FAULT_DONE;
}

/* Async-signal-safe. A resident page the app view does not (fully) map:
 * a minor fault (deactivated page) or a write to a clean swap-cache page. */
static int do_resident_page(struct rsv *r, const struct emm_vma *vma, uintptr_t addr,
			    int access, uint64_t val)
{
	int prot = target_prot(vma), err;

	if (prot_allows(pte_prot(val), access)) {
		pte_unlock(pte_of(r, addr), val);	/* raced with another fault */
		return FAULT_DONE;
	}
	if (extent_huge(r, addr)) {
		pte_unlock(pte_of(r, addr), val);
		return do_huge_minor(r, vma, addr) ? FAULT_SIGBUS : FAULT_DONE;
	}
	if (!(access & EMM_PROT_WRITE) && page_clean_copy(r, val))
		prot &= ~EMM_PROT_WRITE;
	err = app_protect(r, addr, addr + PAGE_SIZE, prot, false);
	if (err) {
		pte_unlock(pte_of(r, addr), val);
		return coalesce(r, vma, addr, access);
	}
	if (pte_prot(val) == EMM_PROT_NONE) {
		count_event(r->mm, faults_minor);
		lru_queue(r->mm, pte_val(val), PV_ACTIVATE);	/* second touch */
	} else {
		count_event(r->mm, faults_wp);
	}
	unlock_range(r, addr, addr + PAGE_SIZE, access, PTE_REFERENCED);
	return FAULT_DONE;
}

/*
 * Async-signal-safe. DESIGN.md steps 4-8 for one fault at addr inside vma,
 * whose access the caller has checked. Called inside an srcu read section.
 */
int handle_mm_fault(struct rsv *r, uintptr_t addr, int access, const struct emm_vma *vma)
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
			int err = app_protect(r, run, a, run_prot, true);

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
		err = make_resident(r, vma, c, ce);
		if (!err)
			err = map_runs(r, c, ce, prot, access);
		if (err) {
			unmake_fresh(r, c, ce);
			unlock_range(r, c, ce, 0, 0);
			break;
		}
		populate(r, c, ce, (access & EMM_PROT_WRITE) ? prot : prot & ~EMM_PROT_WRITE);
		unlock_range(r, c, ce, access, pin ? PTE_PINNED : 0);
		c = ce;
	}
	return err == -EBADMSG ? -EIO : err;
}

/* Async-signal-safe. Does the extent hold any page that is not PTE_NONE? */
bool extent_used(struct rsv *r, uintptr_t a)
{
	return atomic_load_explicit(&extent_of(r, a)->used, memory_order_relaxed) != 0;
}

/* Async-signal-safe. Forget a locked page: frame, slot, state. */
static void drop_page(struct rsv *r, uintptr_t a)
{
	uint64_t old = locked_val(r, a);
	struct emm *mm = r->mm;

	if (pte_state(old) == PTE_RESIDENT) {
		struct frame *f = &mm->lru->frames[pte_val(old)];

		if (f->slot)
			swap_free(mm->swap, f->slot);
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
		uintptr_t ae = MIN(ALIGN_DOWN(a, PMD_SIZE) + PMD_SIZE, e);

		if (!extent_used(r, a))
			continue;
		lock_range(r, a, ae);
		if (extent_huge(r, a))
			split_huge_locked(r, a);	/* API callers split partial ones first */
		if (revoke)
			app_protect(r, a, ae, EMM_PROT_NONE, true);
		physmem_punch(r, a, ae - a);
		for (uintptr_t p = a; p < ae; p += PAGE_SIZE)
			drop_page(r, p);
		unlock_untouched(r, a, ae);
	}
}

/*
 * New protection for the resident pages of [s, e) after emm_protect
 * changed their VMAs: runs of pages get it at once (clean swap-cache pages
 * without write, so their first write is still seen). Signals blocked.
 */
int change_range_prot(struct rsv *r, uintptr_t s, uintptr_t e, int prot)
{
	int ret = 0;

	for (uintptr_t a = s; a < e; a = ALIGN_DOWN(a, PMD_SIZE) + PMD_SIZE) {
		uintptr_t ae = MIN(ALIGN_DOWN(a, PMD_SIZE) + PMD_SIZE, e), run = 0;
		int run_prot = 0;

		if (!extent_used(r, a))
			continue;
		lock_range(r, a, ae);
		for (uintptr_t p = a; p <= ae; p += PAGE_SIZE) {
			uint64_t v = p < ae ? locked_val(r, p) : 0;
			bool mapped = pte_state(v) == PTE_RESIDENT && pte_prot(v);
			int want = page_clean_copy(r, v) ? prot & ~EMM_PROT_WRITE : prot;

			if (run && (!mapped || want != run_prot)) {
				int err = app_protect(r, run, p, run_prot, true);

				ret = ret ? ret : err;
				run = 0;
			}
			if (mapped && !run) {
				run = p;
				run_prot = want;
			}
		}
		unlock_untouched(r, a, ae);
	}
	return ret;
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
	int err = make_resident(r, vma, s, e);

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
