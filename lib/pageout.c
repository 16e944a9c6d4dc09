/* SPDX-License-Identifier: MIT */
/* pageout: a reclaim batch's dirty pages written to swap or to their files,
 * and the physmem of the pages that go freed. */
#include <sys/mman.h>

#include "filemap.h"
#include "huge_memory.h"
#include "lru.h"
#include "pageout.h"
#include "physmem.h"
#include "pte.h"
#include "vma.h"

/* Async-signal-safe. Free the physmem of the pages that go, a
 * reservation's at a time (sp is sorted). */
void punch_gone(struct reclaim *rc, unsigned n)
{
	for (unsigned i = 0, k = 0; i < n; i++) {
		if (rc->sp[i].gone && rc->sp[i].huge)
			physmem_punch(rc->sp[i].r, rc->sp[i].addr, PMD_SIZE);
		else if (rc->sp[i].gone)
			rc->addr[k++] = rc->sp[i].addr;
		if (k && (i + 1 == n || rc->sp[i + 1].r != rc->sp[i].r)) {
			physmem_punch_pages(rc->sp[i].r, rc->addr, k);
			k = 0;
		}
	}
}

/* Async-signal-safe. A stale slot of a page that goes as a zero page. */
void forget_slot(struct emm *mm, uint32_t f)
{
	uint32_t slot = frame_take_slot(mm->lru, f);

	if (slot)
		swap_free(mm->swap, slot);
}

/* Async-signal-safe. A page to write that found no slot may still go if
 * it is all zeros: it needs none. */
static void drop_if_zero(struct emm *mm, struct scan *sp)
{
	if (!swap_page_is_zero(rsv_alias(sp->r, sp->addr)))
		return;
	forget_slot(mm, sp->f);
	sp->gone = true;
	sp->slot = 0;
}

/* Async-signal-safe. The write of the page at a of r to slot: its data
 * may come through the home file (physmem), and a page of zeros is not
 * written. */
static struct swap_io page_io(struct rsv *r, uintptr_t a, uint32_t slot)
{
	return (struct swap_io){ .slot = slot, .page = rsv_alias(r, a),
				 .flags = SWAP_IO_HOME | SWAP_IO_SKIP_ZERO,
				 .home = (uint64_t)rsv_ppn(r, a) << PAGE_SHIFT };
}

/* Async-signal-safe. Write the pages marked write to fresh slots in one
 * batch; the ones written are marked gone. With swap full the rest stay. */
void writeout(struct emm *mm, struct reclaim *rc, unsigned n)
{
	struct scan *sp = rc->sp;
	unsigned k = 0, got;

	for (unsigned i = 0; i < n; i++)
		if (sp[i].write)
			rc->idx[k++] = i;
	got = k && mm->swap ? swap_alloc_batch(mm->swap, rc->slots, k) : 0;
	if (got < k)
		rc->swap_full = true;
	for (unsigned j = got; j < k; j++)
		drop_if_zero(mm, &sp[rc->idx[j]]);
	for (unsigned j = 0; j < got; j++) {
		struct scan *p = &sp[rc->idx[j]];

		rc->io[j] = page_io(p->r, p->addr, rc->slots[j]);
	}
	if (got)
		swap_writepages(mm->swap, rc->io, got);
	for (unsigned j = 0; j < got; j++) {
		struct scan *p = &sp[rc->idx[j]];

		if (rc->io[j].err || rc->io[j].zero)
			swap_free(mm->swap, rc->io[j].slot);
		if (rc->io[j].err) {
			count_event(mm, io_errors);
			continue;
		}
		p->gone = true;
		if (rc->io[j].zero) {
			/* Zero pages need no slot: they read zero when next touched. */
			forget_slot(mm, p->f);
			p->slot = 0;
			continue;
		}
		p->slot = rc->io[j].slot;
		count_event(mm, swapouts);
		atomic_fetch_add_explicit(&frame_lruvec(mm->lru, p->f)->swapouts, 1,
					  memory_order_relaxed);
	}
}

/* Async-signal-safe. May the dirty huge extent at sp (all its PTEs locked)
 * be written and freed whole? With room in rc for its 512 pages, a swap
 * device, and every page of it anonymous and not pinned. */
bool huge_whole_ok(struct emm *mm, const struct reclaim *rc, const struct scan *sp)
{
	if (rc->max < PTRS_PER_PMD || !mm->swap)
		return false;
	for (uintptr_t a = sp->addr; a < sp->addr + PMD_SIZE; a += PAGE_SIZE) {
		uint64_t v = pte_locked_val(pte_of(sp->r, a));

		if (pte_state(v) != PTE_RESIDENT || (v & (PTE_FILE | PTE_PINNED)))
			return false;
	}
	return true;
}

