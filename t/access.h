/* SPDX-License-Identifier: MIT */
/* Does this machine say whether a fault was a read or a write? (qemu-user for aarch64 does not.) */
#ifndef EMM_T_ACCESS_H
#define EMM_T_ACCESS_H

#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

#include "../arch/arch.h"

static sigjmp_buf access_env;
static volatile int access_seen;

static void access_probe(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	access_seen = arch_fault_access(si, uc);
	siglongjmp(access_env, 1);
}

/*
 * 1 when a write to a page with no access reaches the handler as a write.
 * Where the signal's context does not say (qemu-user's aarch64 frames carry
 * no ESR record), emm infers the access from the page's protection, and a
 * write to a page with none looks like a read: tests then cannot check
 * emm_fault.write for such pages. Asked once, with emm's handler, if any,
 * put back after.
 */
static __attribute__((unused)) int fault_access_known(void)
{
	static int known = -1;
	struct sigaction sa = { .sa_sigaction = access_probe, .sa_flags = SA_SIGINFO }, old;
	volatile char *p;

	if (known >= 0)
		return known;
	p = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return known = 1;
	sigemptyset(&sa.sa_mask);
	access_seen = ARCH_ACCESS_UNKNOWN;
	sigaction(SIGSEGV, &sa, &old);
	if (!sigsetjmp(access_env, 1))
		*p = 1;
	sigaction(SIGSEGV, &old, NULL);
	munmap((void *)p, 4096);
	return known = access_seen == 2;	/* EMM_PROT_WRITE */
}

#endif /* EMM_T_ACCESS_H */
