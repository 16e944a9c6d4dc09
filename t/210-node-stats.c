/* SPDX-License-Identifier: MIT */
/* emm_node_stats after pressure: node 0's lists add up to resident, counters match emm_stats. */
#include <stdint.h>
#include <stdlib.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LIMIT (16 * MIB)
#define LEN (64 * MIB)
#define WORDS_PER_PAGE (PAGE / 8)

#define HOT (2 * MIB)
#define CHUNK (4 * MIB)

static void touch_hot(uint64_t *mem)
{
	volatile uint64_t sink = 0;

	for (size_t w = 0; w < HOT / 8; w += WORDS_PER_PAGE)
		sink += mem[w];
	(void)sink;
}

/* Write the range, then read it, touching its first 2 MiB between chunks:
 * those pages are used again after reclaim revoked them, so they become
 * active while the stream fills the inactive list. */
static void pressure(uint64_t *mem)
{
	volatile uint64_t sink = 0;

	for (int pass = 0; pass < 2; pass++)
		for (size_t c = HOT; c < LEN; c += CHUNK) {
			for (size_t w = c / 8; w < (c + CHUNK) / 8 && w < LEN / 8; w++)
				if (pass)
					sink += mem[w];
				else
					mem[w] = w | 1;
			touch_hot(mem);
		}
	(void)sink;
}

/* emm_stats and the node's view with nothing moving in between: the
 * global counters read the same before and after. */
static int snapshot(struct emm *mm, struct emm_stats *st, struct emm_node_stats *ns)
{
	for (int tries = 0; tries < 100; tries++) {
		struct emm_stats after;
		int err;

		*st = stats(mm);
		err = emm_node_stats(mm, 0, ns);
		after = stats(mm);
		if (err)
			return err;
		if (!memcmp(st, &after, sizeof(after)))
			return 0;
	}
	return -EAGAIN;
}

static void test_node0(struct emm *mm)
{
	EMM_OPTS(emm_node_stats, ns);
	struct emm_stats st;
	long got;

	/* Reclaiming drains the per-CPU pagevecs into the lists first, so
	 * every resident page is on one of them afterwards, unless the reclaim
	 * thread has some off the lists in a pass: with the budget raised it
	 * has nothing to do, and is let finish first. */
	if (emm_set_limit(mm, 4 * LIMIT))
		bail("emm_set_limit failed");
	reclaim_settle(mm);
	got = emm_reclaim(mm, PAGE);
	ok(got >= 0, "emm_reclaim(1 page) to let the pages settle (%ld bytes)", got);
	is_int(snapshot(mm, &st, &ns), 0,
	       "emm_node_stats(node 0), with emm_stats steady around it");
	diag("node 0: resident %" PRIu64 " KiB = active %" PRIu64 " + inactive %" PRIu64
	     " KiB; pgscan %" PRIu64 " pgsteal %" PRIu64 " swapouts %" PRIu64 " swapins %" PRIu64,
	     ns.resident_bytes >> 10, ns.active_bytes >> 10, ns.inactive_bytes >> 10, ns.pgscan,
	     ns.pgsteal, ns.swapouts, ns.swapins);
	is_int(ns.resident_bytes, st.resident_bytes, "its resident_bytes is the instance's");
	is_int(ns.active_bytes + ns.inactive_bytes, ns.resident_bytes,
	       "active + inactive == resident");
	ok(ns.active_bytes > 0 && ns.inactive_bytes > 0, "both lists hold pages");
	is_int(ns.limit_bytes, 4 * LIMIT, "limit_bytes is the budget");
	ok(ns.pgscan > 0 && ns.pgsteal > 0 && ns.swapouts > 0 && ns.swapins > 0,
	   "the pressure shows in its counters");
	is_int(ns.pgscan, st.pgscan, "pgscan matches emm_stats");
	is_int(ns.pgsteal, st.pgsteal, "pgsteal matches emm_stats");
	is_int(ns.swapouts, st.swapouts, "swapouts matches emm_stats");
	is_int(ns.swapins, st.swapins, "swapins matches emm_stats");
}

static void test_errors(struct emm *mm)
{
	EMM_OPTS(emm_node_stats, ns);
	struct emm_node_stats small = { .sz = offsetof(struct emm_node_stats, resident_bytes) };

	is_int(emm_numa_nodes(mm), 1, "emm_numa_nodes: 1");
	is_int(emm_node_stats(mm, 1, &ns), -EINVAL, "node 1: -EINVAL");
	is_int(emm_node_stats(mm, -1, &ns), -EINVAL, "node -1: -EINVAL");
	is_int(emm_node_stats(NULL, 0, &ns), -EINVAL, "mm NULL: -EINVAL");
	is_int(emm_node_stats(mm, 0, NULL), -EINVAL, "stats NULL: -EINVAL");
	small.resident_bytes = 0xdead;
	is_int(emm_node_stats(mm, 0, &small), 0, "sz of the sz field alone: accepted");
	is_int(small.resident_bytes, 0xdead, "nothing written past sz");
	small.sz = sizeof(size_t) - 1;
	is_int(emm_node_stats(mm, 0, &small), -EINVAL, "sz short of the sz field: -EINVAL");
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 256 * MIB);
	struct emm *mm;
	void *r;

	plan(23);
	if (!is_int(emm_open(&o, &mm), 0, "emm_open: 16 MiB budget"))
		bail("cannot open an instance");
	is_int(emm_reserve(mm, LEN, &r), 0, "reserve 64 MiB");
	is_int(emm_map(mm, r, LEN, NULL), 0, "map it");
	pressure(r);
	test_node0(mm);
	test_errors(mm);
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
