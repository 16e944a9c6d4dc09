/* SPDX-License-Identifier: MIT */
/* Clean pages are not written again: read-only cycling through swap writes nothing; writes do. */
#include <stdint.h>
#include <stdlib.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LIMIT (16 * MIB)
#define LEN (128 * MIB)
#define PAGES (LEN / PAGE)
#define WORDS_PER_PAGE (PAGE / 8)

static uint64_t *mem;

static uint64_t pattern(uint64_t word, uint64_t gen)
{
	uint64_t s = word ^ gen << 40;

	return tap_rand(&s);
}

static void write_all(void)
{
	for (uint64_t w = 0; w < LEN / 8; w++)
		mem[w] = pattern(w, 1);
}

/* A read pass, sequential: the number of words that differ from what gen
 * wrote (the one word per page a later pass rewrote is in gen 2). */
static size_t read_pass(int rewritten)
{
	size_t bad = 0;

	for (uint64_t w = 0; w < LEN / 8; w++) {
		uint64_t want = pattern(w, rewritten && w % WORDS_PER_PAGE == 7 ? 2 : 1);

		if (mem[w] != want && bad++ < 5)
			diag("offset 0x%" PRIx64 ": got 0x%016" PRIx64, w * 8, mem[w]);
	}
	return bad;
}

/* Read a word of every page, then write another: pages come in clean
 * (read-only), so a first write is a write-protect fault, until emm sees
 * the pass write what it reads and maps them writable as they come. */
static void rewrite_pass(void)
{
	volatile uint64_t sink = 0;

	for (size_t pg = 0; pg < PAGES; pg++) {
		uint64_t *p = mem + pg * WORDS_PER_PAGE;

		sink += p[0];
		p[7] = pattern(pg * WORDS_PER_PAGE + 7, 2);
	}
	(void)sink;
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 512 * MIB);
	struct emm_stats s0, s1, s2, s3;
	struct emm *mm;
	void *r;

	skip_all_tsan("it writes 128 MiB, whose shadow would take four times as much");
	/* The write faults are what this test counts: t/215 tests the writes
	 * a userfaultfd backend lets through without one. */
	setenv("EMM_UFFD_WP_ASYNC", "0", 1);
	plan(14);
	if (!is_int(emm_open(&o, &mm), 0, "emm_open: 16 MiB budget"))
		bail("cannot open an instance");
	is_int(emm_reserve(mm, LEN, &r), 0, "reserve 128 MiB");
	is_int(emm_map(mm, r, LEN, NULL), 0, "map it");
	mem = r;
	write_all();
	s0 = stats(mm);
	is_int(read_pass(0), 0, "first read pass: all 128 MiB right");
	s1 = stats(mm);
	is_int(read_pass(0), 0, "second read pass: all 128 MiB right");
	s2 = stats(mm);
	diag("swapouts: %" PRIu64 " after writing, %" PRIu64 " after the first read pass, %" PRIu64
	     " after the second; swapins %" PRIu64 " in the second", s0.swapouts, s1.swapouts,
	     s2.swapouts, s2.swapins - s1.swapins);
	ok(s0.swapouts >= (LEN - LIMIT) / PAGE, "writing 128 MiB wrote at least 112 MiB out");
	ok(s2.swapins - s1.swapins >= (LEN - LIMIT) / PAGE,
	   "the second pass read at least 112 MiB back from swap");
	is_int(s2.swapouts, s1.swapouts, "and wrote nothing: clean pages kept their slots");
	ok(s2.pgsteal - s1.pgsteal >= (LEN - LIMIT) / PAGE, "though it evicted as many pages");
	rewrite_pass();
	s3 = stats(mm);
	diag("rewrite: faults_wp +%" PRIu64 ", faults_minor +%" PRIu64 ", faults_major +%" PRIu64
	     ", swapouts +%" PRIu64, s3.faults_wp - s2.faults_wp, s3.faults_minor - s2.faults_minor,
	     s3.faults_major - s2.faults_major, s3.swapouts - s2.swapouts);
	ok(s3.swapouts - s2.swapouts >= (LEN - LIMIT) / PAGE,
	   "writing a word per page made them dirty: at least 112 MiB written out again");
	ok(s3.faults_wp - s2.faults_wp >= PAGES / 32 && s3.faults_wp - s2.faults_wp <= PAGES / 2,
	   "faults_wp counts the first writes to pages that came in clean: some, not most "
	   "(once the pass is seen writing what it reads, pages come back writable)");
	is_int(read_pass(1), 0, "and the data reads back with the rewritten words");
	is_int(stats(mm).io_errors, 0, "no I/O errors");
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
