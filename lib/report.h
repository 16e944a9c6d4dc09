/* SPDX-License-Identifier: MIT */
/* The report printed for a fault nobody takes. */
#ifndef EMM_REPORT_H
#define EMM_REPORT_H

#include "internal.h"
#include <signal.h>

void report_bad_fault(int sig, const siginfo_t *si, void *uc, int access, struct rsv *r);

#endif /* EMM_REPORT_H */
