/* SPDX-License-Identifier: MIT */
/* FILE VMAs read-write under an 8 MiB budget: 4096 random writes (one fault each) reach the 64 MiB
 * file, writes past EOF grow it, clean pages are evicted without writes. */
/*
 * The choice for writes past the end of the file, as emm makes it: a page
 * of a read-write FILE VMA past EOF reads zero and reading it leaves the
 * file as it is; a write there makes the page dirty, and writing it back
 * (emm_sync, reclaim, emm_unmap) writes the whole page, so the file grows
 * to the end of the last page written. Pages between the old end and the
 * written one are a hole: they read zero.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LIMIT (8 * MIB)
#define FILE_LEN (64 * MIB)
#define WORDS (FILE_LEN / 8)
#define WORDS_PER_PAGE (PAGE / 8)
#define RANDOM_WRITES 4096	/* each a fault that evicts under pressure: ~1 ms */
#define CYCLE_LEN (32 * MIB)	/* read-only cycling: four times the budget */
#define CYCLE_PASSES 2
#define SMALL_PAGES 16		/* the small file of the pwrite-before-touch check */
#define EOF_PAGES 10		/* the file of the EOF check ... */
#define EOF_MAP_PAGES 16	/* ... mapped over this many pages */
#define CHUNK MIB

static const uint64_t seed_file = 0x5eed0501, seed_write = 0x5eed0502;
static uint64_t rng = 0x5eed0503;
static uint64_t *written;	/* bitmap over the words of the big file */

static uint64_t mix(uint64_t x)
{
	return tap_rand(&x);
}

/* What the file holds at byte offset off (a multiple of 8) before any write. */
static uint64_t file_word(uint64_t off)
{
	return mix(off ^ seed_file);
}

/* What the test writes at off; never what the file held. */
static uint64_t write_word(uint64_t off)
{
	uint64_t v = mix(off ^ seed_write);

	return v == file_word(off) ? ~v : v;
}

static int is_written(uint64_t w)
{
	return (written[w / 64] >> (w % 64)) & 1;
}

static uint64_t want_word(uint64_t off)
{
	return is_written(off / 8) ? write_word(off) : file_word(off);
}

/* Fill [0, len) of fd with file_word(). */
static void fill_file(int fd, uint64_t len)
{
	fill_file_words(fd, len, file_word);
}

static int map_file(struct emm *mm, void *addr, size_t len, int fd, int prot)
{
	EMM_OPTS(emm_map_opts, o, .prot = prot, .policy = EMM_POLICY_FILE, .fd = fd);

	return emm_map(mm, addr, len, &o);
}

static off_t file_size(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? -1 : st.st_size;
}

/* The mapping shows what another descriptor wrote to the file before the
 * first touch, and the untouched rest as it was. */
static void test_pwrite_before_touch(struct emm *mm, char *at)
{
	int fd = tmp_file("file-rw", NULL, 0), other;
	char name[64];
	uint64_t v = 0x0123456789abcdefULL;
	const uint64_t *p = (const uint64_t *)at;

	fill_file(fd, SMALL_PAGES * PAGE);
	is_int(map_file(mm, at, SMALL_PAGES * PAGE, fd, EMM_PROT_READ), 0,
	       "map a %d-page file read-only", SMALL_PAGES);
	snprintf(name, sizeof(name), "/proc/self/fd/%d", fd);
	other = open(name, O_RDWR | O_CLOEXEC);
	if (other < 0)
		bail("reopen the file: %s", strerror(errno));
	if (pwrite(other, &v, 8, 5 * PAGE + 64) != 8)
		bail("pwrite: %s", strerror(errno));
	close(other);
	close(fd);
	ok(p[(5 * PAGE + 64) / 8] == v,
	   "the mapping reads what another descriptor pwrote before the first touch");
	ok(p[(5 * PAGE) / 8] == file_word(5 * PAGE) && p[(9 * PAGE + 8) / 8] == file_word(9 * PAGE + 8),
	   "and the file's other bytes as they were");
	is_int(emm_unmap(mm, at, SMALL_PAGES * PAGE), 0, "unmap it");
}

