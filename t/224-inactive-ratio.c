/* SPDX-License-Identifier: MIT */
/* inactive_ratio and EMM_INACTIVE_RATIO: how long the active list may grow against the inactive one, every page read back right. */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>

#include "emm.h"
#include "tap.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LIMIT (16 * MIB)
#define LEN (64 * MIB)
#define HOT (8 * MIB)		/* touched again and again: active if it may be */
#define ROUND (1 * MIB)		/* of the stream, between two touches of HOT */

struct outcome {
	struct emm_node_stats ns;
	struct emm_stats st;
	size_t bad;
};

/* Each page holds its index plus one. */
static size_t check(const uint64_t *mem, size_t from, size_t to)
{
	size_t bad = 0;

	for (size_t p = from / PAGE; p < to / PAGE; p++)
		bad += mem[p * (PAGE / 8)] != p + 1;
	return bad;
}

/* HOT written, then the rest streamed through in rounds, HOT read again
 * after each: under a 16 MiB budget, reclaim takes the stream's pages and
 * deactivates from HOT only as far as the ratio asks. */
static struct outcome run(unsigned ratio)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .inactive_ratio = ratio);
	struct outcome out = { .ns = { .sz = sizeof(out.ns) }, .st = { .sz = sizeof(out.st) } };
	struct emm *mm;
	uint64_t *mem;
	void *base;

	if (emm_open(&o, &mm) || emm_reserve(mm, LEN, &base) || emm_map(mm, base, LEN, NULL))
		bail("cannot set up an instance with inactive_ratio %u", ratio);
	mem = base;
	for (size_t p = 0; p < LEN / PAGE; p++)
		mem[p * (PAGE / 8)] = p + 1;
	for (int pass = 0; pass < 3; pass++)
		for (size_t s = HOT; s < LEN; s += ROUND) {
			out.bad += check(mem, s, s + ROUND);
			out.bad += check(mem, 0, HOT);
		}
	/* The last touches of HOT activated again what reclaim had
	 * deactivated of it, and nothing since needed a page: the lists are
	 * read as reclaim leaves them, after it has freed 2 MiB. */
	if (emm_reclaim(mm, 2 * MIB) <= 0)
		bail("emm_reclaim freed nothing with inactive_ratio %u", ratio);
	emm_stats(mm, &out.st);
	emm_node_stats(mm, 0, &out.ns);
	emm_close(mm);
	return out;
}

int main(void)
{
	struct outcome one, eight;

	plan(8);
	unsetenv("EMM_INACTIVE_RATIO");
	unsetenv("EMM_MEM_LIMIT");
	one = run(1);
	eight = run(8);
	diag("inactive_ratio 1: active %" PRIu64 " KiB, inactive %" PRIu64 " KiB, pgdeactivate %" PRIu64
	     ", minor faults %" PRIu64, one.ns.active_bytes >> 10, one.ns.inactive_bytes >> 10,
	     one.st.pgdeactivate, one.st.faults_minor);
	diag("inactive_ratio 8: active %" PRIu64 " KiB, inactive %" PRIu64 " KiB, pgdeactivate %" PRIu64
	     ", minor faults %" PRIu64, eight.ns.active_bytes >> 10, eight.ns.inactive_bytes >> 10,
	     eight.st.pgdeactivate, eight.st.faults_minor);
	is_int(one.bad, 0, "ratio 1: every page read back right");
	is_int(eight.bad, 0, "ratio 8: every page read back right");
	ok(one.st.swapins > 0 && eight.st.swapins > 0, "both ran out of core (swap-ins %" PRIu64
	   " and %" PRIu64 ")", one.st.swapins, eight.st.swapins);
	/* What reclaim left, give or take its last batches (it deactivates
	 * a batch at a time, as it frees one). */
	ok(one.ns.active_bytes <= one.ns.inactive_bytes + HOT / 4,
	   "ratio 1: the active list about as long as the inactive one, at most");
	ok(eight.ns.active_bytes >= HOT * 3 / 4,
	   "ratio 8: the hot set stays on the active list");
	ok(one.st.pgdeactivate > 2 * eight.st.pgdeactivate,
	   "ratio 1 deactivates more than twice as often as ratio 8");
	ok(one.st.faults_minor > eight.st.faults_minor,
	   "and pays for it in minor faults, the hot set's pages touched again");

	/* The environment sets it where the caller does not. */
	setenv("EMM_INACTIVE_RATIO", "8", 1);
	{
		struct outcome env = run(0);

		ok(env.ns.active_bytes >= HOT * 3 / 4 && 2 * env.st.pgdeactivate < one.st.pgdeactivate,
		   "EMM_INACTIVE_RATIO=8: as ratio 8 (active %" PRIu64 " KiB, pgdeactivate %" PRIu64
		   ")", env.ns.active_bytes >> 10, env.st.pgdeactivate);
	}
	unsetenv("EMM_INACTIVE_RATIO");
	return done_testing();
}
