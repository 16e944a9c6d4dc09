/* SPDX-License-Identifier: MIT */
/* On the signal backend, a stream of first touches through huge extents under pressure has the readahead threads make the extents after it huge pages of zeros ahead of it: touched, each is mapped whole with no first-touch fault; where the stream stops, those made ahead read zero, count in the budget, and go with the region. */
#include <stdint.h>
#include <stdlib.h>

#include "emm.h"
#include "tap.h"
#include "util.h"
#include "thp.h"

#define MIB	(1UL << 20)
#define EXT	(2 * MIB)
#define LIMIT	(96 * MIB)		/* windows ahead are 2 MiB from 96 MiB on */
#define LEN	(4 * LIMIT)
#define WRITTEN	(3 * LIMIT)		/* written in order; the stream stops there */

/* Words of [p, p + len) that are not zero. */
static size_t count_nonzero(const char *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)p;
	size_t bad = 0;

	for (size_t i = 0; i < len / 8; i++)
		bad += w[i] != 0;
	return bad;
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 2 * LEN,
		 .backend = EMM_BACKEND_SIGNAL);
	EMM_OPTS(emm_map_opts, mo, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .flags = EMM_MAP_HUGEPAGE);
	uint64_t n = WRITTEN / EXT, ahead;
	struct emm_stats s0, s1, s2;
	const char *why;
	struct emm *mm;
	char *p;

	if (!thp_can_collapse(&why))
		skip_all(why);
	plan(7);
	if (emm_open(&o, &mm) || emm_reserve(mm, LEN, (void **)&p) || emm_map(mm, p, LEN, &mo))
		bail("setting up");
	s0 = stats(mm);
	fill_words(p, WRITTEN, word_value);
	s1 = stats(mm);
	/* A huge extent made ahead and then touched is a minor fault; one the
	 * stream reached first is a first-touch fault. How many the threads
	 * make in time depends on the CPU they get: at least one. An extent
	 * reclaim revokes while the stream is still in it is a minor fault
	 * again, so on a slow run the count may pass the extents. */
	ahead = s1.faults_minor - s0.faults_minor;
	diag("%" PRIu64 " extents: made ahead and touched %" PRIu64 ", first-touch faults %" PRIu64
	     ", collapses %" PRIu64 ", pgsteal %" PRIu64 " (direct %" PRIu64 "), swapouts %" PRIu64,
	     n, ahead, s1.faults_zero - s0.faults_zero, s1.thp_collapse - s0.thp_collapse,
	     s1.pgsteal - s0.pgsteal, s1.pgsteal_direct - s0.pgsteal_direct,
	     s1.swapouts - s0.swapouts);
	ok(ahead > 0, "extents made ahead of the stream: %" PRIu64 " minor faults over %" PRIu64
	   " extents", ahead, n);
	ok(s1.thp_collapse - s0.thp_collapse >= n * 3 / 4,
	   "most extents huge: %" PRIu64 " collapses", s1.thp_collapse - s0.thp_collapse);
	is_int(s1.thp_split - s0.thp_split, 0, "no extent split");
	ok(s1.resident_bytes <= LIMIT, "within the budget, what was made ahead included (%" PRIu64
	   " MiB)", s1.resident_bytes >> 20);
	is_int(count_nonzero(p + WRITTEN, LEN - WRITTEN), 0,
	       "past where the stream stopped, every word reads zero");
	is_int(count_bad_words(p, WRITTEN, word_value), 0, "every word written reads back");
	if (emm_unmap(mm, p, LEN))
		bail("emm_unmap");
	s2 = stats(mm);
	is_int(s2.resident_bytes, 0, "unmapped, nothing stays resident");
	emm_close(mm);
	return done_testing();
}
