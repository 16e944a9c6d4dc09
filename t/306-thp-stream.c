/* SPDX-License-Identifier: MIT */
/* A file mapped read-only with EMM_MAP_HUGEPAGE, 256 MiB read in order under a budget of
 * 96 MiB (the least whose readahead windows are 2 MiB: emm-thp(7)): on signal each window
 * is one huge page, mapped by one PMD, dropped whole, read again right, after range
 * operations too; a write splits its extent first and reaches the file. The same for an
 * anonymous VMA's swap-ins. Elsewhere, and without the flag, 4 KiB pages as before. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define EXTENT (2 * MIB)
#define LIMIT (96 * MIB)
#define FILE_LEN (256 * MIB)
#define PAGES (FILE_LEN / PAGE)
#define WORDS_PER_PAGE (PAGE / 8)
#define EXTENTS (FILE_LEN / EXTENT)
#define STAMP 0x5757575757575757ULL

static const uint64_t seed = 0x5eed0306;
static int fd;

static uint64_t file_word(uint64_t off)
{
	uint64_t x = off ^ seed;

	return tap_rand(&x);
}

/* One word per page, in order; the pages that read wrong. */
static size_t read_all(const uint64_t *mem)
{
	size_t bad = 0;

	for (uint64_t pg = 0; pg < PAGES; pg++) {
		uint64_t w = pg * WORDS_PER_PAGE + pg % WORDS_PER_PAGE;

		if (mem[w] != file_word(w * 8) && bad++ < 5)
			diag("page %" PRIu64 ": 0x%016" PRIx64 ", want 0x%016" PRIx64, pg, mem[w],
			     file_word(w * 8));
	}
	return bad;
}

/* KiB of shared memory the kernel maps with PMDs in this process. */
static long shmem_pmd_kib(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	long kib = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "ShmemPmdMapped: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

static struct emm *open_mapped(int backend, const char *name, unsigned flags, uint64_t **mem,
			       int n)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .backend = backend);
	EMM_OPTS(emm_map_opts, m, .prot = EMM_PROT_READ, .policy = EMM_POLICY_FILE, .fd = fd,
		 .flags = flags);
	struct emm *mm = open_or_skip(&o, name, n);
	void *p;

	if (!mm)
		return NULL;
	if (emm_reserve(mm, FILE_LEN, &p) || emm_map(mm, p, FILE_LEN, &m))
		bail("%s: cannot map the file", name);
	*mem = p;
	return mm;
}

/* signal, with EMM_MAP_HUGEPAGE: 17 tests. */
static void huge_stream(void)
{
	uint64_t *mem;
	struct emm *mm = open_mapped(EMM_BACKEND_SIGNAL, "signal", EMM_MAP_HUGEPAGE, &mem, 17);
	struct emm_stats a, b;
	char *last;
	uint64_t word;

	if (!mm)
		return;
	is_int((int)read_all(mem), 0, "signal: every page of a first pass reads the file");
	a = stats(mm);
	diag("first pass: %" PRIu64 " huge windows, %" PRIu64 " failed, %" PRIu64 " splits, "
	     "%" PRIu64 " major faults, %" PRIu64 " stolen",
	     a.thp_collapse, a.thp_collapse_failed, a.thp_split, a.faults_major, a.pgsteal);
	ok(a.thp_collapse >= EXTENTS / 2, "signal: windows read as huge pages (%" PRIu64
	   " of %lu extents)", a.thp_collapse, EXTENTS);
	ok(a.thp_split == 0, "signal: none split to be evicted");
	ok(a.pgsteal >= (FILE_LEN - 2 * LIMIT) / PAGE, "signal: evicted as it went");
	ok(shmem_pmd_kib() >= 2048, "signal: the kernel maps them with PMDs (%ld KiB)",
	   shmem_pmd_kib());
	ok(a.resident_bytes <= LIMIT + 2 * EXTENT, "signal: resident %" PRIu64
	   " KiB within the budget and a window or two", a.resident_bytes >> 10);
	is_int((int)read_all(mem), 0, "signal: every page of a second pass reads the file");
	b = stats(mm);
	ok(b.thp_collapse > a.thp_collapse && b.thp_split == 0,
	   "signal: read whole again (%" PRIu64 " more), still no split",
	   b.thp_collapse - a.thp_collapse);

	/* The range operations: whole extents paged out, a page of one
	 * dropped (a split), a page of one pinned, with the file read again
	 * around them. */
	is_int(emm_advise(mm, mem, FILE_LEN, EMM_ADV_PAGEOUT), 0, "signal: EMM_ADV_PAGEOUT");
	(void)read_all(mem);
	is_int(emm_advise(mm, (char *)mem + 5 * PAGE, PAGE, EMM_ADV_DONTNEED), 0,
	       "signal: EMM_ADV_DONTNEED of one page");
	is_int(emm_pin(mm, (char *)mem + 7 * PAGE, PAGE), 0, "signal: emm_pin of one page");
	is_int((int)read_all(mem), 0, "signal: every page reads the file after them");
	is_int(emm_unpin(mm, (char *)mem + 7 * PAGE, PAGE), 0, "signal: emm_unpin");
	b = stats(mm);

	/* Writable now: a write into a huge extent splits it, then lands. */
	last = (char *)mem + FILE_LEN - EXTENT;
	word = (FILE_LEN - EXTENT + 3 * PAGE) / 8;
	is_int(emm_protect(mm, mem, FILE_LEN, EMM_PROT_READ | EMM_PROT_WRITE), 0,
	       "signal: the VMA made writable");
	((volatile uint64_t *)last)[3 * WORDS_PER_PAGE] = STAMP;
	ok(stats(mm).thp_split > b.thp_split, "signal: the written extent was split first");
	is_int(emm_sync(mm, mem, FILE_LEN), 0, "signal: emm_sync");
	{
		uint64_t got = 0;
		bool read = pread(fd, &got, 8, (off_t)(word * 8)) == 8;

		ok(read && got == STAMP, "signal: the write reached the file (0x%016" PRIx64 ")",
		   got);
		got = file_word(word * 8);
		if (pwrite(fd, &got, 8, (off_t)(word * 8)) != 8)	/* as it was */
			bail("pwrite: %s", strerror(errno));
	}
	emm_close(mm);
}

