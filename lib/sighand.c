/* SPDX-License-Identifier: MIT */
/*
 * The process-wide SIGSEGV/SIGBUS handler every backend shares: a fault in
 * an instance's memory goes to do_user_fault, what emm does not own is
 * chained to the program's handler; installed for the first instance, put
 * back after the last, held in front for the span of a fork.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "debug.h"
#include "arch.h"
#include "backend.h"
#include "fault.h"
#include "physmem.h"
#include "pte.h"
#include "report.h"
#include "fork.h"
#include "util.h"
#include "vma.h"
#include "profile.h"

static const int fault_signals[] = { SIGSEGV, SIGBUS };
/*
 * What emm chains to for each fault signal: what its handler replaced, or
 * what the program installed since through libemm-preload.so's sigaction
 * (backend_signal_interpose). Two copies, so that a handler reading one
 * does not see it half-written: writers (install_lock held) fill the other
 * and then switch (only a handler that is still reading when two more
 * installs have landed could).
 */
static struct sigaction old_action[ARRAY_SIZE(fault_signals)][2];
static _Atomic int old_cur[ARRAY_SIZE(fault_signals)];
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static int users;
static bool atfork_set;
/* This process's pid, renewed in a child by fork(3)'s atfork handler, so
 * that a fault asks no getpid system call (see fault_foreign). */
static _Atomic pid_t self_pid;

/* Async-signal-safe (it runs in a forked child too). */
static void self_pid_renew(void)
{
	atomic_store_explicit(&self_pid, getpid(), memory_order_relaxed);
}

/*
 * Async-signal-safe. Is this a forked child touching its parent's instance
 * (mm_foreign)? A child made by fork(3) knows its pid from the atfork
 * handler; one made without it (_Fork, clone) is asked the kernel only
 * when the address has no mapping at all, as the views it did not inherit
 * (MADV_DONTFORK) have none: in the instance's own process an app-view
 * fault is always an access error (SIGSEGV) or the userfaultfd's SIGBUS.
 */
static bool fault_foreign(const struct emm *mm, int sig, const siginfo_t *si)
{
	if (atomic_load_explicit(&self_pid, memory_order_relaxed) != mm->pid)
		return true;
	return sig == SIGSEGV && si->si_code == SEGV_MAPERR && mm_foreign(mm);
}

/*
 * A handler emm chains to that was installed with SA_RESETHAND has run: as
 * the kernel resets such a handler to SIG_DFL when it delivers the signal,
 * what emm chains to is SIG_DFL from then on (a crash handler that logs and
 * returns relies on the repeated fault to kill; chained again and again,
 * it would spin). Cleared when an action is stored.
 */
static _Atomic bool reset_fired[ARRAY_SIZE(fault_signals)];
static struct sigaction dfl_action = { .sa_handler = SIG_DFL };

/* Async-signal-safe. */
static struct sigaction *old_for(int sig)
{
	size_t i = sig == SIGBUS;

	if (atomic_load_explicit(&reset_fired[i], memory_order_relaxed))
		return &dfl_action;
	/* Acquire: pairs with set_old's release, the copy is whole. */
	return &old_action[i][atomic_load_explicit(&old_cur[i], memory_order_acquire)];
}

/* install_lock held. */
static void set_old(size_t i, const struct sigaction *sa)
{
	int next = !atomic_load_explicit(&old_cur[i], memory_order_relaxed);

	old_action[i][next] = *sa;
	/* Release: the copy is written before a handler can pick it. */
	atomic_store_explicit(&old_cur[i], next, memory_order_release);
	atomic_store_explicit(&reset_fired[i], false, memory_order_relaxed);
}

/* Async-signal-safe. Raise sig at this thread again once the handler returns. */
static void reraise(int sig)
{
	syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), sig);
}

/* Async-signal-safe. Leave r's instance's read section, if r. */
static void leave(struct rsv *r, int srcu)
{
	if (r)
		rsv_leave(r, srcu);
}

/*
 * Async-signal-safe. Hand the signal to whoever had it before emm. With
 * nobody (SIG_DFL, or SIG_IGN, which the kernel does not honour for a real
 * fault either): report, put the default back and let it act, so the process
 * dies of this signal with a core. A signal that was sent (kill, raise: a
 * handler that reports a crash and raises it again) is no fault and gets
 * no report. Called inside r's instance's read section
 * (rsv_enter), which is left here before any foreign code runs; with none
 * when r is NULL.
 */
