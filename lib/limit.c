/* SPDX-License-Identifier: MIT */
/* The resident budget from the program's side: emm_set_limit, emm_reclaim, node shares. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "backend.h"
#include "internal.h"
#include "kswapd.h"
#include "lru.h"
#include "options.h"
#include "util.h"
#include "vmscan.h"

/* The node furthest over its share (its resident pages minus its limit). */
static int most_over(const struct emm *mm)
{
	const struct lru *lru = mm->lru;
	int best = 0;

	for (int n = 1; n < lru->nnodes; n++)
		if (atomic_load(&lru->node[n].resident) - lru->node[n].limit >
		    atomic_load(&lru->node[best].resident) - lru->node[best].limit)
			best = n;
	return best;
}

/* Resident pages of the node, or of the instance for -1. */
static long resident_of(struct emm *mm, int node)
{
	return node < 0 ? (long)atomic_load(&mm->c.resident_pages)
			: atomic_load(&mm->lru->node[node].resident);
}

/* A second, at most, that reclaim_now waits for reclaim threads; and 100 ms
 * without a new low of resident memory. */
#define WAIT_MS		1000
#define WAIT_IDLE_MS	100

/* Waits 1 ms for a reclaim thread that may hold a batch off the lists,
 * while resident memory still reaches new lows (low: the lowest seen): a
 * program faulting meanwhile can raise it, never make the wait endless. */
static bool wait_for_kswapd(struct emm *mm, int node, long *low, int *idle, int *waited)
{
	struct timespec ms = { 0, 1000000 };
	long now = resident_of(mm, node);

	*idle = now < *low ? 0 : *idle + 1;
	*low = MIN(*low, now);
	if (*idle > WAIT_IDLE_MS || ++*waited > WAIT_MS || !kswapd_busy(mm, node))
		return false;
	nanosleep(&ms, NULL);
	return true;
}

/* Reclaim here, from node (-1: from the nodes furthest over their
 * shares), until want pages are gone or resident memory is down to floor
 * pages, or nothing more can go: one pass may end short (pages in use go
 * back to the active list, mapped ones are revoked and wait for another
 * lap), and when a pass finds nothing, a reclaim thread may hold the
 * rest off the lists (two TSan runs of t/405 returned from
 * emm_set_node_limit with the node 384 and 578 pages over its share).
 * Returns pages freed here. */
static long reclaim_now(struct emm *mm, int node, long want, long floor)
{
	/* A reclaim thread's batch space (NULL: off the stack): room to write
	 * a huge extent whole (pageout.c, writeout_huge). */
	struct reclaim *rc = reclaim_space_alloc();
	sigset_t old;
	long freed = 0, low = resident_of(mm, node);
	int idle = 0, waited = 0;

	sig_block(&old);
	lru_add_drain_all(mm);
	while (freed < want && (long)atomic_load(&mm->c.resident_pages) > floor) {
		int n = node < 0 ? most_over(mm) : node;
		long nr = MIN(want - freed, 4 * SWAP_CLUSTER_MAX);
		long got = rc ? shrink_node_with(mm, n, nr, rc) : shrink_node(mm, n, nr);

		if (!got && (node < 0 || resident_of(mm, node) > mm->lru->node[node].limit) &&
		    wait_for_kswapd(mm, node, &low, &idle, &waited))
			continue;
		if (!got)
			break;
		freed += got;
	}
	sig_restore(&old);
	free(rc);
	return freed;
}

EMM_API int emm_set_limit(struct emm *mm, uint64_t bytes)
{
	struct emm_config cfg;
	long target;
	int err;

	if (!mm)
		return -EINVAL;
	if (mm_foreign(mm))
		return -ECHILD;
	/* Under the lock: another emm_set_limit may be storing the fields. */
	pthread_mutex_lock(&mm->lock);
	cfg = mm->cfg;
	err = config_limit(&cfg, bytes, false);
	if (err) {
		pthread_mutex_unlock(&mm->lock);
		return err;
	}
	mm->cfg.wmark_min = cfg.wmark_min;
	mm->cfg.wmark_low = cfg.wmark_low;
	mm->cfg.wmark_high = cfg.wmark_high;
	mm->cfg.mem_limit = cfg.mem_limit;
	lru_split_limit(mm);
	pthread_mutex_unlock(&mm->lock);
	target = (long)((cfg.mem_limit - cfg.wmark_high) >> PAGE_SHIFT);
	reclaim_now(mm, -1, (long)atomic_load(&mm->c.resident_pages) - target, target);
	return 0;
}

EMM_API long emm_reclaim(struct emm *mm, uint64_t bytes)
{
	uint64_t pages;

	if (!mm)
		return -EINVAL;
	if (mm_foreign(mm))
		return -ECHILD;
	backend_quiesce(mm);	/* faults being served finish their LRU work first */
	/* More than is resident cannot be reclaimed: no need to round past it. */
	pages = MIN(bytes >> PAGE_SHIFT, atomic_load(&mm->c.resident_pages)) +
		!!(bytes & (PAGE_SIZE - 1));
	return reclaim_now(mm, -1, (long)pages, 0) * (long)PAGE_SIZE;
}

/* A node's share of the budget, instead of the share by memory size; 0
 * gives the node its proportional share back. Reclaim on that node starts
 * when it passes its share, whatever the other nodes hold. */
EMM_API int emm_set_node_limit(struct emm *mm, int node, uint64_t bytes)
{
	struct lruvec *lv;

	if (!mm || node < 0 || node >= mm->lru->nnodes || (bytes && bytes < (1ULL << 20)))
		return -EINVAL;
	if (mm_foreign(mm))
		return -ECHILD;
	lv = &mm->lru->node[node];
	pthread_mutex_lock(&mm->lock);
	lv->limit_set = bytes != 0;
	lv->limit = (long)(bytes >> PAGE_SHIFT);
	lru_split_limit(mm);
	pthread_mutex_unlock(&mm->lock);
	reclaim_now(mm, node, atomic_load(&lv->resident) - lv->limit, 0);
	return 0;
}
