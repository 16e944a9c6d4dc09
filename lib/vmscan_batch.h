/* SPDX-License-Identifier: MIT */
/* A reclaim batch: the pages reclaim took off the lists, locked, and the
 * work space it handles them in (vmscan.c, pageout.c). */
#ifndef EMM_VMSCAN_BATCH_H
#define EMM_VMSCAN_BATCH_H

#include <sys/uio.h>

#include "internal.h"
#include "swap.h"

/* What reclaim does with a page it scanned. */
enum { ACT_KEEP, ACT_SAMPLE, ACT_EVICT };

/* One page taken off a list for reclaim, its PTE locked. */
struct scan {
	uint32_t f;
	uint32_t slot;		/* where its data is once evicted (0: zero page) */
	struct rsv *r;
	uintptr_t addr;
	uint8_t act;
	bool write, filewrite, gone;
	bool huge;		/* the head of a huge extent: all 512 PTEs locked */
	bool whole;		/* huge and dirty: written whole (pageout.c, writeout_huge) */
};

/* A run of neighbouring pages revoked as one range: sp[first..last]. */
struct run { unsigned first, last; };

/* Work space for one batch: on the stack of a faulting thread, on the
 * heap for the reclaim thread. */
struct reclaim {
	unsigned max;		/* room in the arrays */
	unsigned batch;		/* pages taken off a list at a time, <= max */
	bool swap_full;		/* a dirty page found no slot: stop scanning */
	struct scan *sp;
	uint32_t *f, *ppn, *slots;
	uintptr_t *addr;	/* punch_gone's pages */
	struct swap_io *io;
	unsigned *idx;
	/* revoke_batch's ranges, for backend_revoke_many */
	struct iovec *iov;
	struct rsv **rsv;
	struct run *run;
};

#define RECLAIM_ON_STACK(name, n)					\
	struct scan name##_sp[n];					\
	uint32_t name##_f[n], name##_ppn[n], name##_slots[n];		\
	uintptr_t name##_addr[n];					\
	struct swap_io name##_io[n];					\
	unsigned name##_idx[n];						\
	struct iovec name##_iov[n];					\
	struct rsv *name##_rsv[n];					\
	struct run name##_run[n];					\
	struct reclaim name = { .max = n, .sp = name##_sp, .f = name##_f,	\
				.ppn = name##_ppn, .slots = name##_slots,	\
				.addr = name##_addr,				\
				.io = name##_io, .idx = name##_idx,		\
				.iov = name##_iov, .rsv = name##_rsv,		\
				.run = name##_run }

/* Async-signal-safe. Is sp[i + 1] the page right after sp[i]? */
static inline bool next_to(const struct scan *sp, unsigned i, unsigned n)
{
	return i + 1 < n && sp[i + 1].r == sp[i].r && sp[i + 1].addr == sp[i].addr + PAGE_SIZE;
}

#endif /* EMM_VMSCAN_BATCH_H */
