/* SPDX-License-Identifier: MIT */
/*
 * The swap bounce buffers: pages move between the swap file and physmem
 * through small, pre-faulted buffers, so the zero check and the checksum
 * read a warm copy rather than a cold page of the alias view.
 */
#ifndef EMM_SWAP_BOUNCE_H
#define EMM_SWAP_BOUNCE_H

#include "swap_dev.h"

struct swap_bounce *bounce_get(struct swap_dev *sd, const struct swap_io *io, unsigned n);
void bounce_put(struct swap_bounce *b);
char *io_buf(const struct swap_io *io, unsigned i, struct swap_bounce *bb);
void home_rw(struct swap_dev *sd, bool to_home, struct swap_io *io, unsigned *pos,
	     unsigned n, struct swap_bounce *bb, const struct swap_place *pl);
unsigned bounced_ok(const struct swap_io *io, unsigned n, struct swap_bounce *bb,
		    unsigned *pos);

#endif /* EMM_SWAP_BOUNCE_H */