static void random_writes(uint64_t *mem)
{
	for (int i = 0; i < RANDOM_WRITES; i++) {
		uint64_t w = tap_rand(&rng) % WORDS;

		mem[w] = write_word(w * 8);
		written[w / 64] |= 1ULL << (w % 64);
	}
}

/* Every word of the file, read with pread: the writes and the fill. */
static void verify_file(int fd)
{
	uint64_t *buf = malloc(CHUNK);
	size_t bad = 0;

	if (!buf)
		bail("out of memory");
	for (uint64_t off = 0; off < FILE_LEN; off += CHUNK) {
		if (pread(fd, buf, CHUNK, (off_t)off) != (ssize_t)CHUNK)
			bail("pread: %s", strerror(errno));
		for (size_t i = 0; i < CHUNK / 8; i++) {
			uint64_t o = off + i * 8;

			if (buf[i] != want_word(o) && bad++ < 5)
				diag("file offset 0x%" PRIx64 ": 0x%016" PRIx64 ", want 0x%016" PRIx64
				     " (%s)", o, buf[i], want_word(o),
				     is_written(o / 8) ? "written" : "untouched");
		}
	}
	free(buf);
	is_int(bad, 0, "pread of all 64 MiB: every write is there, every other word as filled");
}

/* Each written word read back through the mapping (most pages were
 * evicted and come back from the file). */
static void verify_mapping(const uint64_t *mem)
{
	size_t bad = 0, n = 0;

	for (uint64_t i = 0; i < WORDS / 64; i++) {
		for (uint64_t bits = written[i]; bits; bits &= bits - 1) {
			uint64_t w = i * 64 + (uint64_t)__builtin_ctzll(bits);

			n++;
			if (mem[w] != write_word(w * 8) && bad++ < 5)
				diag("mapping offset 0x%" PRIx64 ": 0x%016" PRIx64, w * 8, mem[w]);
		}
	}
	is_int(bad, 0, "the mapping reads all %zu written words back", n);
}

static void test_random_writes(struct emm *mm, uint64_t *mem, int fd)
{
	struct emm_stats st;

	is_int(map_file(mm, mem, FILE_LEN, fd, EMM_PROT_READ | EMM_PROT_WRITE), 0,
	       "map the 64 MiB file read-write");
	random_writes(mem);
	st = stats(mm);
	diag("after %d random writes: faults %" PRIu64 " major %" PRIu64 " wp %" PRIu64
	     " writebacks %" PRIu64 " pgsteal %" PRIu64 " swapouts %" PRIu64 " resident %" PRIu64
	     " KiB", RANDOM_WRITES, st.faults, st.faults_major, st.faults_wp, st.writebacks,
	     st.pgsteal, st.swapouts, st.resident_bytes >> 10);
	ok(st.writebacks > 0, "pressure wrote dirty pages back to the file (writebacks %" PRIu64 ")",
	   st.writebacks);
	is_int(st.swapouts, 0, "file pages never went to swap");
	is_int(emm_sync(mm, mem, FILE_LEN), 0, "emm_sync of the whole range");
	verify_file(fd);
	verify_mapping(mem);
	is_int(emm_unmap(mm, mem, FILE_LEN), 0, "unmap it");
	is_int(file_size(fd), FILE_LEN, "the file kept its size");
}

static int page_is_zero(const char *p)
{
	for (size_t i = 0; i < PAGE; i++)
		if (p[i])
			return 0;
	return 1;
}

