/* SPDX-License-Identifier: MIT */
/* EMM_ADV_SEQUENTIAL: the pages a stream has passed go first, so a scan larger than the budget leaves the rest of memory be and, read again, finds the part that stayed. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LIMIT (32 * MIB)
#define LEN (128 * MIB)
#define LOOP (48 * MIB)		/* half as large again as the budget */
#define HOT (8 * MIB)
#define SCAN (64 * MIB)
#define PASSES 3

static struct emm *open_one(char **mem)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 256 * MIB);
	struct emm *mm;

	if (emm_open(&o, &mm) || emm_reserve(mm, LEN, (void **)mem) || emm_map(mm, *mem, LEN, NULL))
		bail("setting up an instance");
	return mm;
}

/* LOOP written, then read in order PASSES times: the swap-ins of the
 * later passes, per pass. */
static uint64_t loop_swapins(int advice, const char *name)
{
	struct emm_stats a, b;
	size_t bad = 0;
	char *mem;
	struct emm *mm = open_one(&mem);

	if (emm_advise(mm, mem, LOOP, advice))
		bail("emm_advise(%s)", name);
	stamp_pages(mem, 0, LOOP, 1);
	bad += bad_stamps(mem, 0, LOOP, 1);
	a = stats(mm);
	for (int k = 1; k < PASSES; k++)
		bad += bad_stamps(mem, 0, LOOP, 1);
	b = stats(mm);
	is_int(bad, 0, "%s: %lu MiB read in order %d times under %lu MiB, intact", name,
	       LOOP / MIB, PASSES, LIMIT / MIB);
	emm_close(mm);
	return (b.swapins - a.swapins) / (PASSES - 1);
}

/* HOT touched twice (onto the active list), then a SCAN of another VMA
 * written and read once: how many of HOT's pages had to go? */
static uint64_t hot_after_scan(int advice, const char *name)
{
	struct emm_stats a;
	uint64_t majors;
	char *mem;
	struct emm *mm = open_one(&mem);

	if (emm_advise(mm, mem + HOT, SCAN, advice))
		bail("emm_advise(%s)", name);
	stamp_pages(mem, 0, HOT, 2);
	if (bad_stamps(mem, 0, HOT, 2) || emm_advise(mm, mem, HOT, EMM_ADV_COLD) ||
	    bad_stamps(mem, 0, HOT, 2))
		bail("the hot pages");
	stamp_pages(mem, HOT, SCAN, 3);
	is_int(bad_stamps(mem, HOT, SCAN, 3), 0, "%s: a scan of %lu MiB after %lu MiB in use, intact",
	       name, SCAN / MIB, HOT / MIB);
	a = stats(mm);
	is_int(bad_stamps(mem, 0, HOT, 2), 0, "  the pages in use intact after it");
	majors = stats(mm).faults_major - a.faults_major;
	emm_close(mm);
	return majors;
}

/* A loop that fits: what the stream leaves behind goes first only when
 * something has to go. */
static void fits(void)
{
	struct emm_stats a;
	char *mem;
	struct emm *mm = open_one(&mem);

	if (emm_advise(mm, mem, LIMIT / 2, EMM_ADV_SEQUENTIAL))
		bail("emm_advise");
	stamp_pages(mem, 0, LIMIT / 2, 4);
	a = stats(mm);
	is_int(bad_stamps(mem, 0, LIMIT / 2, 4) + bad_stamps(mem, 0, LIMIT / 2, 4), 0,
	       "EMM_ADV_SEQUENTIAL: %lu MiB read twice under %lu MiB, intact", LIMIT / 2 / MIB,
	       LIMIT / MIB);
	is_int(stats(mm).swapins - a.swapins, 0, "  no swap-in: nothing had to go");
	emm_close(mm);
}

int main(void)
{
	uint64_t seq, normal;

	plan(10);
	fits();
	seq = loop_swapins(EMM_ADV_SEQUENTIAL, "EMM_ADV_SEQUENTIAL");
	normal = loop_swapins(EMM_ADV_NORMAL, "EMM_ADV_NORMAL");
	diag("swap-ins per pass of %lu pages: %" PRIu64 " sequential, %" PRIu64 " normal",
	     LOOP / PAGE, seq, normal);
	/* What does not fit is a third of the loop: with every page read
	 * going first, about that much comes back per pass (plus the windows
	 * read ahead), where evicting the oldest first reads it all. */
	ok(seq <= LOOP / PAGE * 3 / 5, "  sequential: %" PRIu64 " swap-ins a pass, at most 3/5 of the pages",
	   seq);
	seq = hot_after_scan(EMM_ADV_SEQUENTIAL, "EMM_ADV_SEQUENTIAL");
	normal = hot_after_scan(EMM_ADV_NORMAL, "EMM_ADV_NORMAL");
	diag("major faults reading the %lu pages in use after the scan: %" PRIu64 " sequential, %" PRIu64
	     " normal", HOT / PAGE, seq, normal);
	ok(seq <= HOT / PAGE / 8, "  sequential: %" PRIu64 " major faults, at most 1/8 of the pages in use",
	   seq);
	return done_testing();
}
