/* SPDX-License-Identifier: MIT */
/* Swap readahead: the window a swap-in reads, along a stream or around a
 * fault, whether its pages are mapped at once or writable, and the windows
 * the readahead threads read ahead of a stream. */
#include "huge_memory.h"
#include "internal.h"
#include "lru.h"
#include "memory.h"
#include "pte.h"
#include "readahead.h"
#include "swap_state.h"
#include "util.h"
#include "vma.h"

#define SWAP_RA_MIN	32	/* swap-in readahead window, in pages: it starts */
#define SWAP_RA_MAX	64	/* here and doubles along a stream up to here */
#define SWAP_CLUSTER	8	/* read-around of a swap-in outside a stream */
#define SWAP_RA_DEPTH	6	/* windows read ahead of a stream by the threads */
#define ZERO_RA_DEPTH	3	/* windows zeroed ahead of a first touch */
/* Zeroed ahead of a first touch, per window. The first touch of 256 MiB
 * on uffd-sigbus, a 2-vCPU VM: 1.34 to 1.40 times the kernel's with 2 MiB
 * windows, 1.24 to 1.33 with 512 KiB, 0.85 to 0.95 with one 2 MiB window
 * ahead instead of three; 512 KiB keeps what the program may never touch
 * to 1.5 MiB a stream. */
