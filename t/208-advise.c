/* SPDX-License-Identifier: MIT */
/* emm_advise: DONTNEED drops, PAGEOUT writes out, COLD goes first, WILLNEED reads back, RANDOM maps no neighbour, errors. */
#include <stdint.h>
#include <stdlib.h>

#include "emm.h"
#include "internal.h"
#include "physmem.h"
#include "pte.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define RANGE (2 * MIB)		/* each range the tests advise */
#define RPAGES (RANGE / PAGE)
#define WORDS_PER_PAGE (PAGE / 8)

static size_t nonzero_words(const uint64_t *p, size_t len)
{
	size_t n = 0;

	for (size_t w = 0; w < len / 8; w++)
		n += p[w] != 0;
	return n;
}

/* Pages of [p, p + len) whose PTE says swapped. */
static size_t swapped_pages(const void *p, size_t len)
{
	int idx = 0;
	struct rsv *r = rsv_enter((uintptr_t)p, &idx);
	size_t n = 0;

	for (uintptr_t a = (uintptr_t)p; r && a < (uintptr_t)p + len; a += PAGE)
		n += pte_state(atomic_load(pte_of(r, a))) == PTE_SWAPPED;
	if (r)
		rsv_leave(r, idx);
	return n;
}

/* An instance with room to spare: nothing is reclaimed unless asked. */
static struct emm *open_big(void **r, size_t len)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 256 * MIB, .swap_size = 256 * MIB);
	struct emm *mm;

	if (emm_open(&o, &mm) || emm_reserve(mm, len, r) || emm_map(mm, *r, len, NULL))
		bail("cannot open and map an instance");
	return mm;
}

static void test_dontneed(struct emm *mm, uint64_t *p)
{
	uint64_t res;

	fill_words(p, RANGE, word_value);
	res = stats(mm).resident_bytes;
	is_int(emm_advise(mm, p, RANGE, EMM_ADV_DONTNEED), 0, "EMM_ADV_DONTNEED");
	is_int(res - stats(mm).resident_bytes, RANGE, "resident dropped by the range");
	is_int(nonzero_words(p, RANGE), 0, "the range reads zero after");
}

static void test_pageout(struct emm *mm, uint64_t *p)
{
	struct emm_stats s0, s1, s2;

	fill_words(p, RANGE, word_value);
	s0 = stats(mm);
	is_int(emm_advise(mm, p, RANGE, EMM_ADV_PAGEOUT), 0, "EMM_ADV_PAGEOUT on 2 MiB written");
	s1 = stats(mm);
	is_int(s0.resident_bytes - s1.resident_bytes, RANGE, "resident dropped by 2 MiB");
	is_int(s1.swapouts - s0.swapouts, RPAGES, "swapouts grew by its 512 pages");
	is_int(swapped_pages(p, RANGE), RPAGES, "every PTE of the range says swapped");
	is_int(count_bad_words(p, RANGE, word_value), 0, "the data reads back right");
	s2 = stats(mm);
	ok(s2.faults_major > s1.faults_major, "through major faults (%" PRIu64 ")",
	   s2.faults_major - s1.faults_major);
}

/* Two ranges written together; only one advised cold; then reclaim one range's worth. */
static void test_cold(struct emm *mm, uint64_t *cold, uint64_t *warm)
{
	struct emm_stats s0, s1, s2;
	long got;

	fill_words(cold, RANGE, word_value);
	fill_words(warm, RANGE, word_value);
	is_int(emm_advise(mm, cold, RANGE, EMM_ADV_COLD), 0,
	       "EMM_ADV_COLD on one of two 2 MiB ranges");
	got = emm_reclaim(mm, RANGE);
	diag("emm_reclaim(2 MiB) = %ld KiB; swapped: %zu pages advised cold, %zu not", got >> 10,
	     swapped_pages(cold, RANGE), swapped_pages(warm, RANGE));
	is_int(swapped_pages(cold, RANGE), RPAGES, "reclaim took every page of the cold range");
	is_int(swapped_pages(warm, RANGE), 0, "and none of the equally old other one");
	s0 = stats(mm);
	is_int(count_bad_words(warm, RANGE, word_value), 0, "the other range reads right");
	s1 = stats(mm);
	is_int(s1.faults_major, s0.faults_major, "without a major fault");
	is_int(count_bad_words(cold, RANGE, word_value), 0, "the cold range reads right");
	s2 = stats(mm);
	ok(s2.faults_major > s1.faults_major, "through major faults (%" PRIu64 ")",
	   s2.faults_major - s1.faults_major);
}

