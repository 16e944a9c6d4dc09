/* SPDX-License-Identifier: MIT */
/* A tour of emm: a 64 GiB reservation, 1 GiB of memory between two guards. */
#include <emm.h>

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MiB	(1UL << 20)
#define GiB	(1UL << 30)
#define GUARD	(2 * MiB)

static sigjmp_buf trapped;
static struct emm_fault last_fault;
static const char *last_guard;

/* Runs inside emm's signal handler: only async-signal-safe work, then out. */
static int on_guard(const struct emm_fault *f, void *arg)
{
	last_fault = *f;
	last_guard = arg;
	siglongjmp(trapped, 1);
}

static int check(int err, const char *what)
{
	if (err < 0)
		fprintf(stderr, "demo: %s: %s\n", what, strerror(-err));
	return err;
}

/* Map a guard region whose accesses come to on_guard, told its name. */
static int map_guard(struct emm *mm, char *addr, const char *name)
{
	EMM_OPTS(emm_map_opts, o, .policy = EMM_POLICY_GUARD, .trap = on_guard,
		 .trap_arg = (void *)name);
	return check(emm_map(mm, addr, GUARD, &o), "emm_map guard");
}

/* Each word holds a value derived from its index, so misplaced data shows. */
static uint64_t pattern(size_t i)
{
	return i * 0x9e3779b97f4a7c15ull ^ 0x656d6dull;
}

static int fill_and_verify(uint64_t *p, size_t len)
{
	const volatile uint64_t *q = p;	/* make the compiler read memory back */
	size_t n = len / sizeof(*p), bad = 0;

	for (size_t i = 0; i < n; i++)
		p[i] = pattern(i);
	for (size_t i = 0; i < n; i++)
		bad += q[i] != pattern(i);
	printf("wrote and verified %zu MiB: %zu bad words\n", len / MiB, bad);
	return bad == 0;
}

/* Touch one byte of a guard; true if the trap callback caught it. */
static int guard_catches(const char *name, volatile char *addr, int write)
{
	if (sigsetjmp(trapped, 1) == 0) {
		if (write)
			*addr = 1;
		else
			(void)*addr;
		printf("%s guard: access at %p was NOT caught\n", name, (void *)addr);
		return 0;
	}
	printf("%s guard: trap callback caught a %s at %p\n", last_guard,
	       last_fault.write ? "write" : "read", last_fault.addr);
	return strcmp(last_guard, name) == 0 && last_fault.addr == (void *)addr &&
	       last_fault.write == write;
}

static void print_line(const char *line, void *arg)
{
	printf("  %s\n", line);
}

int main(void)
{
	struct emm *mm;
	char *base;
	int ok;

	if (check(emm_open(NULL, &mm), "emm_open") < 0)
		return 1;
	if (check(emm_reserve(mm, 64 * GiB, (void **)&base), "emm_reserve") < 0)
		return 1;
	printf("reserved 64 GiB at %p\n", (void *)base);

	char *data = base + GUARD;
	if (map_guard(mm, base, "low") < 0 || map_guard(mm, data + GiB, "high") < 0 ||
	    check(emm_map(mm, data, GiB, NULL), "emm_map") < 0)
		return 1;
	printf("mapped 1 GiB read-write at %p, 2 MiB guards on both sides\n", (void *)data);

	ok = fill_and_verify((uint64_t *)data, GiB);
	ok &= guard_catches("low", data - 1, 0);
	ok &= guard_catches("high", data + GiB, 1);

	printf("statistics:\n");
	emm_stats_print(mm, print_line, NULL);
	ok &= check(emm_close(mm), "emm_close") == 0;
	printf("%s\n", ok ? "all checks passed" : "SOME CHECKS FAILED");
	return ok ? 0 : 1;
}
