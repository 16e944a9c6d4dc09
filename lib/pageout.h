/* SPDX-License-Identifier: MIT */
/* pageout: writing and freeing a reclaim batch's pages, for shrink_page_list. */
#ifndef EMM_PAGEOUT_H
#define EMM_PAGEOUT_H

#include "vmscan_batch.h"

/* Write the pages marked write to fresh slots in one batch; those written
 * are marked gone. With swap full the rest stay (rc->swap_full). */
void writeout(struct emm *mm, struct reclaim *rc, unsigned n);
/* May the dirty huge extent at sp be written and freed whole? */
bool huge_whole_ok(struct emm *mm, const struct reclaim *rc, const struct scan *sp);
/* Write the huge extents marked whole, each to fresh slots at once; those
 * written are marked gone. */
void writeout_huge(struct emm *mm, struct reclaim *rc, unsigned n);
/* Write dirty FILE and PAGER pages home; those written are marked gone.
 * Inside mm->srcu's read section. */
void writeback_files(struct emm *mm, struct scan *sp, unsigned n);
/* Free the physmem of the pages marked gone (sp sorted). */
void punch_gone(struct reclaim *rc, unsigned n);
/* A stale slot of frame f, of a page that goes as a zero page: freed. */
void forget_slot(struct emm *mm, uint32_t f);

#endif /* EMM_PAGEOUT_H */
