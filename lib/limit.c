/* SPDX-License-Identifier: MIT */
/* The resident budget from the program's side: emm_set_limit, emm_reclaim. */
#include <errno.h>

#include "internal.h"

/* Reclaim here until target pages are gone or nothing more can go. */
static long reclaim_now(struct emm *mm, long target)
{
	sigset_t old;
	long freed = 0;

	sig_block(&old);
	while (freed < target) {
		long got = shrink_node(mm, MIN(target - freed, 4 * SWAP_CLUSTER_MAX), true);

		if (!got)
			break;
		freed += got;
	}
	sig_restore(&old);
	return freed;
}

EMM_API int emm_set_limit(struct emm *mm, uint64_t bytes)
{
	struct emm_config cfg;
	long over;
	int err;

	if (!mm)
		return -EINVAL;
	cfg = mm->cfg;
	err = config_limit(&cfg, bytes, false);
	if (err)
		return err;
	pthread_mutex_lock(&mm->lock);
	mm->cfg.wmark_min = cfg.wmark_min;
	mm->cfg.wmark_low = cfg.wmark_low;
	mm->cfg.wmark_high = cfg.wmark_high;
	mm->cfg.mem_limit = cfg.mem_limit;
	pthread_mutex_unlock(&mm->lock);
	over = (long)atomic_load(&mm->c.resident_pages) -
	       (long)((cfg.mem_limit - cfg.wmark_high) >> PAGE_SHIFT);
	if (over > 0)
		reclaim_now(mm, over);
	return 0;
}

EMM_API long emm_reclaim(struct emm *mm, uint64_t bytes)
{
	uint64_t pages;

	if (!mm)
		return -EINVAL;
	/* More than is resident cannot be reclaimed: no need to round past it. */
	pages = MIN(bytes >> PAGE_SHIFT, atomic_load(&mm->c.resident_pages)) +
		!!(bytes & (PAGE_SIZE - 1));
	return reclaim_now(mm, (long)pages) * (long)PAGE_SIZE;
}
