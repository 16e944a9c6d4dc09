/* SPDX-License-Identifier: MIT */
/* Faults emm does not own reach the handler installed before it, or kill with a report. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)

static char *own;		/* a PROT_NONE page of our own, outside emm */
static sigjmp_buf env;
static siginfo_t seen_si;
static volatile int info_calls, plain_calls, seen_sig;

static void info_handler(int sig, siginfo_t *si, void *uc)
{
	seen_si = *si;
	info_calls++;
	siglongjmp(env, 1);
}

static void plain_handler(int sig)
{
	seen_sig = sig;
	plain_calls++;
	siglongjmp(env, 1);
}

static int touch(volatile char *p, int write)
{
	if (sigsetjmp(env, 1))
		return 1;
	if (write)
		*p = 1;
	else
		(void)*p;
	return 0;
}

/* Open, reserve 4 MiB and map its first MiB; returns the reservation. */
static char *open_with_vma(struct emm **mmp)
{
	void *r;

	if (emm_open(NULL, mmp) || emm_reserve(*mmp, 4 * MIB, &r) || emm_map(*mmp, r, MIB, NULL))
		bail("cannot open, reserve and map");
	return r;
}

static void test_siginfo(void)
{
	struct sigaction now;
	struct emm *mm;
	char *r;

	set_handler(SIGSEGV, NULL, info_handler);
	r = open_with_vma(&mm);
	sigaction(SIGSEGV, NULL, &now);
	ok(now.sa_sigaction != info_handler && (now.sa_flags & (SA_SIGINFO | SA_ONSTACK)) ==
	   (SA_SIGINFO | SA_ONSTACK), "emm_open installed its own SA_SIGINFO|SA_ONSTACK handler");
	ok(touch(own + 100, 0), "read of our PROT_NONE page faults");
	is_int(info_calls, 1, "the SA_SIGINFO handler installed before emm got it");
	ok(seen_si.si_addr == own + 100 && seen_si.si_signo == SIGSEGV &&
	   seen_si.si_code == SEGV_ACCERR, "with si_addr %p, si_signo and si_code intact",
	   seen_si.si_addr);
	ok(touch(r + 2 * MIB + 8, 1), "write in the reservation outside any VMA faults");
	ok(info_calls == 2 && seen_si.si_addr == r + 2 * MIB + 8, "it reached the handler too");
	memset(r, 0x42, MIB);
	ok(r[MIB - 1] == 0x42 && info_calls == 2, "emm still serves its own faults");
	is_int(emm_close(mm), 0, "emm_close");
	sigaction(SIGSEGV, NULL, &now);
	ok(now.sa_sigaction == info_handler, "the last close put the old handler back");
	set_handler(SIGSEGV, SIG_DFL, NULL);
}

static void test_plain(void)
{
	struct sigaction now;
	struct emm *mm;
	char *r;

	set_handler(SIGSEGV, plain_handler, NULL);
	r = open_with_vma(&mm);
	ok(touch(own, 1), "write to our PROT_NONE page faults");
	ok(plain_calls == 1 && seen_sig == SIGSEGV, "the plain handler installed before emm got it");
	ok(touch(r + 3 * MIB, 0), "read in the reservation outside any VMA faults");
	is_int(plain_calls, 2, "it reached the plain handler too");
	is_int(emm_close(mm), 0, "emm_close");
	sigaction(SIGSEGV, NULL, &now);
	ok(now.sa_handler == plain_handler, "the last close put the plain handler back");
	set_handler(SIGSEGV, SIG_DFL, NULL);
}

/* In a child with SIG_DFL: names its target on stderr, then touches it. */
static void die_child(void *arg)
{
	int outside_emm = *(int *)arg;
	struct rlimit none = { 0, 0 };
	struct emm *mm;
	char *r, *target;

	setrlimit(RLIMIT_CORE, &none);
	prctl(PR_SET_DUMPABLE, 0);	/* no core file from a death we ask for */
	signal(SIGSEGV, SIG_DFL);
	r = open_with_vma(&mm);
	target = outside_emm ? own + 64 : r + 2 * MIB + 64;
	fprintf(stderr, "test: target %lx\n", (unsigned long)(uintptr_t)target);
	fflush(stderr);
	*(volatile char *)target = 1;
	_exit(42);
}