/* A 10-page file mapped read-write over 16 pages. */
static void test_past_eof(struct emm *mm, char *at)
{
	int fd = tmp_file("file-rw", NULL, 0);
	uint64_t *p12 = (uint64_t *)(at + 12 * PAGE), v = write_word(12 * PAGE);
	char *buf = malloc(3 * PAGE);

	if (!buf)
		bail("out of memory");
	fill_file(fd, EOF_PAGES * PAGE);
	is_int(map_file(mm, at, EOF_MAP_PAGES * PAGE, fd, EMM_PROT_READ | EMM_PROT_WRITE), 0,
	       "map a %d-page file read-write over %d pages", EOF_PAGES, EOF_MAP_PAGES);
	ok(page_is_zero(at + 14 * PAGE), "page 14 (past EOF) reads zero before any write");
	ok(((uint64_t *)at)[9 * WORDS_PER_PAGE + 3] == file_word(9 * PAGE + 24),
	   "page 9 (the last one) reads the file");
	is_int(file_size(fd), EOF_PAGES * PAGE, "reading past EOF leaves the file at 10 pages");
	*p12 = v;
	is_int(emm_sync(mm, at, EOF_MAP_PAGES * PAGE), 0, "write page 12, emm_sync");
	is_int(file_size(fd), 13 * PAGE, "the file grew to 13 pages (the end of page 12)");
	if (pread(fd, buf, 3 * PAGE, 10 * PAGE) != (ssize_t)(3 * PAGE))
		bail("pread: %s", strerror(errno));
	ok(*(uint64_t *)(buf + 2 * PAGE) == v, "page 12 of the file holds the word written");
	ok(page_is_zero(buf) && page_is_zero(buf + PAGE), "pages 10 and 11 of the file read zero");
	{
		int rest_zero = 1;

		for (size_t i = 8; i < PAGE; i++)
			rest_zero &= buf[2 * PAGE + i] == 0;
		ok(rest_zero, "the rest of page 12 is zero");
	}
	ok(page_is_zero(at + 14 * PAGE), "page 14 still reads zero");
	is_int(emm_unmap(mm, at, EOF_MAP_PAGES * PAGE), 0, "unmap it");
	is_int(file_size(fd), 13 * PAGE, "unmap wrote nothing more (page 14 was clean)");
	free(buf);
	close(fd);
}

/* Reading a 32 MiB file again and again under 8 MiB evicts clean pages
 * without a single write. */
static void test_clean_cycling(struct emm *mm, const uint64_t *mem, int fd)
{
	struct emm_stats a, b;
	size_t bad = 0;

	is_int(map_file(mm, (void *)mem, CYCLE_LEN, fd, EMM_PROT_READ), 0,
	       "map the first 32 MiB of the file read-only");
	a = stats(mm);
	for (int pass = 0; pass < CYCLE_PASSES; pass++)
		for (uint64_t pg = 0; pg < CYCLE_LEN / PAGE; pg++) {
			uint64_t w = pg * WORDS_PER_PAGE + (pg * 7 + (uint64_t)pass) % WORDS_PER_PAGE;

			if (mem[w] != want_word(w * 8) && bad++ < 5)
				diag("pass %d page %" PRIu64 ": 0x%016" PRIx64, pass, pg, mem[w]);
		}
	b = stats(mm);
	diag("%d passes over 32 MiB: pgsteal +%" PRIu64 " major +%" PRIu64 " writebacks +%" PRIu64
	     " swapouts +%" PRIu64, CYCLE_PASSES, b.pgsteal - a.pgsteal,
	     b.faults_major - a.faults_major, b.writebacks - a.writebacks, b.swapouts - a.swapouts);
	is_int(bad, 0, "every page read the file's contents, every pass");
	ok(b.pgsteal - a.pgsteal >= (CYCLE_LEN - LIMIT) / PAGE,
	   "clean pages were evicted (at least 24 MiB of them)");
	is_int(b.writebacks - a.writebacks, 0, "writebacks did not grow");
	is_int(b.swapouts - a.swapouts, 0, "nor swapouts");
	is_int(emm_unmap(mm, (void *)mem, CYCLE_LEN), 0, "unmap it");
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT);
	struct emm *mm;
	char *r;
	int fd;

	plan(34);
	diag("seed 0x%" PRIx64, rng);
	written = calloc(WORDS / 64, sizeof(*written));
	if (!written)
		bail("out of memory");
	fd = tmp_file("file-rw", NULL, 0);
	fill_file(fd, FILE_LEN);
	is_int(emm_open(&o, &mm), 0, "emm_open with an 8 MiB budget");
	is_int(emm_reserve(mm, FILE_LEN + 4 * MIB, (void **)&r), 0, "reserve 68 MiB");
	test_pwrite_before_touch(mm, r + FILE_LEN);
	test_random_writes(mm, (uint64_t *)r, fd);
	test_past_eof(mm, r + FILE_LEN + 2 * MIB);
	test_clean_cycling(mm, (uint64_t *)r, fd);
	ok(stats(mm).writebacks > 0, "writebacks > 0 in all");
	is_int(emm_close(mm), 0, "emm_close");
	close(fd);
	free(written);
	return done_testing();
}
