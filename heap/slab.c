/* SPDX-License-Identifier: MIT */
/* Mid-size blocks (4 to 16 KiB) in 128-byte classes, on slabs at the end of the heap's region. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

/*
 * Why: mimalloc's size classes are a quarter apart between 4 and 8 KiB
 * (4096, 5120, 6144, ...), so a program that allocates 4,368-byte blocks
 * (SQLite's page cache: a page and its header) gets 5,120 and leaves 17% of
 * every one unused -- but resident, and paged in and out with it. Under a
 * budget that is memory the working set loses. Blocks above 4 KiB and up to
 * 16 KiB come instead from classes 128 bytes apart, each carved out of
 * 128 KiB slabs in a sub-range of the region that mimalloc does not know:
 * membership is one comparison, and the slab's record (class, free bitmap)
 * lives in a table of its own, so a free never touches the block's page,
 * which may be in swap. Reuse is last freed, first allocated, as with
 * mimalloc's free lists. A slab whose blocks are all free is kept for reuse,
 * and given back to emm as purge.c gives mimalloc's steps back: at once
 * under pressure (but for the last SLAB_KEEP emptied), else when pressure
 * comes or at emm_heap_collect.
 */

#define SLAB_SHIFT	17
#define SLAB_SIZE	(1UL << SLAB_SHIFT)
#define SLAB_KEEP	8	/* empty slabs kept resident under pressure */
#define DROP_BATCH	8	/* beyond them, dropped together this many at a time */
#define NIL		UINT32_MAX

static size_t class_size(unsigned c)
{
	return MID_MIN + (size_t)c * MID_STEP;
}

/* Blocks of a slab of class c. At 4,224 bytes, 31: a bitmap word holds them. */
static unsigned class_blocks(unsigned c)
{
	return (unsigned)(SLAB_SIZE / class_size(c));
}

static uint64_t all_free(unsigned c)
{
	return (1ULL << class_blocks(c)) - 1;
}

static char *slab_addr(struct slab_pool *sp, uint32_t i)
{
	return sp->base + ((size_t)i << SLAB_SHIFT);
}