static void test_willneed(struct emm *mm, uint64_t *p)
{
	struct emm_stats s0, s1, s2;

	fill_words(p, RANGE, word_value);
	if (emm_advise(mm, p, RANGE, EMM_ADV_PAGEOUT) || swapped_pages(p, RANGE) != RPAGES)
		diag("EMM_ADV_PAGEOUT did not swap the range out");
	s0 = stats(mm);
	is_int(emm_advise(mm, p, RANGE, EMM_ADV_WILLNEED), 0, "EMM_ADV_WILLNEED after PAGEOUT");
	s1 = stats(mm);
	is_int(s1.resident_bytes - s0.resident_bytes, RANGE, "the range is resident again");
	is_int(s1.swapins - s0.swapins, RPAGES, "read back with 512 swapins");
	is_int(count_bad_words(p, RANGE, word_value), 0, "the data reads right");
	s2 = stats(mm);
	diag("reading it: majors +%" PRIu64 ", minors +%" PRIu64, s2.faults_major - s1.faults_major,
	     s2.faults_minor - s1.faults_minor);
	is_int(s2.faults_major, s1.faults_major, "with no major fault");
	ok(s2.faults_minor > s1.faults_minor, "minor faults only");
}

/* Major faults taken reading the range back in order after PAGEOUT. */
static uint64_t majors_to_read(struct emm *mm, uint64_t *p)
{
	uint64_t m0;

	emm_advise(mm, p, RANGE, EMM_ADV_PAGEOUT);
	m0 = stats(mm).faults_major;
	if (count_bad_words(p, RANGE, word_value))
		diag("the range did not read back right");
	return stats(mm).faults_major - m0;
}

static void test_hints(struct emm *mm, uint64_t *p)
{
	uint64_t rnd, seq;

	fill_words(p, RANGE, word_value);
	is_int(emm_advise(mm, p, RANGE, EMM_ADV_RANDOM), 0, "EMM_ADV_RANDOM accepted");
	rnd = majors_to_read(mm, p);
	is_int(emm_advise(mm, p, RANGE, EMM_ADV_SEQUENTIAL), 0, "EMM_ADV_SEQUENTIAL accepted");
	seq = majors_to_read(mm, p);
	diag("major faults reading 512 paged-out pages in order: %" PRIu64 " under RANDOM, %"
	     PRIu64 " under SEQUENTIAL", rnd, seq);
	is_int(rnd, RPAGES, "under RANDOM each page is its own major fault (no readahead)");
	ok(seq <= RPAGES / 32 + 1, "under SEQUENTIAL a major fault reads 32 pages");
	is_int(emm_advise(mm, p, RANGE, EMM_ADV_NORMAL), 0, "EMM_ADV_NORMAL accepted");
	is_int(count_bad_words(p, RANGE, word_value), 0, "and the hints leave the data alone");
}

/* Pages made resident, and zero faults taken, by a first touch of every
 * STRIDE-th page of [p, p + RANGE): no touch continues the last window, so
 * none of them looks like a stream. */
#define STRIDE 32
static void touch_strided(struct emm *mm, char *p, uint64_t *pages, uint64_t *faults)
{
	struct emm_stats s0 = stats(mm), s1;

	for (size_t a = 0; a < RANGE; a += STRIDE * PAGE)
		p[a] = 1;
	s1 = stats(mm);
	*pages = (s1.resident_bytes - s0.resident_bytes) / PAGE;
	*faults = s1.faults_zero - s0.faults_zero;
}

