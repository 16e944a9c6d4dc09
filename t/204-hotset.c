/* SPDX-License-Identifier: MIT */
/* A hot 8 MiB set touched between scans of a 256 MiB cold stream stays resident under 32 MiB. */
#include <stdint.h>
#include <stdlib.h>

#include "emm.h"
#include "tap.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LIMIT (32 * MIB)
#define HOT (8 * MIB)
#define COLD (256 * MIB)
#define CHUNK (8 * MIB)		/* cold stream between two hot passes */
#define WORDS_PER_PAGE (PAGE / 8)

static uint64_t *hot, *cold;

struct tally {
	uint64_t majors, touches, passes;
	size_t bad;
};

static uint64_t faults_major(struct emm *mm)
{
	EMM_OPTS(emm_stats, st);

	if (emm_stats(mm, &st))
		bail("emm_stats failed");
	return st.faults_major;
}

static uint64_t value(const uint64_t *base, size_t pg)
{
	return (uint64_t)(uintptr_t)base ^ pg << 12 ^ 0x5eed0204;
}

/* Read every page of the hot set, counting the major faults it took. */
static void hot_pass(struct emm *mm, struct tally *t)
{
	uint64_t m0 = faults_major(mm);

	for (size_t pg = 0; pg < HOT / PAGE; pg++)
		if (hot[pg * WORDS_PER_PAGE] != value(hot, pg) && t->bad++ < 5)
			diag("hot page %zu reads 0x%" PRIx64, pg, hot[pg * WORDS_PER_PAGE]);
	t->majors += faults_major(mm) - m0;
	t->touches += HOT / PAGE;
	t->passes++;
}

static void cold_chunk(size_t from, int write, struct tally *t)
{
	for (size_t pg = from; pg < from + CHUNK / PAGE; pg++) {
		uint64_t *p = cold + pg * WORDS_PER_PAGE;

		if (write)
			for (size_t i = 0; i < WORDS_PER_PAGE; i++)
				p[i] = value(cold, pg) + i;
		else if ((p[0] != value(cold, pg) || p[WORDS_PER_PAGE - 1] !=
			  value(cold, pg) + WORDS_PER_PAGE - 1) && t->bad++ < 5)
			diag("cold page %zu reads 0x%" PRIx64, pg, p[0]);
	}
}

/* The cold stream written once, then read once, a hot pass after each chunk. */
static void run(struct emm *mm, struct tally *t)
{
	for (size_t pg = 0; pg < HOT / PAGE; pg++)
		hot[pg * WORDS_PER_PAGE] = value(hot, pg);
	for (int write = 1; write >= 0; write--)
		for (size_t off = 0; off < COLD; off += CHUNK) {
			cold_chunk(off / PAGE, write, t);
			hot_pass(mm, t);
		}
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 512 * MIB);
	EMM_OPTS(emm_stats, st);
	struct tally t = { 0 };
	struct emm *mm;
	void *h, *c;
	double ratio;

	plan(9);
	if (!is_int(emm_open(&o, &mm), 0, "emm_open: 32 MiB budget"))
		bail("cannot open an instance");
	is_int(emm_reserve(mm, HOT + COLD, &h), 0, "reserve 264 MiB");
	c = (char *)h + HOT;
	is_int(emm_map(mm, h, HOT, NULL), 0, "map 8 MiB hot");
	is_int(emm_map(mm, c, COLD, NULL), 0, "map 256 MiB cold beside it");
	hot = h;
	cold = c;
	run(mm, &t);
	emm_stats(mm, &st);
	ratio = (double)t.majors / (double)t.touches;
	diag("%" PRIu64 " hot passes: %" PRIu64 " major faults in %" PRIu64
	     " hot page touches, ratio %.4f", t.passes, t.majors, t.touches, ratio);
	diag("overall: swapouts %" PRIu64 ", swapins %" PRIu64 ", majors %" PRIu64 ", minors %"
	     PRIu64 ", pgactivate %" PRIu64 ", pgdeactivate %" PRIu64, st.swapouts, st.swapins,
	     st.faults_major, st.faults_minor, st.pgactivate, st.pgdeactivate);
	is_int(t.bad, 0, "every hot and cold page read right");
	ok(st.swapouts >= (COLD - LIMIT) / PAGE, "the cold stream went through swap");
	ok(st.swapins > 0, "and came back from it");
	ok(ratio < 0.1, "most hot accesses are not major faults (ratio %.4f < 0.1)", ratio);
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
