/* SPDX-License-Identifier: MIT */
/* VMAs: merging, splitting and the updates of emm_map, emm_protect and emm_unmap. */
#ifndef EMM_VMA_H
#define EMM_VMA_H

#include "internal.h"
#include "vma_tree.h"

bool range_covered(struct rsv *r, uintptr_t start, uintptr_t end);
int vma_insert(struct rsv *r, const struct emm_vma *v);
void file_put(struct emm_file *f);
int vma_remove(struct rsv *r, uintptr_t start, uintptr_t end);
struct vma_change {
	int prot;			/* new protection, or -1 to keep it */
	unsigned set_flags, clear_flags;
};
int vma_change(struct rsv *r, uintptr_t start, uintptr_t end, const struct vma_change *chg);
int walk_vmas(struct rsv *r, uintptr_t s, uintptr_t e,
	      int (*fn)(struct rsv *r, const struct emm_vma *v, void *arg), void *arg);

void vma_table_free(struct rsv *r);

#endif /* EMM_VMA_H */
