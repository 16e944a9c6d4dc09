/* SPDX-License-Identifier: MIT */
/* A fault's locked range made resident and mapped (map_locked, map_written),
 * the holes of an empty extent about to be huge (fresh_holes), and near the
 * kernel-VMA budget, a coalesced cluster around a fault. */
#include <errno.h>

#include "backend.h"
#include "fault_map.h"
#include "huge_memory.h"
#include "memory.h"
#include "physmem.h"
#include "pte.h"
#include "util.h"
#include "vma.h"

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

/* Async-signal-safe. BACKEND_HOLES when make_resident will leave some page
 * of the locked [s, e) a hole in physmem: a never-touched anonymous one;
 * BACKEND_ZERO too when it will leave all of them so. */
static unsigned range_holes(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e)
{
	unsigned n = 0;

	if (vma_backed(vma))
		return 0;
	for (uintptr_t a = s; a < e; a += PAGE_SIZE)
		n += pte_state(locked_val(r, a)) == PTE_NONE;
	return n == (e - s) >> PAGE_SHIFT ? BACKEND_HOLES | BACKEND_ZERO : n ? BACKEND_HOLES : 0;
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
	unsigned flags = force ? BACKEND_FORCE : 0;

	if (!range_has_copies(r, s, e)) {
		flags |= range_holes(r, vma, s, e);
		err = make_resident(r, vma, s, e, EMM_PROT_NONE);
		return err ? err : backend_set_prot(r, s, e, prot, flags);
	}
	err = backend_revoke(r, s, e, BACKEND_FORCE);
	if (!err) {
		flags |= range_holes(r, vma, addr, addr + PAGE_SIZE);
		err = make_resident(r, vma, addr, addr + PAGE_SIZE, EMM_PROT_NONE);
	}
	if (!err)
		err = backend_set_prot(r, addr, addr + PAGE_SIZE,
				       page_want(r, locked_val(r, addr), prot, access), flags);
	return err;
}

/*
 * Async-signal-safe. Near the kernel-VMA budget: coalesce a whole aligned
 * cluster around addr (growing until it fits) so that runs merge instead
 * of multiplying. No PTE lock is held on entry or on exit. 0 when the page
 * at addr is mapped for access, else -errno.
 */
int coalesce(struct rsv *r, const struct emm_vma *vma, uintptr_t addr, int access)
{
	static const unsigned shifts[] = { PMD_SHIFT, PMD_SHIFT + 4, PMD_SHIFT + 9, 63 };
	int err = -EAGAIN;

	addr = ALIGN_DOWN(addr, PAGE_SIZE);
	for (size_t k = 0; k < ARRAY_SIZE(shifts) && err == -EAGAIN; k++) {
		uintptr_t sz = (uintptr_t)1 << MIN(shifts[k], 62);
		uintptr_t s = MAX(ALIGN_DOWN(addr, sz), vma->start);
		uintptr_t e = MIN(ALIGN_DOWN(addr, sz) + sz, vma->end);

		if (shifts[k] == 63)
			s = vma->start, e = vma->end;
		lock_range(r, s, e);
		err = coalesce_step(r, vma, s, e, addr, access, k + 1 == ARRAY_SIZE(shifts));
		if (!err) {
			unlock_range(r, s, e, access, 0);
			return 0;
		}
		unmake_fresh(r, s, e);
		unlock_range(r, s, e, 0, 0);
	}
	return err;
}

/* Async-signal-safe. Give the locked [s, e) physmem and map it; on
 * failure everything is unlocked again and the error returned. */
int map_locked(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e, int prot)
{
	unsigned holes = range_holes(r, vma, s, e);
	int err = make_resident(r, vma, s, e, prot);

	if (!err)
		err = backend_set_prot(r, s, e, prot, holes);
	if (err) {
		unmake_fresh(r, s, e);
		unlock_range(r, s, e, 0, 0);
	}
	return err;
}

/* Async-signal-safe. After map_locked mapped [s, e) without write, give
 * the written page write access; on failure unlock the range, as a failed
 * map_locked does. */
int map_written(struct rsv *r, uintptr_t s, uintptr_t e, uintptr_t addr, int prot)
{
	int err = backend_set_prot(r, addr, addr + PAGE_SIZE, prot, 0);

	if (err)
		unlock_range(r, s, e, 0, 0);
	return err;
}

/*
 * Async-signal-safe. Lock the page n after an extent about to be made
 * fresh on a backend that takes that page out of the registration
 * meanwhile (backend_ops.huge_fresh), if a touch the kernel serves by
 * itself then loses nothing: true when n is outside any VMA or in one the
 * kernel maps without access (the touch faults as before), resident and
 * mapped with write, or never touched in an anonymous VMA (the kernel
 * gives a touch a page of zeros, which thp_fresh_adopt takes in). Else
 * false, n unlocked: a page swapped out would read as zeros, a clean copy
 * mapped without write would be written with no write-protect fault.
 */
static bool thp_fresh_next(struct rsv *r, uintptr_t n)
{
	const struct emm_vma *vn = find_vma(r, n);
	uint64_t v;

	if (!pte_trylock(pte_of(r, n), &v))
		return false;
	if (!vn || vn->policy == EMM_POLICY_GUARD || vn->prot == EMM_PROT_NONE ||
	    (pte_state(v) == PTE_RESIDENT && (pte_prot(v) & EMM_PROT_WRITE)) ||
	    (pte_state(v) == PTE_NONE && !vma_backed(vn)))
		return true;
	pte_unlock(pte_of(r, n), v);
	return false;
}

/*
 * Async-signal-safe. The never-touched page n, locked, was out of the
 * registration a moment (thp_fresh_next): if a thread touched it
 * meanwhile, the kernel gave it a page of zeros, which the thread may
 * have written: emm takes that page in as n's and maps it. Then unlock n.
 */
static void thp_fresh_adopt(struct rsv *r, uintptr_t n)
{
	const struct emm_vma *vn = find_vma(r, n);

	if (vn && pte_state(locked_val(r, n)) == PTE_NONE && physmem_has_page(r, n) &&
	    map_locked(r, vn, n, n + PAGE_SIZE, target_prot(vn)))
		return;		/* unlocked */
	unlock_range(r, n, n + PAGE_SIZE, 0, 0);
}

/*
 * Async-signal-safe. The holes backend_grant must fill in the empty extent
 * at a (all its PTEs locked): none when its physmem could be made one huge
 * page of zeros first, which the collapse then maps with no copy (an
 * anonymous VMA; a file's or a pager's pages were read in already).
 */
unsigned fresh_holes(struct rsv *r, const struct emm_vma *vma, uintptr_t a)
{
	uintptr_t n = a + PMD_SIZE;
	bool next = r->mm->backend->id != EMM_BACKEND_SIGNAL && n < r->start + r->len;
	int err;

	if (vma_backed(vma) || !r->mm->backend->huge_fresh || (next && !thp_fresh_next(r, n)))
		return BACKEND_HOLES;
	err = backend_huge_fresh(r, a, huge_fresh_zeros);
	if (next)
		thp_fresh_adopt(r, n);
	return err ? BACKEND_HOLES : 0;
}
