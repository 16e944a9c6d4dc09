/* SPDX-License-Identifier: MIT */
/* The preload's sigaction, signal, sigaltstack and signal masks: emm's handler stays first, its signals never blocked. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backend.h"
#include "preload.h"

/*
 * SIGSEGV and SIGBUS. A handler the program installs after emm's would see
 * emm's faults first, and many take any fault for a crash: Python's
 * faulthandler (on under pytest and CPython's own tests) prints a fatal
 * error and raises the signal again, which kills the process under the
 * signal and uffd-sigbus backends. So the program's sigaction and signal
 * for those two signals leave emm's handler installed and make the
 * program's the one emm chains to, as if emm's had been installed after
 * it; sigaction reports that one as the old action. emm's own calls go to
 * the C library (the build renames them to emm_preload_sigaction).
 */
extern int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);

HEAP_INTERNAL int emm_preload_sigaction(int sig, const struct sigaction *act,
					struct sigaction *old)
{
	return __sigaction(sig, act, old);
}

/*
 * Not on uffd, emm's faults are SIGSEGV and SIGBUS, taken by whichever
 * thread touches a page; and the kernel does not hold back the signal of a
 * fault that a thread blocks: it kills the process. So neither is ever
 * blocked: a mask a thread sets, or a handler's mask, goes without them
 * (xz's worker threads, started with every signal blocked, were killed by
 * their first fault). A SIGSEGV or SIGBUS sent with kill(2) is then
 * delivered, to the program's handler or to the default action, where the
 * program meant to hold it.
 */
static const sigset_t *without_faults(const sigset_t *set, sigset_t *keep)
{
	if (!set || !preload_signal_faults())
		return set;
	*keep = *set;
	sigdelset(keep, SIGSEGV);
	sigdelset(keep, SIGBUS);
	return keep;
}

/* At start: a mask inherited across exec may hold them. */
void preload_unblock_faults(void)
{
	sigset_t faults;

	sigemptyset(&faults);
	sigaddset(&faults, SIGSEGV);
	sigaddset(&faults, SIGBUS);
	pthread_sigmask(SIG_UNBLOCK, &faults, NULL);
}

static int (*real_pthread_sigmask)(int, const sigset_t *, sigset_t *);

__attribute__((constructor)) static void preload_signal_init(void)
{
	real_pthread_sigmask = (int (*)(int, const sigset_t *, sigset_t *))
		dlsym(RTLD_NEXT, "pthread_sigmask");
}

PRELOAD_API int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	sigset_t keep;

	if (how != SIG_UNBLOCK)
		set = without_faults(set, &keep);
	if (real_pthread_sigmask)
		return real_pthread_sigmask(how, set, old);
	return syscall(SYS_rt_sigprocmask, how, set, old, _NSIG / 8) ? errno : 0;
}

/* glibc's initial mask of a thread to come, where it has the call. */
PRELOAD_API int pthread_attr_setsigmask_np(pthread_attr_t *attr, const sigset_t *set)
{
	static int (*real)(pthread_attr_t *, const sigset_t *);
	sigset_t keep;

	if (!real)
		real = (int (*)(pthread_attr_t *, const sigset_t *))
			dlsym(RTLD_NEXT, "pthread_attr_setsigmask_np");
	if (!real)
		return ENOSYS;
	return real(attr, without_faults(set, &keep));
}

PRELOAD_API int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	int err = pthread_sigmask(how, set, old);

	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

PRELOAD_API int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	struct sigaction keep;

	if ((sig == SIGSEGV || sig == SIGBUS) && backend_signal_interpose(sig, act, old) == 0)
		return 0;
	if (act && preload_signal_faults()) {
		keep = *act;
		without_faults(&act->sa_mask, &keep.sa_mask);
		act = &keep;
	}
	return __sigaction(sig, act, old);
}

/* signal(3) as the C library's: BSD semantics, the signal blocked in its
 * handler, system calls restarted. */
