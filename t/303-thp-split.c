/* SPDX-License-Identifier: MIT */
/* Splitting huge extents: protecting, unmapping or pinning part of one makes 4 KiB pages, data kept. */
#include <stdint.h>

#include "emm.h"
#include "tap.h"
#include "util.h"
#include "thp.h"
#include "probe.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define EXT (2 * MIB)
#define LIMIT (1024 * MIB)
#define WORDS_PER_PAGE (PAGE / 8)

static struct emm *mm;

static void map_huge(char *p, size_t len)
{
	EMM_OPTS(emm_map_opts, mo, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .flags = EMM_MAP_HUGEPAGE, .trap = trap);

	if (emm_map(mm, p, len, &mo))
		bail("emm_map failed");
}

/* Touch each extent once (making it huge), then write every word. */
static void fill(char *p, size_t len)
{
	for (size_t off = 0; off < len; off += EXT)
		p[off + 999] = 1;
	fill_words(p, len, word_value);
}

/* One page of a huge extent made read-only. */
static void test_protect(char *x)
{
	uint64_t *ro = (uint64_t *)(x + 37 * PAGE);
	struct emm_stats s0, s1;
	size_t wrong = 0, faulted = 0;

	map_huge(x, EXT);
	fill(x, EXT);
	s0 = stats(mm);
	is_int(thp_pmd_mapped(x, EXT), EXT, "protect: the extent is PMD-mapped first");
	is_int(emm_protect(mm, ro, PAGE, EMM_PROT_READ), 0, "protect one page read-only");
	s1 = stats(mm);
	is_int(s1.thp_split - s0.thp_split, 1, "protect: thp_split +1");
	is_int(s0.huge_bytes - s1.huge_bytes, EXT, "protect: huge_bytes 2 MiB less");
	is_int(thp_pmd_mapped(x, EXT), 0, "protect: the extent is no longer PMD-mapped");
	is_int(access_once(ro + 5, 8, 0, 0), NONE, "protect: the read-only page reads");
	is_int(access_once(ro + 5, 8, 1, 7), TRAP, "protect: a write to it traps");
	ok(last_trap.addr == ro + 5 && last_trap.write == 1,
	   "protect: the trap names the address and a write");
	for (size_t pg = 0; pg < EXT / PAGE; pg++) {
		uint64_t *w = (uint64_t *)(x + pg * PAGE) + pg % WORDS_PER_PAGE;

		if ((char *)w >= (char *)ro && (char *)w < (char *)ro + PAGE)
			continue;
		faulted += access_once(w, 8, 1, ~word_value(w)) != NONE;
		wrong += *w != ~word_value(w);
		*w = word_value(w);
	}
	is_int(faulted, 0, "protect: every other page of the extent still writable");
	is_int(wrong + count_bad_words(x, EXT, word_value), 0,
	       "protect: all data of the extent intact");
	is_int(traps, 1, "protect: one trap in all");
}

/* Part of one of two huge extents unmapped. */
static void test_unmap(char *y)
{
	char *hole = y + MIB;
	struct emm_stats s0, s1;
	size_t nonzero = 0;

	map_huge(y, 2 * EXT);
	fill(y, 2 * EXT);
	s0 = stats(mm);
	is_int(thp_pmd_mapped(y, 2 * EXT), 2 * EXT, "unmap: both extents PMD-mapped first");
	is_int(emm_unmap(mm, hole, MIB / 2), 0, "unmap 512 KiB of the first extent");
	s1 = stats(mm);
	is_int(s1.thp_split - s0.thp_split, 1, "unmap: thp_split +1");
	is_int(s0.huge_bytes - s1.huge_bytes, EXT, "unmap: huge_bytes 2 MiB less");
	is_int(thp_pmd_mapped(y, EXT), 0, "unmap: the first extent is not PMD-mapped");
	is_int(thp_pmd_mapped(y + EXT, EXT), EXT, "unmap: the second extent still is");
	is_int(access_once(hole + 1232, 8, 0, 0), CHAIN,
	       "unmap: a read of the hole is passed on");
	ok(chain_addr == hole + 1232, "unmap: at the address read");
	is_int(access_once(hole + MIB / 2 - 8, 8, 1, 1), CHAIN,
	       "unmap: a write to the hole is passed on");
	is_int(emm_map(mm, hole, MIB / 2, NULL), 0, "unmap: map the hole again");
	for (size_t i = 0; i < MIB / 2; i += 8)
		nonzero += *(uint64_t *)(hole + i) != 0;
	is_int(nonzero, 0, "unmap: the hole reads zero after mapping it again");
	is_int(count_bad_words(y, MIB, word_value) +
	       count_bad_words(hole + MIB / 2, 2 * EXT - MIB - MIB / 2, word_value), 0,
	       "unmap: the rest of both extents intact");
}

/* Two pages of a huge extent pinned, then the extent paged out around them. */
static void test_pin(char *z)
{
	struct emm_stats s0, s1, s2;

	map_huge(z, EXT);
	fill(z, EXT);
	s0 = stats(mm);
	is_int(thp_pmd_mapped(z, EXT), EXT, "pin: the extent is PMD-mapped first");
	is_int(emm_pin(mm, z + 100 * PAGE, 2 * PAGE), 0, "pin two pages of it");
	s1 = stats(mm);
	is_int(s1.thp_split - s0.thp_split, 1, "pin: thp_split +1");
	is_int(s0.huge_bytes - s1.huge_bytes, EXT, "pin: huge_bytes 2 MiB less");
	/* emm's split is its own bookkeeping: the kernel keeps its PMD until
	 * a page of the extent changes protection or goes. */
	diag("pin: after the split the kernel PMD-maps %" PRId64 " bytes of the extent",
	     thp_pmd_mapped(z, EXT));
	is_int(count_bad_words(z, EXT, word_value), 0, "pin: data intact");
	is_int(emm_advise(mm, z, EXT, EMM_ADV_PAGEOUT), 0, "pin: page the extent out");
	s2 = stats(mm);
	is_int(s1.resident_bytes - s2.resident_bytes, EXT - 2 * PAGE,
	       "pin: all but the two pinned pages paged out");
	is_int(thp_pmd_mapped(z, EXT), 0, "pin: the extent is not PMD-mapped after that");
	is_int(count_bad_words(z, EXT, word_value), 0, "pin: data intact after paging out");
	is_int(emm_unpin(mm, z + 100 * PAGE, 2 * PAGE), 0, "unpin");
	is_int(count_bad_words(z, EXT, word_value), 0, "unpin: data intact");
}

/*
 * Three areas with unmapped gaps between them, so that each has kernel
 * mappings of its own and smaps speaks of it alone. The scanner sleeps
 * all along: nothing is collapsed again behind the test's back.
 */
int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .thp_scan_ms = 600000);
	const char *why;
	char *r;

	if (!thp_can_collapse(&why))
		skip_all(why);
	plan(36);
	probe_install();
	if (emm_open(&o, &mm) || emm_reserve(mm, 16 * MIB, (void **)&r))
		bail("cannot open and reserve");
	test_protect(r + EXT);
	test_unmap(r + 3 * EXT);
	test_pin(r + 6 * EXT);
	is_int(stats(mm).huge_bytes, EXT, "huge_bytes at the end: the one extent never split");
	is_int(chains, 2, "two faults passed on in all");
	emm_close(mm);
	return done_testing();
}
