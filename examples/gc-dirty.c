/* SPDX-License-Identifier: MIT */
/* A generational GC's write barrier from emm: which old-generation pages were written since the last collection. */
/*
 * A generational collector must find the pointers from old objects to young
 * ones without scanning the whole old generation at every minor
 * collection. Compilers emit a card-marking store barrier for that; a
 * runtime that cannot (a conservative collector, a C extension writing into
 * the heap) asks the memory manager instead, as the Boehm collector asks
 * the kernel with mprotect(2).
 *
 * How emm answers, with its public API only:
 *  - after a collection the old generation is made read-only with
 *    emm_protect(EMM_PROT_READ): reads go on at full speed, resident or not
 *    (a page swapped out and back in stays read-only);
 *  - the first write to an old page is an access error that emm hands to
 *    the VMA's trap callback, in the writing thread: the callback marks the
 *    page in the card table and asks a helper thread to give the page write
 *    access back with emm_protect() (which refuses to run inside a trap
 *    callback, -EDEADLK: it allocates and takes the instance's lock), waits
 *    for its answer on a pipe, and returns EMM_TRAP_RETRY, so the store
 *    completes;
 *  - the next writes to that page cost nothing; at the next collection the
 *    card table is the set of pages written since the last one.
 *
 * emm tracks dirty pages itself (clean pages are mapped read-only after
 * swap-in and emm_sync; a write to one is a faults_wp fault, or on the
 * userfaultfd backends of Linux 6.7 and later a write the kernel lets
 * through, which emm reads from the page tables later), but it does not
 * tell the program which pages those were; the trap callback does, and
 * works the same under every backend and whether pages are resident or in
 * the swap file. The price: one trap per page per cycle, and a VMA (and a
 * kernel VMA) boundary per written run until the next emm_protect over the
 * whole generation merges them again.
 *
 * The mutator below also keeps, for checking only, the set of pages it
 * really wrote; every cycle the barrier's set must equal it. The old
 * generation is larger than the resident budget, so some of the traps come
 * on pages that were in the swap file. Exits 0 when every cycle matched.
 *
 * Usage: gc-dirty [OLD_MIB [BUDGET_MIB [CYCLES]]]
 */
#include <emm.h>

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#define PAGE	4096UL
#define MIB	(1UL << 20)
#define WORDS_PER_PAGE	(PAGE / sizeof(uint64_t))

struct gc {
	struct emm *mm;
	uint64_t *old;			/* the old generation */
	size_t npages;
	_Atomic uint8_t *cards;		/* one per page: written since the last GC */
	uint8_t *truth;			/* what the mutator wrote; for the check */
	_Atomic long traps, trap_errors;
	int req[2], ack[2];		/* pipes to the barrier's helper thread and back */
	pthread_t helper;
};

static struct gc gc;
static uint64_t rng = 0x5eed6c;

static void die(const char *what, int err)
{
	fprintf(stderr, "gc-dirty: %s: %s\n", what, strerror(-err));
	exit(1);
}

