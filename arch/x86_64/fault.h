/* SPDX-License-Identifier: MIT */
/* x86-64: the page-fault error code the kernel saves in the signal frame. */
#ifndef EMM_ARCH_X86_64_FAULT_H
#define EMM_ARCH_X86_64_FAULT_H

#define X86_PF_WRITE	(1UL << 1)
#define X86_PF_INSTR	(1UL << 4)

/* Async-signal-safe. */
static inline int arch_fault_access(const siginfo_t *si, const void *ctx)
{
	const ucontext_t *uc = ctx;
	unsigned long err = (unsigned long)uc->uc_mcontext.gregs[REG_ERR];

	(void)si;
	if (err & X86_PF_INSTR)
		return 4;	/* EMM_PROT_EXEC */
	return (err & X86_PF_WRITE) ? 2 : 1;
}

/* Async-signal-safe. The instruction the signal interrupted. */
static inline unsigned long arch_context_pc(const void *ctx)
{
	return (unsigned long)((const ucontext_t *)ctx)->uc_mcontext.gregs[REG_RIP];
}

#endif
