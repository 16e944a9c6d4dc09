/* SPDX-License-Identifier: MIT */
/* The budget: charging new resident pages, and the reclaim threads. */
#ifndef EMM_KSWAPD_H
#define EMM_KSWAPD_H

#include "internal.h"

void mm_charge(struct emm *mm, int node, long pages);
int kswapd_start(struct emm *mm);
void kswapd_stop(struct emm *mm);

#endif /* EMM_KSWAPD_H */
