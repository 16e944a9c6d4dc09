/* SPDX-License-Identifier: MIT */
/* The fault profile (EMM_PROFILE): sampled faults' backtraces, counted by call site. */
#ifndef EMM_PROFILE_H
#define EMM_PROFILE_H

#include "internal.h"

int profile_open(struct emm *mm);
void profile_close(struct emm *mm);
void profile_sample(struct rsv *r, uintptr_t addr, void *uc);

/*
 * Async-signal-safe; called by the backend inside mm->srcu's read section,
 * before the fault is served: in the faulting thread with the signal's
 * ucontext, or with NULL on a uffd service thread. One load when profiling
 * is off (inline: every fault comes by).
 */
static inline void profile_fault(struct rsv *r, uintptr_t addr, void *uc)
{
	if (r->mm->profile)
		profile_sample(r, addr, uc);
}

#endif /* EMM_PROFILE_H */
