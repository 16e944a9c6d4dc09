/* SPDX-License-Identifier: MIT */
/* NUMA calls on a machine emm treats as one node. */
#include <errno.h>
#include <string.h>

#include "internal.h"

EMM_API int emm_numa_nodes(struct emm *mm)
{
	return mm ? 1 : -EINVAL;
}

EMM_API int emm_node_stats(struct emm *mm, int node, struct emm_node_stats *st)
{
	size_t sz;

	if (!mm || !st || node != 0 || st->sz < sizeof(*st))
		return -EINVAL;
	sz = st->sz;
	memset(st, 0, sz);
	st->sz = sz;
	{
	struct lruvec *lv = &mm->lru->node[0];

	st->resident_bytes = atomic_load(&mm->c.resident_pages) * PAGE_SIZE;
	st->active_bytes = lv->nr[LRU_ACTIVE] * PAGE_SIZE;
	st->inactive_bytes = lv->nr[LRU_INACTIVE] * PAGE_SIZE;
	st->limit_bytes = mm->cfg.mem_limit;
	st->pgscan = atomic_load(&lv->pgscan);
	st->pgsteal = atomic_load(&lv->pgsteal);
	st->swapouts = atomic_load(&lv->swapouts);
	st->swapins = atomic_load(&lv->swapins);
	}
	return 0;
}

EMM_API int emm_migrate(struct emm *mm, void *addr, size_t len, int node)
{
	if (node != 0)
		return -EINVAL;
	return with_range(mm, addr, len, NULL, NULL);
}
