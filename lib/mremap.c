/* SPDX-License-Identifier: MIT */
/* emm_move: a range's contents to another range, swapped pages by their PTEs alone. */
#include <errno.h>
#include <string.h>

#include "fault.h"
#include "huge_memory.h"
#include "internal.h"
#include "memory.h"
#include "physmem.h"
#include "range.h"
#include "util.h"
#include "vma.h"

/*
 * Why: a program that grows a buffer (realloc, a string builder, a vector)
 * copies it; under a budget most of the old buffer is in swap, so the copy
 * reads every page back and the new buffer is written out again: two I/Os
 * a page for data that does not change. As the kernel's mremap moves page
 * tables, emm_move gives each swapped page's slot to the destination's PTE
 * -- no I/O, no fault. Resident pages are copied (physmem is addressed by
 * the app view's address, so a resident page cannot change address without
 * a copy), then the source is dropped, as EMM_ADV_DONTNEED drops it.
 *
 * A chunk of MOVE_CHUNK at a time: under mm->lock with signals blocked, the
 * destination is dropped and the source's swapped pages handed over; then,
 * with the lock released, the source's resident pages are copied through
 * the app view (their faults are ordinary faults); then the source chunk
 * is dropped.
 */

#define MOVE_CHUNK	PMD_SIZE
#define CHUNK_PAGES	(MOVE_CHUNK >> PAGE_SHIFT)

struct move {
	uintptr_t src, dst;		/* this chunk */
	size_t len;
	uint64_t copy[CHUNK_PAGES / 64];	/* source pages left to copy */
	unsigned long moved;
};

/* Anonymous memory only: a FILE or PAGER page has a home of its own. */
static int move_vma_ok(struct rsv *r, const struct emm_vma *v, void *arg)
{
	(void)r;
	if (vma_backed(v))
		return -EINVAL;
	return vma_access_error(v, *(int *)arg) ? -EACCES : 0;
}

static int check(struct rsv *r, uintptr_t s, uintptr_t e, int access)
{
	if (!range_covered(r, s, e))
		return -ENOMEM;
	return walk_vmas(r, s, e, move_vma_ok, &access);
}

/* Async-signal-safe. Lock two PTEs in address order, as every multi-page
 * locker does. */
static void lock_pair(_Atomic uint64_t *a, _Atomic uint64_t *b)
{
	if ((uintptr_t)a > (uintptr_t)b) {
		_Atomic uint64_t *t = a;

		a = b;
		b = t;
	}
	pte_lock(a);
	pte_lock(b);
}

/* Async-signal-safe. One page: a swapped source page's PTE goes to the
 * (dropped, so never-touched) destination; any other page with data is
 * marked for copying. Signals blocked, mm->lock held. */
static void move_page(struct rsv *rs, struct rsv *rd, struct move *m, unsigned i)
{
	uintptr_t a = m->src + ((uintptr_t)i << PAGE_SHIFT), b = m->dst + ((uintptr_t)i << PAGE_SHIFT);
	_Atomic uint64_t *ps = pte_of(rs, a), *pd = pte_of(rd, b);
	uint64_t vs, vd;

	lock_pair(ps, pd);
	vs = locked_val(rs, a);
	vd = locked_val(rd, b);
	if (pte_state(vs) == PTE_SWAPPED && pte_state(vd) == PTE_NONE &&
	    !(vs & (PTE_PINNED | PTE_FILE))) {
		pte_set_used(rd, b, vd, vs);
		pte_set_used(rs, a, vs, 0);
		pte_unlock(pd, vs);
		pte_unlock(ps, 0);
		m->moved++;
		return;
	}
	if (pte_state(vs) != PTE_NONE)
		m->copy[i / 64] |= 1ULL << (i % 64);
	pte_unlock(pd, vd);
	pte_unlock(ps, vs);
}

/* Under mm->lock: the reservations holding both ranges, each covered by
 * anonymous VMAs, the source readable and the destination writable. */
