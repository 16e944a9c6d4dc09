/* SPDX-License-Identifier: MIT */
/* VMAs: the sorted table of a reservation, find_vma, split and merge. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "debug.h"
#include "internal.h"
#include "srcu.h"
#include "util.h"
#include "vma.h"

/* Async-signal-safe. Called inside an srcu read section; the VMA returned
 * stays valid until srcu_read_unlock. */
const struct emm_vma *find_vma(struct rsv *r, uintptr_t addr)
{
	/* Acquire: the table was filled before it was published. */
	struct vma_table *t = atomic_load_explicit(&r->vmas, memory_order_acquire);
	size_t lo = 0, hi = t ? t->nr : 0;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct emm_vma *v = &t->v[mid];

		if (addr < v->start)
			hi = mid;
		else if (addr >= v->end)
			lo = mid + 1;
		else
			return v;
	}
	return NULL;
}

static bool same_attrs(const struct emm_vma *a, const struct emm_vma *b)
{
	return a->prot == b->prot && a->policy == b->policy && a->flags == b->flags &&
	       a->trap == b->trap && a->trap_arg == b->trap_arg && a->file == b->file &&
	       a->pager == b->pager && a->pager_arg == b->pager_arg &&
	       a->numa_policy == b->numa_policy && a->numa_nodes == b->numa_nodes;
}

/* vma_merge: b continues a, with the same attributes and offsets. */
static bool can_merge(const struct emm_vma *a, const struct emm_vma *b)
{
	if (a->end != b->start || !same_attrs(a, b))
		return false;
	if (a->policy == EMM_POLICY_FILE || a->policy == EMM_POLICY_PAGER)
		return b->offset == a->offset + (a->end - a->start);
	return true;
}

static struct vma_table *table_alloc(size_t nr)
{
	struct vma_table *t = malloc(sizeof(*t) + nr * sizeof(t->v[0]));

	if (t)
		t->nr = 0;
	return t;
}

static void table_push(struct vma_table *t, const struct emm_vma *v)
{
	if (t->nr && can_merge(&t->v[t->nr - 1], v))
		t->v[t->nr - 1].end = v->end;
	else
		t->v[t->nr++] = *v;
}

/* Clip v to [start, end), moving the offset along. */
static struct emm_vma clip(const struct emm_vma *v, uintptr_t start, uintptr_t end)
{
	struct emm_vma c = *v;

	c.start = MAX(v->start, start);
	c.end = MIN(v->end, end);
	c.offset += c.start - v->start;
	return c;
}

/* Close a FILE VMA's descriptors. */
void file_put(struct emm_file *f)
{
	if (f->dfd >= 0)
		close(f->dfd);
	close(f->fd);
	free(f);
}

/* Count the table's references to files; a file no VMA names is closed.
 * Writers hold mm->lock. */
static void file_refs(struct vma_table *t, long d)
{
	for (size_t i = 0; t && i < t->nr; i++) {
		struct emm_file *f = t->v[i].file;

		if (f && (f->refs += d) == 0)
			file_put(f);
	}
}

/*
 * The kernel VMAs r's app view would need with every page of every VMA of
 * t mapped at its VMA's protection: one per run of equal protection, where
 * the parts no VMA covers and guard VMAs are PROT_NONE. Pages reclaim
 * leaves unmapped only split runs that a fault can merge again (mapping a
 * whole VMA); runs of VMAs with different protections it cannot.
 */
static long layout_need(const struct rsv *r, const struct vma_table *t)
{
	uintptr_t at = r->start;
	int prev = EMM_PROT_NONE;
	long runs = 1;

	for (size_t i = 0; t && i < t->nr; i++) {
		const struct emm_vma *v = &t->v[i];
		int p = v->policy == EMM_POLICY_GUARD ? EMM_PROT_NONE : v->prot;

		if (v->start != at && prev != EMM_PROT_NONE)
			runs++, prev = EMM_PROT_NONE;
		runs += p != prev;
		prev = p;
		at = v->end;
	}
	return runs + (at != r->start + r->len && prev != EMM_PROT_NONE);
}

/*
 * Writers hold mm->lock. Let r's layout need need kernel VMAs: -ENOMEM
 * when that would pass what emm may use (max_kernel_vmas, or its share of
 * vm.max_map_count), so that emm_map and emm_protect refuse a layout whose
 * pages could not all be mapped, rather than faults failing later. Forced
 * for removals: a hole cut in a VMA may add runs, yet unmapping must work.
 */
static int layout_charge(struct rsv *r, long need, bool force)
{
	struct emm *mm = r->mm;
	long delta = need - r->kvma_need;

	if (delta > 0 && !force && mm->cfg.max_kernel_vmas &&
	    mm->kvma_need + delta > (long)mm->cfg.max_kernel_vmas)
		return -ENOMEM;
	if (!kvma_need_charge(delta, force))
		return -ENOMEM;
	r->kvma_need = need;
	mm->kvma_need += delta;
	return 0;
}

