/* SPDX-License-Identifier: MIT */
/* VMAs: the copy-on-write B+tree of a reservation, find_vma, split and merge. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "debug.h"
#include "internal.h"
#include "srcu.h"
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

/* ---- readers: lock-free, inside mm->srcu's read section (or mm->lock held) ---- */

/* Async-signal-safe. The lowest start under n (keys are kept exact). */
static uintptr_t node_min(const struct vma_node *n)
{
	return n->leaf ? n->v[0].start : n->key[0];
}

/* Async-signal-safe. The child of inner node n that holds starts <= addr:
 * the last whose key is <= addr, or the first. */
static unsigned child_for(const struct vma_node *n, uintptr_t addr)
{
	unsigned lo = 0, hi = n->nr;

	while (hi - lo > 1) {
		unsigned mid = (lo + hi) / 2;

		if (n->key[mid] <= addr)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Acquire: the nodes were filled before the table was published. */
static const struct vma_node *tree_root(struct rsv *r)
{
	struct vma_table *t = atomic_load_explicit(&r->vmas, memory_order_acquire);

	return t ? t->root : NULL;
}

/* Async-signal-safe. Called inside mm->srcu's read section; the VMA returned
 * stays valid until it is left. O(log n). */
const struct emm_vma *find_vma(struct rsv *r, uintptr_t addr)
{
	const struct vma_node *n = tree_root(r);

	while (n && !n->leaf)
		n = n->child[child_for(n, addr)];
	for (unsigned i = 0; n && i < n->nr; i++)
		if (addr >= n->v[i].start && addr < n->v[i].end)
			return &n->v[i];
	return NULL;
}

/* Async-signal-safe. The first VMA under n that ends after addr. VMAs of
 * the children before child_for(addr) end at or before its key <= addr. */
static const struct emm_vma *next_in(const struct vma_node *n, uintptr_t addr)
{
	if (n->leaf) {
		for (unsigned i = 0; i < n->nr; i++)
			if (n->v[i].end > addr)
				return &n->v[i];
		return NULL;
	}
	for (unsigned i = child_for(n, addr); i < n->nr; i++) {
		const struct emm_vma *v = next_in(n->child[i], addr);

		if (v)
			return v;
	}
	return NULL;
}

/* Async-signal-safe. The first VMA that ends after addr, or NULL: walk
 * them in order with vma_next(r, v->end). Same context as find_vma. */
const struct emm_vma *vma_next(struct rsv *r, uintptr_t addr)
{
	const struct vma_node *n = tree_root(r);

	return n ? next_in(n, addr) : NULL;
}

/* Async-signal-safe. VMAs of the reservation. */
size_t vma_count(struct rsv *r)
{
	struct vma_table *t = atomic_load_explicit(&r->vmas, memory_order_acquire);

	return t ? t->nr : 0;
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

/* ---- writers: mm->lock held, not in a signal handler ---- */

/* One update: nodes it made (freed if it fails) and nodes it replaced
 * (freed once readers are gone, if it succeeds). */
struct vma_update {
	uint64_t gen;
	struct vma_node **made, **old;
	size_t nmade, nold, cap_made, cap_old;
	int err;
};

static void remember(struct vma_update *u, struct vma_node ***a, size_t *n, size_t *cap,
		     struct vma_node *x)
{
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 16;
		struct vma_node **p = realloc(*a, c * sizeof(*p));

		if (!p) {
			u->err = -ENOMEM;
			return;
		}
		*a = p;
		*cap = c;
	}
	(*a)[(*n)++] = x;
}

static struct vma_node *node_new(struct vma_update *u, bool leaf)
{
	struct vma_node *n = calloc(1, sizeof(*n));

	if (!n) {
		u->err = -ENOMEM;
		return NULL;
	}
	n->gen = u->gen;
	n->leaf = leaf;
	remember(u, &u->made, &u->nmade, &u->cap_made, n);
	return n;
}

/* The node to change: n itself if this update made it, else a copy. */
static struct vma_node *node_cow(struct vma_update *u, struct vma_node *n)
{
	struct vma_node *c;

	if (n->gen == u->gen)
		return n;
	c = node_new(u, n->leaf);
	if (!c)
		return NULL;
	memcpy(c, n, sizeof(*c));
	c->gen = u->gen;
	remember(u, &u->old, &u->nold, &u->cap_old, n);
	return c;
}

/* A full node gives its upper half to a new right sibling. */
static struct vma_node *node_split(struct vma_update *u, struct vma_node *c)
{
	struct vma_node *rt = node_new(u, c->leaf);
	unsigned half = c->nr / 2;

	if (!rt)
		return NULL;
	rt->nr = c->nr - half;
	if (c->leaf) {
		memcpy(rt->v, &c->v[half], rt->nr * sizeof(c->v[0]));
	} else {
		memcpy(rt->key, &c->key[half], rt->nr * sizeof(c->key[0]));
		memcpy(rt->child, &c->child[half], rt->nr * sizeof(c->child[0]));
	}
	c->nr = half;
	return rt;
}

/* Insert e under n; returns the node now standing for n (NULL on failure),
 * and in *right a new sibling when it split. */
static struct vma_node *tree_insert(struct vma_update *u, struct vma_node *n,
				    const struct emm_vma *e, struct vma_node **right)
{
	struct vma_node *c = node_cow(u, n), *sib = NULL;
	unsigned i;

	*right = NULL;
	if (!c)
		return NULL;
	if (c->leaf) {
		for (i = 0; i < c->nr && c->v[i].start < e->start; i++)
			;
		memmove(&c->v[i + 1], &c->v[i], (c->nr - i) * sizeof(c->v[0]));
		c->v[i] = *e;
		c->nr++;
	} else {
		struct vma_node *ch;

		i = child_for(c, e->start);
		ch = tree_insert(u, c->child[i], e, &sib);
		if (!ch)
			return NULL;
		c->child[i] = ch;
		c->key[i] = node_min(ch);
		if (sib) {
			memmove(&c->key[i + 2], &c->key[i + 1], (c->nr - i - 1) * sizeof(c->key[0]));
			memmove(&c->child[i + 2], &c->child[i + 1],
				(c->nr - i - 1) * sizeof(c->child[0]));
			c->child[i + 1] = sib;
			c->key[i + 1] = node_min(sib);
			c->nr++;
		}
	}
	if (c->nr == VMA_NODE_MAX && !(*right = node_split(u, c)))
		return NULL;
	return c;
}

/* Remove the VMA that starts at start from under *np (which it replaces
 * with the changed node). A node left empty goes from its parent. */
static int tree_remove(struct vma_update *u, struct vma_node **np, uintptr_t start)
{
	struct vma_node *c = node_cow(u, *np);
	unsigned i;

	if (!c)
		return u->err;
	*np = c;
	if (c->leaf) {
		for (i = 0; i < c->nr && c->v[i].start != start; i++)
			;
		if (i == c->nr)
			return -ENOENT;		/* cannot happen: the caller found it */
		memmove(&c->v[i], &c->v[i + 1], (c->nr - i - 1) * sizeof(c->v[0]));
		c->nr--;
		return 0;
	}
	i = child_for(c, start);
	if (tree_remove(u, &c->child[i], start))
		return u->err ? u->err : -ENOENT;
	if (c->child[i]->nr) {
		c->key[i] = node_min(c->child[i]);
		return 0;
	}
	remember(u, &u->old, &u->nold, &u->cap_old, c->child[i]);
	memmove(&c->key[i], &c->key[i + 1], (c->nr - i - 1) * sizeof(c->key[0]));
	memmove(&c->child[i], &c->child[i + 1], (c->nr - i - 1) * sizeof(c->child[0]));
	c->nr--;
	return 0;
}

static int root_insert(struct vma_update *u, struct vma_node **root, const struct emm_vma *e)
{
	struct vma_node *sib, *n;

	if (!*root && !(*root = node_new(u, true)))
		return u->err;
	n = tree_insert(u, *root, e, &sib);
	if (!n)
		return u->err;
	*root = n;
	if (sib) {
		struct vma_node *top = node_new(u, false);

		if (!top)
			return u->err;
		top->nr = 2;
		top->child[0] = n;
		top->key[0] = node_min(n);
		top->child[1] = sib;
		top->key[1] = node_min(sib);
		*root = top;
	}
	return u->err;
}

static int root_remove(struct vma_update *u, struct vma_node **root, uintptr_t start)
{
	int err = tree_remove(u, root, start);

	if (err)
		return err;
	while (*root && !(*root)->leaf && (*root)->nr <= 1) {
		struct vma_node *n = *root;

		*root = n->nr ? n->child[0] : NULL;
		remember(u, &u->old, &u->nold, &u->cap_old, n);
	}
	if (*root && (*root)->nr == 0) {
		remember(u, &u->old, &u->nold, &u->cap_old, *root);
		*root = NULL;
	}
	return u->err;
}

/* The VMAs of a window, growing as needed. */
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
	int err = 0;

	/* The window: what overlaps the range, and the neighbours touching
	 * it, which may merge with what is new. */
	for (const struct emm_vma *v = vma_next(r, start ? start - 1 : 0);
	     v && v->start <= wend && !err; v = vma_next(r, v->end))
		err = list_push_raw(&win, v);
	if (!err)
		err = window_rewrite(&win, &nw, start, end, chg, ins);
	if (!err)
		err = tree_update(&u, &root, &win, &nw);
	t = err ? NULL : malloc(sizeof(*t));
	if (!t) {
		for (size_t i = 0; i < u.nmade; i++)
			free(u.made[i]);
		err = err ? err : -ENOMEM;
	} else {
		*t = (struct vma_table){ root, (old ? old->nr : 0) + nw.nr - win.nr, u.gen };
		file_refs(&nw, 1);
		/* Release: readers that load the pointer see the filled nodes. */
		atomic_store_explicit(&r->vmas, t, memory_order_release);
		synchronize_srcu(&r->mm->srcu);
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
	atomic_store_explicit(&r->vmas, NULL, memory_order_relaxed);
}
