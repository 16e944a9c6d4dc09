/* SPDX-License-Identifier: MIT */
/* Elsewhere the signal frame does not say: the fault path infers the access. */
#ifndef EMM_ARCH_GENERIC_FAULT_H
#define EMM_ARCH_GENERIC_FAULT_H

/* Async-signal-safe. */
static inline int arch_fault_access(const siginfo_t *si, const void *ctx)
{
	(void)si;
	(void)ctx;
	return ARCH_ACCESS_UNKNOWN;
}

#endif
