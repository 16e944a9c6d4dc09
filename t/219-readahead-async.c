/* SPDX-License-Identifier: MIT */
/* Asynchronous readahead: threads read a stream's next windows ahead of it (swap and files; of swap, sized by the budget) and zero those of a first touch, the data right, writes after it seen, and unmapping or closing with windows in flight. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LEN (32 * MIB)
#define WINDOW 64			/* pages: a stream's window (lib/swap_state.c) */

/* A word of every page, in order; the words wrong. */
static size_t read_stream(const volatile uint64_t *mem, size_t len)
{
	size_t bad = 0;

	for (size_t p = 0; p < len / PAGE; p++) {
		const volatile uint64_t *w = mem + p * (PAGE / 8) + p % (PAGE / 8);

		bad += *w != word_value((const uint64_t *)w);
	}
	return bad;
}

/* What the test writes the second time. */
static uint64_t new_value(const uint64_t *p)
{
	return word_value(p) ^ 0x5a5a5a5a00000000ULL;
}

/* An instance with the threads on or off (EMM_READAHEAD_ASYNC): the major
 * faults of one stream over a paged-out region. */
static uint64_t stream_majors(bool async, size_t *bad)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 256 * MIB, .swap_size = 512 * MIB);
	struct emm_stats s0, s1;
	struct emm *mm;
	uint64_t *mem;

	setenv("EMM_READAHEAD_ASYNC", async ? "1" : "0", 1);
	if (emm_open(&o, &mm))
		bail("cannot open an instance");
	mem = paged_out_region(mm, LEN);
	s0 = stats(mm);
	*bad = read_stream(mem, LEN);
	s1 = stats(mm);
	diag("threads %s: faults_major %" PRIu64 ", faults_minor %" PRIu64 ", swapins %" PRIu64,
	     async ? "on" : "off", s1.faults_major - s0.faults_major,
	     s1.faults_minor - s0.faults_minor, s1.swapins - s0.swapins);
	if (s1.swapins - s0.swapins != LEN / PAGE)
		diag("swapins: %" PRIu64 ", not %lu", s1.swapins - s0.swapins, LEN / PAGE);
	emm_close(mm);
	return s1.faults_major - s0.faults_major;
}

/* A stream over a paged-out region read slowly, 1 ms a 256 KiB, so the
 * threads are done with each window before it is reached: the minor
 * faults, a marker per window read ahead, under a budget of limit. */
static uint64_t stream_markers(uint64_t limit, size_t *bad)
{
	EMM_OPTS(emm_opts, o, .mem_limit = limit, .swap_size = 512 * MIB);
	struct emm_stats s0, s1;
	struct emm *mm;
	uint64_t *mem;

	setenv("EMM_READAHEAD_ASYNC", "1", 1);
	if (emm_open(&o, &mm))
		bail("cannot open an instance");
	mem = paged_out_region(mm, LEN);
	/* Advised: every window is mapped at once, and each minor fault is a
	 * marker. Without it a stream's first windows stay unmapped until
	 * their touches show that reading ahead pays. */
	if (emm_advise(mm, mem, LEN, EMM_ADV_SEQUENTIAL))
		bail("cannot advise the region");
	s0 = stats(mm);
	*bad = 0;
	for (size_t off = 0; off < LEN; off += 256 * 1024) {
		*bad += read_stream(mem + off / 8, 256 * 1024);
		usleep(1000);
	}
	s1 = stats(mm);
	diag("budget %" PRIu64 " MiB: faults_minor %" PRIu64 ", faults_major %" PRIu64, limit / MIB,
	     s1.faults_minor - s0.faults_minor, s1.faults_major - s0.faults_major);
	emm_close(mm);
	return s1.faults_minor - s0.faults_minor;
}

static void test_window_size(void)
{
	size_t bad_big, bad_small;
	uint64_t big = stream_markers(1024 * MIB, &bad_big);
	uint64_t small = stream_markers(64 * MIB, &bad_small);

	is_int(bad_big + bad_small, 0, "slow streams under 1 GiB and 64 MiB: every page right");
	ok(big * 3 <= small,
	   "windows ahead are larger under the larger budget: %" PRIu64 " markers against %" PRIu64,
	   big, small);
}

#define FILE_LEN (24 * MIB + 3 * PAGE)	/* not a whole number of windows */

/* A FILE stream with the threads on or off: the data right, and the minor
 * faults (the threads' markers). */
static uint64_t file_stream(bool async, size_t *bad)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 8 * MIB, .swap_size = 64 * MIB);
	EMM_OPTS(emm_map_opts, m, .prot = EMM_PROT_READ, .policy = EMM_POLICY_FILE);
	uint64_t *buf = malloc(FILE_LEN), minor;
	struct emm *mm;
	void *mem;

	if (!buf)
		bail("out of memory");
	m.fd = tmp_file("readahead-async", NULL, 0);
	fill_words(buf, FILE_LEN, word_value);
	if (pwrite(m.fd, buf, FILE_LEN, 0) != (ssize_t)FILE_LEN)
		bail("pwrite: %s", strerror(errno));
	setenv("EMM_READAHEAD_ASYNC", async ? "1" : "0", 1);
	if (emm_open(&o, &mm) || emm_reserve(mm, 32 * MIB, &mem) ||
	    emm_map(mm, mem, FILE_LEN, &m))
		bail("cannot map the file");
	minor = stats(mm).faults_minor;
	*bad = 0;
	for (size_t i = 0; i < FILE_LEN / 8; i++)	/* the words the file holds */
		*bad += ((uint64_t *)mem)[i] != word_value(buf + i);
	minor = stats(mm).faults_minor - minor;
	diag("file, threads %s: faults_minor %" PRIu64, async ? "on" : "off", minor);
	emm_close(mm);
	close(m.fd);
	free(buf);
	return minor;
}