static void chain(int sig, siginfo_t *si, void *uc, int access, struct rsv *r, int srcu)
{
	struct sigaction *old = old_for(sig), act;
	bool user_sent = si->si_code <= 0;

	if (old->sa_handler == SIG_IGN && user_sent) {
		leave(r, srcu);
		return;
	}
	if (old->sa_handler == SIG_DFL || old->sa_handler == SIG_IGN) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };

		if (!user_sent)
			report_bad_fault(sig, si, uc, access, r);
		leave(r, srcu);
		sigaction(sig, &dfl, NULL);
		/* A fault the instruction repeats kills by itself; a signal that
		 * was sent, or a SIGBUS emm decided on, must be raised again. */
		if (user_sent || si->si_errno == EMM_SIGBUS_MARK)
			reraise(sig);
		return;
	}
	leave(r, srcu);
	act = *old;
	if (act.sa_flags & SA_RESETHAND)
		atomic_store_explicit(&reset_fired[sig == SIGBUS], true, memory_order_relaxed);
	debug_handler_leave();		/* the program's handler is not emm's */
	if (act.sa_flags & SA_SIGINFO)
		act.sa_sigaction(sig, si, uc);
	else
		act.sa_handler(sig);
	debug_handler_enter();
}

/* Async-signal-safe. The access when the architecture does not say (or
 * says only ARCH_ACCESS_DATA): a fault on a page that is mapped must be
 * one its mapping forbids. A data fault on a page mapped for reading and
 * writing is one another thread has served since: taken as a read, it
 * finds the page mapped and the access is made again. */
static int infer_access(struct rsv *r, uintptr_t addr, int said)
{
	int prot = pte_prot(atomic_load_explicit(pte_of(r, addr), memory_order_relaxed));

	if (prot == EMM_PROT_NONE)
		return EMM_PROT_READ;
	if (!(prot & EMM_PROT_WRITE))
		return EMM_PROT_WRITE;
	return said == ARCH_ACCESS_DATA ? EMM_PROT_READ : EMM_PROT_EXEC;
}

/* Async-signal-safe. An access the VMA forbids: its trap callback decides. */
static void access_error(int sig, siginfo_t *si, void *uc, int access, struct rsv *r,
			 const struct emm_vma *vma, int srcu)
{
	struct emm_fault f = {
		.addr = si->si_addr, .write = access == EMM_PROT_WRITE,
		.vma_start = (void *)vma->start, .vma_len = vma->end - vma->start,
		.policy = vma->policy,
	};
	emm_trap_fn trap = vma->trap;
	void *arg = vma->trap_arg;
	struct trap_mark mark;
	int ret;

	if (!trap) {
		chain(sig, si, uc, access, r, srcu);
		return;
	}
	/* The callback may leave with siglongjmp: it must run outside the
	 * read section. emm_map, emm_unmap and emm_protect refuse to run
	 * inside it (in_trap_callback). */
	leave(r, srcu);
	debug_handler_leave();		/* the callback is the program's code */
	trap_callback_enter(&mark);
	ret = trap(&f, arg);
	trap_callback_leave(&mark);
	debug_handler_enter();
	if (ret == EMM_TRAP_RETRY)
		return;
	chain(sig, si, uc, access, NULL, 0);
}

static void emm_sigaction(int sig, siginfo_t *si, void *uc);

/* Async-signal-safe. Is emm's handler the one installed for sig? */
static bool handler_is_emm(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == emm_sigaction;
}

/*
 * Async-signal-safe. The fault could not be served: SIGBUS, as the kernel
 * does, to whatever handler is installed for it now. Where that is emm's
 * own, it goes to the handler emm replaced. Otherwise it is queued to this
 * thread with the fault's siginfo, so the kernel runs the program's handler
 * with its mask and flags; and as for a fault's signal from the kernel, one
 * that is ignored or blocked is not: the default action kills the process.
 */
