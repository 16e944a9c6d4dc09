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

/* Async-signal-safe. The instruction the signal interrupted: 0, not told. */
static inline unsigned long arch_context_pc(const void *ctx)
{
	(void)ctx;
	return 0;
}

#endif
