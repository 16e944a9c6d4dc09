/* SPDX-License-Identifier: MIT */
/* The fault handler's entry points, for the backends. */
#ifndef EMM_FAULT_H
#define EMM_FAULT_H

#include "internal.h"

/* What a fault came to; the backend acts on it (backend.h). */
enum fault_result { FAULT_DONE, FAULT_BAD_AREA, FAULT_ACCESS, FAULT_SIGBUS };

bool vma_access_error(const struct emm_vma *vma, int access);
int do_user_fault(struct rsv *r, uintptr_t addr, int access, const struct emm_vma **vmap);
int handle_mm_fault(struct rsv *r, uintptr_t addr, int access, const struct emm_vma *vma);

#endif /* EMM_FAULT_H */
