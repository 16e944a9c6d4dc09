/* SPDX-License-Identifier: MIT */
/* The signal backend: one process-wide SIGSEGV/SIGBUS handler, and chaining. */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch.h"
#include "internal.h"

static const int fault_signals[] = { SIGSEGV, SIGBUS };
static struct sigaction old_action[ARRAY_SIZE(fault_signals)];
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static int users;

/* Async-signal-safe. */
static struct sigaction *old_for(int sig)
{
	return &old_action[sig == SIGBUS];
}

/* Async-signal-safe. Raise sig at this thread again once the handler returns. */
static void reraise(int sig)
{
	syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), sig);
}

/*
 * Async-signal-safe. Hand the signal to whoever had it before emm. With
 * nobody (SIG_DFL, or SIG_IGN, which the kernel does not honour for a real
 * fault either): report, put the default back and let it act, so the process
 * dies of this signal with a core. Called inside an srcu read section, which
 * is left here before any foreign code runs.
 */
static void chain(int sig, siginfo_t *si, void *uc, int access, struct rsv *r, int srcu)
{
	struct sigaction *old = old_for(sig);
	bool user_sent = si->si_code <= 0;

	if (old->sa_handler == SIG_IGN && user_sent) {
		srcu_read_unlock(srcu);
		return;
	}
	if (old->sa_handler == SIG_DFL || old->sa_handler == SIG_IGN) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };

		report_bad_fault(sig, si, uc, access, r);
		srcu_read_unlock(srcu);
		sigaction(sig, &dfl, NULL);
		/* A fault the instruction repeats kills by itself; a signal that
		 * was sent, or a SIGBUS emm decided on, must be raised again. */
		if (user_sent || si->si_errno == EMM_SIGBUS_MARK)
			reraise(sig);
		return;
	}
	srcu_read_unlock(srcu);
	if (old->sa_flags & SA_SIGINFO)
		old->sa_sigaction(sig, si, uc);
	else
		old->sa_handler(sig);
}

/* Async-signal-safe. The access when the architecture does not say: a
 * fault on a page that is mapped must be one its mapping forbids. */
static int infer_access(struct rsv *r, uintptr_t addr)
{
	int prot = pte_prot(atomic_load_explicit(pte_of(r, addr), memory_order_relaxed));

	if (prot == EMM_PROT_NONE)
		return EMM_PROT_READ;
	return (prot & EMM_PROT_WRITE) ? EMM_PROT_EXEC : EMM_PROT_WRITE;
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

	count_event(r->mm, faults_bad);
	if (!trap) {
		chain(sig, si, uc, access, r, srcu);
		return;
	}
	/* The callback may call emm_protect (which waits for readers) or
	 * leave with siglongjmp: it must run outside the read section. */
	srcu_read_unlock(srcu);
	if (trap(&f, arg) == EMM_TRAP_RETRY)
		return;
	chain(sig, si, uc, access, NULL, srcu_read_lock());
}

/* Async-signal-safe. The fault could not be served: SIGBUS, as the kernel does. */
static void fault_sigbus(siginfo_t *si, void *uc, int access, struct rsv *r, int srcu)
{
	siginfo_t bus = *si;

	bus.si_signo = SIGBUS;
	bus.si_code = BUS_ADRERR;
	bus.si_errno = EMM_SIGBUS_MARK;
	chain(SIGBUS, &bus, uc, access, r, srcu);
}

/* Async-signal-safe. EMM_BACKEND_UFFD_SIGBUS: the userfaultfd turned a fault
 * on a page the app view does not map into SIGBUS; serve it here. */
static void uffd_sigbus_fault(siginfo_t *si, void *uc, struct rsv *r, int srcu)
{
	int access = arch_fault_access(si, uc);

	if (access == ARCH_ACCESS_UNKNOWN)
		access = EMM_PROT_WRITE;	/* a read would then be served writable */
	if (uffd_fault(r, (uintptr_t)si->si_addr, access) == FAULT_SIGBUS)
		fault_sigbus(si, uc, access, r, srcu);
	else
		srcu_read_unlock(srcu);
}

/* Async-signal-safe: the process-wide handler (DESIGN.md, "The fault path"). */
static void emm_sigaction(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno, srcu = srcu_read_lock();
	uintptr_t addr = (uintptr_t)si->si_addr;
	struct rsv *r = si->si_code > 0 ? rsv_lookup(addr) : NULL;
	const struct emm_vma *vma;
	int access = EMM_PROT_READ;

	if (r && sig == SIGBUS && uffd_sigbus_ours(r, si)) {
		uffd_sigbus_fault(si, uc, r, srcu);
		goto out;
	}
	if (!r || sig != SIGSEGV || uffd_foreign(r)) {
		chain(sig, si, uc, access, r, srcu);
		goto out;
	}
	access = arch_fault_access(si, uc);
	if (access == ARCH_ACCESS_UNKNOWN)
		access = infer_access(r, addr);
	vma = find_vma(r, addr);
	if (vma && r->mm->uffd && !vma_access_error(vma, access)) {
		/* The kernel VMA forbade what the emm VMA allows: emm_protect
		 * is changing it. Retry. */
		srcu_read_unlock(srcu);
	} else if (!vma) {
		count_event(r->mm, faults_bad);
		chain(sig, si, uc, access, r, srcu);
	} else if (vma_access_error(vma, access)) {
		access_error(sig, si, uc, access, r, vma, srcu);
	} else if (handle_mm_fault(r, addr, access, vma) == FAULT_SIGBUS) {
		fault_sigbus(si, uc, access, r, srcu);
	} else {
		srcu_read_unlock(srcu);
	}
out:
	errno = saved_errno;
}

/* Install the handler for the first instance; remember what it replaces. */
int signal_backend_get(void)
{
	struct sigaction sa = { .sa_sigaction = emm_sigaction,
				.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER };
	int err = 0;

	/* Every asynchronous signal stays blocked while emm's handler runs: no
	 * handler can interrupt it while it holds a page lock. Faults stay
	 * deliverable (SA_NODEFER too): code the handler runs for the program
	 * (a fill on a pager thread, a trap callback) may touch emm memory. */
	sig_fill_async(&sa.sa_mask);
	pthread_mutex_lock(&install_lock);
	for (size_t i = 0; !users && i < ARRAY_SIZE(fault_signals); i++)
		if (sigaction(fault_signals[i], &sa, &old_action[i]) < 0)
			err = -errno;
	if (!err)
		users++;
	pthread_mutex_unlock(&install_lock);
	return err;
}

/* The last instance is gone: put back what was there, unless the
 * application has installed a handler of its own since. */
void signal_backend_put(void)
{
	pthread_mutex_lock(&install_lock);
	if (--users == 0) {
		for (size_t i = 0; i < ARRAY_SIZE(fault_signals); i++) {
			struct sigaction cur;

			if (sigaction(fault_signals[i], NULL, &cur) == 0 &&
			    (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == emm_sigaction)
				sigaction(fault_signals[i], &old_action[i], NULL);
		}
	}
	pthread_mutex_unlock(&install_lock);
}
