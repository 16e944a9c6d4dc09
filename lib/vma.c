/* SPDX-License-Identifier: MIT */
/* VMAs: the copy-on-write B+tree of a reservation, find_vma, split and merge. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "debug.h"
#include "futex.h"
#include "internal.h"
#include "srcu.h"
#include "util.h"
#include "vma.h"

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

/* Writers hold mm->lock. */
static bool range_overlaps(struct rsv *r, uintptr_t start, uintptr_t end)
{
	const struct emm_vma *v = vma_next(r, start);

	return v && v->start < end;
}

/* Writers hold mm->lock. True when VMAs cover all of [start, end). */
bool range_covered(struct rsv *r, uintptr_t start, uintptr_t end)
{
	for (uintptr_t at = start; at < end;) {
		const struct emm_vma *v = vma_next(r, at);

		if (!v || v->start > at)
			return false;
		at = v->end;
	}
	return true;
}

/* Call fn on each VMA piece of [s, e), clipped; stop at the first error.
 * Writers hold mm->lock, so the tree cannot change under us. */
int walk_vmas(struct rsv *r, uintptr_t s, uintptr_t e,
	      int (*fn)(struct rsv *r, const struct emm_vma *v, void *arg), void *arg)
{
	for (const struct emm_vma *v = vma_next(r, s); v && v->start < e; v = vma_next(r, v->end)) {
		struct emm_vma c = clip(v, s, e);
		int err = fn(r, &c, arg);

		if (err)
			return err;
	}
	return 0;
}

struct vma_list {
	struct emm_vma *v;
	size_t nr, cap;
};

static int list_push_raw(struct vma_list *l, const struct emm_vma *v)
{
	if (l->nr == l->cap) {
		size_t c = l->cap ? 2 * l->cap : 8;
		struct emm_vma *p = realloc(l->v, c * sizeof(*p));

		if (!p)
			return -ENOMEM;
		l->v = p;
		l->cap = c;
	}
	l->v[l->nr++] = *v;
	return 0;
}

/* Append v, merged into the last VMA when it continues it (vma_merge). */
static int list_push(struct vma_list *l, const struct emm_vma *v)
{
	if (l->nr && can_merge(&l->v[l->nr - 1], v)) {
		l->v[l->nr - 1].end = v->end;
		return 0;
	}
	return list_push_raw(l, v);
}

/*
 * The window's new VMAs: [start, end) cut out of every VMA of old (the
 * VMAs that overlap the range or touch it), the parts inside changed by
 * chg (or dropped when chg is NULL), and ins added (if not NULL). Equal
 * neighbours merge.
 */
static int window_rewrite(const struct vma_list *old, struct vma_list *t, uintptr_t start,
			  uintptr_t end, const struct vma_change *chg, const struct emm_vma *ins)
{
	bool placed = !ins;
	int err = 0;

	for (size_t i = 0; i < old->nr && !err; i++) {
		const struct emm_vma *v = &old->v[i];
		struct emm_vma c;

		if (!placed && ins->start < v->start) {
			err = list_push(t, ins);
			placed = true;
		}
		if (v->end <= start || v->start >= end) {
			err = err ? err : list_push(t, v);
			continue;
		}
		if (!err && v->start < start)
			err = list_push(t, (c = clip(v, v->start, start), &c));
		if (!err && chg) {
			c = clip(v, start, end);
			if (chg->prot >= 0)
				c.prot = chg->prot;
			c.flags = (c.flags & ~chg->clear_flags) | chg->set_flags;
			err = list_push(t, &c);
		}
		if (!err && !placed && ins->start < v->end) {
			err = list_push(t, ins);
			placed = true;
		}
		if (!err && v->end > end)
			err = list_push(t, (c = clip(v, end, v->end), &c));
	}
	if (!err && !placed)
		err = list_push(t, ins);
	return err;
}

/* Take one reference per VMA naming a file; a file no VMA names is closed. */
static void file_refs(const struct vma_list *l, long d)
{
	for (size_t i = 0; i < l->nr; i++) {
		struct emm_file *f = l->v[i].file;

		if (f && (f->refs += d) == 0)
			file_put(f);
	}
}

/* Build the new tree: the window's old VMAs out, its new ones in. */
static int tree_update(struct vma_update *u, struct vma_node **root, const struct vma_list *old,
		       const struct vma_list *t)
{
	int err = 0;

	for (size_t i = 0; i < old->nr && !err; i++)
		err = root_remove(u, root, old->v[i].start);
	for (size_t i = 0; i < t->nr && !err; i++)
		err = root_insert(u, root, &t->v[i]);
	return err;
}

/*
 * The kernel VMAs r's app view would need with every page of every VMA
 * mapped at its VMA's protection count the runs of equal protection, where
 * the parts no VMA covers and guard VMAs are PROT_NONE. Pages reclaim
 * leaves unmapped only split runs that a fault can merge again (mapping a
 * whole VMA); runs of VMAs with different protections it cannot. An update
 * changes the runs only inside its window, so the count is kept as a
 * running total: the changes of protection along the window [s, e), from
 * left (the protection before s; -1 at the start of the reservation, where
 * the first run begins) to right (after e; -1 at the end of the
 * reservation, where nothing follows). Protections are compared as the
 * kernel sees them: a write-only VMA is mapped read-write, and merges with
 * its read-write neighbours.
 */
static int layout_prot(const struct emm_vma *v)
{
	return !v || v->policy == EMM_POLICY_GUARD ? PROT_NONE : prot_to_sys(v->prot);
}

