/* SPDX-License-Identifier: MIT */
/* Writes to clean pages with no fault (asynchronous write-protection): emm still learns each one, so exactly the pages written go to swap or to their file again. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "emm.h"
#include "internal.h"
#include "physmem.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LIMIT (16 * MIB)
#define LEN (64 * MIB)
#define PAGES (LEN / PAGE)
#define WORDS (PAGE / 8)
#define FILE_PAGES 1024

static uint64_t *mem;

static uint64_t pattern(uint64_t word, uint64_t gen)
{
	uint64_t s = word ^ gen << 40;

	return tap_rand(&s);
}

/* Generation of word 7 of page pg: one page in four was rewritten (gen 2),
 * too few for emm to map pages coming back from swap writable. */
static uint64_t gen_of(uint64_t w, int rewritten)
{
	return rewritten && w % WORDS == 7 && (w / WORDS) % 4 == 0 ? 2 : 1;
}

/* Words of the region that differ from what was written. */
static size_t read_pass(int rewritten)
{
	size_t bad = 0;

	for (uint64_t w = 0; w < LEN / 8; w++)
		if (mem[w] != pattern(w, gen_of(w, rewritten)) && bad++ < 5)
			diag("offset 0x%" PRIx64 ": got 0x%016" PRIx64, w * 8, mem[w]);
	return bad;
}

/* Clean pages of the reservation at a seen written (swap_predict_write's sample). */
static unsigned clean_writes(void *a)
{
	int idx = 0;
	struct rsv *r = rsv_enter((uintptr_t)a, &idx);
	unsigned n;

	if (!r)
		bail("no reservation at %p", a);
	n = atomic_load(&r->clean_writes);
	rsv_leave(r, idx);
	return n;
}

/* An instance on a userfaultfd backend that lets writes through, or skip. */
static struct emm *open_async(uint64_t limit)
{
	EMM_OPTS(emm_opts, o, .mem_limit = limit, .swap_size = 256 * MIB);
	struct emm *mm;

	if (emm_open(&o, &mm))
		bail("cannot open an instance");
	if (emm_backend(mm) == EMM_BACKEND_SIGNAL || !mm->wp_async) {
		bool sig = emm_backend(mm) == EMM_BACKEND_SIGNAL;

		emm_close(mm);
		skip_all(sig ? "the signal backend sees every write to a clean page"
			     : "no UFFD_FEATURE_WP_ASYNC (Linux 6.7), or EMM_UFFD_WP_ASYNC=0");
	}
	return mm;
}

/* Anonymous memory: pages swapped in clean are rewritten, one in four. */
static void anon(struct emm *mm)
{
	struct emm_stats s1, s2, s3;
	void *r;

	is_int(emm_reserve(mm, LEN, &r), 0, "reserve 64 MiB under a 16 MiB budget");
	is_int(emm_map(mm, r, LEN, NULL), 0, "map it");
	mem = r;
	for (uint64_t w = 0; w < LEN / 8; w++)
		mem[w] = pattern(w, 1);
	is_int(read_pass(0), 0, "a read pass: right (pages come back clean)");
	s1 = stats(mm);
	is_int(read_pass(0), 0, "a second read pass: right");
	s2 = stats(mm);
	is_int(s2.swapouts, s1.swapouts, "and it wrote nothing out");
	for (uint64_t pg = 0; pg < PAGES; pg += 4)
		mem[pg * WORDS + 7] = pattern(pg * WORDS + 7, 2);
	is_int(read_pass(1), 0, "one page in four rewritten, then all read: right");
	s3 = stats(mm);
	diag("rewrite and read: faults_wp +%" PRIu64 ", swapouts +%" PRIu64 ", swapins +%" PRIu64,
	     s3.faults_wp - s2.faults_wp, s3.swapouts - s2.swapouts, s3.swapins - s2.swapins);
	/* A write that reaches a window while a readahead thread reads it
	 * waits, then finds it mapped read-only: one write fault. */
	ok(s3.faults_wp - s2.faults_wp <= PAGES / 4 / 100,
	   "the writes took (almost) no write fault: %" PRIu64 " for %lu",
	   s3.faults_wp - s2.faults_wp, (unsigned long)(PAGES / 4));
	ok(s3.swapouts - s2.swapouts >= (PAGES - LIMIT / PAGE) / 4,
	   "yet the rewritten pages went out again: at least those of the 48 MiB "
	   "the budget cannot hold");
	ok(s3.swapouts - s2.swapouts <= PAGES / 4,
	   "and no page that was not written: clean ones keep their slots");
	ok(clean_writes(r) > 0, "the writes count for the choice of mapping swap-ins "
	   "writable (clean_writes %u)", clean_writes(r));
}

