/* SPDX-License-Identifier: MIT */
/* A SIGBUS emm raises for a fault it cannot serve goes to the handler installed at that moment, as the kernel's would. */
#include <setjmp.h>
#include <signal.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE	4096UL

static sigjmp_buf env;
static void *volatile bus_addr;
static volatile int bus_code;

static int failing_fill(void *arg, uint64_t off, void *buf, size_t len)
{
	(void)arg, (void)off, (void)buf, (void)len;
	return -EIO;
}

static const struct emm_pager_ops ops = { .fill = failing_fill };

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	bus_addr = si->si_addr;
	bus_code = si->si_code;
	siglongjmp(env, 1);
}

/* A PAGER VMA whose fill always fails: touching it is a SIGBUS from emm. */
static char *failing_vma(struct emm **mmp)
{
	EMM_OPTS(emm_map_opts, o, .prot = EMM_PROT_READ, .policy = EMM_POLICY_PAGER, .pager = &ops);
	char *p;

	if (emm_open(NULL, mmp) || emm_reserve(*mmp, 2 << 20, (void **)&p) ||
	    emm_map(*mmp, p, 16 * PAGE, &o))
		_exit(100);
	return p;
}

/* The program's handler, installed after emm_open, gets the SIGBUS. */
static void handler_after_open(void *arg)
{
	struct emm *mm;
	char *p = failing_vma(&mm);

	(void)arg;
	alarm(10);
	set_handler(SIGBUS, NULL, on_sigbus);
	if (sigsetjmp(env, 1) == 0) {
		(void)*(volatile char *)(p + 3 * PAGE + 5);
		_exit(101);
	}
	if (bus_addr != p + 3 * PAGE + 5 || bus_code != BUS_ADRERR)
		_exit(102);
	_exit(emm_close(mm) ? 103 : 0);
}

/* SIGBUS set back to the default after emm_open: the process dies of it. */
static void default_after_open(void *arg)
{
	struct emm *mm;
	char *p;

	(void)arg;
	set_handler(SIGBUS, NULL, on_sigbus);	/* before emm: what it would chain to */
	p = failing_vma(&mm);
	alarm(10);
	set_handler(SIGBUS, SIG_DFL, NULL);
	(void)*(volatile char *)p;
	_exit(101);
}

/* Ignored after emm_open: a fault's SIGBUS cannot be ignored, it kills. */
static void ignored_after_open(void *arg)
{
	struct emm *mm;
	char *p = failing_vma(&mm);

	(void)arg;
	alarm(10);
	set_handler(SIGBUS, SIG_IGN, NULL);
	(void)*(volatile char *)p;
	_exit(101);
}

/* Blocked in the faulting thread: as for a fault's SIGBUS from the
 * kernel, the process dies of it rather than fault for ever. */
static void blocked_after_open(void *arg)
{
	struct emm *mm;
	char *p = failing_vma(&mm);
	sigset_t set;

	(void)arg;
	alarm(10);
	set_handler(SIGBUS, NULL, on_sigbus);
	sigemptyset(&set);
	sigaddset(&set, SIGBUS);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	(void)*(volatile char *)p;
	_exit(101);
}

/* emm_map from a thread that blocks SIGSEGV warns. */
static void map_while_blocked(void *arg)
{
	struct emm *mm;
	sigset_t set;
	char *p;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGSEGV);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (emm_open(NULL, &mm) || emm_reserve(mm, 2 << 20, (void **)&p) ||
	    emm_map(mm, p, PAGE, NULL))
		_exit(100);
	_exit(0);
}

static void run(void (*fn)(void *), int want_sig, const char *what)
{
	char out[4096];
	int st;

	if (fork_stderr(fn, NULL, out, sizeof(out), &st))
		bail("fork");
	if (want_sig) {
		if (!ok(WIFSIGNALED(st) && WTERMSIG(st) == want_sig, "%s", what))
			diag("status 0x%x: %s", st, out);
	} else if (!ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", what)) {
		diag("status 0x%x: %s", st, out);
	}
}

int main(void)
{
	char out[4096];
	int st;

	{
		struct emm *mm;
		int b;

		if (emm_open(NULL, &mm))
			bail("emm_open");
		b = emm_backend(mm);
		emm_close(mm);
		/* Known gap: the service thread queues SIGBUS to the faulting
		 * thread and wakes it; a handler that returns, SIG_IGN or a
		 * blocked SIGBUS let it fault again and wait for ever. */
		if (b == EMM_BACKEND_UFFD)
			skip_all("on the uffd backend emm's SIGBUS is queued by a service thread, "
				 "and an ignored or blocked one is not yet turned into a kill");
	}
	plan(5);
	run(handler_after_open, 0, "a handler installed after emm_open gets emm's SIGBUS, with its address");
	run(default_after_open, SIGBUS, "SIG_DFL installed after emm_open: the process dies of SIGBUS");
	run(ignored_after_open, SIGBUS, "SIG_IGN installed after emm_open: the process dies of SIGBUS");
	run(blocked_after_open, SIGBUS, "SIGBUS blocked in the faulting thread: the process dies of SIGBUS");
	if (fork_stderr(map_while_blocked, NULL, out, sizeof(out), &st))
		bail("fork");
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "blocks SIGSEGV"),
	   "emm_map from a thread that blocks SIGSEGV warns");
	return done_testing();
}