/* Words of a page that must read zero after a first touch wrote one. */
static size_t zero_words_wrong(const uint64_t *page)
{
	size_t bad = 0;

	for (size_t i = 1; i < PAGE / 8; i += 61)
		bad += page[i] != 0;
	return bad;
}

/* The first touch of len bytes in order, a word per page, under limit:
 * the faults that zeroed pages themselves; *bad, the words wrong after;
 * *over, how far resident went past what was touched. */
static uint64_t zero_stream(bool async, uint64_t limit, size_t len, size_t *bad, uint64_t *over)
{
	EMM_OPTS(emm_opts, o, .mem_limit = limit, .swap_size = 512 * MIB);
	struct emm_stats s0, s1;
	struct emm *mm;
	uint64_t *mem;
	void *p;

	setenv("EMM_READAHEAD_ASYNC", async ? "1" : "0", 1);
	if (emm_open(&o, &mm) || emm_reserve(mm, LEN + 4 * MIB, &p) ||
	    emm_map(mm, p, LEN + 4 * MIB, NULL))
		bail("cannot open and map an instance");
	mem = p;
	s0 = stats(mm);
	for (size_t pg = 0; pg < len / PAGE; pg++)
		mem[pg * (PAGE / 8)] = word_value(mem + pg * (PAGE / 8));
	usleep(100 * 1000);	/* what the threads still zero lands */
	s1 = stats(mm);
	*bad = 0;
	for (size_t pg = 0; pg < len / PAGE; pg++)
		*bad += (mem[pg * (PAGE / 8)] != word_value(mem + pg * (PAGE / 8))) +
			zero_words_wrong(mem + pg * (PAGE / 8));
	*over = s1.resident_bytes > len ? s1.resident_bytes - len : 0;
	diag("first touch of %zu MiB under %" PRIu64 " MiB, threads %s: faults_zero %" PRIu64
	     ", faults_minor %" PRIu64 ", resident %" PRIu64 " KiB", len / MIB, limit / MIB,
	     async ? "on" : "off", s1.faults_zero - s0.faults_zero,
	     s1.faults_minor - s0.faults_minor, s1.resident_bytes >> 10);
	emm_close(mm);
	return s1.faults_zero - s0.faults_zero;
}

/* A first touch in order: the threads zero the windows ahead while there
 * is room to spare, and the program's own faults do the rest. */
static void test_zero_ahead(void)
{
	uint64_t off, on, tight, over;
	size_t bad;

	off = zero_stream(false, 256 * MIB, LEN, &bad, &over);
	is_int(bad, 0, "a first touch in order without the threads: written words and zeros right");
	on = zero_stream(true, 256 * MIB, LEN, &bad, &over);
	is_int(bad, 0, "with them: written words and zeros right");
	ok(on * 2 <= off, "the threads zeroed the windows ahead: %" PRIu64 " zeroing faults "
	   "against %" PRIu64, on, off);
	(void)zero_stream(true, 256 * MIB, 8 * MIB, &bad, &over);
	ok(over <= 4 * MIB, "a stream that stops leaves little zeroed past it "
	   "(%" PRIu64 " KiB past its 8 MiB, its last fault's window included)", over >> 10);
	tight = zero_stream(true, 16 * MIB, LEN, &bad, &over);
	is_int(bad, 0, "under a budget half of it: the words right");
	ok(tight * 2 > off, "no room to spare, the faults zero their own windows: "
	   "%" PRIu64 " faults", tight);
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 256 * MIB, .swap_size = 512 * MIB);
	uint64_t off, on, pages = LEN / PAGE;
	struct emm *mm;
	uint64_t *mem;
	size_t bad;

	plan(15 + 6 + 2);
	test_zero_ahead();
	test_window_size();
	off = stream_majors(false, &bad);
	is_int(bad, 0, "a stream without the threads: every page right");
	ok(off >= pages / WINDOW / 2, "a major fault per window or two (%" PRIu64 ")", off);
	on = stream_majors(true, &bad);
	is_int(bad, 0, "with the threads: every page right");
	ok(on * 8 <= off, "the threads read the windows: %" PRIu64 " major faults against %" PRIu64,
	   on, off);

	is_int(file_stream(false, &bad), 0, "a file read in order without the threads: "
	       "no minor fault");
	is_int(bad, 0, "every word right");
	ok(file_stream(true, &bad) >= 4, "with them, a minor fault per window read ahead");
	is_int(bad, 0, "every word right, to the end of the file");

	setenv("EMM_READAHEAD_ASYNC", "1", 1);
	if (!is_int(emm_open(&o, &mm), 0, "emm_open"))
		bail("cannot open an instance");
	mem = paged_out_region(mm, LEN);
	is_int(read_stream(mem, LEN), 0, "read as a stream");
	/* Pages the threads mapped without write: a write must be seen, or
	 * paging out would keep the old copy in swap. */
	fill_words(mem, LEN, new_value);
	(void)emm_advise(mm, mem, LEN, EMM_ADV_PAGEOUT);
	is_int(count_bad_words(mem, LEN, new_value), 0,
	       "written after, paged out again and read back: the new words");

	mem = paged_out_region(mm, LEN);
	is_int(read_stream(mem, 2 * MIB), 0, "the first 2 MiB of a stream");
	/* Windows are queued or being read now: unmapping waits for them. */
	is_int(emm_unmap(mm, mem, LEN), 0, "unmapped with windows in flight");
	is_int(emm_release(mm, mem), 0, "and released");
	mem = paged_out_region(mm, LEN);
	(void)read_stream(mem, 2 * MIB);
	is_int(emm_close(mm), 0, "emm_close with windows in flight");
	return done_testing();
}