/* Anonymous memory under EMM_ADV_RANDOM: a first touch maps no neighbour,
 * which would be charged to the budget and, touched at random, mostly
 * never used. fault_around is set: the caller's EMM_FAULT_AROUND does not
 * count here. */
static void test_random_anon(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 256 * MIB, .swap_size = 256 * MIB, .fault_around = 16);
	uint64_t pages, faults;
	struct emm *mm;
	char *r;

	if (emm_open(&o, &mm) || emm_reserve(mm, 2 * RANGE, (void **)&r) ||
	    emm_map(mm, r, 2 * RANGE, NULL))
		bail("cannot open and map an instance");
	touch_strided(mm, r, &pages, &faults);
	is_int(pages, RPAGES / STRIDE * 16, "anonymous, NORMAL: each first touch maps 16 pages");
	is_int(faults, RPAGES / STRIDE, "one zero fault each");
	is_int(emm_advise(mm, r + RANGE, RANGE, EMM_ADV_RANDOM), 0, "EMM_ADV_RANDOM on another range");
	touch_strided(mm, r + RANGE, &pages, &faults);
	is_int(pages, RPAGES / STRIDE, "anonymous, RANDOM: each first touch maps its page alone");
	is_int(faults, RPAGES / STRIDE, "one zero fault each");
	is_int(emm_close(mm), 0, "emm_close");
}

static void test_errors(struct emm *mm, uint64_t *p, void *hole)
{
	is_int(emm_advise(mm, p, RANGE, 99), -EINVAL, "unknown advice 99: -EINVAL");
	is_int(emm_advise(mm, p, RANGE, -1), -EINVAL, "advice -1: -EINVAL");
	is_int(emm_advise(mm, hole, RANGE, EMM_ADV_DONTNEED), -ENOMEM, "a hole: -ENOMEM");
	is_int(emm_advise(mm, (char *)hole - PAGE, 2 * PAGE, EMM_ADV_PAGEOUT), -ENOMEM,
	       "a range running into a hole: -ENOMEM");
	is_int(emm_advise(NULL, p, RANGE, EMM_ADV_COLD), -EINVAL, "mm NULL: -EINVAL");
	is_int(emm_advise(mm, (char *)p + 1, PAGE, EMM_ADV_COLD), -EINVAL, "unaligned: -EINVAL");
	is_int(emm_advise(mm, p, 0, EMM_ADV_COLD), -EINVAL, "length 0: -EINVAL");
}

int main(void)
{
	struct emm *mm;
	char *r;

	plan(39 + 6);
	/* The tests count resident bytes to the page; the readahead threads
	 * zero the windows ahead of a first touch of 2 MiB or more in order,
	 * as the fills here are, and would race with them. */
	setenv("EMM_READAHEAD_ASYNC", "0", 1);
	/* five ranges, then a hole */
	mm = open_big((void **)&r, 5 * RANGE);
	test_dontneed(mm, (uint64_t *)r);
	test_pageout(mm, (uint64_t *)(r + RANGE));
	is_int(emm_close(mm), 0, "emm_close");
	mm = open_big((void **)&r, 2 * RANGE);
	test_cold(mm, (uint64_t *)r, (uint64_t *)(r + RANGE));
	is_int(emm_close(mm), 0, "emm_close");
	mm = open_big((void **)&r, 5 * RANGE);
	test_willneed(mm, (uint64_t *)r);
	is_int(emm_unmap(mm, r + 3 * RANGE, 2 * RANGE), 0, "unmap the last two ranges: a hole");
	test_hints(mm, (uint64_t *)(r + RANGE));
	test_errors(mm, (uint64_t *)(r + RANGE), r + 3 * RANGE);
	is_int(emm_close(mm), 0, "emm_close");
	test_random_anon();
	return done_testing();
}
