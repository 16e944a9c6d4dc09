/* SPDX-License-Identifier: MIT */
/* Concurrency soak: writers and verifiers under a budget of 1/8 of their working set, with pageout, cold, protection toggles and limit changes from other threads. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

/*
 * Two regions of one reservation: a frozen one, written once and then only
 * read (its protection toggles between read and read-write), and one slice
 * per writer, which rewrites its own pages and reads them back. Other
 * threads page out and deactivate random ranges of both, and move the
 * budget between 1/8 and 1/16 of the working set. Every word read must be
 * the one last written. SOAK_SECONDS sets the length (make soak).
 */

#define PAGE		4096UL
#define WORDS		(PAGE / 8)
#define FROZEN		2048		/* pages */
#define SLICE		1024		/* pages per writer */
#define WRITERS		2
#define READERS		2
#define PAGES		(FROZEN + WRITERS * SLICE)
#define WS		(PAGES * PAGE)

static struct emm *mm;
static char *base;
static atomic_bool stop;
static atomic_ulong ops, bad, call_errors;
static uint32_t gen[PAGES];	/* per page, owned by its writer */

static uint64_t word_at(size_t pg, uint32_t g, size_t i)
{
	return ((uint64_t)g << 32 | pg << 12 | i) * 0x9e3779b97f4a7c15ULL | 1;
}

static void write_page(size_t pg, uint32_t g)
{
	uint64_t *w = (uint64_t *)(base + pg * PAGE);

	for (size_t i = 0; i < WORDS; i++)
		w[i] = word_at(pg, g, i);
}

static void check_page(size_t pg, uint32_t g)
{
	const uint64_t *w = (const uint64_t *)(base + pg * PAGE);

	for (size_t i = 0; i < WORDS; i++)
		if (w[i] != word_at(pg, g, i)) {
			if (atomic_fetch_add(&bad, 1) < 5)
				diag("page %zu word %zu: 0x%" PRIx64 ", want 0x%" PRIx64,
				     pg, i, w[i], word_at(pg, g, i));
			return;
		}
}

static void *writer(void *arg)
{
	size_t first = FROZEN + (size_t)(uintptr_t)arg * SLICE;
	uint64_t seed = first;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		size_t pg = first + tap_rand(&seed) % SLICE;

		if (tap_rand(&seed) % 3) {
			write_page(pg, ++gen[pg]);
		} else if (gen[pg]) {
			check_page(pg, gen[pg]);
		}
		atomic_fetch_add_explicit(&ops, 1, memory_order_relaxed);
	}
	return NULL;
}

static void *reader(void *arg)
{
	uint64_t seed = (uintptr_t)arg + 99;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		check_page(tap_rand(&seed) % FROZEN, 1);
		atomic_fetch_add_explicit(&ops, 1, memory_order_relaxed);
	}
	return NULL;
}

static void call(int err)
{
	if (err && atomic_fetch_add(&call_errors, 1) < 5)
		diag("a call failed: %d", err);
}

/* PAGEOUT and COLD over random ranges, and the frozen region's protection. */
static void *advisor(void *arg)
{
	uint64_t seed = 7;
	int prot = EMM_PROT_READ;

	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		size_t pg = tap_rand(&seed) % PAGES, n = 1 + tap_rand(&seed) % 256;

		n = n < PAGES - pg ? n : PAGES - pg;
		call(emm_advise(mm, base + pg * PAGE, n * PAGE,
				tap_rand(&seed) % 2 ? EMM_ADV_PAGEOUT : EMM_ADV_COLD));
		prot ^= EMM_PROT_WRITE;
		call(emm_protect(mm, base, FROZEN * PAGE, prot));
		atomic_fetch_add_explicit(&ops, 2, memory_order_relaxed);
	}
	return NULL;
}

static void *limiter(void *arg)
{
	int i = 0;

	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		call(emm_set_limit(mm, i++ % 2 ? WS / 16 : WS / 8));
		atomic_fetch_add_explicit(&ops, 1, memory_order_relaxed);
		usleep(20000);
	}
	return NULL;
}

int main(void)
{
	const char *env = getenv("SOAK_SECONDS");
	long secs = env && *env ? strtol(env, NULL, 0) : 5;
	pthread_t t[WRITERS + READERS + 2];
	int n = 0;
	EMM_OPTS(emm_opts, o, .mem_limit = WS / 8, .swap_size = 2 * WS);
	struct emm_stats st;

	plan(5);
	if (!is_int(emm_open(&o, &mm), 0, "emm_open: budget 1/8 of the working set"))
		bail("emm_open failed");
	if (emm_reserve(mm, WS, (void **)&base) || emm_map(mm, base, WS, NULL))
		bail("emm_reserve/emm_map failed");
	for (size_t pg = 0; pg < FROZEN; pg++)
		write_page(pg, 1);
	for (uintptr_t i = 0; i < WRITERS; i++)
		pthread_create(&t[n++], NULL, writer, (void *)i);
	for (uintptr_t i = 0; i < READERS; i++)
		pthread_create(&t[n++], NULL, reader, (void *)i);
	pthread_create(&t[n++], NULL, advisor, NULL);
	pthread_create(&t[n++], NULL, limiter, NULL);
	sleep((unsigned)secs);
	atomic_store(&stop, true);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	for (size_t pg = 0; pg < PAGES; pg++)
		if (pg < FROZEN || gen[pg])
			check_page(pg, pg < FROZEN ? 1 : gen[pg]);
	st = stats(mm);
	diag("%lu operations in %ld s; swapouts %" PRIu64 ", swapins %" PRIu64
	     ", faults %" PRIu64, atomic_load(&ops), secs, st.swapouts, st.swapins, st.faults);
	is_int(atomic_load(&bad), 0, "every page read held what was last written to it");
	is_int(atomic_load(&call_errors), 0, "every advise, protect and set_limit call succeeded");
	ok(st.swapouts > 0 && st.swapins > 0, "pages went through swap");
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
