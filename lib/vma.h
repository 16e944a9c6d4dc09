/* SPDX-License-Identifier: MIT */
/* VMAs: what emm keeps of each, the sorted table, lookup and updates. */
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

/* Sorted VMAs of a reservation: never changed once published; a writer
 * publishes a new table and frees the old one after synchronize_srcu. */
struct vma_table {
	size_t nr;
	struct emm_vma v[];
};


const struct emm_vma *find_vma(struct rsv *r, uintptr_t addr);
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
