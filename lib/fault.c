/* SPDX-License-Identifier: MIT */
/* The fault path shared by the backends: PTE states, fault-around, coalescing. */
#include <errno.h>
#include <sys/mman.h>

#include "internal.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

/* Async-signal-safe. Page index of addr in r. */
static size_t pidx(const struct rsv *r, uintptr_t addr)
{
	return (addr - r->start) >> PAGE_SHIFT;
}

/* Async-signal-safe. The word of a page whose lock the caller holds. */
static uint64_t locked_val(struct rsv *r, size_t i)
{
	return atomic_load_explicit(&r->pte[i], memory_order_relaxed) &
	       ~(PTE_LOCKED | PTE_WAITERS);
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
static void lock_range(struct rsv *r, uintptr_t s, uintptr_t e)
{
	for (uintptr_t a = s; a < e; a += PAGE_SIZE)
		pte_lock(pte_of(r, a));
}

/*
 * Async-signal-safe. Unlock [s, e), turning never-touched pages into
 * resident ones (they are mapped now) and marking them referenced; dirty
 * when written. Returns how many pages became resident.
 */
static long unlock_range(struct rsv *r, uintptr_t s, uintptr_t e, int access, uint64_t set)
{
	long fresh = 0;

	for (uintptr_t a = s; a < e; a += PAGE_SIZE) {
		size_t i = pidx(r, a);
		uint64_t old = locked_val(r, i), val = old;

		if (pte_prot(val) != EMM_PROT_NONE) {
			if (pte_state(val) == PTE_NONE) {
				val = pte_mk(val, PTE_RESIDENT, pte_prot(val));
				fresh++;
			}
			val |= PTE_REFERENCED | set;
			if ((access & EMM_PROT_WRITE) && (pte_prot(val) & EMM_PROT_WRITE))
				val |= PTE_DIRTY;
		}
		pte_set_used(r, a, old, val);
		pte_unlock(&r->pte[i], val);
	}
	if (fresh) {
		atomic_fetch_add_explicit(&r->resident, fresh, memory_order_relaxed);
		count_events(r->mm, resident_pages, (uint64_t)fresh);
	}
	return fresh;
}

/* Async-signal-safe. Unlock [s, e) leaving every word as it is. */
static void unlock_untouched(struct rsv *r, uintptr_t s, uintptr_t e)
{
	for (uintptr_t a = s; a < e; a += PAGE_SIZE)
		pte_unlock(pte_of(r, a), locked_val(r, pidx(r, a)));
}

/* Async-signal-safe. The protection a page of vma gets when mapped. */
static int target_prot(const struct emm_vma *vma)
{
	return vma->policy == EMM_POLICY_GUARD ? EMM_PROT_NONE : vma->prot;
}

/* Async-signal-safe. Let the kernel fill the page tables of a fresh cluster
 * in one call rather than one trap per page. */
static void populate(uintptr_t s, uintptr_t e, int prot)
{
	if (e - s > PAGE_SIZE)
		madvise((void *)s, e - s, (prot & EMM_PROT_WRITE) ? MADV_POPULATE_WRITE
								 : MADV_POPULATE_READ);
}

/*
 * Async-signal-safe. The fault-around window around the locked page at
 * addr: never-touched neighbours inside the VMA that we can lock now,
 * within the aligned group of fault_around pages.
 */
static void fault_around(struct rsv *r, const struct emm_vma *vma, uintptr_t addr,
			 uintptr_t *sp, uintptr_t *ep)
{
	uintptr_t n = (uintptr_t)r->mm->cfg.fault_around << PAGE_SHIFT;
	uintptr_t lo = MAX(ALIGN_DOWN(addr, n), vma->start);
	uintptr_t hi = MIN(ALIGN_DOWN(addr, n) + n, vma->end);
	uintptr_t s = addr, e = addr + PAGE_SIZE;
	uint64_t old;

	while (e < hi && pte_trylock(pte_of(r, e), &old)) {
		if (pte_state(old) != PTE_NONE) {
			pte_unlock(pte_of(r, e), old);
			break;
		}
		e += PAGE_SIZE;
	}
	while (s > lo && pte_trylock(pte_of(r, s - PAGE_SIZE), &old)) {
		if (pte_state(old) != PTE_NONE) {
			pte_unlock(pte_of(r, s - PAGE_SIZE), old);
			break;
		}
		s -= PAGE_SIZE;
	}
	*sp = s;
	*ep = e;
}

/*
 * Async-signal-safe. Near the kernel-VMA budget: map a whole aligned
 * cluster around addr (growing until it fits) so that runs merge instead
 * of multiplying. No PTE lock is held on entry.
 */
static int coalesce(struct rsv *r, const struct emm_vma *vma, uintptr_t addr, int access)
{
	static const unsigned shifts[] = { PMD_SHIFT, PMD_SHIFT + 4, PMD_SHIFT + 9, 63 };
	int prot = target_prot(vma);

	for (size_t k = 0; k < ARRAY_SIZE(shifts); k++) {
		uintptr_t sz = (uintptr_t)1 << shifts[k];
		uintptr_t s = MAX(ALIGN_DOWN(addr, sz), vma->start);
		uintptr_t e = MIN(ALIGN_DOWN(addr, sz) + sz, vma->end);
		int err;

		if (shifts[k] == 63)
			s = vma->start, e = vma->end;
		lock_range(r, s, e);
		err = app_protect(r, s, e, prot, k + 1 == ARRAY_SIZE(shifts));
		if (!err) {
			unlock_range(r, s, e, access, 0);
			return FAULT_DONE;
		}
		unlock_untouched(r, s, e);
		if (err != -EAGAIN)
			return FAULT_SIGBUS;
	}
	return FAULT_SIGBUS;
}

/* Async-signal-safe. A never-touched page: map it and its neighbours. */
static int do_anonymous_page(struct rsv *r, const struct emm_vma *vma, uintptr_t addr,
			     int access)
{
	int prot = target_prot(vma);
	uintptr_t s, e;
	int err;

	fault_around(r, vma, addr, &s, &e);
	err = app_protect(r, s, e, prot, false);
	if (err) {
		unlock_untouched(r, s, e);
		return coalesce(r, vma, addr, access);
	}
	populate(s, e, prot);
	unlock_range(r, s, e, access, 0);
	count_event(r->mm, faults_zero);
	return FAULT_DONE;
}

/* Async-signal-safe. A resident page the app view does not (fully) map. */
static int do_resident_page(struct rsv *r, const struct emm_vma *vma, uintptr_t addr,
			    int access, uint64_t val)
{
	int prot = target_prot(vma);
	int err;

	if (prot_allows(pte_prot(val), access) && pte_prot(val) == prot) {
		pte_unlock(pte_of(r, addr), val);	/* raced with another fault */
		return FAULT_DONE;
	}
	err = app_protect(r, addr, addr + PAGE_SIZE, prot, false);
	if (err) {
		pte_unlock(pte_of(r, addr), locked_val(r, pidx(r, addr)));
		return coalesce(r, vma, addr, access);
	}
	if (pte_prot(val) == EMM_PROT_NONE)
		count_event(r->mm, faults_minor);
	else
		count_event(r->mm, faults_wp);
	unlock_range(r, addr, addr + PAGE_SIZE, access, 0);
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
		return do_anonymous_page(r, vma, addr, access);
	case PTE_RESIDENT:
		return do_resident_page(r, vma, addr, access, val);
	default:
		pte_unlock(pte_of(r, addr), val);
		return FAULT_SIGBUS;
	}
}

