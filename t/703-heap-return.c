/* SPDX-License-Identifier: MIT */
/* libemm-heap gives freed memory back: 512 MiB in 64 KiB blocks, 90% freed, collected. */
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "emm.h"
#include "emm-heap.h"
#include "tap.h"
#include "util.h"

#define MIB (1UL << 20)
#define TOTAL (512 * MIB)
#define BLOCK (64 * 1024UL)
#define NBLOCKS (TOTAL / BLOCK)
#define LIMIT (128 * MIB)

static struct emm *mm;

/* What the heap costs emm: its instance holds nothing else. */
static uint64_t held(void)
{
	struct emm_stats st = stats(mm);

	return st.resident_bytes + st.swap_used_bytes;
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 1024 * MIB);
	EMM_OPTS(emm_heap_stats, hs);
	static unsigned char *blk[NBLOCKS];
	struct emm_heap *heap;
	uint64_t peak, after;
	long bad = 0;
	int err;

	plan(6);
	err = emm_open(&o, &mm);
	if (err)
		bail("emm_open: %s", strerror(-err));
	err = emm_heap_create(mm, 2UL << 30, NULL, &heap);
	if (err)
		bail("emm_heap_create: %s", strerror(-err));
	for (size_t i = 0; i < NBLOCKS; i++) {
		blk[i] = emm_heap_malloc(heap, BLOCK);
		if (!blk[i])
			bail("emm_heap_malloc failed at block %zu", i);
		memset(blk[i], (int)(i % 251) + 1, BLOCK);
	}
	peak = held();
	diag("peak: resident + swap %" PRIu64 " MiB", peak / MIB);
	ok(peak >= TOTAL, "512 MiB allocated and written are held by emm (resident + swap)");
	/* Free 90% in allocation order: all but every tenth block. */
	for (size_t i = 0; i < NBLOCKS; i++)
		if (i % 10) {
			emm_heap_free(heap, blk[i]);
			blk[i] = NULL;
		}
	is_int(emm_heap_collect(heap, 1), 0, "emm_heap_collect(force)");
	after = held();
	emm_heap_stats(heap, &hs);
	diag("after: resident + swap %" PRIu64 " MiB, allocated %" PRIu64 " MiB, region used %"
	     PRIu64 " MiB", after / MIB, hs.allocated_bytes / MIB, hs.region_used_bytes / MIB);
	ok(after * 4 < peak, "resident + swap fell below 25%% of the peak (%" PRIu64 " of %" PRIu64
	   " MiB)", after / MIB, peak / MIB);
	/* mimalloc still holds the pages of the blocks kept committed: emm
	 * holds only their first and the 10%% kept. */
	ok(hs.allocated_bytes >= TOTAL / 10 && hs.region_used_bytes >= hs.allocated_bytes,
	   "statistics: allocated is the 10%% kept, the region used holds it");
	for (size_t i = 0; i < NBLOCKS; i += 10)
		for (size_t k = 0; k < BLOCK; k += 512)
			bad += blk[i][k] != (unsigned char)((int)(i % 251) + 1);
	is_int(bad, 0, "the 10%% kept are intact");
	for (size_t i = 0; i < NBLOCKS; i += 10)
		emm_heap_free(heap, blk[i]);
	emm_heap_destroy(heap);
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
