/* SPDX-License-Identifier: MIT */
/* The fault profile (EMM_PROFILE): sampled faults' backtraces, counted by call site. */
#ifndef EMM_PROFILE_H
#define EMM_PROFILE_H

#include <stdint.h>

struct emm;
struct rsv;

int profile_open(struct emm *mm);
void profile_close(struct emm *mm);
void profile_fault(struct rsv *r, uintptr_t addr, void *uc);

#endif /* EMM_PROFILE_H */
