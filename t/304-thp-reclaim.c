/* SPDX-License-Identifier: MIT */
/* Huge extents under memory pressure: swapped out (whole or split) and back as 4 KiB pages, data kept. */
#include <stdint.h>
#include <stdlib.h>

#include "emm.h"
#include "tap.h"
#include "util.h"
#include "thp.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define EXT (2 * MIB)
#define LEN (64 * MIB)
#define HUGE_PART (16 * MIB)	/* written while the budget has room for huge extents */
#define LIMIT (32 * MIB)
#define LOW_LIMIT (8 * MIB)
#define HIGH_LIMIT (256 * MIB)
#define WORDS_PER_PAGE (PAGE / 8)
#define SCAN_MS 20
#define WAIT_MS 3000

static struct emm *mm;

static uint64_t value(const uint64_t *p)
{
	uint64_t s = (uint64_t)(uintptr_t)p ^ 0x0304030403040304ULL;

	return tap_rand(&s) | 1;
}


/* The first 16 MiB go huge at fault time, then the budget drops to 8 MiB
 * and the other 48 MiB are written through it. */
static void pressure(uint64_t *p)
{
	struct emm_stats s0 = stats(mm), s1, s2;

	for (size_t off = 0; off < HUGE_PART; off += EXT)
		((char *)p)[off + 4000] = 1;
	s1 = stats(mm);
	/* On signal the readahead threads make a stream's next extents ahead
	 * of it (emm-thp(7)): those past the 16 MiB count too. */
	ok(s1.thp_collapse - s0.thp_collapse >= HUGE_PART / EXT,
	   "16 MiB: 8 huge extents at fault time (%" PRIu64 " collapses)",
	   s1.thp_collapse - s0.thp_collapse);
	is_int(thp_pmd_mapped(p, HUGE_PART), HUGE_PART, "16 MiB: PMD-mapped");
	fill_words(p, HUGE_PART, value);
	is_int(emm_set_limit(mm, LOW_LIMIT), 0, "lower the limit to 8 MiB");
	s2 = stats(mm);
	/* Dirty extents go whole where reclaim has room for 512 slots at
	 * once (t/310), else split first. */
	ok(s2.huge_bytes <= s1.huge_bytes - (HUGE_PART - LOW_LIMIT),
	   "huge extents left: huge_bytes %" PRIu64 " -> %" PRIu64 " KiB (%" PRIu64 " split)",
	   s1.huge_bytes >> 10, s2.huge_bytes >> 10, s2.thp_split - s1.thp_split);
	ok(s2.resident_bytes <= LOW_LIMIT, "resident %" PRIu64 " KiB within the new limit",
	   s2.resident_bytes >> 10);
	fill_words(p + HUGE_PART / 8, LEN - HUGE_PART, value);
	s2 = stats(mm);
	ok(s2.swapouts > s0.swapouts, "swapouts grew (%" PRIu64 ")", s2.swapouts - s0.swapouts);
	ok(s2.huge_bytes <= LOW_LIMIT, "huge_bytes %" PRIu64 " KiB within the limit",
	   s2.huge_bytes >> 10);
	is_int(count_bad_words(p, LEN, value), 0, "64 MiB read back right through an 8 MiB budget");
	s2 = stats(mm);
	diag("under pressure: thp_split %" PRIu64 ", thp_collapse %" PRIu64 ", swapouts %" PRIu64
	     ", swapins %" PRIu64 ", faults_major %" PRIu64 ", huge_bytes %" PRIu64 " KiB",
	     s2.thp_split, s2.thp_collapse, s2.swapouts, s2.swapins, s2.faults_major,
	     s2.huge_bytes >> 10);
}

/* The limit raised, every page written again (same data): hot and whole,
 * the extents may be collapsed again; that is reported, not required. */
static void recover(uint64_t *p)
{
	struct emm_stats s0, s1;
	long t0, ms = -1;

	is_int(emm_set_limit(mm, HIGH_LIMIT), 0, "raise the limit to 256 MiB");
	s0 = stats(mm);
	for (size_t pg = 0; pg < LEN / PAGE; pg++) {
		volatile uint64_t *w = p + pg * WORDS_PER_PAGE;

		*w = *w;
	}
	t0 = now_ms();
	do {
		if (stats(mm).huge_bytes == LEN) {
			ms = now_ms() - t0;
			break;
		}
		usleep(50 * 1000);
	} while (now_ms() - t0 < WAIT_MS);
	s1 = stats(mm);
	is_int(count_bad_words(p, LEN, value), 0, "64 MiB right after the limit is raised");
	diag("re-collapse: %" PRIu64 " extents collapsed again (%" PRIu64 " failed), huge_bytes %"
	     PRIu64 " KiB, PMD-mapped %" PRId64 " KiB, %s",
	     s1.thp_collapse - s0.thp_collapse, s1.thp_collapse_failed - s0.thp_collapse_failed,
	     s1.huge_bytes >> 10, thp_pmd_mapped(p, LEN) >> 10,
	     ms >= 0 ? "all of it" : "not all of it within 3 s");
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .thp_scan_ms = SCAN_MS);
	EMM_OPTS(emm_map_opts, mo, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .flags = EMM_MAP_HUGEPAGE);
	const char *why;
	void *r;

	if (!thp_can_collapse(&why))
		skip_all(why);
	plan(10);
	if (emm_open(&o, &mm) || emm_reserve(mm, LEN, &r) || emm_map(mm, r, LEN, &mo))
		bail("cannot open, reserve and map");
	pressure(r);
	recover(r);
	emm_close(mm);
	return done_testing();
}
