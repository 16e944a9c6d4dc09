/* SPDX-License-Identifier: MIT */
/* A fault the uffd backend cannot serve (uffd_fail.c). */
#ifndef EMM_UFFD_FAIL_H
#define EMM_UFFD_FAIL_H

#include <sys/types.h>

#include "internal.h"

void uffd_fail(int fd, struct rsv *r, pid_t tid, uintptr_t addr, int access);

#endif /* EMM_UFFD_FAIL_H */
