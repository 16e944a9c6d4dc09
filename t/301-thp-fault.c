/* SPDX-License-Identifier: MIT */
/* Fault-time huge pages: one touch per 2 MiB extent maps it with a PMD where mode and hints allow. */
#include <stdint.h>
#include <stdlib.h>

#include "emm.h"
#include "tap.h"
#include "util.h"
#include "thp.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define EXT (2 * MIB)
#define BIG (64 * MIB)
#define LIMIT (1024 * MIB)

static uint64_t seed = 0x5eed0301;

static struct emm *open_thp(int thp)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .thp = thp);
	struct emm *mm;

	if (emm_open(&o, &mm))
		bail("emm_open (thp %d) failed", thp);
	return mm;
}

/* A reservation of len with a VMA of map_len at offset off in it. */
static char *map_at(struct emm *mm, size_t len, size_t off, size_t map_len, unsigned flags)
{
	EMM_OPTS(emm_map_opts, mo, .prot = EMM_PROT_READ | EMM_PROT_WRITE, .flags = flags);
	void *r;

	if (emm_reserve(mm, len, &r) || emm_map(mm, (char *)r + off, map_len, &mo))
		bail("cannot reserve and map %zu bytes", map_len);
	return (char *)r + off;
}

/* One byte written at a random place of each 2 MiB step of [p, p + len). */
static void touch_extents(char *p, size_t len)
{
	for (size_t off = 0; off < len; off += EXT) {
		size_t n = len - off < EXT ? len - off : EXT;

		p[off + tap_rand(&seed) % n] = 1;
	}
}

static uint64_t pattern(uint64_t word)
{
	uint64_t s = word ^ 0x0301030103010301ULL;

	return tap_rand(&s) | 1;
}

static size_t fill_and_verify(uint64_t *p, size_t len)
{
	size_t bad = 0;

	for (size_t w = 0; w < len / 8; w++)
		p[w] = pattern(w);
	for (size_t w = 0; w < len / 8; w++)
		if (p[w] != pattern(w) && bad++ < 5)
			diag("word %zu: got 0x%" PRIx64, w, p[w]);
	return bad;
}

/* 64 MiB with EMM_MAP_HUGEPAGE, one touch per extent: 32 huge extents. */
static void test_big(struct emm *mm)
{
	char *p = map_at(mm, BIG, 0, BIG, EMM_MAP_HUGEPAGE);
	struct emm_stats s0 = stats(mm), s1, s2;

	touch_extents(p, BIG);
	s1 = stats(mm);
	ok(thp_pmd_mapped(p, BIG) >= (int64_t)BIG, "64 MiB: all 32 extents PMD-mapped");
	ok(s1.faults - s0.faults <= 32, "64 MiB: %" PRIu64 " faults (at most 32)",
	   s1.faults - s0.faults);
	is_int(s1.thp_collapse - s0.thp_collapse, 32, "64 MiB: thp_collapse 32");
	is_int(s1.thp_collapse_failed - s0.thp_collapse_failed, 0, "64 MiB: no failed collapse");
	is_int(s1.huge_bytes, BIG, "64 MiB: huge_bytes 64 MiB");
	is_int(fill_and_verify((uint64_t *)p, BIG), 0, "64 MiB: every word written reads back");
	s2 = stats(mm);
	is_int(s2.faults - s1.faults, 0, "64 MiB: writing it all took no fault");
	ok(thp_pmd_mapped(p, BIG) >= (int64_t)BIG, "64 MiB: still PMD-mapped after writing");
}

