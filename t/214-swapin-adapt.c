/* SPDX-License-Identifier: MIT */
/* Swap-in adapts to the program: clusters read around faults with locality, none at random; pages written after reading come back writable; a stream's windows mapped at once only once its touches show that reading ahead pays. */
#include <stdint.h>
#include <stdlib.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LEN (32 * MIB)
#define CLUSTER 8			/* pages: the read-around of lib/fault.c */
#define NCLUSTERS (LEN / PAGE / CLUSTER)

/* Within a cluster, an order of pages where no touch continues the last
 * one as a stream would (the next page up, or a few below). */
static const unsigned in_cluster[CLUSTER] = { 7, 0, 3, 1, 5, 2, 6, 4 };

static struct emm *mm;

/* Every page of the clusters in a random order, each cluster's pages in
 * in_cluster order; a word of each checked. Returns the words wrong. */
static size_t read_local(const uint64_t *mem, uint64_t *seed)
{
	uint32_t *order = random_order(NCLUSTERS, seed);
	size_t bad = 0;

	for (uint32_t i = 0; i < NCLUSTERS; i++)
		for (unsigned k = 0; k < CLUSTER; k++) {
			const uint64_t *w = mem + ((size_t)order[i] * CLUSTER + in_cluster[k]) *
						  (PAGE / 8) + k;

			bad += *w != word_value(w);
		}
	free(order);
	return bad;
}

/* One page of each cluster, the clusters in a random order: nothing near. */
static size_t read_random(const uint64_t *mem, uint64_t *seed)
{
	uint32_t *order = random_order(NCLUSTERS, seed);
	size_t bad = 0;

	for (uint32_t i = 0; i < NCLUSTERS; i++) {
		const uint64_t *w = mem + ((size_t)order[i] * CLUSTER + i % CLUSTER) * (PAGE / 8);

		bad += *w != word_value(w);
	}
	free(order);
	return bad;
}

/* Read a word of every page, then write one: a heap whose collector marks
 * what it reads. The clusters in a random order, as read_local. */
static size_t read_then_write(uint64_t *mem, uint64_t *seed)
{
	uint32_t *order = random_order(NCLUSTERS, seed);
	size_t bad = 0;

	for (uint32_t i = 0; i < NCLUSTERS; i++)
		for (unsigned k = 0; k < CLUSTER; k++) {
			uint64_t *p = mem + ((size_t)order[i] * CLUSTER + in_cluster[k]) * (PAGE / 8);

			bad += p[0] != word_value(p);
			p[1] = word_value(p + 1);	/* the same value: the page is written */
		}
	free(order);
	return bad;
}

/* Every step-th page in order, a word of each checked. */
static size_t read_stream(const uint64_t *mem, unsigned step)
{
	size_t bad = 0;

	for (size_t p = 0; p < LEN / PAGE; p += step) {
		const uint64_t *w = mem + p * (PAGE / 8) + p % (PAGE / 8);

		bad += *w != word_value(w);
	}
	return bad;
}

/* A region read in order, every step-th page: the faults it took. */
static uint64_t stream_faults(unsigned step, const char *what)
{
	uint64_t *mem = paged_out_region(mm, LEN);
	struct emm_stats s0 = stats(mm), s1;

	is_int(read_stream(mem, step), 0, "%s: every page right", what);
	s1 = stats(mm);
	diag("%s: faults_major %" PRIu64 ", faults_minor %" PRIu64 ", swapins %" PRIu64, what,
	     s1.faults_major - s0.faults_major, s1.faults_minor - s0.faults_minor,
	     s1.swapins - s0.swapins);
	return s1.faults_minor - s0.faults_minor + s1.faults_major - s0.faults_major;
}

/* Streams, each in a region of its own, read by the faults alone (no
 * readahead threads, whose markers are minor faults too): a dense one
 * proves its first windows page by page, then has them mapped at once;
 * in a sparse one, the pages read ahead and not touched never show as
 * used, and its windows stay unmapped, a fault for every page touched. */
static void test_streams(void)
{
	uint64_t pages = LEN / PAGE, dense = stream_faults(1, "a dense stream");
	uint64_t sparse = stream_faults(2, "a stream of every other page");

	ok(dense >= 32 && dense <= pages / 16,
	   "dense: its first window's pages fault, then windows are mapped whole "
	   "(%" PRIu64 " faults for %" PRIu64 " pages)", dense, pages);
	if (signal_vmas_short(mm, (long)pages * 2))
		skip(1, "vm.max_map_count leaves the signal backend too few kernel VMAs for a page "
		     "in two mapped: it maps whole clusters");
	else
		ok(sparse >= pages / 2 * 9 / 10,
		   "sparse: a fault for (nearly) every page touched (%" PRIu64 " for %" PRIu64 ")",
		   sparse, pages / 2);
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 256 * MIB, .swap_size = 512 * MIB);
	uint64_t seed = 214, pages = LEN / PAGE;
	struct emm_stats s0, s1;
	uint64_t *mem;

	/* Its last part counts write faults: t/215 tests the writes a
	 * userfaultfd backend lets through without one. */
	setenv("EMM_UFFD_WP_ASYNC", "0", 1);
	setenv("EMM_READAHEAD_ASYNC", "0", 1);
	plan(17);
	if (!is_int(emm_open(&o, &mm), 0, "emm_open: 256 MiB budget, no pressure"))
		bail("cannot open an instance");

	mem = paged_out_region(mm, LEN);
	s0 = stats(mm);
	is_int(read_local(mem, &seed), 0, "local reads: every page right");
	s1 = stats(mm);
	diag("local: %lu clusters, faults_major %" PRIu64 ", faults_minor %" PRIu64
	     ", swapins %" PRIu64, NCLUSTERS, s1.faults_major - s0.faults_major,
	     s1.faults_minor - s0.faults_minor, s1.swapins - s0.swapins);
	ok(s1.faults_major - s0.faults_major <= NCLUSTERS * 3 / 2,
	   "clusters read around the faults: at most 1.5 major faults per 8 pages");
	is_int(s1.swapins - s0.swapins, pages, "and no page read twice");

	mem = paged_out_region(mm, LEN);
	s0 = stats(mm);
	is_int(read_random(mem, &seed), 0, "random reads, one page per cluster: right");
	s1 = stats(mm);
	diag("random: %lu reads, faults_major %" PRIu64 ", swapins %" PRIu64, NCLUSTERS,
	     s1.faults_major - s0.faults_major, s1.swapins - s0.swapins);
	is_int(s1.faults_major - s0.faults_major, NCLUSTERS, "a major fault per read");
	ok(s1.swapins - s0.swapins <= NCLUSTERS + NCLUSTERS / 16,
	   "and (nearly) nothing read around them: at most 1/16 more pages than asked");

	mem = paged_out_region(mm, LEN);
	s0 = stats(mm);
	is_int(read_then_write(mem, &seed), 0, "read, then write every page: right");
	s1 = stats(mm);
	diag("read then write: faults_wp %" PRIu64 " of %" PRIu64 " pages", s1.faults_wp - s0.faults_wp,
	     pages);
	ok(s1.faults_wp - s0.faults_wp <= pages / 3,
	   "pages come back writable once the program is seen to write what it reads: "
	   "at most a third of the first writes fault");
	ok(s1.faults_wp - s0.faults_wp > 0, "but some do: read-only samples keep the count");
	is_int(count_bad_words(mem, LEN, word_value), 0, "all 32 MiB right afterwards");
	test_streams();
	is_int(stats(mm).io_errors, 0, "no I/O errors");
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