static long layout_changes(const struct vma_list *l, uintptr_t s, uintptr_t e, int left,
			   int right)
{
	int prev = left;
	uintptr_t at = s;
	long n = 0;

	for (size_t i = 0; i < l->nr; i++) {
		const struct emm_vma *v = &l->v[i];
		int p = layout_prot(v);

		if (v->start > at) {
			n += prev != PROT_NONE;
			prev = PROT_NONE;
		}
		n += p != prev;
		prev = p;
		at = v->end;
	}
	if (at < e) {
		n += prev != PROT_NONE;
		prev = PROT_NONE;
	}
	return n + (right >= 0 && prev != right);
}

/* Writers hold mm->lock. The runs r's layout needs once the window's VMAs
 * old are replaced by nw. */
static long layout_need(struct rsv *r, const struct vma_list *old, const struct vma_list *nw,
			uintptr_t s, uintptr_t e)
{
	uintptr_t rend = r->start + r->len;
	int left = s > r->start ? layout_prot(find_vma(r, s - 1)) : -1;
	int right = e < rend ? layout_prot(find_vma(r, e)) : -1;
	long base = r->kvma_need ? r->kvma_need : 1;	/* an empty layout: one run */

	return base - layout_changes(old, s, e, left, right) + layout_changes(nw, s, e, left, right);
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

/* Where the window of an update begins: its first VMA, the range, or
 * the VMA inserted, whichever comes first. */
static uintptr_t window_start(const struct vma_list *win, uintptr_t start,
			      const struct emm_vma *ins)
{
	uintptr_t s = ins ? MIN(start, ins->start) : start;

	return win->nr ? MIN(s, win->v[0].start) : s;
}

/* A VMA changed: the promotion scanner, asleep (or about to sleep) for
 * want of one that may have huge pages, looks again (khugepaged.c). */
static void khugepaged_kick(struct emm *mm)
{
	/* seq_cst: the VMAs were published before this load, as the scanner
	 * stores idle before it reads them (khugepaged.c); a store then a
	 * load on each side, so one of them sees the other's store. */
	if (atomic_load_explicit(&mm->khugepaged_idle, memory_order_seq_cst)) {
		atomic_fetch_add_explicit(&mm->khugepaged_wake, 1, memory_order_seq_cst);
		futex_wake(&mm->khugepaged_wake, 1);
	}
}

/*
 * Publish a tree where [start, end) is cut out of every VMA, the parts
 * inside changed by chg (or dropped when chg is NULL), and ins added (if
 * not NULL). Only the VMAs overlapping or touching the range are read and
 * rewritten, and only the nodes on their paths copied. Writers hold
 * mm->lock.
 */
static int vma_rewrite(struct rsv *r, uintptr_t start, uintptr_t end,
		       const struct vma_change *chg, const struct emm_vma *ins)
{
	struct vma_table *old = atomic_load_explicit(&r->vmas, memory_order_relaxed), *t;
	struct vma_update u = { .gen = (old ? old->gen : 0) + 1 };
	struct vma_list win = { 0 }, nw = { 0 };
	struct vma_node *root = old ? old->root : NULL;
	uintptr_t wend = ins ? MAX(end, ins->end) : end;
	long need_before = r->kvma_need;
	bool charged = true;
	int err = 0;

	/* The window: what overlaps the range, and the neighbours touching
	 * it, which may merge with what is new. */
	for (const struct emm_vma *v = vma_next(r, start ? start - 1 : 0);
	     v && v->start <= wend && !err; v = vma_next(r, v->end))
		err = list_push_raw(&win, v);
	if (!err)
		err = window_rewrite(&win, &nw, start, end, chg, ins);
	if (!err)
		err = layout_charge(r, layout_need(r, &win, &nw, window_start(&win, start, ins),
						   MAX(wend, win.nr ? win.v[win.nr - 1].end : wend)),
				    !chg && !ins);
	else
		charged = false;
	if (!err)
		err = tree_update(&u, &root, &win, &nw);
	t = err ? NULL : malloc(sizeof(*t));
	if (!t) {
		for (size_t i = 0; i < u.nmade; i++)
			free(u.made[i]);
		if (charged)
			layout_charge(r, need_before, true);
		err = err ? err : -ENOMEM;
	} else {
		*t = (struct vma_table){ root, (old ? old->nr : 0) + nw.nr - win.nr, u.gen };
		file_refs(&nw, 1);
		/* Release: readers that load the pointer see the filled nodes. */
		atomic_store_explicit(&r->vmas, t, memory_order_release);
		synchronize_srcu(&r->mm->srcu);
		khugepaged_kick(r->mm);
		file_refs(&win, -1);
		count_events(r->mm, vmas, (uint64_t)nw.nr - win.nr);
		for (size_t i = 0; i < u.nold; i++)
			free(u.old[i]);
		free(old);
	}
	free(u.made);
	free(u.old);
	free(win.v);
	free(nw.v);
	return err;
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

/* Free n and what is under it, dropping the VMAs' file references. */
static void node_free(struct vma_node *n)
{
	for (unsigned i = 0; i < n->nr; i++) {
		if (!n->leaf)
			node_free(n->child[i]);
		else if (n->v[i].file && --n->v[i].file->refs == 0)
			file_put(n->v[i].file);
	}
	free(n);
}

/* The reservation is gone: no reader is left. */
void vma_table_free(struct rsv *r)
{
	struct vma_table *t = atomic_load_explicit(&r->vmas, memory_order_relaxed);

	if (!t)
		return;
	if (t->root)
		node_free(t->root);
	count_events(r->mm, vmas, -(uint64_t)t->nr);
	free(t);
	layout_charge(r, 0, true);
	atomic_store_explicit(&r->vmas, NULL, memory_order_relaxed);
}
