/* SPDX-License-Identifier: MIT */
/* Concurrency soak: writers and verifiers under a budget of 1/8 of their working set, with pageout, cold, protection toggles and limit changes from other threads; then again with huge pages and the promotion scanner running, under all or half of it. */
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
 * The second round maps the region with EMM_MAP_HUGEPAGE, lets the
 * promotion scanner run every millisecond, moves the budget between the
 * whole working set and half of it (room for extents to be whole), pauses
 * the advisor 20 ms between calls, and toggles the protection of a range
 * that cuts extents in part: range operations then meet extents the
 * scanner collapses again after they split them.
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

/* One round's configuration: see above. */
static const struct soak {
	const char *name;
	unsigned map_flags, scan_ms;
	size_t limit_div;		/* the budget: WS / limit_div, and half that */
	size_t protect_from, protect_to;	/* pages of the frozen region toggled */
	unsigned advise_us;		/* the advisor's pause between calls */
} rounds[] = {
	{ "4 KiB pages", 0, 0, 8, 0, FROZEN, 0 },
	{ "huge pages", EMM_MAP_HUGEPAGE, 1, 1, 100, FROZEN - 100, 20000 },
};
static const struct soak *cur;

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
		call(emm_protect(mm, base + cur->protect_from * PAGE,
				 (cur->protect_to - cur->protect_from) * PAGE, prot));
		if (cur->advise_us)	/* time for extents to fill and collapse */
			usleep(cur->advise_us);
		atomic_fetch_add_explicit(&ops, 2, memory_order_relaxed);
	}
	return NULL;
}

static void *limiter(void *arg)
{
	int i = 0;

	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		call(emm_set_limit(mm, i++ % 2 ? WS / cur->limit_div / 2 : WS / cur->limit_div));
		atomic_fetch_add_explicit(&ops, 1, memory_order_relaxed);
		usleep(20000);
	}
	return NULL;
}

/* One round: every thread for secs seconds, then every page checked. */
static void soak(long secs)
{
	EMM_OPTS(emm_opts, o, .mem_limit = WS / cur->limit_div, .swap_size = 2 * WS,
		 .thp_scan_ms = cur->scan_ms);
	EMM_OPTS(emm_map_opts, mo, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .flags = cur->map_flags);
	pthread_t t[WRITERS + READERS + 2];
	struct emm_stats st;
	int n = 0;

	atomic_store(&stop, false);
	atomic_store(&ops, 0);
	atomic_store(&bad, 0);
	atomic_store(&call_errors, 0);
	memset(gen, 0, sizeof(gen));
	if (!is_int(emm_open(&o, &mm), 0, "%s: emm_open: budget 1/%zu of the working set",
		    cur->name, cur->limit_div))
		bail("emm_open failed");
	if (emm_reserve(mm, WS, (void **)&base) || emm_map(mm, base, WS, &mo))
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
	diag("%s: %lu operations in %ld s; swapouts %" PRIu64 ", swapins %" PRIu64
	     ", faults %" PRIu64 ", collapses %" PRIu64 ", splits %" PRIu64, cur->name,
	     atomic_load(&ops), secs, st.swapouts, st.swapins, st.faults, st.thp_collapse,
	     st.thp_split);
	is_int(atomic_load(&bad), 0, "%s: every page read held what was last written to it",
	       cur->name);
	is_int(atomic_load(&call_errors), 0,
	       "%s: every advise, protect and set_limit call succeeded", cur->name);
	ok(st.swapouts > 0 && st.swapins > 0, "%s: pages went through swap", cur->name);
	is_int(emm_close(mm), 0, "%s: emm_close", cur->name);
}

int main(void)
{
	const char *env = getenv("SOAK_SECONDS");
	long secs = env && *env ? strtol(env, NULL, 0) : 5;

	plan(5 * (int)(sizeof(rounds) / sizeof(rounds[0])));
	for (size_t i = 0; i < sizeof(rounds) / sizeof(rounds[0]); i++) {
		cur = &rounds[i];
		soak(secs);
	}
	return done_testing();
}
