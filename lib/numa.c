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
	st->resident_bytes = atomic_load(&mm->c.resident_pages) * PAGE_SIZE;
	st->active_bytes = 0;
	st->inactive_bytes = st->resident_bytes;
	st->limit_bytes = mm->cfg.mem_limit;
	return 0;
}

EMM_API int emm_migrate(struct emm *mm, void *addr, size_t len, int node)
{
	if (node != 0)
		return -EINVAL;
	return with_range(mm, addr, len, NULL, NULL);
}
