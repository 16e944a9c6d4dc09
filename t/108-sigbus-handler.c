/* SPDX-License-Identifier: MIT */
/* A SIGBUS emm raises for a fault it cannot serve goes to the handler installed at that moment, as the kernel's would; a system call there fails with EFAULT; what a thread that blocks the fault signals gets. */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE	4096UL

static sigjmp_buf env;
static void *volatile bus_addr;
static volatile int bus_code;
static volatile int bus_calls;
static int backend;

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

/* Returns twice (the access is made again, as after the kernel's SIGBUS),
 * then leaves. */
static void on_sigbus_returning(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	bus_addr = si->si_addr;
	if (++bus_calls == 3)
		siglongjmp(env, 1);
}

static void block(int sig)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, sig);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
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

/* A handler that returns is called again: the access is made again. */
static void handler_returns(void *arg)
{
	struct emm *mm;
	char *p = failing_vma(&mm);

	(void)arg;
	alarm(10);
	set_handler(SIGBUS, NULL, on_sigbus_returning);
	if (sigsetjmp(env, 1) == 0) {
		(void)*(volatile char *)(p + PAGE);
		_exit(101);
	}
	_exit(bus_calls == 3 && bus_addr == p + PAGE ? 0 : 102);
}

static volatile int expecting;
static volatile long stray_calls, access_calls;

/* Counts the calls that come where no access is being made; leaves with
 * siglongjmp at every third that comes at one. */
static void on_sigbus_counting(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)si, (void)uc;
	if (!expecting) {
		stray_calls++;
		return;
	}
	if (++access_calls % 3 == 0) {
		expecting = 0;
		siglongjmp(env, 1);
	}
}

static void on_tick(int sig)
{
	(void)sig;
}

/* A timer signal every 200 us takes the thread out of its sleep in the
 * fault now and then, and each fault the handler leaves by returning is
 * made again at once: messages for faults the thread has left meet it
 * elsewhere. The handler is called only where an access failed. */
static void sigbus_only_at_access(void *arg)
{
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGPROF };
	struct itimerspec its = { .it_value.tv_nsec = 200000, .it_interval.tv_nsec = 200000 };
	struct emm *mm;
	char *p = failing_vma(&mm);
	timer_t timer;
	long rounds = 0;
	long t0;

	(void)arg;
	alarm(20);
	set_handler(SIGBUS, NULL, on_sigbus_counting);
	set_handler(SIGPROF, on_tick, NULL);
	sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	if (timer_create(CLOCK_MONOTONIC, &sev, &timer) || timer_settime(timer, 0, &its, NULL))
		_exit(100);
	for (t0 = now_ms(); now_ms() - t0 < 500; rounds++) {
		expecting = 1;
		if (sigsetjmp(env, 1) == 0) {
			(void)*(volatile char *)(p + (rounds % 16) * PAGE);
			_exit(101);
		}
		for (int i = 0; i < 20; i++)
			(void)getppid();
	}
	its = (struct itimerspec){ 0 };
	timer_settime(timer, 0, &its, NULL);
	for (t0 = now_ms(); now_ms() - t0 < 50;)
		(void)getppid();
	fprintf(stderr, "%ld accesses, %ld handler calls at them, %ld elsewhere\n", rounds,
		(long)access_calls, (long)stray_calls);
	_exit(stray_calls ? 102 : emm_close(mm) ? 103 : 0);
}

/* A system call on a page emm cannot serve fails with EFAULT, as under the
 * kernel's swap, and raises no signal; nothing waits for ever. */
static void syscall_efault(void *arg)
{
	struct emm *mm;
	char *p = failing_vma(&mm);
	int zero = open("/dev/zero", O_RDONLY), pipefd[2];
	ssize_t r, w;

	(void)arg;
	alarm(10);
	set_handler(SIGBUS, NULL, on_sigbus);
	if (zero < 0 || pipe(pipefd))
		_exit(100);
	if (sigsetjmp(env, 1)) {
		fprintf(stderr, "SIGBUS at %p\n", bus_addr);
		_exit(101);
	}
	r = read(zero, p + 2 * PAGE, PAGE);
	if (r != -1 || errno != EFAULT)
		_exit(102);
	w = write(pipefd[1], p + 4 * PAGE, PAGE);
	if (w != -1 || errno != EFAULT)
		_exit(103);
	_exit(emm_close(mm) ? 104 : 0);
}

