/* SPDX-License-Identifier: MIT */
/* The promotion scanner: 4 KiB-touched extents advised HUGEPAGE collapse in bounded time, data kept. */
#include <stdint.h>
#include <stdlib.h>

#include "emm.h"
#include "tap.h"
#include "util.h"
#include "thp.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define EXT (2 * MIB)
#define RANGE (32 * MIB)
#define LIMIT (1024 * MIB)
#define WORDS_PER_PAGE (PAGE / 8)
#define HOLES 10		/* never-touched pages in the extent with holes */
#define WAIT_MS 10000
#define SCAN_MS 20

/* fault_around 1: a page nobody touched stays never-touched. */
static struct emm *open_scan(int max_ptes_none)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .thp_scan_ms = SCAN_MS, .fault_around = 1,
		 .thp_max_ptes_none = max_ptes_none);
	struct emm *mm;

	if (emm_open(&o, &mm))
		bail("emm_open failed");
	return mm;
}

/* Is page pg of an extent one of its holes? Spread over the extent. */
static int is_hole(size_t pg, int holes)
{
	return holes && pg % 51 == 7 && pg / 51 < HOLES;
}

/* One word written in every page of [p, p + len) but the holes of each extent. */
static void touch_pages(uint64_t *p, size_t len, int holes)
{
	for (size_t pg = 0; pg < len / PAGE; pg++) {
		uint64_t *w = p + pg * WORDS_PER_PAGE + pg % WORDS_PER_PAGE;

		if (!is_hole(pg % (EXT / PAGE), holes))
			*w = word_value(w);
	}
}

/* Every word: the value where touch_pages wrote, zero elsewhere. */
static size_t bad_touched(uint64_t *p, size_t len, int holes)
{
	size_t bad = 0;

	for (size_t w = 0; w < len / 8; w++) {
		size_t pg = w / WORDS_PER_PAGE;
		int written = w % WORDS_PER_PAGE == pg % WORDS_PER_PAGE &&
			      !is_hole(pg % (EXT / PAGE), holes);
		uint64_t want = written ? word_value(p + w) : 0;

		if (p[w] != want && bad++ < 5)
			diag("%p: got 0x%" PRIx64 ", want 0x%" PRIx64, (void *)(p + w), p[w], want);
	}
	return bad;
}

static char *map_plain(struct emm *mm, char *at, size_t len)
{
	if (emm_map(mm, at, len, NULL))
		bail("emm_map failed");
	return at;
}

static long wait_huge(const void *p, size_t len)
{
	return thp_wait_huge(p, len, WAIT_MS);
}

/*
 * Default max_ptes_none: a 32 MiB range touched 4 KiB at a time, an extent
 * with holes, an extent with a pinned page. Gaps between them keep their
 * kernel mappings apart, so smaps tells each one's huge bytes.
 */
static void test_default(void)
{
	struct emm *mm = open_scan(0);
	char *r, *big, *holed, *pinned;
	struct emm_stats s0, s1;
	long ms;

	if (emm_reserve(mm, RANGE + 8 * MIB, (void **)&r))
		bail("emm_reserve failed");
	big = map_plain(mm, r, RANGE);
	holed = map_plain(mm, r + RANGE + EXT, EXT);
	pinned = map_plain(mm, r + RANGE + 3 * EXT, EXT);
	touch_pages((uint64_t *)big, RANGE, 0);
	touch_pages((uint64_t *)holed, EXT, 1);
	touch_pages((uint64_t *)pinned, EXT, 0);
	is_int(emm_pin(mm, pinned + 100 * PAGE, PAGE), 0, "pin one page of an extent");
	usleep(5 * SCAN_MS * 1000);
	s0 = stats(mm);
	is_int(s0.thp_collapse, 0, "no collapse before the HUGEPAGE advice");
	is_int(thp_pmd_mapped(r, RANGE + 8 * MIB), 0, "nothing PMD-mapped before the advice");

	is_int(emm_advise(mm, big, RANGE, EMM_ADV_HUGEPAGE) |
	       emm_advise(mm, holed, EXT, EMM_ADV_HUGEPAGE) |
	       emm_advise(mm, pinned, EXT, EMM_ADV_HUGEPAGE), 0, "advise HUGEPAGE on the three ranges");
	ms = wait_huge(big, RANGE);
	ok(ms >= 0, "the scanner collapsed 32 MiB (%ld ms)", ms);
	ok(wait_huge(holed, EXT) >= 0, "an extent with %d never-touched pages collapsed", HOLES);
	usleep(10 * SCAN_MS * 1000);	/* ten more rounds for the pinned extent */
	s1 = stats(mm);
	is_int(s1.thp_collapse - s0.thp_collapse, 17, "thp_collapse grew by 17 (16 + 1)");
	is_int(s1.huge_bytes, RANGE + EXT, "huge_bytes 34 MiB");
	is_int(thp_pmd_mapped(pinned, EXT), 0, "the extent with a pinned page is not collapsed");
	is_int(bad_touched((uint64_t *)big, RANGE, 0), 0, "32 MiB: data intact");
	is_int(bad_touched((uint64_t *)holed, EXT, 1), 0, "extent with holes: data intact, holes zero");
	is_int(bad_touched((uint64_t *)pinned, EXT, 0), 0, "pinned extent: data intact");
	diag("promotion of 32 MiB took %ld ms; collapses %" PRIu64 ", failed %" PRIu64,
	     ms, s1.thp_collapse, s1.thp_collapse_failed);
	emm_close(mm);
}

/* max_ptes_none -1: the extent with holes stays small, a whole one next to it does not. */
static void test_no_fill(void)
{
	struct emm *mm = open_scan(-1);
	char *r, *whole, *holed;
	struct emm_stats s0, s1;

	if (emm_reserve(mm, 8 * MIB, (void **)&r))
		bail("emm_reserve failed");
	whole = map_plain(mm, r, EXT);
	holed = map_plain(mm, r + 2 * EXT, EXT);
	touch_pages((uint64_t *)whole, EXT, 0);
	touch_pages((uint64_t *)holed, EXT, 1);
	s0 = stats(mm);
	is_int(emm_advise(mm, whole, EXT, EMM_ADV_HUGEPAGE) |
	       emm_advise(mm, holed, EXT, EMM_ADV_HUGEPAGE), 0, "max_ptes_none -1: advise HUGEPAGE");
	ok(wait_huge(whole, EXT) >= 0, "max_ptes_none -1: the whole extent collapsed");
	usleep(10 * SCAN_MS * 1000);
	s1 = stats(mm);
	is_int(thp_pmd_mapped(holed, EXT), 0, "max_ptes_none -1: the extent with holes is not");
	is_int(s1.thp_collapse - s0.thp_collapse, 1, "max_ptes_none -1: one collapse");
	is_int(bad_touched((uint64_t *)holed, EXT, 1), 0, "max_ptes_none -1: data intact");
	emm_close(mm);
}

int main(void)
{
	const char *why;

	if (!thp_can_collapse(&why))
		skip_all(why);
	plan(17);
	test_default();
	test_no_fill();
	return done_testing();
}