static void test_dfl(int outside_emm)
{
	const char *where = outside_emm ? "outside emm" : "in a reservation, no VMA";
	char out[16384], hex[32];
	char *rest;
	int status = 0;

	if (fork_stderr(die_child, &outside_emm, out, sizeof(out), &status)) {
		ok(0, "fork");
		skip(2, "no child");
		return;
	}
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
	   "SIG_DFL, fault %s: the child dies of SIGSEGV", where);
	rest = strchr(out, '\n');
	rest = rest ? rest + 1 : out;
	ok(strstr(rest, "emm:") != NULL, "SIG_DFL, fault %s: a report on stderr", where);
	if (sscanf(out, "test: target %31s", hex) != 1)
		hex[0] = '\0';
	ok(hex[0] && strstr(rest, hex), "SIG_DFL, fault %s: the report names the address %s",
	   where, hex);
	if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) || !strstr(rest, "emm:"))
		diag("status 0x%x, stderr:\n%s", status, out);
}

/* In a child: a handler installed with SA_RESETHAND before emm, which says
 * so and returns, as crash handlers that log and let the repeated fault
 * kill do; then a fault outside emm. */
static void resethand_handler(int sig)
{
	(void)sig;
	(void)!write(STDERR_FILENO, "handler\n", 8);
}

static void resethand_child(void *arg)
{
	struct sigaction sa = { .sa_handler = resethand_handler, .sa_flags = SA_RESETHAND };
	struct rlimit none = { 0, 0 };
	struct emm *mm;

	(void)arg;
	setrlimit(RLIMIT_CORE, &none);
	prctl(PR_SET_DUMPABLE, 0);
	alarm(10);		/* a handler called again and again: SIGALRM, not a hang */
	sigaction(SIGSEGV, &sa, NULL);
	open_with_vma(&mm);
	*(volatile char *)(own + 64) = 1;
	_exit(42);
}

static void test_resethand(void)
{
	char out[16384];
	int status = 0, calls = 0;

	if (fork_stderr(resethand_child, NULL, out, sizeof(out), &status)) {
		ok(0, "fork");
		skip(1, "no child");
		return;
	}
	for (const char *p = out; (p = strstr(p, "handler\n")); p += 8)
		calls++;
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
	   "SA_RESETHAND handler that returns: the child dies of SIGSEGV (status 0x%x)", status);
	is_int(calls, 1, "SA_RESETHAND: the handler ran once, as the kernel runs it");
}

static struct sigaction emm_act;
static volatile int app_own, app_passed;

/* An application's handler installed after emm: its own page, else emm's. */
static void app_handler(int sig, siginfo_t *si, void *uc)
{
	char *a = si->si_addr;

	if (a >= own && a < own + PAGE) {
		app_own++;
		mprotect(own, PAGE, PROT_READ | PROT_WRITE);
		return;
	}
	app_passed++;
	if (emm_act.sa_flags & SA_SIGINFO)
		emm_act.sa_sigaction(sig, si, uc);
	else if (emm_act.sa_handler != SIG_DFL && emm_act.sa_handler != SIG_IGN)
		emm_act.sa_handler(sig);
	else
		signal(sig, SIG_DFL);
}

static void test_after(void)
{
	struct sigaction mine = { .sa_sigaction = app_handler, .sa_flags = SA_SIGINFO };
	struct emm *mm;
	size_t bad = 0;
	char *r;

	r = open_with_vma(&mm);
	sigemptyset(&mine.sa_mask);
	is_int(sigaction(SIGSEGV, &mine, &emm_act), 0, "an application handler installed after emm");
	for (size_t i = 0; i < MIB; i += 64)
		r[i] = (char)(i / 64 * 7);
	for (size_t i = 0; i < MIB; i += 64)
		bad += r[i] != (char)(i / 64 * 7);
	is_int(bad, 0, "emm faults passed on by it are served: data written and read back");
	if (emm_backend(mm) != EMM_BACKEND_SIGNAL)
		ok(app_passed == 0, "it passed %d faults on: the userfaultfd reports them "
		   "(to a service thread, or as SIGBUS), not as SIGSEGV", app_passed);
	else
		ok(app_passed > 0, "it passed %d faults on", app_passed);
	/* volatile: a plain store could be moved after the read of app_own
	 * (the compiler does so for aarch64), and the test would read 0. */
	*(volatile char *)&own[5] = 9;
	ok(app_own == 1 && own[5] == 9, "it handled the fault in its own page");
	sigaction(SIGSEGV, &emm_act, NULL);
	is_int(emm_close(mm), 0, "emm_close");
}

int main(void)
{
	plan(9 + 6 + 3 * 2 + 2 + 5);
	own = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (own == MAP_FAILED)
		bail("mmap: %s", strerror(errno));
	test_siginfo();
	test_plain();
	test_dfl(0);
	test_dfl(1);
	test_resethand();
	test_after();
	return done_testing();
}
