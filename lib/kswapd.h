/* SPDX-License-Identifier: MIT */
/* The budget: charging new resident pages, and the reclaim threads. */
#ifndef EMM_KSWAPD_H
#define EMM_KSWAPD_H

#include "internal.h"

struct kswapd {
	struct emm *mm;
	int node;
	pthread_t thread;
	bool started;
	_Atomic bool running;
	_Atomic uint32_t wake;		/* futex word: bumped to wake the thread */
	_Atomic long want;		/* pages the waking fault is about to add */
	struct reclaim *rc;		/* its batch work space */
};

void mm_charge(struct emm *mm, int node, long pages);
void mm_charged(struct emm *mm, int node);
bool mm_has_room(const struct emm *mm, int node, long pages);
bool mm_room_unstalled(struct emm *mm, int node, long pages);
bool mm_has_spare(const struct emm *mm, int node, long pages);
struct reclaim *reclaim_space_alloc(void);
void reclaim_thread_attach(struct reclaim *rc);
bool kswapd_busy(const struct emm *mm, int node);
int kswapd_start(struct emm *mm);
void kswapd_stop(struct emm *mm);

#endif /* EMM_KSWAPD_H */
