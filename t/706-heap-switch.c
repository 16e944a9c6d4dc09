/* SPDX-License-Identifier: MIT */
/* libemm-heap: one thread on two heaps in turn, one destroyed and another made, each heap's blocks and counts its own. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "emm.h"
#include "emm-heap.h"
#include "tap.h"

#define MIB (1UL << 20)
#define ROUNDS 200

/* Sizes of each layer: mimalloc's small and large blocks, the mid-size slabs. */
static const size_t sizes[] = { 24, 700, 5000, 9000, 40000 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static uint64_t allocated(struct emm_heap *h)
{
	EMM_OPTS(emm_heap_stats, s);

	if (emm_heap_stats(h, &s))
		bail("emm_heap_stats");
	return s.allocated_bytes;
}

/* Is p a block of h? emm_heap_usable_size is 0 for another heap's. */
static bool owns(struct emm_heap *h, void *p)
{
	return emm_heap_usable_size(h, p) > 0;
}

/* Allocate from a and b in turn; each block must be its heap's, and each
 * heap's count grow by exactly the usable sizes of its own blocks. */
static void alternate(struct emm_heap *a, struct emm_heap *b, const char *what)
{
	void *pa[ROUNDS], *pb[ROUNDS];
	uint64_t a0 = allocated(a), b0 = allocated(b), wa = 0, wb = 0;
	int wrong = 0;

	for (int i = 0; i < ROUNDS; i++) {
		size_t n = sizes[i % NSIZES];

		pa[i] = emm_heap_malloc(a, n);
		pb[i] = emm_heap_malloc(b, n + 1);
		if (!pa[i] || !pb[i])
			bail("malloc of %zu bytes", n);
		memset(pa[i], 0xa, n);
		memset(pb[i], 0xb, n + 1);
		wrong += !owns(a, pa[i]) || owns(b, pa[i]) || !owns(b, pb[i]) || owns(a, pb[i]);
		wa += emm_heap_usable_size(a, pa[i]);
		wb += emm_heap_usable_size(b, pb[i]);
	}
	is_int(wrong, 0, "%s: each block comes from the heap it was asked of", what);
	ok(allocated(a) - a0 == wa && allocated(b) - b0 == wb,
	   "%s: each heap counts its own blocks (%llu and %llu bytes)", what,
	   (unsigned long long)wa, (unsigned long long)wb);
	for (int i = 0; i < ROUNDS; i++) {
		emm_heap_free(b, pb[i]);
		emm_heap_free(a, pa[i]);
	}
	ok(allocated(a) == a0 && allocated(b) == b0, "%s: freed in turn, both counts back", what);
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 256 * MIB, .swap_size = 256 * MIB);
	struct emm_heap *a, *b, *c;
	struct emm *mm;
	void *p;

	if (emm_open(&o, &mm))
		bail("emm_open");
	plan(11);
	if (emm_heap_create(mm, 64 * MIB, NULL, &a) || emm_heap_create(mm, 64 * MIB, NULL, &b))
		bail("emm_heap_create");
	alternate(a, b, "two heaps");
	is_int(emm_heap_destroy(b), 0, "destroy the second, used last");
	is_int(emm_heap_create(mm, 64 * MIB, NULL, &c), 0, "make a third (it may take the second's place)");
	is_int(allocated(c), 0, "the new heap starts with nothing counted");
	p = emm_heap_malloc(c, 100);
	ok(p && owns(c, p) && !owns(a, p) && allocated(c) == emm_heap_usable_size(c, p),
	   "its first block is its own, and counted in it");
	emm_heap_free(c, p);
	alternate(c, a, "the new heap and the first");
	is_int(emm_heap_destroy(c) | emm_heap_destroy(a), 0, "destroy both");
	emm_close(mm);
	return done_testing();
}
