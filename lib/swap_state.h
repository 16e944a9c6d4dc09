/* SPDX-License-Identifier: MIT */
/* Swap readahead (swap_state.c): which neighbours a swap-in reads with its page. */
#ifndef EMM_SWAP_STATE_H
#define EMM_SWAP_STATE_H

#include "internal.h"

/* What swap_readahead says of the pages around a fault: none read, read
 * and left unmapped (around it, or along a stream that has not shown that
 * reading ahead pays), read and mapped; or a window forward along a stream
 * (mapped, and swap_readahead_next asks for the one after it). */
enum { RA_NONE, RA_UNMAPPED, RA_MAP, RA_STREAM };

void swap_readahead(struct rsv *r, const struct emm_vma *vma, uintptr_t addr,
		    uintptr_t *lo, uintptr_t *hi, int *ra);
/* What a stream's windows ahead follow: a window of never-touched pages,
 * one of swapped pages, the touch of a marker. */
enum { AHEAD_NONE, AHEAD_SWAP, AHEAD_HIT };

unsigned swap_readahead_next(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e,
			     int prot, bool none);
long swap_readahead_hit(struct rsv *r, const struct emm_vma *vma, uintptr_t addr, int prot);
bool swap_predict_write(struct rsv *r, const struct emm_vma *vma);
void swap_note_clean(struct rsv *r, const struct emm_vma *vma, int prot, bool dirty, uint32_t n);

#endif /* EMM_SWAP_STATE_H */
