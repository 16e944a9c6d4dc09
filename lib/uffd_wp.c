/* SPDX-License-Identifier: MIT */
/* Asynchronous write-protection on the userfaultfd backends: which pages mapped read-only were written, read from /proc/self/pagemap. */
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "pte.h"
#include "uffd.h"
#include "uffd_wp.h"

#define HARVEST_CHUNK	64		/* pagemap entries read per pread(2) */
#define PM_PRESENT	(1ULL << 63)

/* Async-signal-safe. Could the locked page have been written unseen? It
 * is clean as far as emm knows and mapped without write access. */
static inline bool wp_unseen(uint64_t v)
{
	int prot = pte_prot(v);

	return pte_state(v) == PTE_RESIDENT && !(v & PTE_DIRTY) && prot != EMM_PROT_NONE &&
	       !(prot & EMM_PROT_WRITE);
}

/*
 * Async-signal-safe; PTE locks of [s, e) held on entry and exit (uffd: the
 * userfaultfd; fd: /proc/self/pagemap, or -1: nothing to do). With
 * asynchronous write-protection the kernel lets a write to a page mapped
 * without write access through, with no fault, and clears the page's
 * uffd-wp bit (pagemap bit 57; a zap keeps the bit of an unwritten page in
 * a marker). Each page emm maps read-only whose bit is clear becomes dirty,
 * as from an MMU's dirty bit; one still mapped is write-protected again, so
 * that the kernel maps it as its PTE says (read-only), and a later write
 * is seen again. A page the kernel dropped by itself left no marker either:
 * dirty too, to be safe (it costs a write to swap). Anonymous ones count as
 * clean pages written, for swap_predict_write, as a write fault would: the
 * kernel's fault on such a write still costs 21 us on a 2-vCPU VM, against
 * 11 for the first touch of a page mapped writable, and Lua, which writes
 * most of what it reads, ran 10% slower with every clean page read-only.
 */
void wp_harvest(struct rsv *r, int uffd, int fd, uintptr_t s, uintptr_t e)
{
	uint64_t pm[HARVEST_CHUNK];

	for (uintptr_t c = s; fd >= 0 && c < e; c += HARVEST_CHUNK * PAGE_SIZE) {
		uintptr_t ce = MIN(e, c + HARVEST_CHUNK * PAGE_SIZE), lo = 0, hi = 0;
		size_t len;

		for (uintptr_t a = c; a < ce; a += PAGE_SIZE)
			if (wp_unseen(pte_locked_val(pte_of(r, a)))) {
				lo = lo ? lo : a;
				hi = a + PAGE_SIZE;
			}
		if (!lo)
			continue;
		len = ((hi - lo) >> PAGE_SHIFT) * sizeof(pm[0]);
		if (pread(fd, pm, len, (off_t)((lo >> PAGE_SHIFT) * sizeof(pm[0]))) != (ssize_t)len)
			memset(pm, 0, len);	/* cannot be told: written */
		for (uintptr_t a = lo; a < hi; a += PAGE_SIZE) {
			uint64_t v = pte_locked_val(pte_of(r, a)), m = pm[(a - lo) >> PAGE_SHIFT];

			if (!wp_unseen(v) || (m & PM_UFFD_WP))
				continue;
			if (m & PM_PRESENT)	/* its PTE must say read-only again */
				uffd_wp(uffd, a, a + PAGE_SIZE, true);
			if (!(v & PTE_FILE))	/* swap_predict_write's sample */
				atomic_fetch_add_explicit(&r->clean_writes, 1, memory_order_relaxed);
			pte_set_locked(pte_of(r, a), v | PTE_DIRTY);
		}
	}
}

/* Async-signal-safe. Is the page at a mapped and write-protected still
 * (fd: /proc/self/pagemap), so that no write reached it since it was
 * protected? No, where that cannot be told. */
bool wp_still(int fd, uintptr_t a)
{
	uint64_t m;

	return pread(fd, &m, sizeof(m), (off_t)((a >> PAGE_SHIFT) * sizeof(m))) == sizeof(m) &&
	       (m & (PM_PRESENT | PM_UFFD_WP)) == (PM_PRESENT | PM_UFFD_WP);
}