/*
 * Make [s, e) of one VMA resident and mapped for access, a PMD-sized
 * chunk at a time. Signals blocked, mm->lock held.
 */
int prefault_range(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e,
		   int access, bool pin)
{
	int prot = target_prot(vma);

	for (uintptr_t c = s; c < e;) {
		uintptr_t ce = MIN(ALIGN_DOWN(c, PMD_SIZE) + PMD_SIZE, e);
		int err;

		lock_range(r, c, ce);
		err = app_protect(r, c, ce, prot, true);
		if (err) {
			unlock_untouched(r, c, ce);
			return err;
		}
		populate(c, ce, prot);
		unlock_range(r, c, ce, access, pin ? PTE_PINNED : 0);
		c = ce;
	}
	return 0;
}

/* Async-signal-safe. Does the extent hold any page that is not PTE_NONE? */
static bool extent_used(struct rsv *r, uintptr_t a)
{
	return atomic_load_explicit(&extent_of(r, a)->used, memory_order_relaxed) != 0;
}

/*
 * Drop every page of [s, e): the app view loses access, physmem gives the
 * memory back, the PTEs return to never-touched. No fault can be in the
 * range (its VMAs are gone and synchronize_srcu has run). Signals blocked.
 */
void zap_range(struct rsv *r, uintptr_t s, uintptr_t e, bool revoke)
{
	long freed = 0;

	if (revoke)
		for (uintptr_t a = s; a < e; a = ALIGN_DOWN(a, PMD_SIZE) + PMD_SIZE) {
			uintptr_t ae = MIN(ALIGN_DOWN(a, PMD_SIZE) + PMD_SIZE, e);

			if (!extent_used(r, a))
				continue;
			lock_range(r, a, ae);
			app_protect(r, a, ae, EMM_PROT_NONE, true);
			unlock_untouched(r, a, ae);
		}
	physmem_punch(r, s, e - s);
	for (uintptr_t a = s; a < e; a += PAGE_SIZE) {
		_Atomic uint64_t *p = pte_of(r, a);
		uint64_t old;

		if (IS_ALIGNED(a, PMD_SIZE) && !extent_used(r, a)) {
			a = MIN(a + PMD_SIZE, e) - PAGE_SIZE;
			continue;
		}
		old = pte_lock(p);
		if (pte_state(old) == PTE_RESIDENT)
			freed++;
		pte_set_used(r, a, old, 0);
		pte_unlock(p, 0);
	}
	atomic_fetch_sub_explicit(&r->resident, freed, memory_order_relaxed);
	count_events(r->mm, resident_pages, -(uint64_t)freed);
}

/*
 * New protection for the mapped pages of [s, e) after emm_protect changed
 * their VMAs: each run of mapped pages gets prot at once. Signals blocked.
 */
int change_range_prot(struct rsv *r, uintptr_t s, uintptr_t e, int prot)
{
	int ret = 0;

	for (uintptr_t a = s; a < e; a = ALIGN_DOWN(a, PMD_SIZE) + PMD_SIZE) {
		uintptr_t ae = MIN(ALIGN_DOWN(a, PMD_SIZE) + PMD_SIZE, e);
		uintptr_t run = 0;

		if (!extent_used(r, a))
			continue;
		lock_range(r, a, ae);
		for (uintptr_t p = a; p <= ae; p += PAGE_SIZE) {
			bool mapped = p < ae && pte_state(locked_val(r, pidx(r, p))) == PTE_RESIDENT;

			if (mapped && !run)
				run = p;
			if (!mapped && run) {
				int err = app_protect(r, run, p, prot, true);

				ret = ret ? ret : err;
				run = 0;
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
