/* SPDX-License-Identifier: MIT */
/* First-touch fault-around stops when reclaim finds the neighbours it mapped still zero, and stays when they are used. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define MIB (1UL << 20)
#define PAGE 4096UL
#define GROUP (16 * PAGE)	/* the default fault_around */
#define LIMIT (8 * MIB)
#define TRAIN (64 * MIB)	/* touched under the budget: 8 times it */
#define PROBES 256		/* fresh groups touched once each, afterwards */
#define LEN (TRAIN + 2 * PROBES * GROUP)
#define VMAS 16384		/* kernel VMAs the signal backend needs here */

/*
 * Pages brought into memory while fn runs: what resident_bytes gained, plus
 * what reclaim evicted meanwhile (the reclaim thread may still be at work).
 */
static uint64_t pages_in(struct emm *mm, char *a, void (*fn)(char *))
{
	struct emm_stats s0 = stats(mm), s1;

	fn(a);
	s1 = stats(mm);
	return (s1.resident_bytes - s0.resident_bytes) / PAGE + (s1.pgsteal - s0.pgsteal);
}

/* The first page of each training group, in an order that is no stream. */
static void touch_firsts(char *a)
{
	for (size_t g = 0; g < TRAIN / GROUP; g++)
		a[(g * 37 % (TRAIN / GROUP)) * GROUP] = 1;
}

/* Every page of each training group written, in the same order. */
static void touch_all(char *a)
{
	for (size_t g = 0; g < TRAIN / GROUP; g++)
		for (size_t p = 0; p < GROUP; p += PAGE)
			a[(g * 37 % (TRAIN / GROUP)) * GROUP + p] = 1;
}

/* One page of every other fresh group past the training area, downwards:
 * no touch continues the window of the one before. */
static void touch_probes(char *a)
{
	for (size_t i = PROBES; i-- > 0;)
		a[TRAIN + 2 * i * GROUP] = 1;
}

static void run(const char *what, void (*train)(char *), bool wasted)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 2 * LEN);
	struct emm *mm;
	uint64_t n;
	char *a;

	if (emm_open(&o, &mm) || emm_reserve(mm, LEN, (void **)&a) || emm_map(mm, a, LEN, NULL))
		bail("%s: setting up", what);
	train(a);
	/* Room for the probes: nothing is evicted because of them. */
	if (emm_set_limit(mm, 4 * LEN))
		bail("%s: emm_set_limit", what);
	reclaim_settle(mm);
	n = pages_in(mm, a, touch_probes);
	if (signal_vmas_short(mm, VMAS))
		skip(1, "vm.max_map_count leaves the signal backend too few kernel VMAs for a "
		     "probe each: it maps whole clusters");
	else if (wasted)
		ok(n <= 4 * PROBES, "%s: %d first touches brought in %" PRIu64 " pages (at most %d): "
		   "one each, and a sample mapped around", what, PROBES, n, 4 * PROBES);
	else
		ok(n >= 12 * PROBES, "%s: %d first touches brought in %" PRIu64 " pages (at least %d): "
		   "each mapped around", what, PROBES, n, 12 * PROBES);
	ok(stats(mm).faults_zero > 0, "%s: zero faults counted", what);
	emm_close(mm);
}

/* Without eviction nothing says the neighbours are wasted. */
static void fresh(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 4 * LEN);
	struct emm *mm;
	uint64_t n;
	char *a;

	if (emm_open(&o, &mm) || emm_reserve(mm, LEN, (void **)&a) || emm_map(mm, a, LEN, NULL))
		bail("fresh: setting up");
	n = pages_in(mm, a, touch_probes);
	ok(n >= 12 * PROBES, "a fresh instance maps around each first touch: %" PRIu64 " pages for %d",
	   n, PROBES);
	emm_close(mm);
}

/*
 * Reclaim drops a zero page mapped around a first touch without a lap of
 * the inactive list: a write to one while that happens must not be lost.
 * Each group's first page is touched, and a neighbour in a group touched
 * 64 groups earlier written, while the reclaim thread evicts behind.
 */
static void writes_kept(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 2 * LEN);
	size_t groups = TRAIN / GROUP, bad = 0;
	struct emm *mm;
	char *a;

	if (emm_open(&o, &mm) || emm_reserve(mm, LEN, (void **)&a) || emm_map(mm, a, LEN, NULL))
		bail("writes kept: setting up");
	for (size_t i = 0; i < groups + 64; i++) {
		if (i < groups)
			a[(i * 37 % groups) * GROUP] = 1;
		if (i >= 64) {
			size_t g = (i - 64) * 37 % groups;

			*(uint64_t *)(a + g * GROUP + (1 + g % 15) * PAGE) = 0x5eed0000 + g;
		}
	}
	for (size_t g = 0; g < groups; g++)
		bad += *(uint64_t *)(a + g * GROUP + (1 + g % 15) * PAGE) != 0x5eed0000 + g ||
		       a[g * GROUP] != 1;
	is_int(bad, 0, "every write to a page mapped around a first touch reads back, under "
	       "reclaim (%zu groups)", groups);
	emm_close(mm);
}

int main(void)
{
	plan(6);
	fresh();
	writes_kept();
	/* Only the first page of each group is written: the 15 neighbours
	 * mapped with it go out all zeros. */
	run("first pages only", touch_firsts, true);
	/* Every page written: the neighbours were worth mapping. */
	run("whole groups", touch_all, false);
	return done_testing();
}