/* SIGSEGV blocked, a handler for SIGBUS: on the userfaultfd backends the
 * handler gets emm's SIGBUS; on signal, the first fault (a SIGSEGV) kills. */
static void segv_blocked(void *arg)
{
	struct emm *mm;
	char *p = failing_vma(&mm);

	(void)arg;
	alarm(10);
	set_handler(SIGBUS, NULL, on_sigbus);
	block(SIGSEGV);
	if (sigsetjmp(env, 1) == 0) {
		(void)*(volatile char *)(p + 7 * PAGE + 1);
		_exit(101);
	}
	_exit(bus_addr == p + 7 * PAGE + 1 ? 0 : 102);
}

/* A thread that blocks SIGSEGV and SIGBUS touches anonymous memory: served
 * on uffd; on signal and uffd-sigbus the kernel kills the process at the
 * first fault emm must serve (its handler cannot run). */
static void faults_blocked(void *arg)
{
	struct emm *mm;
	char *p;

	(void)arg;
	alarm(10);
	if (emm_open(NULL, &mm) || emm_reserve(mm, 2 << 20, (void **)&p) ||
	    emm_map(mm, p, 64 * PAGE, NULL))
		_exit(100);
	block(SIGSEGV);
	block(SIGBUS);
	for (int i = 0; i < 64; i++)
		p[i * PAGE] = (char)i;
	for (int i = 0; i < 64; i++)
		if (p[i * PAGE] != (char)i)
			_exit(102);
	_exit(emm_close(mm) ? 103 : 0);
}

/* emm_map from a thread that blocks the signal its faults raise warns. */
static void map_while_blocked(void *arg)
{
	struct emm *mm;
	char *p;

	(void)arg;
	block(SIGSEGV);
	block(SIGBUS);
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
	} else if (*out) {
		diag("%s", out);
	}
}

int main(void)
{
	char out[4096];
	int st;

	{
		struct emm *mm;

		if (emm_open(NULL, &mm))
			bail("emm_open");
		backend = emm_backend(mm);
		emm_close(mm);
	}
	plan(10);
	run(handler_after_open, 0, "a handler installed after emm_open gets emm's SIGBUS, with its address");
	run(default_after_open, SIGBUS, "SIG_DFL installed after emm_open: the process dies of SIGBUS");
	run(ignored_after_open, SIGBUS, "SIG_IGN installed after emm_open: the process dies of SIGBUS");
	run(blocked_after_open, SIGBUS, "SIGBUS blocked in the faulting thread: the process dies of SIGBUS");
	run(handler_returns, 0, "a handler that returns is called again for the same address");
	run(sigbus_only_at_access, 0, "with a timer signal interrupting the faults, the handler is called only where an access failed");
	run(syscall_efault, 0, "read(2) into and write(2) from a page emm cannot serve: EFAULT, no signal");
	if (backend == EMM_BACKEND_SIGNAL) {
		run(segv_blocked, SIGSEGV, "SIGSEGV blocked on signal: the first fault kills with SIGSEGV");
		run(faults_blocked, SIGSEGV, "SIGSEGV and SIGBUS blocked on signal: the first fault kills with SIGSEGV");
	} else {
		run(segv_blocked, 0, "SIGSEGV blocked: the SIGBUS handler still gets emm's SIGBUS");
		if (backend == EMM_BACKEND_UFFD)
			run(faults_blocked, 0, "SIGSEGV and SIGBUS blocked on uffd: faults are served");
		else
			run(faults_blocked, SIGBUS, "SIGSEGV and SIGBUS blocked on uffd-sigbus: the first fault kills with SIGBUS");
	}
	if (fork_stderr(map_while_blocked, NULL, out, sizeof(out), &st))
		bail("fork");
	if (backend == EMM_BACKEND_UFFD)
		ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 && !strstr(out, "blocks"),
		   "emm_map from a thread that blocks SIGSEGV and SIGBUS: no warning on uffd");
	else
		ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, backend == EMM_BACKEND_SIGNAL ?
			"blocks SIGSEGV" : "blocks SIGBUS"),
		   "emm_map from a thread that blocks its backend's fault signal warns");
	return done_testing();
}
