/* SPDX-License-Identifier: MIT */
/* Fault probes for tests: does a read or write at an address complete, reach the VMA's trap callback, or go on to the handler installed before emm? */
#ifndef EMM_T_PROBE_H
#define EMM_T_PROBE_H

#include <setjmp.h>
#include <signal.h>

#include "emm.h"
#include "tap.h"

#define PROBE_FN static __attribute__((unused))

/* What an access did: completed, trapped, or was passed on. */
enum { NONE, TRAP, CHAIN };

static sigjmp_buf probe_env;
static struct emm_fault last_trap;	/* what the last trap said */
static void *volatile chain_addr;	/* where the last fault passed on was */
static volatile int traps, chains;

/* A trap callback for the tests' VMAs: note the fault and leave. */
PROBE_FN int trap(const struct emm_fault *f, void *arg)
{
	last_trap = *f;
	traps++;
	siglongjmp(probe_env, TRAP);
}

/* Installed before emm_open: gets the faults emm passes on. */
PROBE_FN void on_segv(int sig, siginfo_t *si, void *uc)
{
	chain_addr = si->si_addr;
	chains++;
	siglongjmp(probe_env, CHAIN);
}

/* on_segv for SIGSEGV, before emm_open, so emm keeps it as the one to pass on to. */
PROBE_FN void probe_install(void)
{
	struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, NULL))
		bail("sigaction: %s", strerror(errno));
}

/*
 * One access of size bytes (1 or 8) at p: a read, or a write of v. NONE if
 * it completed, else TRAP or CHAIN, from the handler that caught it.
 */
PROBE_FN int access_once(volatile void *p, size_t size, int write, uint64_t v)
{
	int r = sigsetjmp(probe_env, 1);

	if (r)
		return r;
	if (size == 8 && write)
		*(volatile uint64_t *)p = v;
	else if (size == 8)
		(void)*(volatile uint64_t *)p;
	else if (write)
		*(volatile char *)p = (char)v;
	else
		(void)*(volatile char *)p;
	return NONE;
}

#endif /* EMM_T_PROBE_H */
