/* SPDX-License-Identifier: MIT */
/* Random one-page faults on a FILE VMA (EMM_ADV_RANDOM) under a 1 MiB budget: the file's bytes, zeros past its end, a read page mapped without write so that a later write is seen and written back, the file unchanged by reads under pressure. */
/*
 * A random fault's page is read into a bounce buffer and filled and mapped
 * in one step where the backend can (filemap_read); elsewhere it is read
 * into physmem and mapped after. Either way the same things must hold.
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
#define LIMIT (1 * MIB)
#define PAGES 2048			/* 8 MiB of file, eight times the budget */
#define TAIL 1000			/* bytes of the last, partial page */
#define FILE_LEN (PAGES * PAGE + TAIL)
#define MAP_LEN ((PAGES + 1) * PAGE)
#define READS 3000
#define WRITES 64

static uint64_t file_word(uint64_t off)
{
	uint64_t x = off ^ 0x5eed0508;

	return tap_rand(&x) | 1;
}

static uint64_t file_at(int fd, uint64_t off)
{
	uint64_t v = 0;

	if (pread(fd, &v, sizeof(v), (off_t)off) != (ssize_t)sizeof(v))
		bail("pread: %s", strerror(errno));
	return v;
}

/* Pages written by test_read_then_write: their word 7 was changed. */
static uint32_t written[WRITES];
static int nwritten;

/* What word w of the mapping holds: the file's, or what was written there. */
static uint64_t want_word(uint64_t w)
{
	for (int i = 0; i < nwritten; i++)
		if (w == (uint64_t)written[i] * (PAGE / 8) + 7)
			return ~file_word(w * 8);
	return file_word(w * 8);
}

/* Random pages, one word each (not the first: a page's start is the
 * commonest word to get right by accident). */
static void test_reads(uint64_t *mem, uint64_t *seed)
{
	unsigned bad = 0;

	for (int i = 0; i < READS; i++) {
		uint64_t pg = tap_rand(seed) % PAGES, w = pg * (PAGE / 8) + 1 + tap_rand(seed) % 511;

		bad += mem[w] != want_word(w);
	}
	is_int(bad, 0, "%d random page reads return the file's words", READS);
}

static void test_tail(struct emm *mm, const char *mem, int fd)
{
	const char *last = mem + (uint64_t)PAGES * PAGE;
	struct stat st;
	unsigned nonzero = 0;

	ok(*(const uint64_t *)(last + 8) == file_word((uint64_t)PAGES * PAGE + 8),
	   "the last, partial page holds the file's bytes");
	for (size_t i = TAIL; i < PAGE; i++)
		nonzero += last[i] != 0;
	is_int(nonzero, 0, "its bytes past the end of the file read zero");
	is_int(emm_sync(mm, (void *)mem, MAP_LEN), 0, "emm_sync");
	ok(fstat(fd, &st) == 0 && st.st_size == (off_t)FILE_LEN,
	   "reading past the end leaves the file's size");
}

/* Read a page, then write it: the write must be seen (a write-protect
 * fault, or the kernel's dirty bit with asynchronous write-protection)
 * and reach the file; pages only read must not be written. */
static void test_read_then_write(struct emm *mm, uint64_t *mem, int fd, uint64_t *seed)
{
	struct emm_stats a, b;
	uint32_t pgs[WRITES];
	unsigned bad = 0, sum = 0;

	for (int i = 0; i < WRITES; i++)
		written[i] = pgs[i] = (uint32_t)(i * (PAGES / WRITES) + tap_rand(seed) % (PAGES / WRITES));
	is_int(emm_sync(mm, mem, MAP_LEN), 0, "emm_sync before");
	a = stats(mm);
	for (int i = 0; i < WRITES; i++) {
		uint64_t *w = mem + pgs[i] * (PAGE / 8) + 7;

		sum += *w == file_word((uint64_t)pgs[i] * PAGE + 56);
		*w = ~file_word((uint64_t)pgs[i] * PAGE + 56);
		nwritten = i + 1;
	}
	is_int(sum, WRITES, "%d pages read before their write hold the file's words", WRITES);
	is_int(emm_sync(mm, mem, MAP_LEN), 0, "emm_sync");
	for (int i = 0; i < WRITES; i++)
		bad += file_at(fd, (uint64_t)pgs[i] * PAGE + 56) !=
		       ~file_word((uint64_t)pgs[i] * PAGE + 56);
	is_int(bad, 0, "the file holds every write");
	b = stats(mm);
	ok(b.writebacks - a.writebacks >= WRITES && b.writebacks - a.writebacks <= 2 * WRITES,
	   "pages written back: %llu, for %d pages written (reclaim may write one twice)",
	   (unsigned long long)(b.writebacks - a.writebacks), WRITES);
}

/*
 * Reading under pressure evicts pages; the file must be left as it was.
 * Whether none of them is written back is not asserted: on uffd, 2 runs
 * in 40 wrote back one page again after emm_sync (one of those written
 * and synced before, it seems), with the library of before these reads
 * were placed too; the file was right.
 */
static void test_clean_cycling(struct emm *mm, uint64_t *mem, int fd, uint64_t *seed)
{
	struct emm_stats a, b;
	unsigned bad = 0;

	is_int(emm_sync(mm, mem, MAP_LEN), 0, "emm_sync before reading again");
	a = stats(mm);
	test_reads(mem, seed);
	b = stats(mm);
	ok(b.pgsteal > a.pgsteal, "pages were evicted meanwhile (pgsteal %llu)",
	   (unsigned long long)(b.pgsteal - a.pgsteal));
	if (b.writebacks != a.writebacks)
		diag("pages written back meanwhile: %llu",
		     (unsigned long long)(b.writebacks - a.writebacks));
	is_int(emm_sync(mm, mem, MAP_LEN), 0, "emm_sync after");
	for (uint64_t w = 7; w < (uint64_t)PAGES * (PAGE / 8); w += PAGE / 8)
		bad += file_at(fd, w * 8) != want_word(w);
	is_int(bad, 0, "the file holds what it held (word 7 of every page, the written ones among them)");
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT);
	EMM_OPTS(emm_map_opts, mo, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .policy = EMM_POLICY_FILE);
	uint64_t seed = 0x5eed0509;
	struct emm *mm;
	void *mem;
	int fd;

	plan(20);
	fd = tmp_file("file-random", NULL, 0);
	fill_file_words(fd, FILE_LEN, file_word);
	mo.fd = fd;
	is_int(emm_open(&o, &mm), 0, "emm_open with a 1 MiB budget");
	is_int(emm_reserve(mm, MAP_LEN, &mem), 0, "reserve 8 MiB and a page");
	is_int(emm_map(mm, mem, MAP_LEN, &mo), 0, "map the file read-write");
	is_int(emm_advise(mm, mem, MAP_LEN, EMM_ADV_RANDOM), 0, "EMM_ADV_RANDOM");
	test_reads(mem, &seed);
	test_tail(mm, mem, fd);
	test_read_then_write(mm, mem, fd, &seed);
	test_clean_cycling(mm, mem, fd, &seed);
	is_int(emm_close(mm), 0, "emm_close");
	close(fd);
	return done_testing();
}
