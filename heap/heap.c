/* SPDX-License-Identifier: MIT */
/* libemm-heap: mimalloc heaps whose one arena is an emm region. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#include "internal.h"

/*
 * The region is reserved aligned to mimalloc's segment size, mapped as one
 * anonymous VMA, and given to mimalloc as an exclusive arena declared not
 * committed: mimalloc then commits before use and decommits what it frees,
 * through the calls hook.c routes to emm. A mimalloc heap belongs to one
 * thread, so each thread gets its own heap in the arena, made on its first
 * allocation; mimalloc frees a block from any thread.
 */

/* Owner thread only: no atomic read-modify-write on the fast path. */
static void count(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* The key's destructor: mimalloc deletes the thread's heaps itself when the
 * thread ends (its live blocks stay in the arena, freeable from anywhere). */
static void thread_gone(void *arg)
{
	struct heap_thread *t = arg;

	t->mh = NULL;
}

static struct heap_thread *thread_new(struct emm_heap *h)
{
	struct heap_thread *t = mi_calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	pthread_mutex_lock(&h->lock);
	t->next = h->threads;
	h->threads = t;
	pthread_mutex_unlock(&h->lock);
	pthread_setspecific(h->key, t);
	return t;
}

/*
 * The calling thread's record in the heap it used last. A thread mostly
 * keeps to one heap, and pthread_getspecific, with its call and branches,
 * was a fifth of what a small malloc and free cost on top of mimalloc's.
 * Known by the heap's serial, never reused: a heap destroyed and another
 * made at its address cannot be taken for it. Initial-exec, as the
 * preload's own: reading it never allocates.
 */
static _Atomic uint64_t serials;
static __thread struct {
	uint64_t serial;
	struct heap_thread *t;
} last __attribute__((tls_model("initial-exec")));

/* this_thread's way when the last heap was another, or the first use. */
static __attribute__((noinline)) struct heap_thread *thread_find(struct emm_heap *h,
								 bool with_heap)
{
	struct heap_thread *t = pthread_getspecific(h->key);

	if (!t && !(t = thread_new(h))) {
		errno = ENOMEM;
		return NULL;
	}
	if (with_heap && !t->mh) {
		t->mh = mi_heap_new_in_arena(h->arena);
		if (!t->mh) {
			errno = ENOMEM;
			return NULL;
		}
	}
	last.serial = h->serial;
	last.t = t;
	return t;
}

/* The calling thread's record, made on first use; with_heap: its mimalloc
 * heap too. NULL with errno set. */
static inline struct heap_thread *this_thread(struct emm_heap *h, bool with_heap)
{
	if (__builtin_expect(last.serial == h->serial, 1) && (!with_heap || last.t->mh))
		return last.t;
	return thread_find(h, with_heap);
}

static bool heap_ok(struct emm_heap *h)
{
	if (h && !atomic_load_explicit(&h->dead, memory_order_relaxed))
		return true;
	errno = EINVAL;
	return false;
}

/* A block's usable size, whichever layer holds it. */
static size_t block_size(struct emm_heap *h, const void *p)
{
	return slab_owns(&h->slab, p) ? slab_usable(&h->slab, p) : mi_usable_size(p);
}

static void *counted(struct emm_heap *h, struct heap_thread *t, void *p)
{
	if (!p)
		errno = ENOMEM;
	else
		count(&t->allocated, block_size(h, p));
	return p;
}

/* Mid-size requests go to slab.c, the rest (or all, once its sub-range is
 * full) to mimalloc; large blocks start on a page, so that a realloc can
 * move their pages (realloc_move). */
static void *alloc(struct emm_heap *h, struct heap_thread *t, size_t n)
{
	void *p = slab_fits(&h->slab, n) ? slab_alloc(h, n) : NULL;

	if (p)
		return p;
	return n >= MOVE_MIN ? mi_heap_malloc_aligned(t->mh, n, OS_PAGE) : mi_heap_malloc(t->mh, n);
}

EMM_API void *emm_heap_malloc(struct emm_heap *h, size_t n)
{
	struct heap_thread *t = heap_ok(h) ? this_thread(h, true) : NULL;

	return t ? counted(h, t, alloc(h, t, n)) : NULL;
}

EMM_API void *emm_heap_calloc(struct emm_heap *h, size_t n, size_t size)
{
	struct heap_thread *t = heap_ok(h) ? this_thread(h, true) : NULL;
	size_t total;
	void *p;

	if (!t)
		return NULL;
	if (__builtin_mul_overflow(n, size, &total) || !slab_fits(&h->slab, total))
		return counted(h, t, mi_heap_calloc(t->mh, n, size));
	p = alloc(h, t, total);
	if (p)
		memset(p, 0, total);
	return counted(h, t, p);
}

EMM_API void *emm_heap_aligned_alloc(struct emm_heap *h, size_t align, size_t n)
{
	struct heap_thread *t = heap_ok(h) ? this_thread(h, true) : NULL;

	if (t && (!align || (align & (align - 1)))) {
		errno = EINVAL;
		return NULL;
	}
	if (!t)
		return NULL;
	/* Mid-size blocks are MID_STEP-aligned: slabs are, and so are sizes. */
	return counted(h, t, align <= MID_STEP ? alloc(h, t, n) :
			     mi_heap_malloc_aligned(t->mh, n, align));
}

static bool in_heap(struct emm_heap *h, const void *p)
{
	return (const char *)p >= h->base && (const char *)p < h->base + h->len;
}

/*
 * mimalloc keeps a freed block in its page until the whole page is free,
 * and decommits an empty page only later (decommit_delay): dead data would
 * be swapped out and in. So the whole OS pages inside a large block go back
 * to emm as it is freed -- all but the first, where mimalloc writes its
 * free-list link. Before mi_free: after it, another thread may reuse it.
 * Only under pressure (see purge.c): otherwise the drop and the faults when
 * the block is reused cost more than the memory is worth.
 */
static void drop_inside(struct emm_heap *h, void *p, size_t n)
{
	uintptr_t lo = ((uintptr_t)p + 2 * sizeof(void *) + OS_PAGE - 1) & ~(OS_PAGE - 1);

	if ((uintptr_t)p + n > lo)
		purge_drop(h, (void *)lo, (uintptr_t)p + n - lo);
}

/* Give a block of n usable bytes back to whichever layer holds it. */
static void release(struct emm_heap *h, void *p, size_t n)
{
	if (slab_owns(&h->slab, p)) {
		slab_free(h, p);
		return;
	}
	if (n >= DROP_MIN && purge_pressure(h))
		drop_inside(h, p, n);
	mi_free(p);
}

EMM_API void emm_heap_free(struct emm_heap *h, void *p)
{
	struct heap_thread *t;
	size_t n;

	if (!p || !h || !in_heap(h, p))
		return;
	t = this_thread(h, false);
	if (slab_owns(&h->slab, p)) {
		n = slab_free(h, p);	/* finds the size as it frees */
	} else {
		n = mi_usable_size(p);
		release(h, p, n);
	}
	if (t)
		count(&t->freed, n);
}

/* Into a block of the other layer, or of another mid-size class: by copying. */
static void *realloc_copy(struct emm_heap *h, struct heap_thread *t, void *p, size_t old,
			  size_t n)
{
	void *q = alloc(h, t, n);

	if (q) {
		memcpy(q, p, old < n ? old : n);
		release(h, p, old);
	}
	return q;
}

/*
 * A large block grown under pressure: much of it is likely in swap, and a
 * copy would read each such page back only to write it out again from the
 * new block. emm_move hands the swapped pages to the new block by their
 * PTEs instead, and copies the resident ones; the tail that is not a whole
 * page is copied here. NULL if the block cannot be moved so (not on a page:
 * allocated before it was large), and the caller copies.
 */
static void *realloc_move(struct emm_heap *h, struct heap_thread *t, void *p, size_t old,
			  size_t n)
{
	size_t whole = old & ~(OS_PAGE - 1);
	void *q;

	if ((uintptr_t)p % OS_PAGE || !purge_pressure(h))
		return NULL;
	q = alloc(h, t, n);
	if (!q)
		return NULL;
	if (emm_move(h->mm, q, p, whole)) {
		release(h, q, n);
		return NULL;
	}
	memcpy((char *)q + whole, (char *)p + whole, old - whole);
	release(h, p, old);
	return q;
}

EMM_API void *emm_heap_realloc(struct emm_heap *h, void *p, size_t n)
{
	struct heap_thread *t;
	size_t old;
	void *q;

	if (!p)
		return emm_heap_malloc(h, n);
	if (!heap_ok(h) || !in_heap(h, p)) {
		errno = EINVAL;
		return NULL;
	}
	t = this_thread(h, true);
	if (!t)
		return NULL;
	old = block_size(h, p);
	if (slab_owns(&h->slab, p) && n <= old && n > old - MID_STEP)
		return p;	/* the same class */
	if (slab_owns(&h->slab, p) || slab_fits(&h->slab, n) || (n >= MOVE_MIN && n > old)) {
		/* Grown large blocks come from alloc, on a page. */
		q = !slab_owns(&h->slab, p) && old >= MOVE_MIN && n > old ?
			    realloc_move(h, t, p, old, n) : NULL;
		if (!q)
			q = realloc_copy(h, t, p, old, n);
	} else {
		q = mi_heap_realloc(t->mh, p, n);
	}
	if (!q) {
		errno = ENOMEM;
		return NULL;
	}
	count(&t->freed, old);
	count(&t->allocated, block_size(h, q));
	return q;
}

EMM_API size_t emm_heap_usable_size(struct emm_heap *h, const void *p)
{
	return p && h && in_heap(h, p) ? block_size(h, p) : 0;
}

EMM_API int emm_heap_collect(struct emm_heap *h, int force)
{
	struct heap_thread *t;

	if (!h || atomic_load(&h->dead))
		return -EINVAL;
	t = pthread_getspecific(h->key);
	if (t && t->mh)
		mi_heap_collect(t->mh, force != 0);
	/* The thread's backing heap frees abandoned segments and decommits
	 * the segment cache, both of which hold arena blocks. */
	mi_collect(force != 0);
	purge_flush(h);
	return 0;
}

/* sz first, as every emm struct; bytes past what this version knows are 0. */
static int opts_ok(const void *o, size_t sz, size_t known)
{
	if (sz < sizeof(size_t))
		return 0;
	for (size_t i = known; i < sz; i++)
		if (((const unsigned char *)o)[i])
			return 0;
	return 1;
}

#define SLAB_ALIGN (2UL << 20)	/* emm's huge-page extents */

/* mimalloc's arena, then (unless EMM_HEAP_SLABS=0) half as much again for
 * the mid-size slabs: address space only, and a full sub-range only sends
 * mid-size requests back to mimalloc. */
static size_t slab_len(size_t arena_len)
{
	const char *v = getenv("EMM_HEAP_SLABS");

	if (v && !strcmp(v, "0"))
		return 0;
	return (arena_len / 2 + SLAB_ALIGN - 1) & ~(SLAB_ALIGN - 1);
}

static int region_map(struct emm_heap *h, size_t arena_len)
{
	size_t len = arena_len + slab_len(arena_len);
	EMM_OPTS(emm_reserve_opts, ro, .align = SEGMENT_SIZE);
	void *base;
	int err = emm_reserve_ex(h->mm, len, &ro, &base);

	if (err)
		return err;
	err = emm_map(h->mm, base, len, NULL);
	if (err) {
		emm_release(h->mm, base);
		return err;
	}
	h->base = base;
	h->len = len;
	h->arena_len = arena_len;
	err = slab_init(&h->slab, h->base + arena_len, len - arena_len);
	if (err) {
		emm_release(h->mm, base);
		return err;
	}
	h->committed_len = ((arena_len >> COMMIT_SHIFT) + 63) / 64 * sizeof(uint64_t);
	h->committed = mmap(NULL, 2 * h->committed_len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (h->committed == MAP_FAILED) {
		h->committed = NULL;
		slab_fini(&h->slab);
		emm_release(h->mm, base);
		return -ENOMEM;
	}
	h->pending = (_Atomic uint64_t *)((char *)h->committed + h->committed_len);
	return 0;
}

static void region_unmap(struct emm_heap *h)
{
	emm_release(h->mm, h->base);
	munmap((void *)h->committed, 2 * h->committed_len);
	slab_fini(&h->slab);
}

/* Was mimalloc's option name set in the environment? mimalloc reads
 * MIMALLOC_<name> in any case of letters, as this does. */
static bool option_in_env(const char *name)
{
	extern char **environ;
	size_t n = strlen(name);

	for (char **e = environ; e && *e; e++)
		if (!strncasecmp(*e, "MIMALLOC_", 9) && !strncasecmp(*e + 9, name, n) &&
		    (*e)[9 + n] == '=')
			return true;
	return false;
}

/* Set a mimalloc option (named as in MIMALLOC_<name>) unless the
 * environment does. */
static void option_default(mi_option_t option, const char *name, long value)
{
	if (!option_in_env(name))
		mi_option_set(option, value);
}

static int arena_add(struct emm_heap *h)
{
	/* Without the hook, mimalloc must believe the region committed, or
	 * its mprotect would open pages emm has not mapped; freed memory
	 * then never goes back. */
	bool hooked = hook_install() == 0;
	int err = hook_add(h);

	if (err)
		return err;
	if (!hooked)
		memset((void *)h->committed, 0xff, h->committed_len);
	/* A thread that ends leaves its heap's free pages in segments no
	 * thread owns until another takes them over, kept committed by
	 * default: under a budget, dead data that goes to swap and comes back
	 * when reused. Decommitted when abandoned, they reach purge.c (kept
	 * while the budget has room, dropped under pressure). Python with 16
	 * threads at a time, 5 rounds, malloc on the preload under 24 MiB:
	 * see emm_heap_create(3). Process-wide, as every mimalloc option. */
	if (hooked)
		option_default(mi_option_abandoned_page_decommit, "abandoned_page_decommit", 1);
	if (!mi_manage_os_memory_ex(h->base, h->arena_len, !hooked, false, true, -1, true, &h->arena)) {
		hook_remove(h);
		return -ENOMEM;
	}
	return 0;
}

EMM_API int emm_heap_create(struct emm *mm, size_t len, const struct emm_heap_opts *opts,
			    struct emm_heap **hp)
{
	struct emm_heap *h;
	int err;

	if (!mm || !hp || !len || len > (1ULL << 46) ||
	    (opts && !opts_ok(opts, opts->sz, sizeof(*opts))))
		return -EINVAL;
	h = mi_calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->mm = mm;
	/* Relaxed: only uniqueness matters. */
	h->serial = atomic_fetch_add_explicit(&serials, 1, memory_order_relaxed) + 1;
	pthread_mutex_init(&h->purge_lock, NULL);
	err = region_map(h, (len + SEGMENT_SIZE - 1) & ~(SEGMENT_SIZE - 1));
	if (!err && (err = arena_add(h)))
		region_unmap(h);
	if (!err && (err = -pthread_key_create(&h->key, thread_gone))) {
		hook_remove(h);
		region_unmap(h);
	}
	if (err) {
		mi_free(h);
		return err;
	}
	pthread_mutex_init(&h->lock, NULL);
	*hp = h;
	return 0;
}

/* Whether a thread other than the caller still has a heap in h. */
static bool others_active(struct emm_heap *h, struct heap_thread *self)
{
	for (struct heap_thread *t = h->threads; t; t = t->next)
		if (t != self && t->mh)
			return true;
	return false;
}

EMM_API int emm_heap_destroy(struct emm_heap *h)
{
	struct heap_thread *self;

	if (!h || atomic_load(&h->dead))
		return -EINVAL;
	self = pthread_getspecific(h->key);
	pthread_mutex_lock(&h->lock);
	if (others_active(h, self)) {
		pthread_mutex_unlock(&h->lock);
		return -EBUSY;
	}
	pthread_mutex_unlock(&h->lock);
	if (self && self->mh) {
		mi_heap_destroy(self->mh);
		self->mh = NULL;
	}
	/* Free what threads that ended left empty, decommit cached segments. */
	mi_collect(true);
	if (purge_committed_bytes(h)) {
		/* A segment still holds blocks of a thread that ended: mimalloc
		 * keeps it on its abandoned list, so its memory must stay. */
		return -EBUSY;
	}
	atomic_store(&h->dead, true);
	last.serial = 0;
	pthread_setspecific(h->key, NULL);
	pthread_key_delete(h->key);
	hook_remove(h);
	region_unmap(h);
	while (h->threads) {
		struct heap_thread *t = h->threads;

		h->threads = t->next;
		mi_free(t);
	}
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->purge_lock);
	mi_free(h);
	return 0;
}

EMM_API int emm_heap_stats(struct emm_heap *h, struct emm_heap_stats *st)
{
	struct emm_heap_stats s = { .sz = sizeof(s) };
	EMM_OPTS(emm_stats, es);
	int64_t live = 0;
	size_t sz;
	int err;

	if (!h || !st || st->sz < sizeof(size_t))
		return -EINVAL;
	pthread_mutex_lock(&h->lock);
	for (struct heap_thread *t = h->threads; t; t = t->next)
		live += (int64_t)(atomic_load_explicit(&t->allocated, memory_order_relaxed) -
				  atomic_load_explicit(&t->freed, memory_order_relaxed));
	pthread_mutex_unlock(&h->lock);
	s.allocated_bytes = live > 0 ? (uint64_t)live : 0;
	s.region_used_bytes = purge_committed_bytes(h) + slab_used_bytes(&h->slab);
	err = emm_stats(h->mm, &es);
	if (err)
		return err;
	s.resident_bytes = es.resident_bytes;
	s.swapped_bytes = es.swap_used_bytes;
	sz = st->sz < sizeof(s) ? st->sz : sizeof(s);
	memcpy(st, &s, sz);
	st->sz = sz;
	return 0;
}
