/* SPDX-License-Identifier: MIT */
/* What a forked child keeps of its parent's instances (fork.c). */
#ifndef EMM_FORK_H
#define EMM_FORK_H

#include "internal.h"

/* An instance a fork copies (unless EMM_OPEN_NO_FORK_COPY), and no more. */
void fork_register(struct emm *mm);
void fork_unregister(struct emm *mm);
/*
 * Async-signal-safe, in a child made by fork(3). Copy the parent's
 * instances into private memory, once: fork's child handler does, and
 * emm's fault handler if the child touches that memory before the handler
 * ran (in the C library's own work in the child, or in a child handler
 * installed before libemm loaded). true if this call made the copy.
 */
bool fork_child_copy(void);

#endif /* EMM_FORK_H */
