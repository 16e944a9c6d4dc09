/* SPDX-License-Identifier: MIT */
/* emm_move: contents move to a new range; swapped pages go by their PTEs, with no I/O. */
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define MIB (1UL << 20)
#define PAGE 4096UL
#define LEN (8 * MIB)
#define OUT (4 * MIB)			/* the first half: paged out */
#define RES (2 * MIB)			/* then resident */
					/* the last 2 MiB: never touched */

static struct emm *mm;

static uint64_t value(const uint64_t *p)
{
	return (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ULL;
}

/* The source's words, wherever they moved: value() of where they were. */
static size_t bad_moved(const char *dst, const char *src, size_t off, size_t len)
{
	size_t bad = 0;

	for (size_t i = off; i < off + len; i += sizeof(uint64_t))
		bad += *(const uint64_t *)(dst + i) != value((const uint64_t *)(src + i));
	return bad;
}

static size_t nonzero(const char *p, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i += sizeof(uint64_t))
		n += *(const uint64_t *)(p + i) != 0;
	return n;
}

static void errors(char *a, char *b)
{
	char *ro;

	is_int(emm_move(mm, b + 1, a, PAGE), -EINVAL, "an unaligned destination: EINVAL");
	is_int(emm_move(mm, b, a, 0), -EINVAL, "length 0: EINVAL");
	is_int(emm_move(mm, a + PAGE, a, 2 * PAGE), -EINVAL, "overlapping ranges: EINVAL");
	is_int(emm_move(NULL, b, a, PAGE), -EINVAL, "no instance: EINVAL");
	if (emm_reserve(mm, 4 * MIB, (void **)&ro) || emm_map(mm, ro, 2 * MIB, NULL) ||
	    emm_protect(mm, ro, 2 * MIB, EMM_PROT_READ))
		bail("setting up a read-only range");
	is_int(emm_move(mm, ro, a, PAGE), -EACCES, "into a read-only VMA: EACCES");
	is_int(emm_move(mm, ro + 2 * MIB, a, PAGE), -ENOMEM, "into a range with no VMA: ENOMEM");
	is_int(emm_move(mm, b, ro + MIB, 2 * MIB), -ENOMEM,
	       "from a range only partly mapped: ENOMEM, and nothing moved");
	emm_release(mm, ro);
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 64 * MIB, .swap_size = 256 * MIB);
	struct emm_stats s0, s1, s2;
	char *a, *b, *c;
	int err;

	plan(20);
	err = emm_open(&o, &mm);
	if (!err)
		err = emm_reserve(mm, LEN, (void **)&a) || emm_map(mm, a, LEN, NULL) ||
		      emm_reserve(mm, LEN, (void **)&b) || emm_map(mm, b, LEN, NULL) ||
		      emm_reserve(mm, LEN, (void **)&c) || emm_map(mm, c, LEN, NULL);
	if (err)
		bail("setting up: %d", err);
	errors(a, b);

	fill_words(a, OUT + RES, value);
	if (emm_advise(mm, a, OUT, EMM_ADV_PAGEOUT))
		bail("EMM_ADV_PAGEOUT");
	/* The destination held data of its own, resident and swapped. */
	memset(b, 0x77, LEN);
	if (emm_advise(mm, b, LEN / 2, EMM_ADV_PAGEOUT))
		bail("EMM_ADV_PAGEOUT");
	s0 = stats(mm);
	is_int(emm_move(mm, b, a, LEN), 0, "emm_move of 8 MiB: 4 paged out, 2 resident, 2 never touched");
	s1 = stats(mm);
	is_int(s1.move_swapped - s0.move_swapped, OUT / PAGE, "the paged-out pages moved by their PTEs");
	is_int(s1.swapins - s0.swapins, 0, "with nothing read from swap");
	is_int(bad_moved(b, a, OUT, RES), 0, "the resident pages were copied");
	is_int(bad_moved(b, a, 0, OUT), 0, "the moved pages read back right at their new address");
	s2 = stats(mm);
	is_int(s2.swapins - s1.swapins, OUT / PAGE, "  each read from its slot, checksum checked");
	is_int(nonzero(b + OUT + RES, LEN - OUT - RES), 0,
	       "where the source was never touched, the destination reads zeros");
	is_int(nonzero(a, LEN), 0, "the source reads zeros");
	is_int(stats(mm).swap_used_bytes, s0.swap_used_bytes - LEN / 2, "the destination's old slots were freed");

	/* Back across reservations, once more through swap. */
	if (emm_advise(mm, b, LEN, EMM_ADV_PAGEOUT))
		bail("EMM_ADV_PAGEOUT");
	s0 = stats(mm);
	is_int(emm_move(mm, c + MIB, b + MIB, 4 * MIB), 0, "emm_move of 4 MiB at an odd MiB, to a third reservation");
	is_int(stats(mm).move_swapped - s0.move_swapped, 4 * MIB / PAGE, "  all by PTE");
	is_int(bad_moved(c, a, MIB, 4 * MIB), 0, "  intact at the new place");
	is_int(nonzero(b + MIB, 4 * MIB), 0, "  the source reads zeros");
	emm_close(mm);
	return done_testing();
}