static void fault_sigbus(siginfo_t *si, void *uc, int access, struct rsv *r, int srcu)
{
	siginfo_t bus = *si;
	struct sigaction cur;
	sigset_t set;

	bus.si_signo = SIGBUS;
	bus.si_code = BUS_ADRERR;
	bus.si_errno = EMM_SIGBUS_MARK;
	if (sigaction(SIGBUS, NULL, &cur) == 0 && handler_is_emm(&cur)) {
		chain(SIGBUS, &bus, uc, access, r, srcu);
		return;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGBUS);
	if (cur.sa_handler == SIG_DFL || cur.sa_handler == SIG_IGN ||
	    sigismember(&((ucontext_t *)uc)->uc_sigmask, SIGBUS)) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };

		report_bad_fault(SIGBUS, &bus, uc, access, r);
		sigaction(SIGBUS, &dfl, NULL);
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	}
	leave(r, srcu);
	/* The signal is taken at once, by the program's handler, which may
	 * leave with siglongjmp: that is not emm's handler any more. */
	debug_handler_leave();
	syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid), SIGBUS, &bus);
	debug_handler_enter();
}

/* Async-signal-safe. Is si a SIGBUS a service thread sent for a fault it
 * could not serve (backend_sigbus_send)? */
static bool deferred_sigbus(const siginfo_t *si)
{
	return si->si_code == SI_QUEUE && si->si_errno == EMM_SIGBUS_MARK;
}

/*
 * Async-signal-safe. Deliver, in this thread, the SIGBUS a service thread
 * deferred to it, as if the fault had been served here. The service thread
 * put in si_lower the instruction this thread slept on in the fault; where
 * the signal found it elsewhere, the fault was one it had left before the
 * signal came (another signal took it out of its sleep, or a wake for an
 * earlier fault made it retry, and its retry sent another message), and it
 * is dropped: were the access made again, it would fault again, and that
 * fault is served. Raising it would run the program's SIGBUS handler where
 * no access failed: after the handler left the first with siglongjmp, say.
 */
static void deliver_deferred(siginfo_t *si, void *uc)
{
	int access = si->si_addr_lsb, srcu = 0;
	uintptr_t pc = (uintptr_t)si->si_lower;
	struct rsv *r;

	if (pc && arch_context_pc(uc) && arch_context_pc(uc) != pc)
		return;
	r = rsv_enter((uintptr_t)si->si_addr, &srcu);
	si->si_addr_lsb = 0;
	si->si_lower = NULL;
	fault_sigbus(si, uc, access, r, srcu);
}

/* Async-signal-safe: the process-wide handler (DESIGN.md, "The fault path"). */
static void emm_sigaction(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno, srcu = 0;
	uintptr_t addr = (uintptr_t)si->si_addr;
	const struct emm_vma *vma;
	int access = EMM_PROT_READ;
	struct rsv *r;

	debug_handler_enter();
	if (deferred_sigbus(si)) {
		deliver_deferred(si, uc);
		goto out;
	}
	r = si->si_code > 0 ? rsv_enter(addr, &srcu) : NULL;

	if (r && fault_foreign(r->mm, sig, si)) {
		static const char msg[] = "emm: a forked child touched memory of an emm instance "
					  "of its parent, which it does not inherit\n";
		static volatile pid_t said;	/* once per process, however often it touches */

		/* Touched before fork's child handler made the copy: make it now. */
		if (fork_child_copy()) {
			leave(r, srcu);
			goto out;
		}
		if (said != getpid())
			write_all(STDERR_FILENO, msg, sizeof(msg) - 1);
		said = getpid();
		leave(r, srcu);
		r = NULL;
	}
	if (!r || (sig != SIGSEGV && sig != r->mm->backend->fault_signal)) {
		chain(sig, si, uc, access, r, srcu);
		goto out;
	}
	access = arch_fault_access(si, uc);
	if (access == ARCH_ACCESS_UNKNOWN || access == ARCH_ACCESS_DATA)
		access = infer_access(r, addr, access);
	profile_fault(r, addr, uc);
	switch (do_user_fault(r, addr, access, &vma)) {
	case FAULT_BAD_AREA:
		chain(sig, si, uc, access, r, srcu);
		break;
	case FAULT_ACCESS:
		access_error(sig, si, uc, access, r, vma, srcu);
		break;
	case FAULT_SIGBUS:
		fault_sigbus(si, uc, access, r, srcu);
		break;
	default:
		rsv_leave(r, srcu);
	}
out:
	debug_handler_leave();
	errno = saved_errno;
}

