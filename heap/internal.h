/* SPDX-License-Identifier: MIT */
/* The heap companion's private header: regions, per-thread heaps, the OS hook. */
#ifndef EMM_HEAP_INTERNAL_H
#define EMM_HEAP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <mimalloc.h>

#include "emm.h"
#include "emm-heap.h"

#define HEAP_INTERNAL __attribute__((visibility("hidden")))

/* mimalloc 2.0.9 hands out its arena in 32 MiB segments: the region starts
 * on such a boundary and is a whole number of them. */
#define SEGMENT_SIZE	(32UL << 20)
#define COMMIT_SHIFT	16		/* mimalloc commits in 64 KiB steps */
#define OS_PAGE		4096UL
#define DROP_MIN	(32UL << 10)	/* a freed block this large gives its pages back */
#define MOVE_MIN	(256UL << 10)	/* a block this large grows by emm_move (heap.c) */

/* Mid-size blocks (slab.c): above MID_MIN, up to MID_MAX, MID_STEP apart. */
#define MID_MIN		4096UL
#define MID_MAX		16384UL
#define MID_STEP	128UL
#define MID_CLASSES	((MID_MAX - MID_MIN) / MID_STEP)

struct slab {
	uint64_t free;			/* one bit per free block */
	uint32_t next, prev;		/* on a class's partial list or a pool list */
	uint16_t cls;			/* 0: empty, not carved */
	uint8_t hint;			/* 1 + the block freed last, reused first; 0: none */
};

struct slab_class {
	pthread_mutex_t lock;		/* its slabs' records, the partial list */
	uint32_t partial;		/* slabs with blocks both used and free */
};

struct slab_pool {
	char *base;
	size_t len;			/* 0: no mid-size classes */
	struct slab *slabs;		/* one record per slab */
	uint32_t count, bump;		/* slabs in all; never used from bump on */
	pthread_mutex_t lock;		/* the lists below, used, nresident */
	uint32_t resident, dropped;	/* empty slabs, resident or given back */
	uint32_t used, nresident;
	struct slab_class classes[MID_CLASSES + 1];	/* 1 to MID_CLASSES */
	uint32_t inv[MID_CLASSES + 1];	/* 2^32 / each class's size, rounded up */
};

/* What one thread allocated and freed through one heap. */
struct heap_thread {
	mi_heap_t *mh;			/* NULL once the thread exited */
	_Atomic uint64_t allocated, freed;	/* bytes; written by the owner only */
	struct heap_thread *next;
};

struct emm_heap {
	struct emm *mm;
	char *base;
	size_t len;			/* mimalloc's arena, then the slabs */
	size_t arena_len;
	mi_arena_id_t arena;
	pthread_key_t key;
	uint64_t serial;		/* never the same for two heaps (this_thread) */
	pthread_mutex_t lock;		/* the threads list */
	struct heap_thread *threads;
	_Atomic uint64_t *committed;	/* one bit per 64 KiB mimalloc committed */
	_Atomic uint64_t *pending;	/* one bit per 64 KiB decommitted, not yet dropped */
	size_t committed_len;		/* bytes of each bitmap */
	pthread_mutex_t purge_lock;	/* pending: drops against recommits */
	_Atomic long checked_ms;	/* when pressure was last looked at */
	_Atomic bool pressure;		/* resident is half the limit or more, or swap in use */
	_Atomic bool dead;
	struct slab_pool slab;
};

/* hook.c: mimalloc's own madvise, mprotect and mmap on a region go to emm. */
HEAP_INTERNAL int hook_install(void);
HEAP_INTERNAL int hook_add(struct emm_heap *h);
HEAP_INTERNAL void hook_remove(struct emm_heap *h);

/* purge.c: what mimalloc commits and decommits, and when emm gets it back. */
HEAP_INTERNAL int purge_decommit(struct emm_heap *h, void *p, size_t len);
HEAP_INTERNAL int purge_reset(struct emm_heap *h, void *p, size_t len);
HEAP_INTERNAL void purge_commit(struct emm_heap *h, void *p, size_t len);
HEAP_INTERNAL void purge_flush(struct emm_heap *h);
HEAP_INTERNAL bool purge_pressure(struct emm_heap *h);
HEAP_INTERNAL int purge_drop(struct emm_heap *h, void *p, size_t len);
HEAP_INTERNAL uint64_t purge_committed_bytes(struct emm_heap *h);

/* slab.c: mid-size blocks. slab_alloc returns NULL when its sub-range is
 * full; slab_usable, and slab_free (the size of the block it freed), 0 for
 * an address that is not a block in use. */
HEAP_INTERNAL int slab_init(struct slab_pool *sp, char *base, size_t len);
HEAP_INTERNAL void slab_fini(struct slab_pool *sp);
HEAP_INTERNAL void *slab_alloc(struct emm_heap *h, size_t n);
HEAP_INTERNAL size_t slab_free(struct emm_heap *h, void *p);
HEAP_INTERNAL size_t slab_usable(struct slab_pool *sp, const void *p);
HEAP_INTERNAL void slab_flush(struct emm_heap *h);
HEAP_INTERNAL uint64_t slab_used_bytes(struct slab_pool *sp);

static inline bool slab_owns(const struct slab_pool *sp, const void *p)
{
	return (uintptr_t)p - (uintptr_t)sp->base < sp->len;
}

static inline bool slab_fits(const struct slab_pool *sp, size_t n)
{
	return sp->len && n > MID_MIN && n <= MID_MAX;
}

/* hook.c: the heap whose region holds p, or NULL. */
HEAP_INTERNAL struct emm_heap *heap_of(const void *p);

#endif