/* A page written with no fault, whose mapping the kernel then drops
 * (MADV_DONTNEED keeps a shared page's data): its write is not lost when
 * it is mapped again and later evicted. */
static void dropped(struct emm *mm)
{
	uint64_t *p = mem + (PAGES - 1) * WORDS;	/* resident: the last page read */
	uint64_t want = 0x5eedf00d5eedf00dULL;

	p[9] = want;
	is_int(madvise(p, PAGE, MADV_DONTNEED), 0, "the kernel drops a written page's mapping");
	ok(p[9] == want, "it reads back mapped again");
	for (int pass = 0; pass < 2; pass++)
		for (uint64_t w = 0; w < (LEN - PAGE) / 8; w += WORDS)
			(void)*(volatile uint64_t *)&mem[w];
	ok(p[9] == want, "and after the whole region went through the budget twice");
}

/* A file: pages read in clean, some written, then emm_sync. */
static void file(struct emm *mm)
{
	int fd = tmp_file("wp-async", NULL, 0);
	EMM_OPTS(emm_map_opts, o, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .policy = EMM_POLICY_FILE, .fd = fd);
	size_t len = FILE_PAGES * PAGE, bad = 0;
	struct emm_stats s0, s1, s2, s3;
	uint64_t *f, got;
	void *r;

	if (ftruncate(fd, (off_t)len))
		bail("ftruncate: %s", strerror(errno));
	is_int(emm_reserve(mm, len, &r), 0, "reserve 4 MiB for a file");
	is_int(emm_map(mm, r, len, &o), 0, "map the file over it");
	f = r;
	for (size_t pg = 0; pg < FILE_PAGES; pg++)
		bad += f[pg * WORDS] != 0;
	is_int(bad, 0, "read it all: zeros");
	s0 = stats(mm);
	for (size_t pg = 0; pg < FILE_PAGES; pg += 8)
		f[pg * WORDS + 1] = pg + 1;
	is_int(emm_sync(mm, f, len), 0, "write one page in eight, then emm_sync");
	s1 = stats(mm);
	is_int(s1.writebacks - s0.writebacks, FILE_PAGES / 8, "it wrote back exactly those pages");
	is_int(s1.faults_wp - s0.faults_wp, 0, "whose writes took no fault");
	for (size_t pg = 0; pg < FILE_PAGES; pg += 8)
		if (pread(fd, &got, 8, (off_t)(pg * PAGE + 8)) != 8 || got != pg + 1)
			bad++;
	is_int(bad, 0, "the file holds what was written");
	is_int(emm_sync(mm, f, len), 0, "emm_sync again");
	s2 = stats(mm);
	is_int(s2.writebacks - s1.writebacks, 0, "with nothing written since, it writes nothing");
	for (size_t pg = 0; pg < FILE_PAGES; pg += 64)
		f[pg * WORDS + 2] = pg + 2;
	is_int(emm_sync(mm, f, len), 0, "write one page in 64 of those written back, emm_sync");
	s3 = stats(mm);
	is_int(s3.writebacks - s2.writebacks, FILE_PAGES / 64,
	       "it wrote back those: a page written back is write-protected again");
	close(fd);
}

int main(void)
{
	struct emm *mm;

	skip_all_tsan("it writes 64 MiB, whose shadow would take four times as much");
	mm = open_async(LIMIT);
	plan(27);
	anon(mm);
	dropped(mm);
	is_int(stats(mm).io_errors, 0, "no I/O errors");
	is_int(emm_close(mm), 0, "emm_close");
	mm = open_async(64 * MIB);
	file(mm);
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
