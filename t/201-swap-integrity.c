/* SPDX-License-Identifier: MIT */
/* 512 MiB of distinct data under a 32 MiB budget: every byte comes back from swap, in any order
 * (the random pass reads 1/16 of the pages, each a major fault alone, to stay within ~30 s). */
#include <stdint.h>
#include <stdlib.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LIMIT (32 * MIB)
#define LEN (512 * MIB)
#define PAGES (LEN / PAGE)
#define WORDS_PER_PAGE (PAGE / 8)
#define RANDOM_PAGES (PAGES / 16)	/* 32 MiB: as much as the budget, all from swap */

static uint64_t *mem;
static const uint64_t seed = 0x5eed0201;

/* Every word differs from every other: a bijective mix of its offset. */
static uint64_t pattern(uint64_t word)
{
	uint64_t s = word ^ seed;

	return tap_rand(&s);
}

static void write_all(void)
{
	for (uint64_t w = 0; w < LEN / 8; w++)
		mem[w] = pattern(w);
}

/* The page's words as written; reports the first few pages that differ. */
static int page_ok(size_t pg, size_t *bad)
{
	const uint64_t *p = mem + pg * WORDS_PER_PAGE;

	for (size_t i = 0; i < WORDS_PER_PAGE; i++) {
		uint64_t w = pg * WORDS_PER_PAGE + i;

		if (p[i] == pattern(w))
			continue;
		if ((*bad)++ < 5)
			diag("offset 0x%" PRIx64 ": got 0x%016" PRIx64 ", want 0x%016" PRIx64,
			     w * 8, p[i], pattern(w));
		return 0;
	}
	return 1;
}

enum order { SEQUENTIAL, REVERSE, RANDOM };

static void verify(enum order o, const uint32_t *perm, size_t n, const char *name)
{
	size_t bad = 0;

	for (size_t i = 0; i < n; i++) {
		size_t pg = o == SEQUENTIAL ? i : o == REVERSE ? PAGES - 1 - i : perm[i];

		page_ok(pg, &bad);
	}
	is_int(bad, 0, "every byte of %zu MiB reads back right, %s page order",
	       n * PAGE / MIB, name);
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 1UL << 30);
	EMM_OPTS(emm_stats, st);
	uint64_t s = seed;
	uint32_t *perm = random_order(PAGES, &s);
	struct emm *mm;
	void *r;

	skip_all_tsan("it writes 512 MiB, whose shadow would take four times as much");
	plan(10);
	diag("seed 0x%" PRIx64, seed);
	if (!is_int(emm_open(&o, &mm), 0, "emm_open: 32 MiB budget, 1 GiB of swap"))
		bail("cannot open an instance");
	is_int(emm_reserve(mm, LEN, &r), 0, "reserve 512 MiB");
	is_int(emm_map(mm, r, LEN, NULL), 0, "map it anonymous");
	mem = r;
	write_all();
	verify(SEQUENTIAL, perm, PAGES, "sequential");
	verify(REVERSE, perm, PAGES, "reverse");
	verify(RANDOM, perm, RANDOM_PAGES, "random");
	emm_stats(mm, &st);
	diag("swapouts %" PRIu64 ", swapins %" PRIu64 ", majors %" PRIu64 ", resident %" PRIu64
	     " KiB", st.swapouts, st.swapins, st.faults_major, st.resident_bytes >> 10);
	ok(st.swapouts > 0, "pages were written to swap (swapouts > 0)");
	ok(st.swapins > 0, "and read back (swapins > 0)");
	is_int(st.io_errors, 0, "no I/O errors");
	is_int(emm_close(mm), 0, "emm_close");
	free(perm);
	return done_testing();
}
