/* SPDX-License-Identifier: MIT */
/* emm_advise and emm_sync: hints and requests about ranges of VMAs. */
#include <errno.h>

#include "internal.h"

static int dontneed_vma(struct rsv *r, const struct emm_vma *v, void *arg)
{
	(void)arg;
	zap_range(r, v->start, v->end, true);
	return 0;
}

EMM_API int emm_advise(struct emm *mm, void *addr, size_t len, int advice)
{
	if (advice < EMM_ADV_NORMAL || advice > EMM_ADV_NOHUGEPAGE)
		return -EINVAL;
	switch (advice) {
	case EMM_ADV_DONTNEED:
		return with_range(mm, addr, len, dontneed_vma, NULL);
	default:
		/* Hints that change nothing yet are still checked. */
		return with_range(mm, addr, len, NULL, NULL);
	}
}

EMM_API int emm_sync(struct emm *mm, void *addr, size_t len)
{
	/* Anonymous and guard memory has nothing to write back. */
	return with_range(mm, addr, len, NULL, NULL);
}
