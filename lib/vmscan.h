/* SPDX-License-Identifier: MIT */
/* Reclaim: shrinking a node's lists, paging a range out or deactivating it. */
#ifndef EMM_VMSCAN_H
#define EMM_VMSCAN_H

#include "internal.h"

#define SWAP_CLUSTER_MAX	32	/* pages a faulting thread reclaims at a time */

struct reclaim;		/* a batch's work space */

struct reclaim *reclaim_alloc(unsigned n);
long shrink_node_with(struct emm *mm, int node, long nr_to_reclaim, struct reclaim *rc);
long shrink_node(struct emm *mm, int node, long nr_to_reclaim);
long reclaim_range(struct rsv *r, uintptr_t s, uintptr_t e, bool pageout);

#endif /* EMM_VMSCAN_H */
