/* SPDX-License-Identifier: MIT */
/* The budget holds: resident bytes and the process's real shared memory stay within the limit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define KIB 1024UL
#define MIB (1UL << 20)
#define LIMIT (32 * MIB)
#define LEN (256 * MIB)
#define PAGES (LEN / PAGE)
#define WORDS_PER_PAGE (PAGE / 8)
#define CHECK_EVERY 1024	/* pages */
#define BATCH (32 * PAGE)	/* SWAP_CLUSTER_MAX pages: one reclaim batch */
/* limit - wmark_min plus the most one fault maps (fault-around of 16 pages
 * or a readahead of 32); 64 pages leave room for either and the min. */
#define RESIDENT_SLACK (64 * PAGE)
/*
 * Pss_Shmem against the budget. physmem is a memfd, so each resident page
 * is one shmem page, counted once in all however many of emm's views map
 * it (each of n mappings counts 1/n). But the reading is a walk of page
 * tables that the reclaim thread changes while it runs: a page it maps
 * into emm's second view to check and write out, after the walk counted it
 * whole in the first, counts half again. So two readings back to back, the
 * smaller kept (the true value only falls while this thread reads), may
 * exceed resident_bytes by what reclaim has in hand: one batch. The slack
 * is one fault-around cluster (16 pages) for the last fault and rounding.
 */
#define SHMEM_SLACK (16 * PAGE)

static uint64_t *mem;

/* Pss_Shmem of /proc/self/smaps_rollup, in bytes; UINT64_MAX if unknown. */
static uint64_t pss_shmem(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "re");
	char line[256];
	unsigned long long kb;
	uint64_t v = UINT64_MAX;

	if (!f)
		return v;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Pss_Shmem: %llu kB", &kb) == 1)
			v = kb * KIB;
	fclose(f);
	return v;
}

struct watch {
	uint64_t base;			/* Pss_Shmem before emm_open */
	uint64_t max_res, max_shmem;
	int64_t max_ahead;		/* Pss_Shmem less resident_bytes */
	unsigned over_res, over_shmem, checks;
};

static void check(struct emm *mm, struct watch *w)
{
	uint64_t res = stats(mm).resident_bytes;
	uint64_t sh1 = pss_shmem(), sh2 = pss_shmem();
	uint64_t sh = (sh1 < sh2 ? sh1 : sh2) - w->base;

	w->checks++;
	w->max_res = res > w->max_res ? res : w->max_res;
	w->max_shmem = sh > w->max_shmem ? sh : w->max_shmem;
	if ((int64_t)(sh - res) > w->max_ahead)
		w->max_ahead = (int64_t)(sh - res);
	if (res > LIMIT + RESIDENT_SLACK && w->over_res++ < 3)
		diag("resident %" PRIu64 " KiB over the limit", res / KIB);
	if (sh > LIMIT + BATCH + SHMEM_SLACK && w->over_shmem++ < 3)
		diag("Pss_Shmem %" PRIu64 " KiB over the limit (resident %" PRIu64 " KiB)",
		     sh / KIB, res / KIB);
}

static void write_checked(struct emm *mm, struct watch *w)
{
	for (size_t pg = 0; pg < PAGES; pg++) {
		uint64_t *p = mem + pg * WORDS_PER_PAGE;

		for (size_t i = 0; i < WORDS_PER_PAGE; i++)
			p[i] = pg << 20 | i | 1;
		if (pg % CHECK_EVERY == CHECK_EVERY - 1)
			check(mm, w);
	}
}

static void test_stream(struct emm *mm, struct watch *w)
{
	write_checked(mm, w);
	diag("%u checks: resident at most %" PRIu64 " KiB, Pss_Shmem at most %" PRIu64
	     " KiB (at most %" PRId64 " KiB ahead of resident), limit %lu KiB", w->checks,
	     w->max_res / KIB, w->max_shmem / KIB, w->max_ahead / (int64_t)KIB, LIMIT / KIB);
	is_int(w->over_res, 0, "resident_bytes <= limit + 64 pages at every check");
	is_int(w->over_shmem, 0,
	       "Pss_Shmem grew by <= limit + one batch + 16 pages at every check");
	ok(stats(mm).swapouts > 0, "the stream went through swap");
}

static void test_set_limit(struct emm *mm)
{
	struct emm_stats st;

	is_int(emm_set_limit(mm, 16 * MIB), 0, "emm_set_limit to 16 MiB");
	st = stats(mm);
	diag("resident %" PRIu64 " KiB right after", st.resident_bytes / KIB);
	ok(st.resident_bytes <= 16 * MIB, "resident is under the new limit when it returns");
	is_int(st.limit_bytes, 16 * MIB, "limit_bytes says 16 MiB");
}

/*
 * The reclaim thread frees pages as well while resident memory is above
 * its low watermark, and may be inside a pass when emm_set_limit returns:
 * give it nothing to do and let it settle, so that what resident memory
 * loses next is what emm_reclaim freed.
 */
static void quiesce(struct emm *mm)
{
	if (emm_set_limit(mm, LIMIT))
		bail("emm_set_limit failed");
	reclaim_settle(mm);
}

static void test_reclaim(struct emm *mm)
{
	uint64_t before, after;
	long got;
	int64_t drop;

	quiesce(mm);
	before = stats(mm).resident_bytes;
	got = emm_reclaim(mm, 8 * MIB);
	after = stats(mm).resident_bytes;
	drop = (int64_t)before - (int64_t)after;
	diag("emm_reclaim(8 MiB) = %ld KiB; resident %" PRIu64 " -> %" PRIu64 " KiB",
	     got / (long)KIB, before / KIB, after / KIB);
	ok(got > 0 && got <= (long)(8 * MIB), "emm_reclaim(8 MiB) returns a size in (0, 8 MiB]");
	ok(got % (long)PAGE == 0, "in whole pages");
	ok(drop >= got - (int64_t)BATCH && drop <= got + (int64_t)BATCH,
	   "resident dropped by what it returned (+/- one batch)");
	is_int(emm_reclaim(NULL, PAGE), -EINVAL, "emm_reclaim(NULL): -EINVAL");
}

static void verify(void)
{
	size_t bad = 0;

	for (size_t pg = 0; pg < PAGES; pg++) {
		const uint64_t *p = mem + pg * WORDS_PER_PAGE;

		for (size_t i = 0; i < WORDS_PER_PAGE; i++)
			if (p[i] != (pg << 20 | i | 1)) {
				if (bad++ < 5)
					diag("page %zu word %zu: 0x%" PRIx64, pg, i, p[i]);
				break;
			}
	}
	is_int(bad, 0, "all 256 MiB read back right afterwards");
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 512 * MIB);
	struct watch w = { 0 };
	struct emm *mm;
	void *r;

	w.base = pss_shmem();
	if (w.base == UINT64_MAX)
		skip_all("no Pss_Shmem in /proc/self/smaps_rollup");
	skip_all_tsan("it writes 256 MiB, whose shadow would take four times as much");
	plan(15);
	if (!is_int(emm_open(&o, &mm), 0, "emm_open: 32 MiB budget"))
		bail("cannot open an instance");
	is_int(emm_reserve(mm, LEN, &r), 0, "reserve 256 MiB");
	is_int(emm_map(mm, r, LEN, NULL), 0, "map it");
	mem = r;
	test_stream(mm, &w);
	test_set_limit(mm);
	test_reclaim(mm);
	verify();
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
