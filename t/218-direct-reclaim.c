/* SPDX-License-Identifier: MIT */
/* allocstall and pgsteal_direct: what faulting threads reclaim themselves, past wmark_min, and nothing else. */
#include <inttypes.h>
#include <stdint.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define KIB 1024UL
#define MIB (1UL << 20)
#define PAGE 4096UL
#define LIMIT (8 * MIB)
#define LEN (64 * MIB)

int main(void)
{
	/*
	 * wmark_low only one page above wmark_min: a fault that passes low
	 * passes min too, and reclaims before the reclaim thread it has just
	 * woken can have freed anything. The reclaim thread then frees down
	 * to wmark_high and sleeps until the next such fault, so faults
	 * reclaim again and again while 8 times the budget is touched.
	 */
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 2 * LEN, .wmark_min = 4 * KIB,
		 .wmark_low = 8 * KIB, .wmark_high = 2 * MIB);
	struct emm_stats s0, s1, s2;
	struct emm *mm;
	char *a;
	long got;
	int err;

	plan(9);
	err = emm_open(&o, &mm);
	if (!err)
		err = emm_reserve(mm, LEN, (void **)&a) || emm_map(mm, a, LEN, NULL);
	if (err)
		bail("setting up: %d", err);
	s0 = stats(mm);
	is_int(s0.allocstall + s0.pgsteal_direct, 0, "a new instance has reclaimed nothing");

	fill_words(a, LEN, word_value);
	s1 = stats(mm);
	ok(s1.allocstall > 0, "faults past wmark_min reclaimed themselves: allocstall %" PRIu64,
	   s1.allocstall);
	ok(s1.pgsteal_direct > 0, "  and evicted pages: pgsteal_direct %" PRIu64 " of pgsteal %" PRIu64,
	   s1.pgsteal_direct, s1.pgsteal);
	ok(s1.pgsteal_direct <= s1.pgsteal, "  a part of pgsteal");
	ok(s1.resident_bytes <= LIMIT, "the budget held: %" PRIu64 " KiB resident", s1.resident_bytes / KIB);

	/* No fault from here on: what is evicted is not direct reclaim. */
	reclaim_settle(mm);
	s1 = stats(mm);
	got = emm_reclaim(mm, 4 * MIB);
	s2 = stats(mm);
	ok(got > 0 && s2.pgsteal - s1.pgsteal >= (uint64_t)got / PAGE,
	   "emm_reclaim evicted %ld KiB, counted in pgsteal", got / (long)KIB);
	is_int(s2.pgsteal_direct - s1.pgsteal_direct, 0, "  not in pgsteal_direct");
	is_int(s2.allocstall - s1.allocstall, 0, "  nor in allocstall");

	is_int(count_bad_words(a, LEN, word_value), 0, "every word reads back what was written");
	emm_close(mm);
	return done_testing();
}
