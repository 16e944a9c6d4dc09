/* SPDX-License-Identifier: MIT */
/* Dirty huge extents evicted whole: 512 slots in one batch, no split, data and pages of zeros kept; a failed write or a short swap splits instead. */
#include <stdint.h>
#include <stdlib.h>

#include "emm.h"
#include "internal.h"
#include "pte-peek.h"
#include "swap.h"
#include "tap.h"
#include "util.h"
#include "thp.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define EXT (2 * MIB)
#define LEN (32 * MIB)		/* each of the two halves of the region */
#define EXTENTS (LEN / EXT)
#define LIMIT (128 * MIB)	/* room for all: only emm_reclaim evicts */
#define ZERO_PAGE 7		/* the page of each extent that stays all zeros */

/* Every word its own value, but for the words of each extent's page
 * ZERO_PAGE: zeros, which need no slot. */
static uint64_t value(const uint64_t *p)
{
	uintptr_t a = (uintptr_t)p;
	uint64_t s = a ^ 0x0310031003100310ULL;

	if ((a & (EXT - 1)) / PAGE == ZERO_PAGE)
		return 0;
	return tap_rand(&s) | 1;
}

static void open_mapped(struct emm **mm, void **p, uint64_t swap)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = swap);
	EMM_OPTS(emm_map_opts, mo, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .flags = EMM_MAP_HUGEPAGE);

	if (emm_open(&o, mm) || emm_reserve(*mm, 2 * LEN, p) || emm_map(*mm, *p, 2 * LEN, &mo))
		bail("cannot open, reserve and map");
}

/* The extents of [p, p + LEN) emm still has collapsed. */
static unsigned written_collapsed(const char *p)
{
	unsigned n = 0;

	for (size_t i = 0; i < EXTENTS; i++)
		n += extent_collapsed(p + i * EXT);
	return n;
}

/* 32 MiB of huge extents written, then reclaimed: each goes whole. */
static void test_whole(struct emm *mm, char *p)
{
	struct emm_stats s0 = stats(mm), s1, s2;
	long freed;

	fill_words(p, LEN, value);
	s1 = stats(mm);
	/* On signal the readahead threads make a stream's next extents ahead
	 * of it (emm-thp(7)), all zeros: they count, and go too. */
	ok(s1.thp_collapse - s0.thp_collapse >= EXTENTS,
	   "16 huge extents at first touch (%" PRIu64 " collapses)",
	   s1.thp_collapse - s0.thp_collapse);
	/* All that is resident: the extents of zeros made ahead go too.
	 * Asked for LEN only, reclaim may count them first and stop with
	 * written extents left (a loaded machine: 3 of 16). */
	freed = emm_reclaim(mm, 2 * LEN);
	s2 = stats(mm);
	ok(freed >= (long)LEN, "emm_reclaim freed all 32 MiB (%ld MiB)", freed >> 20);
	is_int(s2.thp_split - s1.thp_split, 0, "no extent split on the way out");
	is_int(s2.swapouts - s1.swapouts, EXTENTS * (EXT / PAGE - 1),
	       "each extent's 511 written pages went to swap, its page of zeros to none");
	/* Each written extent looked at itself: huge_bytes also counts the
	 * extents of zeros the readahead threads may make ahead after s1. */
	ok(written_collapsed(p) == 0,
	   "no huge extent written left resident (%u of %lu; %" PRIu64 " KiB huge in all)",
	   written_collapsed(p), EXTENTS, s2.huge_bytes >> 10);
	is_int(s2.io_errors - s1.io_errors, 0, "no write failed");
	is_int(count_bad_words(p, LEN, value), 0, "32 MiB read back right, pages of zeros as zeros");
}

/* Every third page write failing: a huge extent cannot go whole; it is
 * split, its pages go as they can, and nothing is lost. */
static void test_write_errors(struct emm *mm, char *p)
{
	struct emm_stats s0, s1;

	fill_words(p, LEN, value);
	s0 = stats(mm);
	swap_inject(mm->swap, 3, 0);
	emm_reclaim(mm, LEN);
	swap_inject(mm->swap, 0, 0);
	s1 = stats(mm);
	ok(s1.io_errors > s0.io_errors, "failed writes counted (%" PRIu64 ")",
	   s1.io_errors - s0.io_errors);
	ok(s1.thp_split > s0.thp_split, "the extents whose write failed were split (%" PRIu64 ")",
	   s1.thp_split - s0.thp_split);
	is_int(count_bad_words(p, LEN, value), 0, "32 MiB read back right after failed writes");
	ok(emm_reclaim(mm, LEN) > 0, "with writes working again, the pages go");
	is_int(count_bad_words(p, LEN, value), 0, "and read back right");
}

/* A swap of fewer than 512 slots: no extent can go whole; split, as many
 * pages as have room go, the rest stay, and nothing is lost. */
static void test_short_swap(void)
{
	struct emm_stats s0, s1;
	struct emm *mm;
	void *p;

	open_mapped(&mm, &p, MIB);
	fill_words(p, LEN, value);
	s0 = stats(mm);
	emm_reclaim(mm, LEN);
	s1 = stats(mm);
	ok(s1.thp_split > s0.thp_split, "1 MiB of swap: extents split (%" PRIu64 ")",
	   s1.thp_split - s0.thp_split);
	ok(s1.swapouts > s0.swapouts && s1.swapouts - s0.swapouts <= MIB / PAGE,
	   "and no more pages went to swap than it holds (%" PRIu64 ")", s1.swapouts - s0.swapouts);
	is_int(count_bad_words(p, LEN, value), 0, "32 MiB read back right");
	emm_close(mm);
}

int main(void)
{
	struct emm *mm;
	const char *why;
	void *p;

	if (!thp_can_collapse(&why))
		skip_all(why);
	plan(15);
	open_mapped(&mm, &p, 4 * LEN);
	test_whole(mm, p);
	test_write_errors(mm, (char *)p + LEN);
	emm_close(mm);
	test_short_swap();
	return done_testing();
}
