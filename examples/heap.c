/* SPDX-License-Identifier: MIT */
/* A runtime's object graph on an emm heap, five times its budget: built, walked, freed, with statistics. */
#include <emm.h>
#include <emm-heap.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1UL << 20)
#define BUDGET (8 * MIB)

/* An object as a dynamic language runtime might have: a header, a few
 * references, a payload whose size varies. */
struct obj {
	uint32_t type, len;
	struct obj *left, *right;	/* a binary tree of objects */
	uint64_t hash;
	unsigned char payload[];
};

static struct emm_heap *heap;

static uint64_t hash_of(const unsigned char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

static struct obj *make(unsigned depth, uint64_t *seed)
{
	uint32_t len = 16 + (uint32_t)(*seed >> 33) % 200;
	struct obj *o = emm_heap_malloc(heap, sizeof(*o) + len);

	if (!o) {
		perror("emm_heap_malloc");
		exit(1);
	}
	*seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
	o->type = depth;
	o->len = len;
	for (uint32_t i = 0; i < len; i++)
		o->payload[i] = (unsigned char)(*seed >> (i % 56));
	o->hash = hash_of(o->payload, len);
	o->left = depth ? make(depth - 1, seed) : NULL;
	o->right = depth ? make(depth - 1, seed) : NULL;
	return o;
}

/* Check every object, as a collector's mark phase reads every one. */
static long walk(const struct obj *o, uint64_t *bytes)
{
	if (!o)
		return 0;
	*bytes += sizeof(*o) + o->len;
	return (hash_of(o->payload, o->len) != o->hash) + walk(o->left, bytes) +
	       walk(o->right, bytes);
}

static void release(struct obj *o)
{
	if (!o)
		return;
	release(o->left);
	release(o->right);
	emm_heap_free(heap, o);
}

static void report(const char *when)
{
	EMM_OPTS(emm_heap_stats, st);

	emm_heap_stats(heap, &st);
	printf("%-8s allocated %4" PRIu64 " MiB  region used %4" PRIu64 " MiB  resident %3" PRIu64
	       " MiB  swapped %4" PRIu64 " MiB\n", when, st.allocated_bytes / MIB,
	       st.region_used_bytes / MIB, st.resident_bytes / MIB, st.swapped_bytes / MIB);
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = BUDGET, .swap_size = 256 * MIB);
	uint64_t seed = 42, bytes = 0;
	struct emm *mm;
	struct obj *root;
	long bad;
	int err;

	err = emm_open(&o, &mm);
	if (!err)
		err = emm_heap_create(mm, 4UL << 30, NULL, &heap);
	if (err) {
		fprintf(stderr, "heap: %s\n", strerror(-err));
		return 1;
	}
	root = make(17, &seed);		/* 2^18 - 1 objects, about 40 MB */
	report("built");
	bad = walk(root, &bytes);
	printf("walked   %" PRIu64 " MiB of objects, %ld bad\n", bytes / MIB, bad);
	report("walked");
	release(root);
	emm_heap_collect(heap, 1);
	report("freed");
	emm_heap_destroy(heap);
	emm_close(mm);
	return bad != 0;
}
