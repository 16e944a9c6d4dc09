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

/*
 * How long an idle reclaim or readahead thread sleeps before it looks
 * again: what wakes it (a charge past the low watermark, a window posted,
 * the instance closing) moves the count it sleeps on, so the timeout only
 * bounds what a mistake would cost. Each wake-up of a thread of the
 * process costs the program's next page-table changes on a guest whose
 * page tables the hypervisor shadows (emm-tuning(7), "Fault backends"):
 * random swap-ins on uffd-sigbus, 2-vCPU guest, UFFDIO_COPY took 4.1 to
 * 4.7 us with these threads waking every ten seconds, 5.8 to 6.4 every
 * second (three alternating runs).
 */
#define THREAD_IDLE_MS	10000

void mm_charge(struct emm *mm, int node, long pages);
bool mm_has_room(const struct emm *mm, int node, long pages);
bool mm_has_spare(const struct emm *mm, int node, long pages);
struct reclaim *reclaim_space_alloc(void);
void reclaim_thread_attach(struct reclaim *rc);
bool kswapd_busy(const struct emm *mm, int node);
int kswapd_start(struct emm *mm);
void kswapd_stop(struct emm *mm);

#endif /* EMM_KSWAPD_H */