/*
 * A fault of thread tid at addr that a service thread could not serve: its
 * SIGBUS, as the kernel's would be, to the handler installed for SIGBUS now.
 * The signal a fault raises (BUS_ADRERR) can only be sent by a thread to
 * itself: where emm's handler takes SIGSEGV in that thread, the SIGBUS goes
 * there marked, and that thread raises it (deliver_deferred); else, where
 * a handler takes SIGBUS there, it gets it marked, with SI_QUEUE; else
 * (SIGBUS ignored, default or blocked in tid) the process dies of it here,
 * as the kernel kills a process whose fault's SIGBUS is ignored or blocked.
 * blocked: the signals tid blocks; pc: the instruction tid sleeps on in
 * its fault, 0 when not known. Not in a signal handler: a service thread.
 */
void backend_sigbus_send(pid_t tid, uint64_t blocked, uintptr_t addr, int access, uintptr_t pc,
			 struct rsv *r)
{
	siginfo_t si;
	struct sigaction cur, *eff = &cur;
	sigset_t set;

	memset(&si, 0, sizeof(si));
	si.si_code = SI_QUEUE;
	si.si_errno = EMM_SIGBUS_MARK;
	si.si_addr = (void *)addr;
	si.si_addr_lsb = (short)access;
	if (sigaction(SIGSEGV, NULL, &cur) == 0 && handler_is_emm(&cur) &&
	    !(blocked & (1ull << (SIGSEGV - 1)))) {
		si.si_signo = SIGSEGV;
		si.si_lower = (void *)pc;
		syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, SIGSEGV, &si);
		return;
	}
	si.si_signo = SIGBUS;
	if (sigaction(SIGBUS, NULL, &cur) == 0 && handler_is_emm(&cur))
		eff = old_for(SIGBUS);
	if (eff->sa_handler != SIG_DFL && eff->sa_handler != SIG_IGN &&
	    !(blocked & (1ull << (SIGBUS - 1)))) {
		syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, SIGBUS, &si);
		return;
	}
	si.si_code = BUS_ADRERR;
	si.si_addr_lsb = 0;
	report_bad_fault(SIGBUS, &si, NULL, access, r);
	cur = (struct sigaction){ .sa_handler = SIG_DFL };
	sigaction(SIGBUS, &cur, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGBUS);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	reraise(SIGBUS);
}

/* emm's action for the fault signals. */
static void emm_action(struct sigaction *sa)
{
	*sa = (struct sigaction){ .sa_sigaction = emm_sigaction,
				  .sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER };
	/* Every asynchronous signal stays blocked while emm's handler runs: no
	 * handler can interrupt it while it holds a page lock. Faults stay
	 * deliverable (SA_NODEFER too): code the handler runs for the program
	 * (a fill on a pager thread, a trap callback) may touch emm memory. */
	sig_fill_async(&sa->sa_mask);
}

/*
 * The span of a fork(3). In the child, the C library touches memory before
 * any child handler runs (its NSS state, its stdio locks), memory that may
 * be emm's and is not mapped there until the copy (fork.c): the fault must
 * reach emm's handler, which makes the copy. Two things can stop it. A
 * handler the program installed after emm's takes the fault first and may
 * take it for a crash (Python's faulthandler prints a fatal error and
 * raises the signal again). And the signal's frame goes on the thread's
 * alternate stack, which may itself be emm memory (faulthandler's comes
 * from malloc, which the preload serves): the kernel cannot write it, and
 * kills the child. So for the span of the fork, emm's handler is on top,
 * chaining to the program's, and the forking thread runs its handlers on a
 * stack of emm's own (plain anonymous memory, which the child inherits);
 * both are put back in the parent, and in the child after the copy.
 */
#define FORK_STACK_SIZE	(64 * 1024)

static struct sigaction held_action[ARRAY_SIZE(fault_signals)], held_old[ARRAY_SIZE(fault_signals)];
static bool held[ARRAY_SIZE(fault_signals)];
static stack_t held_stack;
static bool stack_held;
static void *fork_stack;
/* This thread is forking: it holds install_lock (backend_signal_interpose). */
static __thread bool forking __attribute__((tls_model("initial-exec")));

