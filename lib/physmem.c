/* SPDX-License-Identifier: MIT */
/* Physmem and reservations: the memfd, the app and alias views, the registry. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "debug.h"
#include "backend.h"
#include "physmem.h"
#include "pte.h"
#include "srcu.h"
#include "util.h"
#include "vma.h"

/* At most 16 TiB of physmem per instance: frames name pages in 32 bits. */
#define PHYSMEM_MAX	(1ULL << (32 + PAGE_SHIFT))

/* The process-wide registry of reservations, sorted by address. */
struct rsv_table {
	size_t nr;
	struct rsv *r[];
};
static struct rsv_table *_Atomic registry;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
/* The registry's own read side: a lookup holds it only until it is inside
 * the instance's (rsv_enter), so no instance's writer waits for another's
 * fault. */
static struct emm_srcu registry_srcu;

/* Async-signal-safe. Called inside the registry's read section (rsv_enter). */
static struct rsv *rsv_lookup(uintptr_t addr)
{
	/* Acquire: the table's contents were written before it was published. */
	struct rsv_table *t = atomic_load_explicit(&registry, memory_order_acquire);
	size_t lo = 0, hi = t ? t->nr : 0;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		struct rsv *r = t->r[mid];

		if (addr < r->start)
			hi = mid;
		else if (addr >= r->start + r->len)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

/*
 * Async-signal-safe. The reservation holding addr, with its instance's read
 * section entered (*idx for rsv_leave): r, its VMA table and what the table
 * points to stay valid until rsv_leave. The instance's section is entered
 * before the registry's is left, so a reservation being released, which
 * waits for both in turn (rsv_unregister), is not freed in between. NULL,
 * with no section held, when no reservation holds addr.
 */
struct rsv *rsv_enter(uintptr_t addr, int *idx)
{
	int ridx = srcu_read_lock(&registry_srcu);
	struct rsv *r = rsv_lookup(addr);

	if (r)
		*idx = srcu_read_lock(&r->mm->srcu);
	srcu_read_unlock(&registry_srcu, ridx);
	return r;
}

/* Publish a copy of the registry with r added (add) or removed. */
static int registry_update(struct rsv *r, bool add)
{
	struct rsv_table *old, *t;
	size_t n, j = 0;

	pthread_mutex_lock(&registry_lock);
	old = atomic_load_explicit(&registry, memory_order_relaxed);
	n = old ? old->nr : 0;
	t = malloc(sizeof(*t) + (n + 1) * sizeof(t->r[0]));
	if (!t) {
		pthread_mutex_unlock(&registry_lock);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (add && j == i && old->r[i]->start > r->start)
			t->r[j++] = r;
		if (old->r[i] != r)
			t->r[j++] = old->r[i];
	}
	if (add && j == n)
		t->r[j++] = r;
	t->nr = j;
	/* Release: readers that see the pointer see the entries. */
	atomic_store_explicit(&registry, t, memory_order_release);
	synchronize_srcu(&registry_srcu);
	free(old);
	pthread_mutex_unlock(&registry_lock);
	return 0;
}

/*
 * In a forked child (its only thread): take out of the registry, and
 * return, a reservation of an instance the parent opened that a fork
 * copies (fork.c), or NULL when none is left. The table is the child's
 * own copy and no one else reads it: it is changed in place, as
 * registry_update could not (its grace period would wait for readers that
 * stayed behind in the parent).
 */
struct rsv *registry_pop_foreign(void)
{
	struct rsv_table *t = atomic_load_explicit(&registry, memory_order_relaxed);

