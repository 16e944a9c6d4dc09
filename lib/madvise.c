/* SPDX-License-Identifier: MIT */
/* emm_advise and emm_sync: hints and requests about ranges of VMAs. */
#include <errno.h>

#include "filemap.h"
#include "huge_memory.h"
#include "internal.h"
#include "memory.h"
#include "range.h"
#include "vma.h"
#include "vmscan.h"

static int dontneed(struct rsv *r, uintptr_t s, uintptr_t e, void *arg)
{
	int err = sync_range(r, s, e);	/* a file keeps what was written to it */

	(void)arg;
	if (err)
		return err;
	thp_split_range(r, s, e, false);
	zap_range(r, s, e, true);
	return 0;
}

static int cold(struct rsv *r, uintptr_t s, uintptr_t e, void *arg)
{
	(void)arg;
	thp_split_range(r, s, e, true);
	reclaim_range(r, s, e, false);
	return 0;
}

static int pageout(struct rsv *r, uintptr_t s, uintptr_t e, void *arg)
{
	(void)arg;
	thp_split_range(r, s, e, true);
	reclaim_range(r, s, e, true);
	return 0;
}

static int willneed(struct rsv *r, uintptr_t s, uintptr_t e, void *arg)
{
	(void)arg;
	return willneed_range(r, s, e);
}

/* Hints kept in the VMAs: readahead and huge pages. */
static int set_hint(struct rsv *r, uintptr_t s, uintptr_t e, void *arg)
{
	return vma_change(r, s, e, arg);
}

static const struct vma_change hint[] = {
	[EMM_ADV_NORMAL] = { -1, 0, VMA_SEQUENTIAL | VMA_RANDOM },
	[EMM_ADV_RANDOM] = { -1, VMA_RANDOM, VMA_SEQUENTIAL },
	[EMM_ADV_SEQUENTIAL] = { -1, VMA_SEQUENTIAL, VMA_RANDOM },
	[EMM_ADV_HUGEPAGE] = { -1, EMM_MAP_HUGEPAGE, EMM_MAP_NOHUGEPAGE },
	[EMM_ADV_NOHUGEPAGE] = { -1, EMM_MAP_NOHUGEPAGE, EMM_MAP_HUGEPAGE },
};

EMM_API int emm_advise(struct emm *mm, void *addr, size_t len, int advice)
{
	switch (advice) {
	case EMM_ADV_DONTNEED:
		return with_range(mm, addr, len, dontneed, NULL);
	case EMM_ADV_COLD:
		return with_range(mm, addr, len, cold, NULL);
	case EMM_ADV_PAGEOUT:
		return with_range(mm, addr, len, pageout, NULL);
	case EMM_ADV_WILLNEED:
		return with_range(mm, addr, len, willneed, NULL);
	case EMM_ADV_NORMAL:
	case EMM_ADV_RANDOM:
	case EMM_ADV_SEQUENTIAL:
	case EMM_ADV_HUGEPAGE:
	case EMM_ADV_NOHUGEPAGE:
		return with_range(mm, addr, len, set_hint, (void *)&hint[advice]);
	default:
		return -EINVAL;
	}
}

static int sync_fn(struct rsv *r, uintptr_t s, uintptr_t e, void *arg)
{
	(void)arg;
	return sync_range(r, s, e);
}

EMM_API int emm_sync(struct emm *mm, void *addr, size_t len)
{
	return with_range(mm, addr, len, sync_fn, NULL);
}
