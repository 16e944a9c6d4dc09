/* SPDX-License-Identifier: MIT */
/* emm_protect: new protections for VMAs and for the pages mapped in them. */
#include <errno.h>

#include "backend.h"
#include "huge_memory.h"
#include "memory.h"
#include "pte.h"
#include "util.h"
#include "range.h"
#include "vma.h"

/*
 * New protection for the resident pages of [s, e) after emm_protect
 * changed their VMAs: runs of pages get it at once (clean swap-cache pages
 * without write, so their first write is still seen). Signals blocked.
 */
static int change_range_prot(struct rsv *r, uintptr_t s, uintptr_t e, int prot)
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
				int err = backend_set_prot(r, run, p, run_prot, BACKEND_FORCE);

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

/* Write access to a FILE VMA needs a descriptor it can write back through. */
static int check_writable(struct rsv *r, const struct emm_vma *v, void *arg)
{
	(void)r;
	return v->file && (*(int *)arg & EMM_PROT_WRITE) && !v->file->writable ? -EACCES : 0;
}

/* The backend learns each changed VMA's protection (a guard VMA's is none). */
static int vma_protect_one(struct rsv *r, const struct emm_vma *v, void *arg)
{
	(void)arg;
	return backend_vma_protect(r, v->start, v->end, target_prot(v));
}

static int protect_range(struct rsv *r, uintptr_t s, uintptr_t e, void *arg)
{
	int prot = prot_implied(*(int *)arg), err = walk_vmas(r, s, e, check_writable, &prot);

	if (err)
		return err;
	thp_split_range(r, s, e, false);
	err = vma_change(r, s, e, &(struct vma_change){ prot, 0, 0 });
	/* Once more: the promotion scanner may have collapsed an extent
	 * again before the VMAs changed; now none can be (vma_thp_allowed). */
	thp_split_range(r, s, e, false);
	if (!err)
		err = walk_vmas(r, s, e, vma_protect_one, NULL);
	return err ? err : change_range_prot(r, s, e, prot);
}

EMM_API int emm_protect(struct emm *mm, void *addr, size_t len, int prot)
{
	if (mm && (prot & ~(EMM_PROT_READ | EMM_PROT_WRITE | EMM_PROT_EXEC)))
		return -EINVAL;
	if (in_trap_callback())
		return -EDEADLK;
	return with_range(mm, addr, len, protect_range, &prot);
}
