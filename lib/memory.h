/* SPDX-License-Identifier: MIT */
/* Memory operations: pages made resident, mapped, dropped; range operations. */
#ifndef EMM_MEMORY_H
#define EMM_MEMORY_H

#include "internal.h"
#include "vma.h"

/* Async-signal-safe. Do never-touched pages of this VMA have data elsewhere? */
static inline bool vma_backed(const struct emm_vma *vma)
{
	return vma->policy == EMM_POLICY_FILE || vma->policy == EMM_POLICY_PAGER;
}

/* Async-signal-safe. The protection a page of vma gets when mapped. */
static inline int target_prot(const struct emm_vma *vma)
{
	return vma->policy == EMM_POLICY_GUARD ? EMM_PROT_NONE : vma->prot;
}
bool page_clean_copy(struct rsv *r, uint64_t val);
int page_want(struct rsv *r, uint64_t val, int prot, int access);
long page_node_share(struct rsv *r, const struct emm_vma *vma, uintptr_t a);
bool page_charge_room(struct rsv *r, const struct emm_vma *vma, uintptr_t a, long pages);
bool page_has_spare(struct rsv *r, const struct emm_vma *vma, uintptr_t a, long pages);
bool page_room_unstalled(struct rsv *r, const struct emm_vma *vma, uintptr_t a, long pages);
int make_resident(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e, int prot);
int make_resident_but(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e,
		      int prot, uintptr_t nomap);
int make_resident_warm(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e);
void unmake_fresh(struct rsv *r, uintptr_t s, uintptr_t e);
void unlock_range(struct rsv *r, uintptr_t s, uintptr_t e, int access, uint64_t set);
void minor_window(struct rsv *r, const struct emm_vma *vma, uintptr_t addr, uintptr_t *sp,
		  uintptr_t *ep);
int prefault_range(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e,
		   int access, bool pin);
void unpin_range(struct rsv *r, uintptr_t s, uintptr_t e);
int willneed_range(struct rsv *r, uintptr_t s, uintptr_t e);
void zap_range(struct rsv *r, uintptr_t start, uintptr_t end, bool revoke);

#endif /* EMM_MEMORY_H */
