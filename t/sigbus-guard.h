/* SPDX-License-Identifier: MIT */
/* A SIGBUS handler for tests that expect one: it counts the signal, keeps its address and thread, and jumps back to the guarded access. */
#ifndef EMM_T_SIGBUS_GUARD_H
#define EMM_T_SIGBUS_GUARD_H

#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

/* What the SIGBUS handler saw. */
static _Atomic int bus_count;
static void *_Atomic bus_addr;
static _Atomic pid_t bus_tid;
/* Set around a guarded access; volatile: the handler reads it, so the
 * stores around the access must stay. */
static __thread sigjmp_buf *volatile bus_env;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	atomic_fetch_add(&bus_count, 1);
	atomic_store(&bus_addr, si->si_addr);
	atomic_store(&bus_tid, gettid());
	if (bus_env)
		siglongjmp(*bus_env, 1);
	_exit(3);	/* a SIGBUS nobody guarded against: stop here */
}

/* Install on_sigbus for SIGBUS; sigaction's result. */
static __attribute__((unused)) int sigbus_guard_install(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, NULL);
}

#endif /* EMM_T_SIGBUS_GUARD_H */
