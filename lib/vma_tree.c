/* SPDX-License-Identifier: MIT */
/* The VMA tree: a copy-on-write B+tree of a reservation's VMAs, read
 * lock-free, each update copying only the nodes on its paths. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vma_tree.h"

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

/* Async-signal-safe. Called inside an srcu read section; the VMA returned
 * stays valid until srcu_read_unlock. O(log n). */
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

/* ---- writers: mm->lock held, not in a signal handler ---- */

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

int root_insert(struct vma_update *u, struct vma_node **root, const struct emm_vma *e)
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

int root_remove(struct vma_update *u, struct vma_node **root, uintptr_t start)
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
