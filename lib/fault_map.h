/* SPDX-License-Identifier: MIT */
/* Mapping a fault's locked range, for the do_*_page handlers (fault.c). */
#ifndef EMM_FAULT_MAP_H
#define EMM_FAULT_MAP_H

#include "internal.h"

/* Give the locked [s, e) physmem and map it with prot; on failure all of it
 * is unlocked again and -errno returned. */
int map_locked(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e, int prot);
/* After map_locked mapped [s, e) without write, give the written page at
 * addr prot; on failure the range is unlocked, as a failed map_locked does. */
int map_written(struct rsv *r, uintptr_t s, uintptr_t e, uintptr_t addr, int prot);
/* Near the kernel-VMA budget: map the page at addr for access as part of a
 * coalesced cluster around it. No PTE lock held on entry or on exit. 0 or
 * -errno. */
int coalesce(struct rsv *r, const struct emm_vma *vma, uintptr_t addr, int access);
/* The holes backend_grant must fill in the empty extent at a, all its PTEs
 * locked, about to be mapped whole: none when its physmem could be made
 * one huge page of zeros first (BACKEND_HOLES otherwise). */
unsigned fresh_holes(struct rsv *r, const struct emm_vma *vma, uintptr_t a);

#endif /* EMM_FAULT_MAP_H */
