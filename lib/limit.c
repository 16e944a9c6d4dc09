/* SPDX-License-Identifier: MIT */
/* The resident budget: emm_set_limit and emm_reclaim. */
#include <errno.h>

#include "internal.h"

EMM_API int emm_set_limit(struct emm *mm, uint64_t bytes)
{
	if (!mm || !bytes)
		return -EINVAL;
	mm->cfg.mem_limit = ALIGN_UP(bytes, PAGE_SIZE);
	return 0;
}

EMM_API long emm_reclaim(struct emm *mm, uint64_t bytes)
{
	if (!mm)
		return -EINVAL;
	(void)bytes;
	return 0;
}
