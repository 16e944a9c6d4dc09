/* SPDX-License-Identifier: MIT */
/* emm_pin, emm_unpin, emm_prefault: making ranges resident and mapped now. */
#include <errno.h>

#include "fault.h"
#include "internal.h"
#include "memory.h"

struct prefault_args {
	int access;
	bool pin;
};

static int prefault_vma(struct rsv *r, const struct emm_vma *v, void *arg)
{
	const struct prefault_args *a = arg;

	if (vma_access_error(v, a->access))
		return -EACCES;
	return prefault_range(r, v, v->start, v->end, a->access, a->pin);
}

/* Pinned pages are mapped for the access their VMA allows and never evicted. */
static int pin_vma(struct rsv *r, const struct emm_vma *v, void *arg)
{
	struct prefault_args a = { v->prot & EMM_PROT_WRITE ? EMM_PROT_WRITE : EMM_PROT_READ,
				   true };

	(void)arg;
	return prefault_vma(r, v, &a);
}

static int prefault_all(struct rsv *r, uintptr_t s, uintptr_t e, void *arg)
{
	return walk_vmas(r, s, e, prefault_vma, arg);
}

static int pin_all(struct rsv *r, uintptr_t s, uintptr_t e, void *arg)
{
	thp_split_range(r, s, e, false);
	return walk_vmas(r, s, e, pin_vma, arg);
}

static int unpin_all(struct rsv *r, uintptr_t s, uintptr_t e, void *arg)
{
	(void)arg;
	thp_split_range(r, s, e, false);
	unpin_range(r, s, e);
	return 0;
}

EMM_API int emm_prefault(struct emm *mm, void *addr, size_t len, int write)
{
	struct prefault_args a = { write ? EMM_PROT_WRITE : EMM_PROT_READ, false };

	return with_range(mm, addr, len, prefault_all, &a);
}

EMM_API int emm_pin(struct emm *mm, void *addr, size_t len)
{
	return with_range(mm, addr, len, pin_all, NULL);
}

EMM_API int emm_unpin(struct emm *mm, void *addr, size_t len)
{
	return with_range(mm, addr, len, unpin_all, NULL);
}
