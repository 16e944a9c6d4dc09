/* SPDX-License-Identifier: MIT */
/* libemm-heap grows a large block under pressure by emm_move: its swapped pages are not read back. */
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "emm.h"
#include "emm-heap.h"
#include "tap.h"
#include "util.h"

#define MIB (1UL << 20)
#define PAGE 4096UL
#define OLD (8 * MIB + 1000)		/* not a whole number of pages */

static uint64_t value(const uint64_t *p)
{
	return (uint64_t)(uintptr_t)p ^ 0x5bd1e9955bd1e995ULL;
}

/* Words of the grown block against value() of the old block's addresses. */
static size_t bad(const char *now, const char *was, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i + sizeof(uint64_t) <= len; i += sizeof(uint64_t))
		n += *(const uint64_t *)(now + i) != value((const uint64_t *)(was + i));
	return n;
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 32 * MIB, .swap_size = 256 * MIB);
	struct emm_stats s0, s1;
	struct emm_heap *h;
	struct emm *mm;
	char *p, *q, *r;

	plan(9);
	if (emm_open(&o, &mm) || emm_heap_create(mm, 256 * MIB, NULL, &h))
		bail("emm_open or emm_heap_create");
	p = emm_heap_malloc(h, OLD);
	if (!p)
		bail("emm_heap_malloc");
	ok((uintptr_t)p % PAGE == 0, "a block of 256 KiB or more starts on a page");
	fill_words(p, OLD & ~7UL, value);
	/* Out to swap: the heap is under pressure now. */
	if (emm_advise(mm, p, OLD & ~(PAGE - 1), EMM_ADV_PAGEOUT))
		bail("EMM_ADV_PAGEOUT");
	s0 = stats(mm);
	q = emm_heap_realloc(h, p, 2 * OLD);
	s1 = stats(mm);
	ok(q && q != p && (uintptr_t)q % PAGE == 0, "realloc to twice the size: a new block, on a page");
	is_int(s1.move_swapped - s0.move_swapped, (OLD & ~(PAGE - 1)) / PAGE,
	       "its swapped pages moved by their PTEs (emm_move)");
	ok(s1.swapins - s0.swapins <= 1, "with at most the partial last page read from swap (%" PRIu64 ")",
	   s1.swapins - s0.swapins);
	is_int(bad(q, p, OLD & ~7UL), 0, "the grown block holds the old contents, the tail included");
	ok(emm_heap_usable_size(h, q) >= 2 * OLD, "and has room for the new size");

	/* A block that is resident grows intact too (emm_move copies its pages). */
	emm_heap_free(h, q);
	if (emm_heap_collect(h, 1))
		bail("emm_heap_collect");
	r = emm_heap_malloc(h, 300 * 1024);
	memset(r, 0x3c, 300 * 1024);
	s0 = stats(mm);
	q = emm_heap_realloc(h, r, 600 * 1024);
	ok(q && q[0] == 0x3c && q[300 * 1024 - 1] == 0x3c, "a resident block grows intact");
	emm_heap_free(h, q);
	is_int(emm_heap_destroy(h), 0, "emm_heap_destroy");
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