int slab_init(struct slab_pool *sp, char *base, size_t len)
{
	size_t n = len >> SLAB_SHIFT;

	memset(sp, 0, sizeof(*sp));
	if (!n)
		return 0;
	sp->slabs = mmap(NULL, n * sizeof(struct slab), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (sp->slabs == MAP_FAILED) {
		sp->slabs = NULL;
		return -ENOMEM;
	}
	sp->base = base;
	sp->len = n << SLAB_SHIFT;
	sp->count = (uint32_t)n;
	sp->resident = sp->dropped = NIL;
	pthread_mutex_init(&sp->lock, NULL);
	for (unsigned c = 0; c <= MID_CLASSES; c++) {
		pthread_mutex_init(&sp->classes[c].lock, NULL);
		sp->classes[c].partial = NIL;
		sp->inv[c] = (uint32_t)(((1ULL << 32) + class_size(c) - 1) / class_size(c));
	}
	return 0;
}

void slab_fini(struct slab_pool *sp)
{
	if (sp->slabs)
		munmap(sp->slabs, (size_t)sp->count * sizeof(struct slab));
	sp->slabs = NULL;
	sp->len = 0;
}

/* A class's partial slabs: a doubly linked list, its class lock held. */
static void partial_add(struct slab_pool *sp, struct slab_class *k, uint32_t i)
{
	struct slab *s = &sp->slabs[i];

	s->prev = NIL;
	s->next = k->partial;
	if (k->partial != NIL)
		sp->slabs[k->partial].prev = i;
	k->partial = i;
}

static void partial_del(struct slab_pool *sp, struct slab_class *k, uint32_t i)
{
	struct slab *s = &sp->slabs[i];

	if (s->prev != NIL)
		sp->slabs[s->prev].next = s->next;
	else
		k->partial = s->next;
	if (s->next != NIL)
		sp->slabs[s->next].prev = s->prev;
}

/* An empty slab for class c, or NIL when the sub-range is used up: the one
 * emptied last first (its pages are likely still resident). */
static uint32_t slab_get(struct slab_pool *sp, unsigned c)
{
	uint32_t i = NIL;

	pthread_mutex_lock(&sp->lock);
	if (sp->resident != NIL) {
		i = sp->resident;
		sp->resident = sp->slabs[i].next;
		sp->nresident--;
	} else if (sp->dropped != NIL) {
		i = sp->dropped;
		sp->dropped = sp->slabs[i].next;
	} else if (sp->bump < sp->count) {
		i = sp->bump++;
	}
	if (i != NIL)
		sp->used++;
	pthread_mutex_unlock(&sp->lock);
	if (i != NIL) {
		sp->slabs[i].cls = (uint16_t)c;
		sp->slabs[i].free = all_free(c);
	}
	return i;
}

static int index_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Out of physmem and swap (zeros when next touched), onto the dropped list:
 * the slabs of a list no one else holds.
 * Why together: each drop is a revoke of the app view, whose TLB flush
 * reaches every CPU the program runs on; neighbours in the region go in
 * one call. Measured in the sqlite3 shell under a 64 MiB budget, closing a
 * 60 MB page cache spent 81 ms dropping its slabs one by one.
 */
static void drop_list(struct emm_heap *h, uint32_t list)
{
	struct slab_pool *sp = &h->slab;

	while (list != NIL) {
		uint32_t ids[64];
		unsigned k = 0;

		for (; list != NIL && k < 64; list = sp->slabs[list].next)
			ids[k++] = list;
		qsort(ids, k, sizeof(ids[0]), index_cmp);
		for (unsigned a = 0, b; a < k; a = b) {
			for (b = a + 1; b < k && ids[b] == ids[b - 1] + 1; b++)
				;
			purge_drop(h, slab_addr(sp, ids[a]), (size_t)(b - a) << SLAB_SHIFT);
		}
		pthread_mutex_lock(&sp->lock);
		for (unsigned j = 0; j < k; j++) {
			sp->slabs[ids[j]].next = sp->dropped;
			sp->dropped = ids[j];
		}
		pthread_mutex_unlock(&sp->lock);
	}
}

/* Give an emptied slab back: kept resident for reuse; under pressure,
 * when DROP_BATCH more than SLAB_KEEP are, those emptied longest ago are
 * dropped together. */
static void slab_put(struct emm_heap *h, uint32_t i)
{
	struct slab_pool *sp = &h->slab;
	bool pressure = purge_pressure(h);
	uint32_t doomed = NIL;

	pthread_mutex_lock(&sp->lock);
	sp->used--;
	sp->slabs[i].next = sp->resident;
	sp->resident = i;
	if (++sp->nresident >= SLAB_KEEP + DROP_BATCH && pressure) {
		uint32_t *tail = &sp->resident;

		for (unsigned k = 0; k < SLAB_KEEP; k++)
			tail = &sp->slabs[*tail].next;
		doomed = *tail;
		*tail = NIL;
		sp->nresident = SLAB_KEEP;
	}
	pthread_mutex_unlock(&sp->lock);
	if (doomed != NIL)
		drop_list(h, doomed);
}

/* A block of class c from the head of its partial list, its lock held;
 * NULL if the list is empty. */
static void *take_block(struct slab_pool *sp, unsigned c)
{
	struct slab_class *k = &sp->classes[c];
	uint32_t i = k->partial;
	struct slab *s;
	unsigned b;

	if (i == NIL)
		return NULL;
	s = &sp->slabs[i];
	b = s->hint && (s->free >> (s->hint - 1) & 1) ? s->hint - 1u : (unsigned)__builtin_ctzll(s->free);
	s->hint = 0;
	s->free &= ~(1ULL << b);
	if (!s->free)
		partial_del(sp, k, i);
	return slab_addr(sp, i) + b * class_size(c);
}

/* A free block of a class above c and at most an eighth larger than n,
 * or NULL. */
static void *take_larger(struct slab_pool *sp, unsigned c, size_t n)
{
	size_t top = (n + n / 8 - MID_MIN) / MID_STEP;
	unsigned last = (unsigned)(top < MID_CLASSES ? top : MID_CLASSES);
	void *p = NULL;

	for (unsigned c2 = c + 1; c2 <= last && !p; c2++) {
		pthread_mutex_lock(&sp->classes[c2].lock);
		p = take_block(sp, c2);
		pthread_mutex_unlock(&sp->classes[c2].lock);
	}
	return p;
}

/*
 * A block of n bytes: from its class's partial slabs; else a free block of
 * a class up to an eighth larger; else from a new slab. Without that step,
 * a program asking for many different sizes would hold a partial slab in
 * each of the classes it uses, memory charged to the budget and paged.
 */
void *slab_alloc(struct emm_heap *h, size_t n)
{
	struct slab_pool *sp = &h->slab;
	unsigned c = (unsigned)((n - MID_MIN + MID_STEP - 1) / MID_STEP);
	struct slab_class *k = &sp->classes[c];
	void *p;
	uint32_t i;

	pthread_mutex_lock(&k->lock);
	p = take_block(sp, c);
	pthread_mutex_unlock(&k->lock);
	if (p || (p = take_larger(sp, c, n)))
		return p;
	pthread_mutex_lock(&k->lock);
	if (k->partial == NIL) {
		i = slab_get(sp, c);
		if (i == NIL) {
			pthread_mutex_unlock(&k->lock);
			return NULL;	/* mimalloc serves it */
		}
		partial_add(sp, k, i);
	}
	p = take_block(sp, c);
	pthread_mutex_unlock(&k->lock);
	return p;
}

/*
 * The slab of a block, and the block's index in it; false for an address
 * that is not the start of a block in use. The index by multiplying with
 * the class's inverse, not dividing: a division was most of what a free
 * of a mid-size block cost beyond its lock. Exact, as the offset in the
 * slab times the class size stays below 2^32 (2^17 * 2^15).
 */
_Static_assert(SLAB_SHIFT + 15 <= 32 && MID_MAX <= 1UL << 15, "block_of's inverse");
static bool block_of(struct slab_pool *sp, const void *p, uint32_t *i, unsigned *b)
{
	size_t off = (size_t)((const char *)p - sp->base);
	const struct slab *s = &sp->slabs[off >> SLAB_SHIFT];
	uint64_t in = off & (SLAB_SIZE - 1), k = in * sp->inv[s->cls] >> 32;

	if (!s->cls || k * class_size(s->cls) != in || k >= class_blocks(s->cls))
		return false;
	*i = (uint32_t)(off >> SLAB_SHIFT);
	*b = (unsigned)k;
	return true;
}

size_t slab_usable(struct slab_pool *sp, const void *p)
{
	uint32_t i;
	unsigned b;

	return block_of(sp, p, &i, &b) ? class_size(sp->slabs[i].cls) : 0;
}

size_t slab_free(struct emm_heap *h, void *p)
{
	struct slab_pool *sp = &h->slab;
	struct slab_class *k;
	struct slab *s;
	uint32_t i;
	unsigned b;
	size_t n;
	bool empty;

	if (!block_of(sp, p, &i, &b))
		return 0;
	s = &sp->slabs[i];
	k = &sp->classes[s->cls];
	n = class_size(s->cls);
	pthread_mutex_lock(&k->lock);
	if (s->free & (1ULL << b)) {
		pthread_mutex_unlock(&k->lock);
		return 0;	/* freed twice: nothing to do */
	}
	/* The slab freed into last is the one allocated from next, the block
	 * freed last first: its page is the likeliest still resident, where a
	 * block whose page went to swap would be read back only to be
	 * overwritten. */
	if (s->free && k->partial != i)
		partial_del(sp, k, i);
	if (!s->free || k->partial != i)
		partial_add(sp, k, i);
	s->free |= 1ULL << b;
	s->hint = (uint8_t)(b + 1);
	empty = s->free == all_free(s->cls);
	if (empty) {
		partial_del(sp, k, i);
		s->cls = 0;
	}
	pthread_mutex_unlock(&k->lock);
	if (empty)
		slab_put(h, i);
	return n;
}

/* Drop every empty slab still resident: pressure came, or a collect. */
void slab_flush(struct emm_heap *h)
{
	struct slab_pool *sp = &h->slab;
	uint32_t list;

	if (!sp->len)
		return;
	pthread_mutex_lock(&sp->lock);
	list = sp->resident;
	sp->resident = NIL;
	sp->nresident = 0;
	pthread_mutex_unlock(&sp->lock);
	drop_list(h, list);
}

uint64_t slab_used_bytes(struct slab_pool *sp)
{
	uint64_t n;

	if (!sp->len)
		return 0;
	pthread_mutex_lock(&sp->lock);
	n = (uint64_t)sp->used << SLAB_SHIFT;
	pthread_mutex_unlock(&sp->lock);
	return n;
}
