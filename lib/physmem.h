/* SPDX-License-Identifier: MIT */
/* Physmem and reservations: the memfd, the alias view, the registry. */
#ifndef EMM_PHYSMEM_H
#define EMM_PHYSMEM_H

#include "internal.h"
#include "srcu.h"

int rsv_create(struct emm *mm, size_t len, size_t align, struct rsv **rp);
int physmem_map_app_view(struct rsv *r);
void rsv_unregister(struct rsv *r);
void rsv_destroy(struct rsv *r);
struct rsv *rsv_enter(uintptr_t addr, int *idx);
struct rsv *registry_pop_foreign(void);

/* Async-signal-safe. Leave the read section rsv_enter entered. */
static inline void rsv_leave(struct rsv *r, int idx)
{
	srcu_read_unlock(&r->mm->srcu, idx);
}
int rsv_find_range(struct emm *mm, uintptr_t addr, size_t len, struct rsv **rp);
int physmem_fill(struct rsv *r, uintptr_t addr, size_t len);
int physmem_punch(struct rsv *r, uintptr_t addr, size_t len);
bool physmem_has_page(struct rsv *r, uintptr_t addr);
void physmem_punch_pages(struct rsv *r, const uintptr_t *addr, unsigned n);
struct rsv *rsv_of_ppn(struct emm *mm, uint32_t ppn);
static inline uint32_t rsv_ppn(const struct rsv *r, uintptr_t addr)
{
	return (uint32_t)((r->pgoff + (addr - r->start)) >> PAGE_SHIFT);
}
static inline char *rsv_alias(const struct rsv *r, uintptr_t addr)
{
	return r->alias + (addr - r->start);
}

#endif /* EMM_PHYSMEM_H */