static uint64_t next_rand(void)
{
	uint64_t x = rng += 0x9e3779b97f4a7c15ull;

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/*
 * The barrier's helper thread: gives back write access to the pages the
 * trap callback names, outside any signal handler, and answers with
 * emm_protect's result.
 */
static void *barrier_helper(void *arg)
{
	struct gc *g = arg;
	size_t page;

	while (read(g->req[0], &page, sizeof(page)) == sizeof(page)) {
		int err = emm_protect(g->mm, (char *)g->old + page, PAGE,
				      EMM_PROT_READ | EMM_PROT_WRITE);

		if (write(g->ack[1], &err, sizeof(err)) != sizeof(err))
			break;
	}
	return NULL;
}

/*
 * The write barrier. Runs in emm's signal handler, in the thread that
 * wrote: only async-signal-safe work (an atomic store, write(2) and
 * read(2) to ask the helper thread), then the store is restarted. Anything
 * but a write to the old generation is not the barrier's business: pass
 * it on.
 */
static int barrier_trap(const struct emm_fault *f, void *arg)
{
	struct gc *g = arg;
	uintptr_t off = (uintptr_t)f->addr - (uintptr_t)g->old;
	size_t page = off & ~(PAGE - 1);
	int err = -EIO;

	if (!f->write || off >= g->npages * PAGE)
		return EMM_TRAP_CHAIN;
	atomic_store_explicit(&g->cards[off / PAGE], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&g->traps, 1, memory_order_relaxed);
	if (write(g->req[1], &page, sizeof(page)) != sizeof(page) ||
	    read(g->ack[0], &err, sizeof(err)) != sizeof(err) || err < 0) {
		atomic_fetch_add_explicit(&g->trap_errors, 1, memory_order_relaxed);
		return EMM_TRAP_CHAIN;
	}
	return EMM_TRAP_RETRY;
}

/* Start a cycle: every old page read-only again, the card table empty. */
static void arm_barrier(struct gc *g)
{
	int err = emm_protect(g->mm, g->old, g->npages * PAGE, EMM_PROT_READ);

	if (err < 0)
		die("emm_protect", err);
	for (size_t i = 0; i < g->npages; i++)
		atomic_store_explicit(&g->cards[i], 0, memory_order_relaxed);
	memset(g->truth, 0, g->npages);
}

/* The program between two collections: pointer stores into some old
 * objects, and many more reads, which the barrier must not see. */
static void mutate(struct gc *g, size_t stores, size_t loads)
{
	volatile uint64_t sink = 0;

	for (size_t i = 0; i < loads; i++)
		sink += g->old[next_rand() % (g->npages * WORDS_PER_PAGE)];
	for (size_t i = 0; i < stores; i++) {
		/* Stores cluster, as they do in real heaps: a few hot objects. */
		size_t page = next_rand() % (i % 4 ? 64 : g->npages);
		size_t word = page * WORDS_PER_PAGE + next_rand() % WORDS_PER_PAGE;

		g->old[word] = 0xc0ffee00u + i;	/* "a pointer to a young object" */
		g->truth[page] = 1;
	}
	(void)sink;
}

/* A minor collection: scan only the carded pages; check them. */
static int collect(struct gc *g, int cycle)
{
	size_t carded = 0, written = 0, missed = 0, extra = 0;
	EMM_OPTS(emm_stats, st);

	for (size_t i = 0; i < g->npages; i++) {
		int c = atomic_load_explicit(&g->cards[i], memory_order_relaxed);

		carded += c;
		written += g->truth[i];
		missed += g->truth[i] && !c;
		extra += c && !g->truth[i];
	}
	emm_stats(g->mm, &st);
	printf("cycle %d: %4zu pages written, barrier saw %4zu (missed %zu, extra %zu);"
	       " scanned %4zu of %zu pages (%.1f%%); %" PRIu64 " VMAs\n", cycle, written, carded,
	       missed, extra, carded, g->npages, 100.0 * (double)carded / (double)g->npages,
	       st.vmas);
	return missed == 0 && extra == 0;
}

static void setup(struct gc *g, size_t old_mib, size_t budget_mib)
{
	EMM_OPTS(emm_opts, o, .mem_limit = budget_mib * MIB);
	EMM_OPTS(emm_map_opts, m, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .trap = barrier_trap, .trap_arg = g);
	int err;

	g->npages = old_mib * MIB / PAGE;
	g->cards = calloc(g->npages, 1);
	g->truth = calloc(g->npages, 1);
	if (!g->cards || !g->truth)
		die("calloc", -ENOMEM);
	if (pipe(g->req) || pipe(g->ack) || pthread_create(&g->helper, NULL, barrier_helper, g))
		die("the barrier's helper thread", -errno);
	err = emm_open(&o, &g->mm);
	if (err == 0)
		err = emm_reserve(g->mm, g->npages * PAGE, (void **)&g->old);
	if (err == 0)
		err = emm_map(g->mm, g->old, g->npages * PAGE, &m);
	if (err < 0)
		die("setting up the heap", err);
	/* The objects promoted so far: the whole generation is written once. */
	for (size_t i = 0; i < g->npages * WORDS_PER_PAGE; i++)
		g->old[i] = i;
}

int main(int argc, char **argv)
{
	size_t old_mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 16;
	size_t budget_mib = argc > 2 ? strtoul(argv[2], NULL, 0) : 8;
	int cycles = argc > 3 ? atoi(argv[3]) : 5, ok = 1;
	EMM_OPTS(emm_stats, st);

	if (!old_mib || !budget_mib || cycles <= 0) {
		fprintf(stderr, "usage: gc-dirty [OLD_MIB [BUDGET_MIB [CYCLES]]]\n");
		return 2;
	}
	setup(&gc, old_mib, budget_mib);
	printf("old generation %zu MiB (%zu pages), budget %zu MiB\n", old_mib, gc.npages,
	       budget_mib);
	for (int c = 1; c <= cycles; c++) {
		arm_barrier(&gc);
		mutate(&gc, (size_t)c * 200, 2000);
		ok &= collect(&gc, c);
	}
	emm_stats(gc.mm, &st);
	printf("%ld barrier traps (%ld failed); %" PRIu64 " swap-ins: old pages came back from"
	       " swap read-only\n", atomic_load(&gc.traps), atomic_load(&gc.trap_errors),
	       st.swapins);
	ok &= atomic_load(&gc.trap_errors) == 0;
	close(gc.req[1]);
	pthread_join(gc.helper, NULL);
	if (emm_close(gc.mm) < 0)
		ok = 0;
	printf("%s\n", ok ? "every cycle matched" : "MISMATCH");
	free(gc.cards);
	free(gc.truth);
	return ok ? 0 : 1;
}
