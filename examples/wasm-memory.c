/* SPDX-License-Identifier: MIT */
/* A WebAssembly linear memory: 4 GiB of address space, guard regions, out-of-bounds accesses turned into errors. */
/*
 * A wasm32 engine compiles a load or store to "base + index + offset" with
 * a 32-bit index and a 32-bit constant offset, so no access can reach past
 * base + 8 GiB. Engines therefore reserve 8 GiB per memory, make the pages
 * up to memory.size accessible, and leave everything after them as a
 * guard: an out-of-bounds access faults, and no bounds check is compiled.
 *
 * With emm the same layout is three calls: emm_reserve() the 8 GiB,
 * emm_map() the current size as anonymous read-write memory, and emm_map()
 * the rest as an EMM_POLICY_GUARD VMA whose trap callback turns the fault
 * into a wasm trap: it records what happened and leaves with siglongjmp()
 * to the entry of the wasm call, which returns an error to the embedder.
 * memory.grow turns the first guard pages into memory (emm_unmap() of that
 * part of the guard, emm_map() as memory). The pages of the memory are
 * demand-paged under the instance's budget like any other emm memory.
 *
 * Usage: wasm-memory. Prints each access and its outcome; exits 0 when
 * each one did what the wasm semantics say.
 */
#include <emm.h>

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WASM_PAGE	(64UL << 10)		/* memory.grow's unit */
#define GIB		(1ULL << 30)
#define RESERVE		(8 * GIB)		/* 4 GiB index + 4 GiB offset */
#define MAX_PAGES	65536u			/* 4 GiB: wasm32's limit */

struct wasm_memory {
	struct emm *mm;
	uint8_t *base;
	uint32_t pages;				/* memory.size */
};

/* The trap in flight: where the guard was hit; one wasm call at a time. */
static sigjmp_buf trap_env;
static uintptr_t trap_offset;
static int trap_write;

static void die(const char *what, int err)
{
	fprintf(stderr, "wasm-memory: %s: %s\n", what, strerror(-err));
	exit(1);
}

/* Runs in emm's signal handler: remember the access, leave for the
 * embedder. Nothing here may allocate or lock. */
static int guard_trap(const struct emm_fault *f, void *arg)
{
	struct wasm_memory *m = arg;

	trap_offset = (uintptr_t)f->addr - (uintptr_t)m->base;
	trap_write = f->write;
	siglongjmp(trap_env, 1);
}

static int map_guard(struct wasm_memory *m)
{
	EMM_OPTS(emm_map_opts, o, .policy = EMM_POLICY_GUARD, .trap = guard_trap,
		 .trap_arg = m);
	size_t used = (size_t)m->pages * WASM_PAGE;

	return emm_map(m->mm, m->base + used, RESERVE - used, &o);
}

static int memory_new(struct wasm_memory *m, uint32_t pages)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 64 << 20);
	int err = emm_open(&o, &m->mm);

	m->pages = pages;
	if (err == 0)
		err = emm_reserve(m->mm, RESERVE, (void **)&m->base);
	if (err == 0 && pages)
		err = emm_map(m->mm, m->base, (size_t)pages * WASM_PAGE, NULL);
	if (err == 0)
		err = map_guard(m);
	return err;
}

/* memory.grow: the old size, or -1 (as wasm says) when it cannot. */
static int64_t memory_grow(struct wasm_memory *m, uint32_t delta)
{
	uint32_t old = m->pages;
	size_t from = (size_t)old * WASM_PAGE, len = (size_t)delta * WASM_PAGE;
	int err;

	if (delta > MAX_PAGES - old)
		return -1;
	if (!delta)
		return old;
	err = emm_unmap(m->mm, m->base + from, RESERVE - from);
	if (err == 0)
		err = emm_map(m->mm, m->base + from, len, NULL);
	m->pages = old + delta;
	if (err == 0)
		err = map_guard(m);
	if (err < 0)
		die("memory.grow", err);
	return old;
}

/*
 * What compiled code does for i32.load offset=OFF / i32.store offset=OFF:
 * no bounds check. Kept out of line and volatile so the access is really
 * made where the trap can catch it.
 */
/* wasm accesses need no alignment: an i32 may straddle anything. */
typedef uint32_t __attribute__((aligned(1))) wasm_u32;

static __attribute__((noinline)) uint32_t i32_load(struct wasm_memory *m, uint32_t idx,
						   uint32_t off)
{
	return *(volatile wasm_u32 *)(m->base + (uint64_t)idx + off);
}