/*
 * Publish a new table where [start, end) is cut out of every VMA, the parts
 * inside changed by chg (or dropped when chg is NULL), and ins added (if not
 * NULL). Equal neighbours merge. Writers hold mm->lock.
 */
static int vma_rewrite(struct rsv *r, uintptr_t start, uintptr_t end,
		       const struct vma_change *chg, const struct emm_vma *ins)
{
	struct vma_table *old = atomic_load_explicit(&r->vmas, memory_order_relaxed);
	size_t n = old ? old->nr : 0;
	struct vma_table *t = table_alloc(2 * n + 2);
	bool placed = !ins;

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct emm_vma *v = &old->v[i];
		struct emm_vma c;

		if (!placed && ins->start < v->start) {
			table_push(t, ins);
			placed = true;
		}
		if (v->end <= start || v->start >= end) {
			table_push(t, v);
			continue;
		}
		if (v->start < start)
			table_push(t, (c = clip(v, v->start, start), &c));
		if (chg) {
			c = clip(v, start, end);
			if (chg->prot >= 0)
				c.prot = chg->prot;
			c.flags = (c.flags & ~chg->clear_flags) | chg->set_flags;
			table_push(t, &c);
		}
		if (!placed && ins->start < v->end) {
			table_push(t, ins);
			placed = true;
		}
		if (v->end > end)
			table_push(t, (c = clip(v, end, v->end), &c));
	}
	if (!placed)
		table_push(t, ins);
	if (layout_charge(r, layout_need(r, t), !chg && !ins)) {
		free(t);
		return -ENOMEM;
	}
	/* Release: readers that load the pointer see the filled table. */
	atomic_store_explicit(&r->vmas, t, memory_order_release);
	synchronize_srcu();
	file_refs(t, 1);
	file_refs(old, -1);
	count_events(r->mm, vmas, (uint64_t)t->nr - (old ? old->nr : 0));
	free(old);
	return 0;
}

/* Writers hold mm->lock. */
static bool range_overlaps(struct rsv *r, uintptr_t start, uintptr_t end)
{
	struct vma_table *t = atomic_load_explicit(&r->vmas, memory_order_relaxed);

	for (size_t i = 0; t && i < t->nr; i++)
		if (t->v[i].start < end && t->v[i].end > start)
			return true;
	return false;
}

/* Writers hold mm->lock. True when VMAs cover all of [start, end). */
bool range_covered(struct rsv *r, uintptr_t start, uintptr_t end)
{
	struct vma_table *t = atomic_load_explicit(&r->vmas, memory_order_relaxed);
	uintptr_t at = start;

	for (size_t i = 0; t && i < t->nr && at < end; i++) {
		if (t->v[i].end <= at)
			continue;
		if (t->v[i].start > at)
			return false;
		at = t->v[i].end;
	}
	return at >= end;
}

int vma_insert(struct rsv *r, const struct emm_vma *v)
{
	DEBUG_NOT_IN_HANDLER();
	if (range_overlaps(r, v->start, v->end))
		return -EEXIST;
	return vma_rewrite(r, v->start, v->start, NULL, v);
}

int vma_remove(struct rsv *r, uintptr_t start, uintptr_t end)
{
	DEBUG_NOT_IN_HANDLER();
	return vma_rewrite(r, start, end, NULL, NULL);
}

int vma_change(struct rsv *r, uintptr_t start, uintptr_t end, const struct vma_change *chg)
{
	DEBUG_NOT_IN_HANDLER();
	return vma_rewrite(r, start, end, chg, NULL);
}

void vma_table_free(struct rsv *r)
{
	struct vma_table *t = atomic_load_explicit(&r->vmas, memory_order_relaxed);

	if (t)
		count_events(r->mm, vmas, -(uint64_t)t->nr);
	layout_charge(r, 0, true);
	file_refs(t, -1);
	free(atomic_load_explicit(&r->vmas, memory_order_relaxed));
	atomic_store_explicit(&r->vmas, NULL, memory_order_relaxed);
}

/* Call fn on each VMA piece of [s, e), clipped; stop at the first error.
 * Writers hold mm->lock, so the table cannot change under us. */
int walk_vmas(struct rsv *r, uintptr_t s, uintptr_t e,
	      int (*fn)(struct rsv *r, const struct emm_vma *v, void *arg), void *arg)
{
	struct vma_table *t = atomic_load_explicit(&r->vmas, memory_order_relaxed);

	for (size_t i = 0; t && i < t->nr; i++) {
		struct emm_vma c;
		int err;

		if (t->v[i].end <= s || t->v[i].start >= e)
			continue;
		c = clip(&t->v[i], s, e);
		err = fn(r, &c, arg);
		if (err)
			return err;
	}
	return 0;
}
