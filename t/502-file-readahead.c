/* SPDX-License-Identifier: MIT */
/* File readahead under an 8 MiB budget: a sequential read of 64 MiB costs few major faults,
 * EMM_ADV_RANDOM one per page (over 32 MiB: 8192 faults, ~1 ms each at worst), WILLNEED none. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LIMIT (8 * MIB)
#define FILE_LEN (64 * MIB)
#define PAGES (FILE_LEN / PAGE)
#define WORDS_PER_PAGE (PAGE / 8)
#define RANDOM_LEN (32 * MIB)		/* four times the budget: evicting all along */
#define WILLNEED_OFF (40 * MIB)
#define WILLNEED_LEN MIB
#define CHUNK MIB

static const uint64_t seed = 0x5eed0502;

/* What the file holds at byte offset off (a multiple of 8). */
static uint64_t file_word(uint64_t off)
{
	uint64_t x = off ^ seed;

	return tap_rand(&x);
}

/* A read-write temporary file, already unlinked, filled with file_word(). */
static int pattern_file(uint64_t len)
{
	uint64_t *buf = malloc(CHUNK);
	int fd = tmp_file("readahead", NULL, 0);

	if (!buf)
		bail("out of memory");
	for (uint64_t off = 0; off < len; off += CHUNK) {
		for (size_t i = 0; i < CHUNK / 8; i++)
			buf[i] = file_word(off + i * 8);
		if (pwrite(fd, buf, CHUNK, (off_t)off) != (ssize_t)CHUNK)
			bail("pwrite: %s", strerror(errno));
	}
	free(buf);
	return fd;
}

static int map_file(struct emm *mm, void *addr, size_t len, int fd)
{
	EMM_OPTS(emm_map_opts, o, .prot = EMM_PROT_READ, .policy = EMM_POLICY_FILE, .fd = fd);

	return emm_map(mm, addr, len, &o);
}

/* One word per page of [from, to), in order; returns the pages that read wrong. */
static size_t read_pages(const uint64_t *mem, uint64_t from, uint64_t to)
{
	size_t bad = 0;

	for (uint64_t pg = from; pg < to; pg++) {
		uint64_t w = pg * WORDS_PER_PAGE + pg % WORDS_PER_PAGE;

		if (mem[w] != file_word(w * 8) && bad++ < 5)
			diag("page %" PRIu64 ": 0x%016" PRIx64 ", want 0x%016" PRIx64, pg, mem[w],
			     file_word(w * 8));
	}
	return bad;
}

/* Major faults per page of a read of [from, to) pages; checks the data. */
static double major_per_page(struct emm *mm, const uint64_t *mem, uint64_t from, uint64_t to,
			     const char *what)
{
	uint64_t before = stats(mm).faults_major, majors;
	size_t bad = read_pages(mem, from, to);
	struct emm_stats st = stats(mm);

	majors = st.faults_major - before;
	diag("%s: %" PRIu64 " major faults for %" PRIu64 " pages = %.4f per page"
	     " (pgsteal %" PRIu64 ", resident %" PRIu64 " KiB)", what, majors, to - from,
	     (double)majors / (double)(to - from), st.pgsteal, st.resident_bytes >> 10);
	is_int(bad, 0, "%s: every page read the file", what);
	return (double)majors / (double)(to - from);
}

static void test_sequential(struct emm *mm, uint64_t *mem, int fd)
{
	double ratio;

	is_int(map_file(mm, mem, FILE_LEN, fd), 0, "map the 64 MiB file read-only");
	ratio = major_per_page(mm, mem, 0, PAGES, "sequential read of 64 MiB");
	ok(ratio < 0.2, "readahead: %.4f major faults per page (< 0.2)", ratio);
	ok(stats(mm).pgsteal >= (FILE_LEN - LIMIT) / PAGE,
	   "the read went through the budget (at least 56 MiB evicted)");
	is_int(emm_unmap(mm, mem, FILE_LEN), 0, "unmap it");
}

static void test_random_advice(struct emm *mm, uint64_t *mem, int fd)
{
	double ratio;

	is_int(map_file(mm, mem, FILE_LEN, fd), 0, "map it again");
	is_int(emm_advise(mm, mem, RANDOM_LEN, EMM_ADV_RANDOM), 0,
	       "EMM_ADV_RANDOM on the first 32 MiB");
	ratio = major_per_page(mm, mem, 0, RANDOM_LEN / PAGE, "sequential read under RANDOM");
	ok(ratio > 0.9, "no readahead: %.4f major faults per page (> 0.9)", ratio);
	ratio = major_per_page(mm, mem, RANDOM_LEN / PAGE, 2 * RANDOM_LEN / PAGE,
			       "the next 32 MiB, without the advice");
	ok(ratio < 0.2, "readahead again past the advised range: %.4f per page", ratio);
	is_int(emm_unmap(mm, mem, FILE_LEN), 0, "unmap it");
}

static void test_willneed(struct emm *mm, uint64_t *mem, int fd)
{
	uint64_t from = WILLNEED_OFF / PAGE, to = (WILLNEED_OFF + WILLNEED_LEN) / PAGE;
	struct emm_stats a, b, c;

	is_int(map_file(mm, mem, FILE_LEN, fd), 0, "map it again");
	a = stats(mm);
	is_int(emm_advise(mm, (char *)mem + WILLNEED_OFF, WILLNEED_LEN, EMM_ADV_WILLNEED), 0,
	       "EMM_ADV_WILLNEED on 1 MiB");
	b = stats(mm);
	ok(b.resident_bytes - a.resident_bytes >= WILLNEED_LEN,
	   "WILLNEED read the range in (resident +%" PRIu64 " KiB)",
	   (b.resident_bytes - a.resident_bytes) >> 10);
	is_int(read_pages(mem, from, to), 0, "reading it gives the file's contents");
	c = stats(mm);
	diag("WILLNEED then read of %" PRIu64 " pages: major +%" PRIu64 " (in the advice +%" PRIu64
	     "), minor +%" PRIu64, to - from, c.faults_major - b.faults_major,
	     b.faults_major - a.faults_major, c.faults_minor - b.faults_minor);
	is_int(c.faults_major - b.faults_major, 0, "reading it took no major fault");
	ok(c.faults_minor > b.faults_minor, "only minor ones");
	is_int(emm_unmap(mm, mem, FILE_LEN), 0, "unmap it");
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT);
	struct emm *mm;
	void *r;
	int fd;

	plan(22);
	fd = pattern_file(FILE_LEN);
	is_int(emm_open(&o, &mm), 0, "emm_open with an 8 MiB budget");
	is_int(emm_reserve(mm, FILE_LEN, &r), 0, "reserve 64 MiB");
	test_sequential(mm, r, fd);
	test_random_advice(mm, r, fd);
	test_willneed(mm, r, fd);
	is_int(emm_close(mm), 0, "emm_close");
	close(fd);
	return done_testing();
}
