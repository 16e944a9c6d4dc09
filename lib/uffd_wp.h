/* SPDX-License-Identifier: MIT */
/* Which clean pages were written, on the userfaultfd backends (uffd_wp.c). */
#ifndef EMM_UFFD_WP_H
#define EMM_UFFD_WP_H

#include "internal.h"

void wp_harvest(struct rsv *r, int uffd, int fd, uintptr_t s, uintptr_t e);
bool wp_still(int fd, uintptr_t a);

#endif /* EMM_UFFD_WP_H */
