/* SPDX-License-Identifier: MIT */
/* A page of a huge extent that a per-CPU pagevec puts on the LRU after the collapse (it was queued before) is never reclaimed by itself: the extent stays whole, or is split first, and its data reads back right. */
#include <stdint.h>
#include <stdlib.h>

#include "emm.h"
#include "internal.h"
#include "lru.h"
#include "pte-peek.h"
#include "tap.h"
#include "thp.h"
#include "util.h"
#include "vmscan.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define EXT (2 * MIB)
#define TAIL 5			/* the page of the extent listed late */
#define SHRINKS 16		/* reclaim calls of one page each */

static struct emm *mm;

static uint64_t value(const uint64_t *p)
{
	uint64_t s = (uint64_t)(uintptr_t)p ^ 0x0307030703070307ULL;

	return tap_rand(&s) | 1;
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 64 * MIB, .thp_scan_ms = 600000);
	EMM_OPTS(emm_map_opts, mo, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .flags = EMM_MAP_HUGEPAGE);
	struct emm_stats s0;
	const char *why;
	char *p;
	size_t lost = 0;
	uint32_t f;
	void *r;

	if (!thp_can_collapse(&why))
		skip_all(why);
	plan(7);
	if (emm_open(&o, &mm) || emm_reserve(mm, EXT, &r) || emm_map(mm, r, EXT, &mo))
		bail("cannot open, reserve and map");
	p = r;
	s0 = stats(mm);
	p[4000] = 1;
	is_int(stats(mm).thp_collapse - s0.thp_collapse, 1, "the first touch collapses the extent");
	fill_words(p, EXT, value);
	ok(extent_collapsed(p), "emm has it collapsed");

	/* What a pagevec drained late does: a page of the extent on a list of
	 * its own, next to its head. */
	f = (uint32_t)pte_val(pte_word(p + TAIL * PAGE));
	ok(!frame_on_lru(mm->lru, f), "a page after the head is on no list of its own");
	lru_queue(mm, f, PV_ADD);
	lru_add_drain_all(mm);
	ok(frame_on_lru(mm->lru, f), "listed by the late drain (the race, made by hand)");

	/* Checked after each call: a page gone by itself leaves the extent
	 * collapsed until reclaim comes to its head, which then splits it. */
	for (int i = 0; i < SHRINKS; i++) {
		shrink_node(mm, 0, 1);
		lost += gone_while_collapsed(p);
	}
	is_int(lost, 0, "no page of the extent went by itself while it was collapsed");
	is_int(count_bad_words(p, EXT, value), 0, "the extent reads back right");
	is_int(emm_advise(mm, p, EXT, EMM_ADV_PAGEOUT) >= 0 && count_bad_words(p, EXT, value) == 0,
	       1, "paged out and read back right");
	emm_close(mm);
	return done_testing();
}
