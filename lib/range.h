/* SPDX-License-Identifier: MIT */
/* An API call's range: checked, and an operation run on it under mm->lock. */
#ifndef EMM_RANGE_H
#define EMM_RANGE_H

#include "internal.h"

int check_range(const struct emm *mm, const void *addr, size_t len);
typedef int (*range_fn)(struct rsv *r, uintptr_t s, uintptr_t e, void *arg);
int with_range(struct emm *mm, void *addr, size_t len, range_fn fn, void *arg);
int with_range_holes(struct emm *mm, void *addr, size_t len, bool holes_ok, range_fn fn,
		     void *arg);

#endif /* EMM_RANGE_H */
