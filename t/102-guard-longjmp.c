/* SPDX-License-Identifier: MIT */
/* Guard VMAs and writes to a read-only VMA left by siglongjmp 10,000 times without drift, and a trap that fixes and retries: emm_protect, emm_map and emm_unmap refuse inside it with -EDEADLK, a helper thread makes the change. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "access.h"
#include "emm.h"
#include "tap.h"

#define PAGE 4096UL
#define ROUNDS 10000

static struct emm *mm;
static char *G1, *V, *G2, *R;	/* guard, data, guard; R: read-only, fixed by its trap */

static sigjmp_buf guard_env;
static struct emm_fault guard_seen;
static volatile uintptr_t trap_stack;
static volatile long guard_traps;

static int guard_trap(const struct emm_fault *f, void *arg)
{
	volatile char here = 0;

	trap_stack = (uintptr_t)&here;
	guard_seen = *f;
	guard_traps++;
	siglongjmp(guard_env, 1);
}

/* Where the stack is when the loop calls a function. */
static __attribute__((noinline)) uintptr_t stack_here(void)
{
	volatile char here = 0;
	uintptr_t a = (uintptr_t)&here;

	__asm__ volatile("" ::: "memory");
	return a;
}

static __attribute__((noinline)) int guard_access(volatile char *p, int write)
{
	if (sigsetjmp(guard_env, 1))
		return 1;
	if (write)
		*p = 1;
	else
		(void)*p;
	return 0;
}

static int same_mask(const sigset_t *a, const sigset_t *b)
{
	for (int s = 1; s < NSIG; s++)
		if (sigismember(a, s) != sigismember(b, s))
			return 0;
	return 1;
}

struct tally {
	long missed, wrong_info, mask_changed, segv_blocked, drift, trap_drift;
};

static void one_round(int i, const sigset_t *mask0, uintptr_t sp0, uintptr_t tsp0,
		      struct tally *t)
{
	char *g = i & 1 ? G2 : G1;
	char *p = g + (size_t)(i % 4) * PAGE + (size_t)(i * 37) % PAGE;
	int write = (i >> 1) & 1;
	sigset_t now;

	memset(&guard_seen, 0, sizeof(guard_seen));
	if (!guard_access(p, write))
		t->missed++;
	else if (guard_seen.addr != p || (fault_access_known() && guard_seen.write != write) ||
		 guard_seen.policy != EMM_POLICY_GUARD || guard_seen.vma_start != g ||
		 guard_seen.vma_len != 4 * PAGE)
		t->wrong_info++;
	sigprocmask(SIG_SETMASK, NULL, &now);
	t->mask_changed += !same_mask(&now, mask0);
	t->segv_blocked += sigismember(&now, SIGSEGV) == 1;
	t->drift += stack_here() != sp0;
	t->trap_drift += trap_stack != tsp0;
}

static void test_guards(void)
{
	EMM_OPTS(emm_map_opts, g, .prot = EMM_PROT_NONE, .policy = EMM_POLICY_GUARD,
		 .trap = guard_trap);
	struct tally t = { 0 };
	uintptr_t sp0, tsp0;
	sigset_t mask0;

	ok(emm_map(mm, G1, 4 * PAGE, &g) == 0 && emm_map(mm, V, 16 * PAGE, NULL) == 0 &&
	   emm_map(mm, G2, 4 * PAGE, &g) == 0, "guard, data, guard mapped");
	memset(V, 0x77, 16 * PAGE);
	sigprocmask(SIG_SETMASK, NULL, &mask0);
	ok(!sigismember(&mask0, SIGSEGV), "SIGSEGV not blocked to begin with");
	sp0 = stack_here();
	guard_access(G1, 0);
	tsp0 = trap_stack;
	guard_traps = 0;
	for (int i = 0; i < ROUNDS; i++)
		one_round(i, &mask0, sp0, tsp0, &t);
	is_int(guard_traps, ROUNDS, "exactly one trap per guard access");
	is_int(t.missed, 0, "no guard access went through");
	is_int(t.wrong_info, 0, "every trap told the address, access%s, policy and guard VMA",
	       fault_access_known() ? "" : " (not checked: the machine does not say)");
	is_int(t.mask_changed, 0, "the signal mask after each is what it was");
	is_int(t.segv_blocked, 0, "SIGSEGV never left blocked");
	is_int(t.drift, 0, "the stack pointer does not drift");
	is_int(t.trap_drift, 0, "the trap callback runs at the same stack depth each time");
	ok(V[0] == 0x77 && V[16 * PAGE - 1] == 0x77, "the data between the guards is intact");
}

static sigjmp_buf ro_env;
static volatile long ro_traps;
static struct emm_fault ro_seen;

static int ro_trap(const struct emm_fault *f, void *arg)
{
	ro_seen = *f;
	ro_traps++;
	siglongjmp(ro_env, 1);
}

static __attribute__((noinline)) int ro_write(volatile char *p)
{
	if (sigsetjmp(ro_env, 1))
		return 1;
	*p = 1;
	return 0;
}