/* A VMA from 1 MiB to 7 MiB of an 8 MiB reservation: only the two whole extents go huge. */
static void test_unaligned(struct emm *mm)
{
	char *p = map_at(mm, 8 * MIB, MIB, 6 * MIB, EMM_MAP_HUGEPAGE), *r = p - MIB;
	struct emm_stats s0 = stats(mm), s1;
	size_t bad = 0;

	touch_extents(r + MIB, MIB);
	touch_extents(r + 2 * MIB, 4 * MIB);
	touch_extents(r + 6 * MIB, MIB);
	s1 = stats(mm);
	is_int(s1.thp_collapse - s0.thp_collapse, 2, "unaligned VMA: 2 extents collapsed");
	is_int(thp_pmd_mapped(r, 8 * MIB), 4 * MIB, "unaligned VMA: 4 MiB PMD-mapped");
	is_int(thp_pmd_mapped(r + 2 * MIB, 4 * MIB), 4 * MIB,
	       "unaligned VMA: the PMD-mapped part is the whole extents");
	for (size_t off = 0; off < 6 * MIB; off += PAGE)
		p[off] = 2;
	for (size_t off = 0; off < 6 * MIB; off += PAGE)
		bad += p[off] != 2;
	is_int(bad, 0, "unaligned VMA: every page writable and right");
	is_int(thp_pmd_mapped(r, 8 * MIB), 4 * MIB, "unaligned VMA: the ends stay small");
}

/* A madvise VMA advised EMM_ADV_NOHUGEPAGE before any touch stays small. */
static void test_advise_no(struct emm *mm)
{
	char *p = map_at(mm, 8 * MIB, 0, 8 * MIB, EMM_MAP_HUGEPAGE);
	struct emm_stats s0, s1;

	is_int(emm_advise(mm, p, 8 * MIB, EMM_ADV_NOHUGEPAGE), 0, "advise NOHUGEPAGE");
	s0 = stats(mm);
	touch_extents(p, 8 * MIB);
	s1 = stats(mm);
	is_int(thp_pmd_mapped(p, 8 * MIB), 0, "NOHUGEPAGE advice: nothing PMD-mapped");
	is_int(s1.thp_collapse - s0.thp_collapse, 0, "NOHUGEPAGE advice: no collapse");
}

/* thp never: a HUGEPAGE VMA touched everywhere stays small. */
static void test_never(void)
{
	struct emm *mm = open_thp(EMM_THP_NEVER);
	char *p = map_at(mm, 16 * MIB, 0, 16 * MIB, EMM_MAP_HUGEPAGE);
	struct emm_stats s;

	touch_extents(p, 16 * MIB);
	for (size_t off = 0; off < 16 * MIB; off += PAGE)
		p[off] = 3;
	usleep(200 * 1000);	/* time a scanner would have had, were there one */
	s = stats(mm);
	is_int(thp_pmd_mapped(p, 16 * MIB), 0, "thp never: nothing PMD-mapped");
	is_int(s.thp_collapse, 0, "thp never: thp_collapse 0");
	is_int(s.huge_bytes, 0, "thp never: huge_bytes 0");
	emm_close(mm);
}

/* thp always: a plain VMA goes huge, an EMM_MAP_NOHUGEPAGE one does not. */
static void test_always(void)
{
	struct emm *mm = open_thp(EMM_THP_ALWAYS);
	char *plain = map_at(mm, 8 * MIB, 0, 8 * MIB, 0);
	char *no = map_at(mm, 8 * MIB, 0, 8 * MIB, EMM_MAP_NOHUGEPAGE);
	struct emm_stats s;

	touch_extents(plain, 8 * MIB);
	touch_extents(no, 8 * MIB);
	s = stats(mm);
	is_int(thp_pmd_mapped(plain, 8 * MIB), 8 * MIB, "thp always: plain VMA PMD-mapped");
	is_int(thp_pmd_mapped(no, 8 * MIB), 0, "thp always: NOHUGEPAGE VMA not PMD-mapped");
	is_int(s.thp_collapse, 4, "thp always: 4 collapses, all in the plain VMA");
	if (s.thp_collapse_failed)
		diag("thp always: %" PRIu64 " collapses failed", s.thp_collapse_failed);
	emm_close(mm);
}

int main(void)
{
	const char *why;
	struct emm *mm;

	if (!thp_can_collapse(&why))
		skip_all(why);
	plan(22);
	diag("seed 0x%" PRIx64, seed);
	mm = open_thp(EMM_THP_MADVISE);
	test_big(mm);
	test_unaligned(mm);
	test_advise_no(mm);
	emm_close(mm);
	test_never();
	test_always();
	return done_testing();
}
