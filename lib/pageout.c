/* SPDX-License-Identifier: MIT */
/* pageout: a reclaim batch's dirty pages written to swap or to their files,
 * and the physmem of the pages that go freed. */
#include "filemap.h"
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

		rc->io[j] = (struct swap_io){ .slot = rc->slots[j], .page = rsv_alias(p->r, p->addr),
					      .flags = SWAP_IO_HOME | SWAP_IO_SKIP_ZERO,
					      .home = (uint64_t)rsv_ppn(p->r, p->addr) << PAGE_SHIFT };
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