static int find_both(struct emm *mm, const struct move *m, struct rsv **rs, struct rsv **rd)
{
	int err = rsv_find_range(mm, m->src, m->len, rs);

	if (!err)
		err = rsv_find_range(mm, m->dst, m->len, rd);
	if (!err)
		err = check(*rs, m->src, m->src + m->len, EMM_PROT_READ);
	if (!err)
		err = check(*rd, m->dst, m->dst + m->len, EMM_PROT_WRITE);
	return err;
}

/* Under mm->lock: drop the destination chunk, hand the swapped pages over. */
static int move_locked(struct emm *mm, struct move *m)
{
	struct rsv *rs, *rd;
	int err = find_both(mm, m, &rs, &rd);

	if (err)
		return err;
	thp_split_range(rd, m->dst, m->dst + m->len, false);
	zap_range(rd, m->dst, m->dst + m->len, true);
	thp_split_range(rs, m->src, m->src + m->len, false);
	memset(m->copy, 0, sizeof(m->copy));
	for (unsigned i = 0; i < m->len >> PAGE_SHIFT; i++) {
		uintptr_t a = m->src + ((uintptr_t)i << PAGE_SHIFT);

		if (IS_ALIGNED(a, PMD_SIZE) && !extent_used(rs, a)) {
			i += CHUNK_PAGES - 1;	/* nothing there: the destination is zeros too */
			continue;
		}
		move_page(rs, rd, m, i);
	}
	return 0;
}

static int drop_src(struct rsv *r, uintptr_t s, uintptr_t e, void *arg)
{
	(void)arg;
	thp_split_range(r, s, e, false);
	zap_range(r, s, e, true);
	return 0;
}

/* The pages move_locked left: copied through the app view, by runs. */
static void copy_rest(const struct move *m)
{
	unsigned n = (unsigned)(m->len >> PAGE_SHIFT);

	for (unsigned i = 0; i < n;) {
		unsigned j = i;

		while (j < n && (m->copy[j / 64] >> (j % 64) & 1))
			j++;
		if (j > i)
			memcpy((void *)(m->dst + ((uintptr_t)i << PAGE_SHIFT)),
			       (const void *)(m->src + ((uintptr_t)i << PAGE_SHIFT)),
			       (size_t)(j - i) << PAGE_SHIFT);
		i = j + 1;
	}
}

/* Run fn on m under mm->lock, signals blocked. */
static int locked(struct emm *mm, struct move *m, int (*fn)(struct emm *, struct move *))
{
	sigset_t old;
	int err;

	sig_block(&old);
	pthread_mutex_lock(&mm->lock);
	err = fn(mm, m);
	pthread_mutex_unlock(&mm->lock);
	sig_restore(&old);
	return err;
}

static int check_both(struct emm *mm, struct move *m)
{
	struct rsv *rs, *rd;

	return find_both(mm, m, &rs, &rd);
}

static int move_chunk(struct emm *mm, struct move *m)
{
	int err = locked(mm, m, move_locked);

	if (err)
		return err;
	copy_rest(m);
	return with_range(mm, (void *)m->src, m->len, drop_src, NULL);
}

EMM_API int emm_move(struct emm *mm, void *dst, void *src, size_t len)
{
	uintptr_t s = (uintptr_t)src, d = (uintptr_t)dst;
	struct move m = { .src = s, .dst = d, .len = len };
	int err = check_range(mm, src, len);

	if (!err)
		err = check_range(mm, dst, len);
	if (err)
		return err;
	if (s < d + len && d < s + len)
		return -EINVAL;		/* overlapping: not a move */
	/* Both whole ranges first: a bad one fails the call with nothing moved. */
	err = locked(mm, &m, check_both);
	/* Each chunk checks again: another thread may unmap meanwhile. */
	for (size_t off = 0; off < len && !err; off += m.len) {
		/* Chunks end on the source's PMD boundaries. */
		m.src = s + off;
		m.dst = d + off;
		m.len = MIN(ALIGN_DOWN(m.src, MOVE_CHUNK) + MOVE_CHUNK, s + len) - m.src;
		err = move_chunk(mm, &m);
	}
	if (m.moved)
		atomic_fetch_add_explicit(&mm->c.move_swapped, m.moved, memory_order_relaxed);
	return err;
}
