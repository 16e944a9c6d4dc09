/* SPDX-License-Identifier: MIT */
/* Data integrity over 1 GiB: random writes verified byte for byte, zero after unmap and map. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define GIB (1UL << 30)
#define LEN GIB
#define PAGES (LEN / PAGE)
#define WORDS (LEN / 8)
#define WORDS_PER_PAGE (PAGE / 8)
#define RANDOM_WRITES (4UL << 20)

static uint64_t *mem;
static uint64_t *written;	/* bitmap over the words of mem */
static uint16_t *slot;		/* the word each page got in the first pass */
static uint64_t seed = 0x5eed0100;

/* Never zero, so a word reading zero was never written. */
static uint64_t pattern(uint64_t word)
{
	uint64_t s = word ^ 0xa5a5a5a55a5a5a5aULL;

	return tap_rand(&s) | 1;
}

static void put(uint64_t word)
{
	mem[word] = pattern(word);
	written[word / 64] |= 1ULL << (word % 64);
}

/* Every page once, in random order, one word each. */
static void first_pass(void)
{
	uint32_t *order = random_order(PAGES, &seed);

	if (!(slot = malloc(PAGES * sizeof(*slot))))
		bail("out of memory");
	for (size_t i = 0; i < PAGES; i++) {
		uint32_t pg = order[i];

		slot[pg] = (uint16_t)(tap_rand(&seed) % WORDS_PER_PAGE);
		put((uint64_t)pg * WORDS_PER_PAGE + slot[pg]);
	}
	free(order);
}

static void random_writes(void)
{
	for (size_t i = 0; i < RANDOM_WRITES; i++)
		put(tap_rand(&seed) % WORDS);
}

/* Every word of the range: the pattern where written, zero elsewhere. */
static void verify(void)
{
	size_t bad = 0;

	for (uint64_t w = 0; w < WORDS; w++) {
		int was = (written[w / 64] >> (w % 64)) & 1;
		uint64_t want = was ? pattern(w) : 0;

		if (mem[w] == want)
			continue;
		if (bad++ < 5)
			diag("offset 0x%" PRIx64 ": got 0x%016" PRIx64 ", want 0x%016" PRIx64,
			     w * 8, mem[w], want);
	}
	is_int(bad, 0, "every byte of 1 GiB holds what was written (or zero)");
}

static uint64_t resident(struct emm *mm)
{
	EMM_OPTS(emm_stats, st);

	return emm_stats(mm, &st) ? UINT64_MAX : st.resident_bytes;
}

/* After unmap and map: one page at a time, the word that was written and the first. */
static void verify_zero(void)
{
	size_t bad = 0;

	for (size_t pg = 0; pg < PAGES; pg++) {
		uint64_t *p = mem + pg * WORDS_PER_PAGE;

		if (p[0] == 0 && p[slot[pg]] == 0)
			continue;
		if (bad++ < 5)
			diag("page %zu reads 0x%" PRIx64 "/0x%" PRIx64, pg, p[0], p[slot[pg]]);
	}
	is_int(bad, 0, "every page reads zero after unmap and map");
}

int main(void)
{
	uint64_t ram = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
	struct emm *mm;
	void *r;

	if (ram < 4 * GIB)
		skip_all("needs 4 GiB of RAM");
	skip_all_tsan("it writes 1 GiB, whose shadow would take four times as much");
	plan(9);
	written = calloc(WORDS / 64, sizeof(*written));
	if (!written)
		bail("out of memory");
	diag("seed 0x%" PRIx64, seed);
	is_int(emm_open(NULL, &mm), 0, "emm_open");
	is_int(emm_reserve(mm, LEN, &r), 0, "reserve 1 GiB");
	is_int(emm_map(mm, r, LEN, NULL), 0, "map it anonymous");
	mem = r;
	first_pass();
	random_writes();
	verify();
	is_int(resident(mm), LEN, "resident_bytes: the whole range");
	is_int(emm_unmap(mm, r, LEN), 0, "unmap it");
	is_int(resident(mm), 0, "resident_bytes: 0 after unmap");
	is_int(emm_map(mm, r, LEN, NULL), 0, "map it again");
	verify_zero();
	emm_close(mm);
	return done_testing();
}