static void fork_hold(void)
{
	struct sigaction sa;
	stack_t ss;

	emm_action(&sa);
	pthread_mutex_lock(&install_lock);
	forking = true;
	for (size_t i = 0; users && i < ARRAY_SIZE(fault_signals); i++) {
		if (sigaction(fault_signals[i], NULL, &held_action[i]) < 0 ||
		    handler_is_emm(&held_action[i]))
			continue;
		held_old[i] = *old_for(fault_signals[i]);
		set_old(i, &held_action[i]);
		held[i] = sigaction(fault_signals[i], &sa, NULL) == 0;
		if (!held[i])
			set_old(i, &held_old[i]);
	}
	if (!fork_stack) {
		fork_stack = mmap(NULL, FORK_STACK_SIZE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (fork_stack == MAP_FAILED)
			fork_stack = NULL;
	}
	/* Not while running on the alternate stack: it cannot be changed. */
	ss = (stack_t){ .ss_sp = fork_stack, .ss_size = FORK_STACK_SIZE };
	stack_held = users && fork_stack && sigaltstack(NULL, &held_stack) == 0 &&
		     !(held_stack.ss_flags & SS_ONSTACK) && sigaltstack(&ss, NULL) == 0;
}

static void fork_release(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(fault_signals); i++) {
		if (!held[i])
			continue;
		sigaction(fault_signals[i], &held_action[i], NULL);
		set_old(i, &held_old[i]);
		held[i] = false;
	}
	if (stack_held)
		sigaltstack(&held_stack, NULL);
	stack_held = false;
	forking = false;
	pthread_mutex_unlock(&install_lock);
}

/* Registered after fork.c's handlers: its child handler, which makes the
 * copy, runs before this one. */
static void fork_child_release(void)
{
	self_pid_renew();
	fork_release();
}

/*
 * For libemm-preload.so's sigaction(2) and signal(3): while emm's handler
 * is installed, a handler the program installs for SIGSEGV or SIGBUS does
 * not take its place (where it would see emm's faults first: Python's
 * faulthandler takes one for a crash), it becomes what emm chains to; and
 * the program is told of that one as the old action. 0 when so handled;
 * -1 when emm's handler is not installed and the real call is to be made.
 * Not async-signal-safe. Hidden like the rest; the preload's build keeps
 * it global in the copy of emm it links in.
 */
int backend_signal_interpose(int sig, const struct sigaction *act, struct sigaction *old)
{
	size_t i = sig == SIGBUS;
	struct sigaction cur;
	bool lock = !forking;	/* an atfork handler of the program's, in the fork's span */
	int ret = -1;

	if (lock)
		pthread_mutex_lock(&install_lock);
	if (users && sigaction(sig, NULL, &cur) == 0 && handler_is_emm(&cur)) {
		if (old)
			*old = held[i] ? held_action[i] : *old_for(sig);
		if (act && held[i])
			held_action[i] = *act;
		if (act)
			set_old(i, act);
		ret = 0;
	}
	if (lock)
		pthread_mutex_unlock(&install_lock);
	return ret;
}

/* Install the handler for the first instance; remember what it replaces. */
int backend_signal_get(void)
{
	struct sigaction sa;
	int err = 0;

	emm_action(&sa);
	pthread_mutex_lock(&install_lock);
	if (!atfork_set && pthread_atfork(fork_hold, fork_release, fork_child_release) == 0)
		atfork_set = true;
	self_pid_renew();
	for (size_t i = 0; !users && i < ARRAY_SIZE(fault_signals); i++) {
		struct sigaction was;

		if (sigaction(fault_signals[i], &sa, &was) < 0)
			err = -errno;
		else
			set_old(i, &was);
	}
	if (!err)
		users++;
	pthread_mutex_unlock(&install_lock);
	return err;
}

/* The last instance is gone: put back what was there, unless the
 * application has installed a handler of its own since. */
void backend_signal_put(void)
{
	pthread_mutex_lock(&install_lock);
	if (--users == 0) {
		for (size_t i = 0; i < ARRAY_SIZE(fault_signals); i++) {
			struct sigaction cur;

			if (sigaction(fault_signals[i], NULL, &cur) == 0 && handler_is_emm(&cur))
				sigaction(fault_signals[i], old_for(fault_signals[i]), NULL);
		}
	}
	pthread_mutex_unlock(&install_lock);
}
