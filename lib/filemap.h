/* SPDX-License-Identifier: MIT */
/* FILE and PAGER pages: reading them in, writing them back. */
#ifndef EMM_FILEMAP_H
#define EMM_FILEMAP_H

#include "internal.h"

int filemap_read(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e, int prot);
int filemap_write(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e);
int sync_range(struct rsv *r, uintptr_t s, uintptr_t e);

#endif /* EMM_FILEMAP_H */
