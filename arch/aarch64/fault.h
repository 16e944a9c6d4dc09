/* SPDX-License-Identifier: MIT */
/* AArch64: the ESR record the kernel puts in the signal frame's reserved area. */
#ifndef EMM_ARCH_AARCH64_FAULT_H
#define EMM_ARCH_AARCH64_FAULT_H

#include <asm/sigcontext.h>

#define ESR_ELx_EC_SHIFT	26
#define ESR_ELx_EC_IABT_LOW	0x20
#define ESR_ELx_EC_DABT_LOW	0x24
#define ESR_ELx_WNR		(1UL << 6)
#define ESR_ELx_CM		(1UL << 8)

/* Async-signal-safe. Walk the context records for the ESR. */
static inline int arch_fault_access(const siginfo_t *si, const void *ctx)
{
	const ucontext_t *uc = ctx;
	const struct _aarch64_ctx *h = (const void *)uc->uc_mcontext.__reserved;

	while (h->magic && h->size) {
		if (h->magic == ESR_MAGIC) {
			unsigned long esr = ((const struct esr_context *)h)->esr;
			unsigned long ec = esr >> ESR_ELx_EC_SHIFT;

			if (ec == ESR_ELx_EC_IABT_LOW)
				return 4;	/* EMM_PROT_EXEC */
			if (ec == ESR_ELx_EC_DABT_LOW)
				return (esr & ESR_ELx_WNR) && !(esr & ESR_ELx_CM) ? 2 : 1;
			break;
		}
		h = (const void *)((const char *)h + h->size);
	}
	/* No ESR record (qemu-user writes none): an instruction fetch faults
	 * at the instruction itself, a data access elsewhere. */
	if ((unsigned long)si->si_addr == uc->uc_mcontext.pc)
		return 4;	/* EMM_PROT_EXEC */
	return ARCH_ACCESS_DATA;
}

/* Async-signal-safe. The instruction the signal interrupted. */
static inline unsigned long arch_context_pc(const void *ctx)
{
	return (unsigned long)((const ucontext_t *)ctx)->uc_mcontext.pc;
}

#endif
