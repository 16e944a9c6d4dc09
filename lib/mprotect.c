/* SPDX-License-Identifier: MIT */
/* The app view's protection, and the kernel VMAs each protection run costs. */
#include <errno.h>
#include <sched.h>
#include <sys/mman.h>

#include "internal.h"

/* Kernel VMAs emm holds in this process: every instance, every view. */
static _Atomic long kvma_total;
static _Atomic long kvma_limit;

void kvma_global_add(long delta)
{
	atomic_fetch_add_explicit(&kvma_total, delta, memory_order_relaxed);
}

/* What emm may use of vm.max_map_count, leaving the application its share. */
static long kvma_process_limit(void)
{
	long lim = atomic_load_explicit(&kvma_limit, memory_order_relaxed);

	if (!lim) {
		long max = (long)sys_max_map_count();

		lim = MAX(max - MAX(4096, max / 8), 64);
		atomic_store_explicit(&kvma_limit, lim, memory_order_relaxed);
	}
	return lim;
}

/* Async-signal-safe. Would delta more kernel VMAs stay within budget? */
static bool kvma_fits(const struct emm *mm, long delta)
{
	long mine = atomic_load_explicit(&mm->c.kernel_vmas, memory_order_relaxed);

	if (delta <= 0)
		return true;
	if (mm->cfg.max_kernel_vmas && mine + delta > (long)mm->cfg.max_kernel_vmas)
		return false;
	return atomic_load_explicit(&kvma_total, memory_order_relaxed) + delta <=
	       kvma_process_limit();
}

/* Async-signal-safe. */
int prot_to_sys(int prot)
{
	return (prot & EMM_PROT_READ ? PROT_READ : 0) |
	       (prot & EMM_PROT_WRITE ? PROT_READ | PROT_WRITE : 0) |
	       (prot & EMM_PROT_EXEC ? PROT_READ | PROT_EXEC : 0);
}

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

/* Async-signal-safe. Store prot in the PTEs of [start, end), keeping their
 * other bits; the caller holds their locks. */
void app_set_prot(struct rsv *r, uintptr_t start, uintptr_t end, int prot)
{
	size_t a = (start - r->start) >> PAGE_SHIFT, b = (end - r->start) >> PAGE_SHIFT;

	for (size_t i = a; i < b; i++) {
		atomic_fetch_and_explicit(&r->pte[i], ~PTE_MAP_MASK, memory_order_relaxed);
		atomic_fetch_or_explicit(&r->pte[i], (uint64_t)prot << PTE_MAP_SHIFT,
					 memory_order_relaxed);
	}
}

/*
 * Async-signal-safe. Give [start, end) of the app view protection prot
 * (EMM_PROT_*); the caller holds the PTE locks of the range. -EAGAIN when
 * the change would take emm past its kernel-VMA budget (the caller should
 * coalesce; force goes ahead anyway), -ENOMEM when the kernel refused.
 */
int app_protect(struct rsv *r, uintptr_t start, uintptr_t end, int prot, bool force)
{
	size_t a = (start - r->start) >> PAGE_SHIFT, b = (end - r->start) >> PAGE_SHIFT;
	struct emm *mm = r->mm;
	long delta;

	if (mm->uffd)
		return uffd_protect(r, start, end, prot);	/* no kernel VMA per run */
	mutex_lock(&r->prot_lock);
	delta = runs_delta(r, a, b, prot);
	if (!force && !kvma_fits(mm, delta)) {
		mutex_unlock(&r->prot_lock);
		return -EAGAIN;
	}
	if (mprotect((void *)start, end - start, prot_to_sys(prot)) < 0) {
		int err = errno;

		mutex_unlock(&r->prot_lock);
		return -err;
	}
	app_set_prot(r, start, end, prot);
	atomic_fetch_add_explicit(&r->kvmas, delta, memory_order_relaxed);
	atomic_fetch_add_explicit(&mm->c.kernel_vmas, delta, memory_order_relaxed);
	kvma_global_add(delta);
	mutex_unlock(&r->prot_lock);
	return 0;
}

/* Async-signal-safe. Every signal but the synchronous faults: blocking a
 * fault would make the kernel kill the process when one happens. */
void sig_fill_async(sigset_t *set)
{
	sigfillset(set);
	sigdelset(set, SIGSEGV);
	sigdelset(set, SIGBUS);
}

/* Block every asynchronous signal, so no handler runs while emm holds a
 * PTE or protection lock. */
void sig_block(sigset_t *old)
{
	sigset_t all;

	sig_fill_async(&all);
	pthread_sigmask(SIG_BLOCK, &all, old);
}

void sig_restore(const sigset_t *old)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
}