/* Writes to a read-only VMA, each left by siglongjmp; reads go through. */
static void test_readonly(char *ro)
{
	EMM_OPTS(emm_map_opts, o, .prot = EMM_PROT_READ, .trap = ro_trap);
	long missed = 0, wrong = 0, bad_reads = 0;

	is_int(emm_map(mm, ro, 4 * PAGE, &o), 0, "map a read-only VMA whose trap leaves by siglongjmp");
	for (int i = 0; i < ROUNDS; i++) {
		volatile char *p = ro + (size_t)(i % 4) * PAGE + (size_t)(i * 53) % PAGE;

		bad_reads += *p != 0;
		if (!ro_write(p))
			missed++;
		else if (ro_seen.addr != p || !ro_seen.write || ro_seen.vma_start != ro)
			wrong++;
	}
	is_int(ro_traps, ROUNDS, "exactly one trap per write to the read-only VMA");
	is_int(missed, 0, "no write went through");
	is_int(wrong, 0, "every trap told the address, a write and the VMA");
	is_int(bad_reads, 0, "every read in between read zero");
}

static sigjmp_buf retry_env;
static volatile int retry_traps, retry_protect = 1, retry_map = 1, retry_unmap = 1, helper_protect = 1;
static int req[2], ack[2];	/* to the helper thread, and back */

/* Applies the protection changes trap callbacks ask for, outside the handler. */
static void *protect_helper(void *arg)
{
	struct { void *addr; size_t len; } rq;

	(void)arg;
	while (read(req[0], &rq, sizeof(rq)) == sizeof(rq)) {
		int err = emm_protect(mm, rq.addr, rq.len, EMM_PROT_READ | EMM_PROT_WRITE);

		if (write(ack[1], &err, sizeof(err)) != sizeof(err))
			break;
	}
	return NULL;
}

/*
 * Makes the VMA writable, as a copy-on-write or a growing buffer would:
 * emm_protect, emm_map and emm_unmap refuse inside the callback, so it
 * asks the helper thread (write(2) and read(2) are async-signal-safe) and
 * waits for it, then retries the access.
 */
static int retry_trap(const struct emm_fault *f, void *arg)
{
	struct { void *addr; size_t len; } rq = { f->vma_start, f->vma_len };
	int err;

	(void)arg;
	if (++retry_traps > 3)
		siglongjmp(retry_env, 1);	/* not fixed: do not loop for ever */
	retry_protect = emm_protect(mm, f->vma_start, f->vma_len, EMM_PROT_READ | EMM_PROT_WRITE);
	retry_map = emm_map(mm, R + 12 * PAGE, PAGE, NULL);
	retry_unmap = emm_unmap(mm, R, PAGE);
	if (write(req[1], &rq, sizeof(rq)) != sizeof(rq) || read(ack[0], &err, sizeof(err)) != sizeof(err))
		siglongjmp(retry_env, 1);
	helper_protect = err;
	return EMM_TRAP_RETRY;
}

/* Calls emm_protect with frames written over the stack a trap callback that
 * left with siglongjmp used: no stale mark may make it refuse. */
static __attribute__((noinline)) int protect_deep(int depth, void *p)
{
	volatile char frame[256];
	int ret;

	memset((char *)frame, depth, sizeof(frame));
	ret = depth ? protect_deep(depth - 1, p) : emm_protect(mm, p, PAGE, EMM_PROT_READ);
	return ret + frame[0] - (char)depth;
}

static void test_retry(void)
{
	EMM_OPTS(emm_map_opts, o, .prot = EMM_PROT_READ, .trap = retry_trap);
	volatile uint64_t *q = (volatile uint64_t *)(R + PAGE);
	pthread_t helper;
	int escaped;

	if (pipe(req) || pipe(ack) || pthread_create(&helper, NULL, protect_helper, NULL))
		bail("pipe/pthread_create");
	alarm(60);
	is_int(emm_map(mm, R, 4 * PAGE, &o), 0, "map a read-only VMA with a fixing trap");
	is_int(q[3], 0, "it reads zero");
	is_int(retry_traps, 0, "a read did not trap");
	escaped = sigsetjmp(retry_env, 1);
	if (!escaped)
		q[3] = 0x1234abcd;
	ok(!escaped, "a write returned after the trap retried it");
	is_int(retry_traps, 1, "one trap");
	is_int(retry_protect, -EDEADLK, "emm_protect in the trap callback: -EDEADLK");
	is_int(retry_map, -EDEADLK, "emm_map in the trap callback: -EDEADLK");
	is_int(retry_unmap, -EDEADLK, "emm_unmap in the trap callback: -EDEADLK");
	is_int(helper_protect, 0, "emm_protect by a helper thread, asked from the trap callback, succeeded");
	is_int(q[3], 0x1234abcd, "the write landed");
	q[4] = 5;
	is_int(retry_traps, 1, "the next write did not trap");
	is_int(protect_deep(64, R + 3 * PAGE), 0,
	       "after callbacks that left with siglongjmp, emm_protect from deep frames works");
	close(req[1]);
	pthread_join(helper, NULL);
	alarm(0);
}

int main(void)
{
	void *r;

	plan(10 + 5 + 12 + 1);
	if (emm_open(NULL, &mm) || emm_reserve(mm, 2 << 20, &r))
		bail("cannot open and reserve");
	G1 = r;
	V = G1 + 4 * PAGE;
	G2 = V + 16 * PAGE;
	R = G2 + 8 * PAGE;
	test_guards();
	test_readonly(R + 8 * PAGE);
	test_retry();
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
