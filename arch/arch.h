/* SPDX-License-Identifier: MIT */
/* Per-architecture pieces, picked by one #if chain: how a fault was made. */
#ifndef EMM_ARCH_H
#define EMM_ARCH_H

#include <signal.h>
#include <ucontext.h>

/* What arch_fault_access returns: EMM_PROT_READ, _WRITE or _EXEC, or
 * ARCH_ACCESS_UNKNOWN where the context does not say, or ARCH_ACCESS_DATA
 * where it says only that it was no instruction fetch. */
#define ARCH_ACCESS_UNKNOWN	(-1)
#define ARCH_ACCESS_DATA	(-2)

#if defined(__x86_64__)
#include "x86_64/fault.h"
#elif defined(__aarch64__)
#include "aarch64/fault.h"
#else
#include "generic/fault.h"
#endif

#endif /* EMM_ARCH_H */