#define ZERO_RA_WINDOW	(512u << 10)

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
 * Async-signal-safe. How a window along a stream is read: mapped at once
 * (RA_STREAM, and the readahead threads read on ahead of it) while
 * reading ahead pays so well that proof of it costs more than it tells,
 * but for one window in 64 that keeps the count; else as a cluster is
 * (RA_UNMAPPED): the pages stay unmapped until touched, and a touch is a
 * reference, as the kernel's accessed bit would be. A page mapped at
 * once has no such proof: at its turn on the inactive list it is revoked
 * and needs a second touch to stay, which a program sweeping its heap
 * now and then never gives it. Python through libemm-preload.so under 64
 * MiB (uffd, 2-vCPU VM), six alternating pairs: 23.6 to 25.9 K pages
 * swapped in with every stream window mapped at once, 16.5 to 23.9 K so
 * (the kernel's swap in a cgroup: 13.5 to 14.9 K); about 3,500 more
 * minor faults, and as fast (2.96 to 3.80 s against 3.10 to 3.51). Lua
 * at 64 MiB and SQLite at 48 MiB swapped in as many either way. A stream
 * advised EMM_ADV_SEQUENTIAL is mapped at once. Sampling one window in 16
 * rather than 64 cost a stream read without the readahead threads a minor
 * fault for 6% of its pages.
 */
static int stream_kind(struct rsv *r)
{
	uint32_t read = atomic_load_explicit(&r->ra_read, memory_order_relaxed);
	uint32_t hits = atomic_load_explicit(&r->ra_hits, memory_order_relaxed);

	if (read >= 64 && 8 * hits >= 7 * read &&
	    atomic_fetch_add_explicit(&r->clean_seq, 1, memory_order_relaxed) % 64)
		return RA_STREAM;
	return RA_UNMAPPED;
}

/*
 * Async-signal-safe. Map the clean anonymous pages coming back from swap
 * writable (so dirty: their slot goes) instead of read-only? A read-only
 * clean page costs a second fault when written (a trap even where the kernel
 * lets it through, mm->wp_async); a writable one costs a write to swap when
 * evicted, though its data may not have changed. The kernel has neither
 * cost (the MMU's dirty bit); emm weighs them by what the pages of this
 * reservation did: when more than half of the clean pages mapped read-only
 * were written soon after (a heap whose collector marks what it reads, a
 * B-tree being filled), new ones are mapped writable. One decision in
 * eight still maps read-only, so the figure follows the program. */
bool swap_predict_write(struct rsv *r, const struct emm_vma *vma)
{
	uint32_t maps = atomic_load_explicit(&r->clean_maps, memory_order_relaxed);
	uint32_t writes = atomic_load_explicit(&r->clean_writes, memory_order_relaxed);

	if (vma_backed(vma) || maps < 64 || 2 * writes <= maps)
		return false;
	return atomic_fetch_add_explicit(&r->clean_seq, 1, memory_order_relaxed) % 8;
}

/* Async-signal-safe. n clean anonymous pages of a VMA with prot were
 * mapped read-only (dirty: or writable, by swap_predict_write): its
 * sample counts the read-only ones. */
void swap_note_clean(struct rsv *r, const struct emm_vma *vma, int prot, bool dirty, uint32_t n)
{
	if (!dirty && n && !vma_backed(vma) && (prot & EMM_PROT_WRITE))
		count_tries(&r->clean_maps, &r->clean_writes, n, 4096);
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
	if ((vma->flags & VMA_SEQUENTIAL) || (addr >= last_hi && addr - last_hi < 4 * PAGE_SIZE)) {
		*hi = MIN(addr + n, vma->end);
		*ra = (vma->flags & VMA_SEQUENTIAL) ? RA_STREAM : stream_kind(r);
	} else if (addr < last_lo && last_lo - addr <= 4 * PAGE_SIZE)
		*lo = MAX(addr + PAGE_SIZE - n, vma->start);
	else if ((*ra = swap_cluster(r, addr)) != RA_NONE) {
		*lo = MAX(ALIGN_DOWN(addr, SWAP_CLUSTER * PAGE_SIZE), vma->start);
		*hi = MIN(ALIGN_DOWN(addr, SWAP_CLUSTER * PAGE_SIZE) + SWAP_CLUSTER * PAGE_SIZE,
			  vma->end);
	}
}

/* Async-signal-safe. Is the window at a one of never-touched pages (of a
 * file, or to be zeroed), not of swapped ones? */
static bool window_none(struct rsv *r, const struct emm_vma *vma, uintptr_t a)
{
	return vma_backed(vma) ||
	       pte_state(atomic_load_explicit(pte_of(r, a), memory_order_relaxed)) == PTE_NONE;
}

/* Async-signal-safe. The most a window ahead of a stream may take, of
 * limit (ahead_limit): all the windows ahead an eighth of it
 * (ahead_window). */
static uint64_t ahead_cap(uint64_t limit)
{
	return limit / (8 * SWAP_RA_DEPTH);
}

/* Async-signal-safe. The budget, or the share of the node a's pages land on. */
static uint64_t ahead_limit(struct rsv *r, const struct emm_vma *vma, uintptr_t a)
{
	uint64_t share = (uint64_t)page_node_share(r, vma, a) << PAGE_SHIFT;

	return MIN(atomic_load_explicit(&r->mm->cfg.mem_limit, memory_order_relaxed), share);
}

/* Async-signal-safe. The window a readahead thread reads at a: of a file,
 * PMD_SIZE (what a fault maps at most along a stream: fault.c,
 * first_touch_window), as pread(2) of larger blocks runs faster;
 * ZERO_RA_WINDOW of never-touched anonymous pages; of swap, a 512th of
 * the budget, from SWAP_RA_MAX pages to PMD_SIZE: larger reads run
 * faster and cost fewer markers, but read more a program may not use
 * before reclaim takes it. Out-of-core sequential reads on uffd-sigbus
 * (1 GiB budget), 2-vCPU VM, second pass: 192 and 203 K pages/s with 2
 * MiB windows, 170 to 189 K with 1 MiB, 157 and 164 K with 256 KiB
 * (alternating runs); Lua under a 64 MiB budget swapped in 404 K and 424
 * K pages with 2 MiB windows, 376 K and 377 K with 256 KiB. All windows
 * ahead take at most an eighth of the budget, or of the share of the node
 * their pages land on: more, and reclaim would revoke what they read
 * before the program gets there, or the node would pass its share by what
 * the threads read at once. */
static uintptr_t ahead_window(struct rsv *r, const struct emm_vma *vma, uintptr_t a)
{
	uint64_t limit = ahead_limit(r, vma, a), cap = ahead_cap(limit);
	uintptr_t want = PMD_SIZE;
	bool zero = !vma_backed(vma) && window_none(r, vma, a);

	/* Where a window may be read as one huge page (readahead.c): whole
	 * extents, and up to the next one first. */
	if (!zero && cap >= PMD_SIZE && thp_stream_eligible(r, vma, ALIGN_UP(a, PMD_SIZE)))
		return IS_ALIGNED(a, PMD_SIZE) ? PMD_SIZE : ALIGN_UP(a, PMD_SIZE) - a;
	if (zero)
		want = ZERO_RA_WINDOW;
	else if (!vma_backed(vma))
		want = MIN(MAX(ALIGN_DOWN(limit / 512, SWAP_RA_MAX * PAGE_SIZE),
			       SWAP_RA_MAX * PAGE_SIZE),
			   PMD_SIZE);
	return MAX(MIN(want, ALIGN_DOWN(cap, PAGE_SIZE)), SWAP_CLUSTER * PAGE_SIZE);
}

/* Async-signal-safe. Of a window of n bytes of zeros at e, what lies
 * before the first empty extent that may be huge (huge_empty): 0 when e
 * starts one. */
static uintptr_t zeros_before_huge(struct rsv *r, const struct emm_vma *vma, uintptr_t e,
				   uintptr_t n)
{
	for (uintptr_t h = ALIGN_UP(e, PMD_SIZE); h < e + n; h += PMD_SIZE)
		if (huge_empty(r, vma, h))
			return h - e;
	return n;
}

/* Async-signal-safe. The depth windows of a stream after the one ending at
 * e, of never-touched pages (none) or swapped ones, for the readahead
 * threads to map prot (an anonymous VMA's zeroed pages: with the VMA's
 * own, as a first touch maps them), inside vma: those queued or read
 * already are not posted again (readahead_post). Returns the pages
 * queued. */
static unsigned post_after(struct rsv *r, const struct emm_vma *vma, uintptr_t e, int prot,
			   unsigned depth, bool none)
{
	bool zero = none && !vma_backed(vma);
	unsigned queued = 0;

	for (unsigned k = 0; k < depth && e < vma->end; k++) {
		uintptr_t n = MIN(ahead_window(r, vma, e), vma->end - e);

		/* A stream of zeros never runs into swap, nor one of swap into zeros. */
		if (window_none(r, vma, e) != none)
			break;
		/* Zeros only with room to spare (ra_read): else not even locked;
		 * but an empty extent that may be huge is made one huge page of
		 * zeros whole, on the signal backend (thp_stream_eligible): what
		 * the stream's own first touch would make a moment later,
		 * reclaiming if it must, on another CPU. */
		if (zero && huge_empty(r, vma, e) && thp_stream_eligible(r, vma, e) &&
		    ahead_cap(ahead_limit(r, vma, e)) >= PMD_SIZE)
			n = PMD_SIZE;
		else if (zero && !page_has_spare(r, vma, e, (long)(ZERO_RA_DEPTH * n >> PAGE_SHIFT)))
			break;
		else if (zero && (n = zeros_before_huge(r, vma, e, n)) == 0)
			break;
		queued += readahead_post(r, e, e + n, zero ? target_prot(vma) : prot, none);
		e += n;
	}
	return queued;
}

/* Async-signal-safe. A resident page on the LRU that nothing holds in memory. */
static bool droppable(uint64_t v)
{
	return pte_state(v) == PTE_RESIDENT && (v & PTE_LRU) && !(v & (PTE_REFERENCED | PTE_PINNED));
}

/*
 * Async-signal-safe; no PTE lock held on entry or exit (each page's is
 * tried, and a busy page skipped). A stream in a VMA advised
 * EMM_ADV_SEQUENTIAL has reached addr: the pages of the window behind it
 * that no fault touched since they were mapped go to the inactive list's
 * tail, to be evicted at their first turn there (PTE_COLD) -- "may be
 * freed soon after they are accessed", as madvise(2) says. A scan larger
 * than the budget then evicts what it has read, not the rest of memory,
 * and one that comes round again finds the part of it that stayed: 84
 * MiB read in order ten times under a 64 MiB budget (uffd, 2-vCPU VM)
 * swapped in 6.2 K pages a pass so, against 15.9 K without the advice.
 */
static void stream_drop_behind(struct rsv *r, const struct emm_vma *vma, uintptr_t addr)
{
	uintptr_t lo;

	if (!(vma->flags & VMA_SEQUENTIAL) || addr <= vma->start)
		return;
	lo = addr - MIN(ahead_window(r, vma, addr), addr - vma->start);
	for (uintptr_t a = lo; a < addr; a += PAGE_SIZE) {
		_Atomic uint64_t *p = pte_of(r, a);
		uint64_t v = atomic_load_explicit(p, memory_order_relaxed);

		/* Looked at first without the lock, to try only the likely ones. */
		if (!droppable(v) || extent_huge(r, a) || !pte_trylock(p, &v))
			continue;
		if (droppable(v)) {
			v |= PTE_COLD;
			lru_queue(r->mm, pte_val(v), PV_DEACTIVATE);
		}
		pte_unlock(p, v);
	}
}

/*
 * Async-signal-safe. The fault at the start of [s, e) read it as a window
 * of a stream (of swap, or the first touch of a file or of anonymous
 * memory) and mapped it: once the stream has grown to windows of
 * SWAP_RA_MAX pages (of first touches, PMD_SIZE: a stream of 2 MiB or
 * more), have a readahead thread read the next one now (or zero it), so
 * that its I/O runs while the program reads this one, and on another CPU.
 * The first page of each window read so, its marker, is left unmapped: its
 * touch, which says the stream went on, asks for the SWAP_RA_DEPTH windows
 * after it (swap_readahead_hit), and so on along the stream, as the
 * kernel's PG_readahead page does; a stream that stops soon wastes one
 * window, not three. A window being read is locked: a fault on it waits
 * for it. Measured on a 2-vCPU VM, out-of-core sequential reads on
 * uffd-sigbus in four alternating pairs of runs: 160 to 204 K pages/s
 * against 129 to 169 K without the threads; 2 threads and 2 windows ahead
 * gained less. 6 threads and 6 windows ahead against 3 and 3, alternating:
 * 733 MiB/s on average (8 runs) against 650 (11 runs); zeroed windows
 * stay at 3 ahead, as they take the CPU the first touch's reclaim needs.
 * The first touch of 256 MiB within the budget on
 * uffd-sigbus: 0.97 to 1.02 times the kernel's anonymous first touch with
 * the faulting thread zeroing every page (three runs), 1.24 to 1.61 with
 * windows zeroed ahead (six runs).
 */
unsigned swap_readahead_next(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e,
			     int prot, bool none)
{
	bool zero = !vma_backed(vma) && none;

	stream_drop_behind(r, vma, s);
	return e - s >= (zero ? PMD_SIZE : SWAP_RA_MAX * PAGE_SIZE)
		       ? post_after(r, vma, e, prot, 1, none || vma_backed(vma))
		       : 0;
}

/* Async-signal-safe. The end of the zeroed window whose marker is at addr:
 * its pages are resident, those after it not yet (or locked by the window
 * being zeroed after it). Such a window is at most ZERO_RA_WINDOW, or one
 * huge extent. */
static uintptr_t window_end(struct rsv *r, const struct emm_vma *vma, uintptr_t addr)
{
	uintptr_t end = MIN(addr + ZERO_RA_WINDOW, vma->end), a = addr + PAGE_SIZE;

	if (extent_huge(r, addr))	/* a huge window (post_after) */
		return ALIGN_DOWN(addr, PMD_SIZE) + PMD_SIZE;

	while (a < end && pte_state(atomic_load_explicit(pte_of(r, a), memory_order_relaxed)) ==
				  PTE_RESIDENT)
		a += PAGE_SIZE;
	return a;
}

/*
 * Async-signal-safe. The first touch of a page read ahead, at addr: if it
 * is the marker of a window the threads read, ask for the windows after
 * it, mapped prot, and return the pages queued (0 after a zeroed window:
 * its pages are not clean copies of swap); else -1 (a marker is no sign
 * that reading around faults pays).
 */
long swap_readahead_hit(struct rsv *r, const struct emm_vma *vma, uintptr_t addr, int prot)
{
	stream_drop_behind(r, vma, addr);
	for (unsigned k = 0; k < RA_MARKS; k++) {
		uintptr_t mark = atomic_load_explicit(&r->ra_mark[k], memory_order_relaxed);

		if ((mark & ~(uintptr_t)RA_MARK_ZERO) != addr ||
		    !atomic_compare_exchange_strong_explicit(&r->ra_mark[k], &mark, 0,
							     memory_order_relaxed,
							     memory_order_relaxed))
			continue;
		if (!(mark & RA_MARK_ZERO))
			return post_after(r, vma, MIN(addr + ahead_window(r, vma, addr), vma->end),
					  prot, SWAP_RA_DEPTH, vma_backed(vma));
		/* Zeroed pages are no clean pages mapped read-only: none to count. */
		(void)post_after(r, vma, window_end(r, vma, addr), prot, ZERO_RA_DEPTH, true);
		return 0;
	}
	return -1;
}