static __attribute__((noinline)) void i32_store(struct wasm_memory *m, uint32_t idx,
						uint32_t off, uint32_t v)
{
	*(volatile wasm_u32 *)(m->base + (uint64_t)idx + off) = v;
}

/* One wasm call that makes one access: 0, or -1 for "trapped: out of
 * bounds memory access", as an engine reports it to its embedder. */
static int wasm_call(struct wasm_memory *m, int store, uint32_t idx, uint32_t off,
		     uint32_t *val)
{
	if (sigsetjmp(trap_env, 1))
		return -1;
	if (store)
		i32_store(m, idx, off, *val);
	else
		*val = i32_load(m, idx, off);
	return 0;
}

static int checks_failed;

/* Run one access and say whether it did what wasm says it must. */
static void access(struct wasm_memory *m, int store, uint32_t idx, uint32_t off,
		   uint32_t want_val, int want_trap)
{
	uint64_t ea = (uint64_t)idx + off;
	uint32_t v = store ? want_val : 0;
	/* A straddling access faults at the first byte it may not touch. */
	int trapped = wasm_call(m, store, idx, off, &v) < 0;
	int good = trapped == want_trap && (trapped || store || v == want_val) &&
		   (!trapped || (trap_offset - ea < 4 && trap_write == store));

	printf("%-4s %s idx=0x%08" PRIx32 " offset=0x%08" PRIx32 " (at 0x%09" PRIx64 "): ",
	       good ? "ok" : "FAIL", store ? "i32.store" : "i32.load ", idx, off, ea);
	if (trapped)
		printf("trap: out of bounds memory %s at 0x%09" PRIxPTR "\n",
		       trap_write ? "store" : "load", trap_offset);
	else
		printf("%s 0x%08" PRIx32 "\n", store ? "stored" : "read", v);
	checks_failed += !good;
}

int main(void)
{
	struct wasm_memory m;
	int err = memory_new(&m, 1);		/* (memory 1): 64 KiB */
	uint32_t end, delta;

	if (err < 0)
		die("creating the memory", err);
	printf("linear memory at %p: %" PRIu32 " page(s) of 64 KiB, %llu GiB reserved\n",
	       (void *)m.base, m.pages, RESERVE / GIB);
	end = m.pages * (uint32_t)WASM_PAGE;
	access(&m, 1, 0x100, 0, 0xcafe, 0);
	access(&m, 0, 0x100, 0, 0xcafe, 0);
	access(&m, 0, end - 4, 0, 0, 0);		/* the last word */
	access(&m, 0, end, 0, 0, 1);		/* one past the end */
	access(&m, 1, end - 2, 0, 1, 1);	/* straddles the end */
	access(&m, 1, 0x10, 0xfffffff0u, 1, 1);	/* idx + offset wraps in 32 bits, not in wasm */
	access(&m, 0, 0xfffffffcu, 0xfffffff0u, 0, 1);	/* the furthest wasm32 can reach */

	printf("memory.grow 3 -> %" PRId64 "\n", memory_grow(&m, 3));
	access(&m, 1, end, 0, 0xbeef, 0);	/* in bounds now */
	access(&m, 0, end, 0, 0xbeef, 0);
	access(&m, 0, 0x100, 0, 0xcafe, 0);	/* the old contents stay */
	access(&m, 0, 4 * (uint32_t)WASM_PAGE, 0, 0, 1);
	printf("memory.grow 65536 -> %" PRId64 "\n", memory_grow(&m, MAX_PAGES));

	/* The whole 4 GiB: address space only until pages are touched. */
	delta = MAX_PAGES - m.pages;
	printf("memory.grow %" PRIu32 " -> %" PRId64 "\n", delta, memory_grow(&m, delta));
	access(&m, 1, 0xfffffffcu, 0, 0x1234, 0);	/* the last word of 4 GiB */
	access(&m, 0, 0xfffffffcu, 0, 0x1234, 0);
	access(&m, 0, 0xfffffffcu, 4, 0, 1);	/* 4 GiB itself: the guard */
	access(&m, 0, 0x100, 0, 0xcafe, 0);

	if (emm_close(m.mm) < 0)
		checks_failed++;
	printf("%s\n", checks_failed ? "some accesses did not do what wasm says"
				     : "every access did what wasm says");
	return checks_failed ? 1 : 0;
}
