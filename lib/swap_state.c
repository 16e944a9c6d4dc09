/* SPDX-License-Identifier: MIT */
/* Swap readahead: the window a swap-in reads, along a stream or around a fault. */
#include "internal.h"
#include "swap_state.h"
#include "vma.h"

#define SWAP_RA_MIN	32	/* swap-in readahead window, in pages: it starts */
#define SWAP_RA_MAX	64	/* here and doubles along a stream up to here */
#define SWAP_CLUSTER	8	/* read-around of a swap-in outside a stream */

/*
 * Async-signal-safe. Read around a swap-in outside a stream? The kernel
 * reads a cluster of neighbours at every swap-in and sizes it by how many
 * of the last ones were used; emm does the same, by the counts of this
 * reservation: the pages read around are left unmapped (PTE_RA), so that
 * their first touch, a minor fault, says the read was worth it. A swap-in
 * near the last one (same 64 KiB) tries a cluster even when the counts
 * say no, so a program that turns local again is seen; reads at random
 * over a large region are never near each other and read one page.
 * RA_MAP when the cluster pays so well (7 pages in 8 touched) that its
 * pages are mapped at once, saving the minor faults: one time in four
 * they are not, to keep the count.
 */
static int swap_cluster(struct rsv *r, uintptr_t addr)
{
	uint32_t read = atomic_load_explicit(&r->ra_read, memory_order_relaxed);
	uint32_t hits = atomic_load_explicit(&r->ra_hits, memory_order_relaxed);
	uintptr_t last = atomic_exchange_explicit(&r->ra_last, addr, memory_order_relaxed);
	bool near = ALIGN_DOWN(addr, 16 * PAGE_SIZE) == ALIGN_DOWN(last, 16 * PAGE_SIZE);

	if (read >= 64 && 8 * hits >= 7 * read &&
	    atomic_fetch_add_explicit(&r->clean_seq, 1, memory_order_relaxed) % 4)
		return RA_MAP;
	return (read >= 64 && 2 * hits >= read) || near ? RA_UNMAPPED : RA_NONE;
}

/*
 * Async-signal-safe. The readahead window of a swap-in at addr: forward
 * when it continues the last window upwards, backward when it continues it
 * downwards (or always forward under EMM_ADV_SEQUENTIAL), none under
 * EMM_ADV_RANDOM; otherwise the aligned cluster around it when
 * swap_cluster says so (*ra).
 */
void swap_readahead(struct rsv *r, const struct emm_vma *vma, uintptr_t addr,
			   uintptr_t *lo, uintptr_t *hi, int *ra)
{
	uintptr_t last_lo = atomic_load_explicit(&r->ra_lo, memory_order_relaxed);
	uintptr_t last_hi = atomic_load_explicit(&r->ra_hi, memory_order_relaxed);
	uintptr_t n = MIN(MAX(2 * (last_hi - last_lo), SWAP_RA_MIN << PAGE_SHIFT),
			  SWAP_RA_MAX << PAGE_SHIFT);

	*lo = addr;
	*hi = addr + PAGE_SIZE;
	*ra = RA_NONE;
	if (vma->flags & VMA_RANDOM)
		return;
	if ((vma->flags & VMA_SEQUENTIAL) || (addr >= last_hi && addr - last_hi < 4 * PAGE_SIZE))
		*hi = MIN(addr + n, vma->end);
	else if (addr < last_lo && last_lo - addr <= 4 * PAGE_SIZE)
		*lo = MAX(addr + PAGE_SIZE - n, vma->start);
	else if ((*ra = swap_cluster(r, addr)) != RA_NONE) {
		*lo = MAX(ALIGN_DOWN(addr, SWAP_CLUSTER * PAGE_SIZE), vma->start);
		*hi = MIN(ALIGN_DOWN(addr, SWAP_CLUSTER * PAGE_SIZE) + SWAP_CLUSTER * PAGE_SIZE,
			  vma->end);
	}
}