/* Async-signal-safe. The slots written: each page's moves to its frame
 * (the head's to sp->slot), for evict_tails; its old one is stale. A page
 * of zeros needs none. */
static void huge_slots_keep(struct emm *mm, struct reclaim *rc, struct scan *sp)
{
	unsigned written = 0;

	for (unsigned j = 0; j < PTRS_PER_PMD; j++) {
		uint32_t f = pte_val(pte_locked_val(pte_of(sp->r, sp->addr + j * PAGE_SIZE)));
		uint32_t slot = rc->io[j].zero ? 0 : rc->io[j].slot;

		forget_slot(mm, f);
		if (!slot)
			swap_free(mm->swap, rc->io[j].slot);
		if (j)
			frame_set_slot(mm->lru, f, slot);
		else
			sp->slot = slot;
		written += slot != 0;
	}
	count_events(mm, swapouts, written);
	atomic_fetch_add_explicit(&frame_lruvec(mm->lru, sp->f)->swapouts, written,
				  memory_order_relaxed);
}

/*
 * Async-signal-safe. Write the dirty huge extent at sp (all its PTEs
 * locked, unmapped) whole, to 512 fresh slots in one batch, and mark it
 * gone: punched whole, its huge page goes back to the kernel's allocator
 * in one piece, which the next huge extent's first touch finds at once.
 * Split first and evicted page by page, as before, its pages were freed
 * one at a time and a fresh huge page came from memory long unused: on a
 * 2-vCPU VM, 0.16 ms to make one from a huge page freed just before, 2.9
 * ms from memory untouched since boot (the host's own first touch, in
 * clear_page). On any failure (a write, or not 512 slots to be had) the
 * slots go back and the extent stays, split: its pages go one by one, as
 * they can, at their next turn.
 */
static void write_huge(struct emm *mm, struct reclaim *rc, struct scan *sp)
{
	unsigned got = swap_alloc_batch(mm->swap, rc->slots, PTRS_PER_PMD), bad = 0;

	for (unsigned j = 0; j < got; j++)
		rc->io[j] = page_io(sp->r, sp->addr + j * PAGE_SIZE, rc->slots[j]);
	if (got == PTRS_PER_PMD) {
		/* Written from where it is (swap_write_stretch): the alias
		 * view maps the huge page with one PMD, populated first where
		 * it is not mapped (one call, not a fault each page). */
		madvise(rsv_alias(sp->r, sp->addr), PMD_SIZE, MADV_POPULATE_READ);
		swap_write_stretch(mm->swap, rc->io, got);
		for (unsigned j = 0; j < got; j++)
			bad += rc->io[j].err != 0;
	}
	if (got < PTRS_PER_PMD || bad) {
		for (unsigned j = 0; j < got; j++)
			swap_free(mm->swap, rc->slots[j]);
		if (got == PTRS_PER_PMD)
			count_event(mm, io_errors);
		else if (!got)
			rc->swap_full = true;	/* else its pages may find slots */
		split_huge_locked(sp->r, sp->addr);	/* its tails stay locked: scan_unlock */
		return;
	}
	huge_slots_keep(mm, rc, sp);
	sp->gone = true;
}

/* Async-signal-safe. Write the huge extents marked whole (huge_whole_ok). */
void writeout_huge(struct emm *mm, struct reclaim *rc, unsigned n)
{
	for (unsigned i = 0; i < n && !rc->swap_full; i++)
		if (rc->sp[i].whole)
			write_huge(mm, rc, &rc->sp[i]);
}

/* Async-signal-safe. Write dirty FILE and PAGER pages home, a run of
 * neighbours in one VMA at a time; those written are marked gone. Inside
 * mm->srcu's read section (for find_vma). */
void writeback_files(struct emm *mm, struct scan *sp, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		const struct emm_vma *vma;
		unsigned j = i;

		if (!sp[i].filewrite || !(vma = find_vma(sp[i].r, sp[i].addr)))
			continue;
		if (vma->policy == EMM_POLICY_PAGER && !vma->pager->writeback) {
			/* A pager that takes nothing back: its changed pages swap. */
			sp[i].filewrite = false;
			sp[i].write = true;
			continue;
		}
		while (next_to(sp, j, n) && sp[j + 1].filewrite && sp[j + 1].addr < vma->end)
			j++;
		if (filemap_write(sp[i].r, vma, sp[i].addr, sp[j].addr + PAGE_SIZE) == 0) {
			for (unsigned k = i; k <= j; k++)
				sp[k].gone = true;
			count_events(mm, writebacks, j - i + 1);
		} else {
			count_event(mm, io_errors);
		}
		i = j;
	}
}
