/* SPDX-License-Identifier: MIT */
/* VMAs: what emm keeps of each, the copy-on-write tree, lookup and updates. */
#ifndef EMM_VMA_H
#define EMM_VMA_H

#include "internal.h"

/* The file of FILE VMAs: emm's own descriptor, shared by the VMA pieces. */
struct emm_file {
	int fd;
	int dfd;			/* the same file opened O_DIRECT, or -1 */
	bool writable;			/* opened O_RDWR: writeback possible */
	long refs;			/* VMA table entries naming it; mm->lock */
};

/* A VMA as emm keeps it; copied whole out of the table by readers. */
struct emm_vma {
	uintptr_t start, end;
	int prot;
	int policy;
	unsigned flags;
	emm_trap_fn trap;
	void *trap_arg;
	struct emm_file *file;
	uint64_t offset;
	const struct emm_pager_ops *pager;
	void *pager_arg;
	int numa_policy;
	uint64_t numa_nodes;
};

/* emm_vma.flags beyond the public EMM_MAP_* bits: emm_advise hints */
#define VMA_SEQUENTIAL	0x100u
#define VMA_RANDOM	0x200u

/*
 * The VMAs of a reservation: a B+tree keyed by start address whose nodes
 * are never changed once published. A writer (mm->lock held) copies the
 * nodes on the path it changes, publishes a new root with one store and
 * frees what it replaced after synchronize_srcu(&mm->srcu): readers never
 * lock, and an update costs O(log n), not a copy of the table.
 */
#define VMA_NODE_MAX	16

struct vma_node {
	uint64_t gen;			/* the update that made it */
	unsigned nr;
	bool leaf;
	uintptr_t key[VMA_NODE_MAX];	/* inner: the lowest start under child[i] */
	union {
		struct vma_node *child[VMA_NODE_MAX];
		struct emm_vma v[VMA_NODE_MAX];
	};
};

struct vma_table {
	struct vma_node *root;		/* NULL: no VMA */
	size_t nr;			/* VMAs in the tree */
	uint64_t gen;			/* the update that made this table */
};

const struct emm_vma *find_vma(struct rsv *r, uintptr_t addr);
const struct emm_vma *vma_next(struct rsv *r, uintptr_t addr);
size_t vma_count(struct rsv *r);
bool range_covered(struct rsv *r, uintptr_t start, uintptr_t end);
int vma_insert(struct rsv *r, const struct emm_vma *v);
void file_put(struct emm_file *f);
int vma_remove(struct rsv *r, uintptr_t start, uintptr_t end);
struct vma_change {
	int prot;			/* new protection, or -1 to keep it */
	unsigned set_flags, clear_flags;
};
int vma_change(struct rsv *r, uintptr_t start, uintptr_t end, const struct vma_change *chg);
int walk_vmas(struct rsv *r, uintptr_t s, uintptr_t e,
	      int (*fn)(struct rsv *r, const struct emm_vma *v, void *arg), void *arg);

void vma_table_free(struct rsv *r);

#endif /* EMM_VMA_H */