	for (size_t i = 0; t && i < t->nr; i++) {
		struct rsv *r = t->r[i];

		if (!mm_foreign(r->mm) || (r->mm->cfg.flags & EMM_OPEN_NO_FORK_COPY))
			continue;
		memmove(&t->r[i], &t->r[i + 1], (t->nr - i - 1) * sizeof(t->r[0]));
		t->nr--;
		return r;
	}
	return NULL;
}

/*
 * The extents' array mapped now, over the zero page (no memory): a forked
 * child walks every extent to find the pages it copies (fork.c), and each
 * page of the array the parent never touched would cost it a fault there,
 * a millisecond for a 64 GiB reservation on a machine with costly faults.
 * Only for arrays up to EXT_POPULATE_MAX: page tables cost memory too.
 */
#define EXT_POPULATE_MAX	(1UL << 20)	/* the extents of 256 GiB */

static void ext_populate(struct rsv *r)
{
	uintptr_t s = ALIGN_DOWN((uintptr_t)r->ext, PAGE_SIZE);
	uintptr_t e = ALIGN_UP((uintptr_t)(r->ext + (r->len >> PMD_SHIFT)), PAGE_SIZE);

	if (e > s && e - s <= EXT_POPULATE_MAX)
		madvise((void *)s, e - s, MADV_POPULATE_READ);
}

static int rsv_map_views(struct emm *mm, struct rsv *r)
{
	size_t npages = r->len >> PAGE_SHIFT;
	char *meta;
	int err;

	r->alias = mmap_aligned(r->len, PMD_SIZE, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_NORESERVE, mm->memfd, (off_t)r->pgoff);
	if (!r->alias)
		return -errno;
	madvise(r->alias, r->len, MADV_DONTDUMP);
	err = mm->backend->view_create(r);
	if (err)
		return err;
	/* A forked child gets neither view: see mm_foreign. */
	madvise(r->alias, r->len, MADV_DONTFORK);
	madvise((void *)r->start, r->len, MADV_DONTFORK);
	r->meta_len = ALIGN_UP(npages * sizeof(uint64_t) +
			       (r->len >> PMD_SHIFT) * sizeof(struct extent), PAGE_SIZE);
	meta = mmap(NULL, r->meta_len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (meta == MAP_FAILED)
		return -errno;
	r->pte = (_Atomic uint64_t *)meta;
	r->ext = (struct extent *)(meta + npages * sizeof(uint64_t));
	ext_populate(r);
	return 0;
}

static void rsv_unmap_views(struct rsv *r)
{
	r->mm->backend->view_destroy(r);
	if (r->alias)
		munmap(r->alias, r->len);
	if (r->pte)
		munmap((void *)r->pte, r->meta_len);
}

/* The instance's physmem grows by len; writers hold mm->lock. */
static int physmem_grow(struct emm *mm, size_t len, uint64_t *pgoff)
{
	if (mm->phys_end + len > PHYSMEM_MAX || mm->phys_end + len < len)
		return -ENOMEM;
	if (ftruncate(mm->memfd, (off_t)(mm->phys_end + len)) < 0)
		return errno == EFBIG ? -ENOMEM : -errno;
	*pgoff = mm->phys_end;
	mm->phys_end += len;
	return 0;
}

/* align: the app view's, a power of two, PMD_SIZE or more. */
int rsv_create(struct emm *mm, size_t len, size_t align, struct rsv **rp)
{
	struct rsv *r;
	int err;

	DEBUG_NOT_IN_HANDLER();
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->mm = mm;
	r->len = ALIGN_UP(len, PMD_SIZE);
	r->align = align;
	err = physmem_grow(mm, r->len, &r->pgoff);
	if (!err)
		err = rsv_map_views(mm, r);
	if (!err)
		err = registry_update(r, true);
	if (err) {
		rsv_unmap_views(r);
		free(r);
		return err;
	}
	kvma_global_add(2);	/* the alias view and the PTEs */
	*rp = r;
	return 0;
}

/* Take r out of the registry and wait for faults in it to end: lookups
 * that may have found it, then the instance's readers (rsv_enter). */
void rsv_unregister(struct rsv *r)
{
	registry_update(r, false);
	synchronize_srcu(&r->mm->srcu);
}

/* Unmap r and free it: out of the registry, its pages dropped (zap_range). */
void rsv_destroy(struct rsv *r)
{
	kvma_global_add(-2);
	rsv_unmap_views(r);
	vma_table_free(r);
	free(r);
}

/* Async-signal-safe. The reservation holding physmem page ppn; inside
 * mm->srcu's read section (the list is changed under mm->lock, and a
 * reservation is freed only after synchronize_srcu(&mm->srcu)). */
struct rsv *rsv_of_ppn(struct emm *mm, uint32_t ppn)
{
	uint64_t off = (uint64_t)ppn << PAGE_SHIFT;

	for (struct rsv *r = __atomic_load_n(&mm->rsvs, __ATOMIC_ACQUIRE); r;
	     r = __atomic_load_n(&r->next, __ATOMIC_ACQUIRE))
		if (off >= r->pgoff && off - r->pgoff < r->len)
			return r;
	return NULL;
}

/* Writers hold mm->lock. */
int rsv_find_range(struct emm *mm, uintptr_t addr, size_t len, struct rsv **rp)
{
	for (struct rsv *r = mm->rsvs; r; r = r->next) {
		if (addr >= r->start && addr - r->start < r->len) {
			if (len > r->len - (addr - r->start))
				return -ENOMEM;
			*rp = r;
			return 0;
		}
	}
	return -ENOMEM;
}

/* Async-signal-safe. Give the holes of a range of physmem zeroed pages. */
int physmem_fill(struct rsv *r, uintptr_t addr, size_t len)
{
	if (fallocate(r->mm->memfd, 0, (off_t)(r->pgoff + (addr - r->start)), (off_t)len) < 0)
		return -errno;
	return 0;
}

/* Async-signal-safe. Does physmem hold a page at addr (not a hole)? */
bool physmem_has_page(struct rsv *r, uintptr_t addr)
{
	off_t off = (off_t)(r->pgoff + (addr - r->start));

	return lseek(r->mm->memfd, off, SEEK_DATA) == off;
}

/* Async-signal-safe. Give a range of physmem back to the system; through
 * the fork gate, as a forked child may be copying it. */
int physmem_punch(struct rsv *r, uintptr_t addr, size_t len)
{
	int err = 0;

	fork_gate_enter();
	if (fallocate(r->mm->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(r->pgoff + (addr - r->start)), (off_t)len) < 0)
		err = -errno;
	fork_gate_leave();
	return err;
}

/*
 * Holes (pages with no physmem) one punch may cross, in all, to take in
 * the next page: each costs a lock and an unlock, a punch of its own a
 * system call and a TLB flush. Pages scattered by random writes, then
 * paged out (a quarter of 1 GiB dirty in a 2 GiB region, its 512 MiB
 * budget full, uffd-sigbus, EMM_ADV_PAGEOUT) made a punch each, and 47%
 * of the time went in fallocate: crossing, 0.47 to 0.52 s against 0.62 to
 * 0.94 (three alternating pairs).
 */
#define PUNCH_HOLES	64

/* Async-signal-safe. May a punch that ends at s go on to the page at e,
 * across the holes [s, e) (locked now, counted in *holes)? */
static bool punch_across(struct rsv *r, uintptr_t s, uintptr_t e, unsigned *holes)
{
	unsigned n = (unsigned)((e - s) >> PAGE_SHIFT);

	if (*holes + n > PUNCH_HOLES || !trylock_holes(r, s, e))
		return false;
	*holes += n;
	return true;
}

/* Async-signal-safe. Free the physmem of the n locked pages of r at addr[]
 * (in address order), in ranges that cross what holes they can. */
void physmem_punch_pages(struct rsv *r, const uintptr_t *addr, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned j = i, holes = 0;

		while (j + 1 < n && punch_across(r, addr[j] + PAGE_SIZE, addr[j + 1], &holes))
			j++;
		physmem_punch(r, addr[i], addr[j] + PAGE_SIZE - addr[i]);
		for (; i < j; i++)
			unlock_untouched(r, addr[i] + PAGE_SIZE, addr[i + 1]);
	}
}

/* mm->lock held. Map r's app view: r->len bytes of physmem from r->pgoff,
 * aligned to r->align, no access yet; one kernel VMA. For the backends'
 * view_create. */
int physmem_map_app_view(struct rsv *r)
{
	void *app = mmap_aligned(r->len, r->align, PROT_NONE, MAP_SHARED | MAP_NORESERVE,
				 r->mm->memfd, (off_t)r->pgoff);

	if (!app)
		return -errno;
	r->start = (uintptr_t)app;
	kvma_add(r, 1);
	return 0;
}
