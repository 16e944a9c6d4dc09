/* SPDX-License-Identifier: MIT */
/*
 * The signal backend: the app view is PROT_NONE where a page is not mapped,
 * access is granted with mprotect, and a fault arrives at the process-wide
 * handler (sighand.c).
 */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "physmem.h"
#include "pte.h"
#include "util.h"
#include "vma.h"

/* Async-signal-safe. The app-view protection of page i (i in pages). */
static int prot_at(struct rsv *r, size_t i)
{
	return pte_prot(atomic_load_explicit(&r->pte[i], memory_order_relaxed));
}

/* Async-signal-safe. Boundaries between different protections in [a-1, b]. */
static long runs_delta(struct rsv *r, size_t a, size_t b, int prot)
{
	size_t n = r->len >> PAGE_SHIFT;
	long before = 0, after = 0;

	for (size_t i = a ? a : 1; i <= b && i < n; i++)
		before += prot_at(r, i - 1) != prot_at(r, i);
	if (a > 0)
		after += prot_at(r, a - 1) != prot;
	if (b < n)
		after += prot_at(r, b) != prot;
	return after - before;
}

/* Async-signal-safe. Would delta more kernel VMAs stay within budget? */
static bool kvma_fits(const struct emm *mm, long delta)
{
	long mine = atomic_load_explicit(&mm->c.kernel_vmas, memory_order_relaxed);

	if (delta <= 0)
		return true;
	if (mm->cfg.max_kernel_vmas && mine + delta > (long)mm->cfg.max_kernel_vmas)
		return false;
	return kvma_global() + delta <= kvma_process_limit();
}

/*
 * Async-signal-safe. Give [start, end) of the app view protection prot
 * (EMM_PROT_*); the caller holds the PTE locks of the range. Every
 * protection boundary is a kernel VMA: -EAGAIN when the change would take
 * emm past its budget (BACKEND_FORCE goes ahead anyway), -ENOMEM when the
 * kernel refused. prot_lock keeps the neighbours' protections, which
 * runs_delta reads, from changing under it.
 */
static int app_protect(struct rsv *r, uintptr_t start, uintptr_t end, int prot, unsigned flags)
{
	size_t a = (start - r->start) >> PAGE_SHIFT, b = (end - r->start) >> PAGE_SHIFT;
	long delta;

	mutex_lock(&r->prot_lock);
	delta = runs_delta(r, a, b, prot);
	if (!(flags & BACKEND_FORCE) && !kvma_fits(r->mm, delta)) {
		mutex_unlock(&r->prot_lock);
		return -EAGAIN;
	}
	if (mprotect((void *)start, end - start, prot_to_sys(prot)) < 0) {
		int err = errno;

		mutex_unlock(&r->prot_lock);
		return -err;
	}
	backend_set_pte_prot(r, start, end, prot);
	if (delta)	/* a run that grows by a page: most faults */
		kvma_add(r, delta);
	mutex_unlock(&r->prot_lock);
	return 0;
}

/* Async-signal-safe. PTE locks of [s, e) held on entry and exit. */
static int signal_grant(struct rsv *r, uintptr_t s, uintptr_t e, int prot, unsigned flags)
{
	return app_protect(r, s, e, prot, flags);
}

/* Async-signal-safe. PTE locks of [s, e) held on entry and exit. */
static int signal_revoke(struct rsv *r, uintptr_t s, uintptr_t e, unsigned flags)
{
	return app_protect(r, s, e, EMM_PROT_NONE, flags);
}

/* Async-signal-safe. PTE locks of [s, e) held. One call fills the page
 * tables of a fresh cluster rather than one trap per page. */
static void signal_populate(struct rsv *r, uintptr_t s, uintptr_t e, int prot)
{
	(void)r;
	if (e - s > PAGE_SIZE)
		madvise((void *)s, e - s, (prot & EMM_PROT_WRITE) ? MADV_POPULATE_WRITE
								 : MADV_POPULATE_READ);
}

/* mm->lock held. Pages are granted one by one: a VMA's protection reaches
 * the app view when its pages are (re)granted. */
static int signal_vma_protect(struct rsv *r, uintptr_t s, uintptr_t e, int prot)
{
	(void)r, (void)s, (void)e, (void)prot;
	return 0;
}

/* mm->lock held. The app view starts PROT_NONE: one kernel VMA. */
static int signal_view_create(struct rsv *r)
{
	return physmem_map_app_view(r);
}

/* mm->lock held; no fault can be running in r. */
static void signal_view_destroy(struct rsv *r)
{
	if (!r->start)
		return;
	munmap((void *)r->start, r->len);
	kvma_add(r, -atomic_load_explicit(&r->kvmas, memory_order_relaxed));
}

static int signal_open(struct emm *mm)
{
	(void)mm;
	return backend_signal_get();
}

static void signal_close(struct emm *mm)
{
	(void)mm;
	backend_signal_put();
}

/* Async-signal-safe. backend_ops.huge_fresh: nothing maps the extent
 * meanwhile (its pages are not granted yet): make runs as it is. */
static int signal_huge_fresh(struct rsv *r, uintptr_t a, int (*make)(struct rsv *r, uintptr_t a))
{
	return make(r, a);
}

const struct backend_ops backend_signal_ops = {
	.name = "signal",
	.id = EMM_BACKEND_SIGNAL,
	.fault_signal = SIGSEGV,
	.open = signal_open,
	.close = signal_close,
	.view_create = signal_view_create,
	.view_destroy = signal_view_destroy,
	.grant = signal_grant,
	.revoke = signal_revoke,
	.populate = signal_populate,
	.vma_protect = signal_vma_protect,
	.huge_fresh = signal_huge_fresh,
};