/* Without the flag, or on a userfaultfd backend: no huge page. 2 tests. */
static void small_stream(int backend, const char *name, unsigned flags)
{
	uint64_t *mem;
	struct emm *mm = open_mapped(backend, name, flags, &mem, 2);

	if (!mm)
		return;
	is_int((int)read_all(mem), 0, "%s%s: every page reads the file", name,
	       flags ? ", EMM_MAP_HUGEPAGE" : "");
	is_int((int)stats(mm).thp_collapse, 0, "%s%s: no huge window", name,
	       flags ? ", EMM_MAP_HUGEPAGE" : "");
	emm_close(mm);
}

/* The word of page pg of the anonymous region, generation gen. */
static uint64_t anon_word(uint64_t pg, uint64_t gen)
{
	return (pg * 0x9e3779b97f4a7c15ULL) ^ gen;
}

/* Pages of the anonymous region whose word is not gen's, but for those
 * of the pages at offset 1 of each extent, which hold written's. Read
 * through volatile: two calls in a row are two passes, not one. */
static size_t anon_bad(const volatile uint64_t *mem, uint64_t gen, uint64_t written)
{
	size_t bad = 0;

	for (uint64_t pg = 0; pg < PAGES; pg++) {
		uint64_t want = anon_word(pg, pg % (EXTENT / PAGE) == 1 ? written : gen);

		bad += mem[pg * WORDS_PER_PAGE] != want;
	}
	return bad;
}

/* signal, an anonymous VMA with EMM_MAP_HUGEPAGE, written, paged out, read
 * in order: its swap-in windows are huge pages, dropped whole (their
 * slots kept), and split before a write. 6 tests. */
static void huge_swap_stream(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .backend = EMM_BACKEND_SIGNAL);
	EMM_OPTS(emm_map_opts, m, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .flags = EMM_MAP_HUGEPAGE);
	struct emm *mm = open_or_skip(&o, "signal", 6);
	struct emm_stats a, b;
	uint64_t *mem;
	void *p;

	if (!mm)
		return;
	if (emm_reserve(mm, FILE_LEN, &p) || emm_map(mm, p, FILE_LEN, &m))
		bail("signal: cannot map %lu MiB", FILE_LEN / MIB);
	mem = p;
	for (uint64_t pg = 0; pg < PAGES; pg++)
		mem[pg * WORDS_PER_PAGE] = anon_word(pg, 1);
	is_int(emm_advise(mm, mem, FILE_LEN, EMM_ADV_PAGEOUT), 0, "swap: paged out");
	a = stats(mm);
	is_int((int)anon_bad(mem, 1, 1) + (int)anon_bad(mem, 1, 1), 0,
	       "swap: every page reads back, twice in order");
	b = stats(mm);
	diag("swap: %" PRIu64 " huge windows, %" PRIu64 " splits, %" PRIu64 " swap-ins",
	     b.thp_collapse - a.thp_collapse, b.thp_split - a.thp_split, b.swapins - a.swapins);
	/* Two passes over EXTENTS extents; at least half of it huge, as the
	 * file's first pass (a window that meets the budget full is read in
	 * 4 KiB pages). */
	ok(b.thp_collapse - a.thp_collapse >= EXTENTS, "swap: windows read as huge pages (%" PRIu64
	   " in two passes over %lu extents)", b.thp_collapse - a.thp_collapse, EXTENTS);
	ok(b.thp_split == a.thp_split, "swap: none split to be evicted");
	/* A write into each extent: split first, so that the page is dirty. */
	for (uint64_t x = 0; x < EXTENTS; x++)
		mem[(x * (EXTENT / PAGE) + 1) * WORDS_PER_PAGE] =
			anon_word(x * (EXTENT / PAGE) + 1, 2);
	is_int(emm_advise(mm, mem, FILE_LEN, EMM_ADV_PAGEOUT), 0, "swap: paged out again");
	is_int((int)anon_bad(mem, 1, 2), 0, "swap: every page reads back, the written ones too");
	emm_close(mm);
}

int main(void)
{
	plan(29);
	fd = tmp_file("thp-stream", NULL, 0);
	fill_file_words(fd, FILE_LEN, file_word);
	huge_stream();
	huge_swap_stream();
	small_stream(EMM_BACKEND_SIGNAL, "signal", 0);
	small_stream(EMM_BACKEND_UFFD, "uffd", EMM_MAP_HUGEPAGE);
	small_stream(EMM_BACKEND_UFFD_SIGBUS, "uffd-sigbus", EMM_MAP_HUGEPAGE);
	close(fd);
	return done_testing();
}
