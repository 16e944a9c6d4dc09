/* SPDX-License-Identifier: MIT */
/* Swap readahead (swap_state.c): which neighbours a swap-in reads with its page. */
#ifndef EMM_SWAP_STATE_H
#define EMM_SWAP_STATE_H

#include "internal.h"

/* What swap_readahead says of the pages around a fault (not along a stream). */
enum { RA_NONE, RA_UNMAPPED, RA_MAP };

void swap_readahead(struct rsv *r, const struct emm_vma *vma, uintptr_t addr,
		    uintptr_t *lo, uintptr_t *hi, int *ra);

#endif /* EMM_SWAP_STATE_H */