PRELOAD_API sighandler_t signal(int sig, sighandler_t handler)
{
	struct sigaction sa = { .sa_handler = handler, .sa_flags = SA_RESTART }, old;

	if (sig <= 0 || sig >= NSIG || sigemptyset(&sa.sa_mask) || sigaddset(&sa.sa_mask, sig)) {
		errno = EINVAL;
		return SIG_ERR;
	}
	return sigaction(sig, &sa, &old) ? SIG_ERR : old.sa_handler;
}

PRELOAD_API sighandler_t bsd_signal(int sig, sighandler_t handler)
{
	return signal(sig, handler);
}

/*
 * Alternate signal stacks. emm's handler runs on the thread's alternate
 * stack, and a program may put that stack on its heap (Python's
 * faulthandler does): a stack page that is not mapped when a fault
 * arrives leaves the kernel nowhere to deliver it, and one that the fault
 * path evicts while it runs there pulls the stack from under it. Either
 * kills the process. So while a heap block is a thread's alternate stack
 * its pages are pinned. The pin goes when the thread sets another stack
 * or none; a page at either end that the block shares with others stays
 * pinned until the heap frees it (pins are per page, not counted).
 */
struct pinned { uintptr_t start, end; };
/* This thread's alternate stack while its pages are pinned, else size 0. */
static __thread stack_t alt_pinned __attribute__((tls_model("initial-exec")));

/* The C library's sigaltstack is the bare system call; emm's own calls
 * (renamed at build time) and the preload's come here. */
HEAP_INTERNAL int emm_preload_sigaltstack(const stack_t *ss, stack_t *old)
{
	return (int)syscall(SYS_sigaltstack, ss, old);
}

/* The pages [p, p + len) touches (outward), or those wholly inside it. */
static struct pinned pages_of(const void *p, size_t len, bool outward)
{
	uintptr_t s = (uintptr_t)p, e = s + len;
	uintptr_t mask = (uintptr_t)sysconf(_SC_PAGESIZE) - 1;

	if (outward)
		return (struct pinned){ s & ~mask, (e + mask) & ~mask };
	s = (s + mask) & ~mask;
	e &= ~mask;
	return (struct pinned){ s, e > s ? e : s };
}

/* Pin a stack that lies in the heap or in an emm mapping (preload-mmap.c):
 * true if it is now pinned. */
static bool pin_stack(struct emm *m, const stack_t *ss)
{
	struct pinned p;

	if (!m || !ss || (ss->ss_flags & SS_DISABLE) || !ss->ss_size ||
	    (!heap_of(ss->ss_sp) && !preload_mmap_owns(ss->ss_sp)))
		return false;
	p = pages_of(ss->ss_sp, ss->ss_size, true);
	return emm_pin(m, (void *)p.start, p.end - p.start) == 0;
}

/* Its pages at the ends may hold other blocks, perhaps another pinned
 * stack: those stay pinned. */
static void unpin_stack(struct emm *m, const stack_t *ss)
{
	struct pinned p = pages_of(ss->ss_sp, ss->ss_size, false);

	if (p.end > p.start)
		emm_unpin(m, (void *)p.start, p.end - p.start);
}

PRELOAD_API int sigaltstack(const stack_t *ss, stack_t *old)
{
	struct emm *m = preload_mm();
	bool pinned = pin_stack(m, ss);

	if (emm_preload_sigaltstack(ss, old)) {
		int err = errno;

		/* The stack in place may share pages with the one refused. */
		if (pinned)
			unpin_stack(m, ss);
		if (pinned && alt_pinned.ss_size)
			pin_stack(m, &alt_pinned);
		errno = err;
		return -1;
	}
	if (!ss)
		return 0;
	/* Pin the new stack again: it may share pages with the old one. */
	if (alt_pinned.ss_size) {
		unpin_stack(m, &alt_pinned);
		pinned = pinned && pin_stack(m, ss);
	}
	alt_pinned = pinned ? *ss : (stack_t){ 0 };
	return 0;
}
