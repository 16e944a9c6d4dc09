/* SPDX-License-Identifier: MIT */
/* Private declarations shared by the files of libemm. */
#ifndef EMM_INTERNAL_H
#define EMM_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

#include "emm.h"

#define PAGE_SHIFT	12
#define PAGE_SIZE	(1UL << PAGE_SHIFT)
#define PMD_SHIFT	21
#define PMD_SIZE	(1UL << PMD_SHIFT)
#define PTRS_PER_PMD	(PMD_SIZE / PAGE_SIZE)

#define ALIGN_DOWN(x, a)	((x) & ~((uintptr_t)(a) - 1))
#define ALIGN_UP(x, a)		ALIGN_DOWN((x) + (a) - 1, (a))
#define IS_ALIGNED(x, a)	(((uintptr_t)(x) & ((uintptr_t)(a) - 1)) == 0)
#define MIN(a, b)		((a) < (b) ? (a) : (b))
#define MAX(a, b)		((a) > (b) ? (a) : (b))
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))

#define EMM_MAX_NODES		64	/* NUMA nodes emm can tell apart */

#define RA_MARKS		8	/* readahead windows whose marker is awaited */
#define RA_MARK_ZERO		1	/* in ra_mark[]: the marker's window was zeroed, not read */

/*
 * How long an idle thread of emm's (reclaim, readahead, the promotion
 * scanner while no VMA may have huge pages) sleeps before it looks again:
 * what wakes it (a charge past the low watermark, a window posted, a VMA
 * changed, the instance closing) moves the count it sleeps on, so the
 * timeout only bounds what a mistake would cost. Each wake-up of a thread
 * of the process costs the program's next page-table changes on a guest
 * whose page tables the hypervisor shadows (emm-tuning(7), "Fault
 * backends"): random swap-ins on uffd-sigbus, 2-vCPU guest, UFFDIO_COPY
 * took 4.1 to 4.7 us with the reclaim and readahead threads waking every
 * ten seconds, 5.8 to 6.4 every second; 10.2 to 10.5 with the scanner
 * waking every 100 ms, 5.6 to 6.0 every ten minutes (alternating runs).
 */
#define THREAD_IDLE_MS		10000

/* A reservation: the app view, its alias view, its PTEs and its VMAs. */
struct rsv {
	struct emm *mm;
	uintptr_t start;
	size_t len;
	size_t align;			/* of the app view's start: PMD_SIZE or more */
	char *alias;
	uint64_t pgoff;			/* byte offset of the range in physmem */
	_Atomic uint64_t *pte;		/* one word per page, lazily backed */
	struct extent *ext;		/* one per 2 MiB, lazily backed */
	size_t meta_len;		/* bytes mapped for pte + ext */
	struct vma_table *_Atomic vmas;	/* replaced whole; see srcu.c */
	_Atomic long kvmas;		/* kernel VMAs the app view spans */
	long kvma_need;			/* ... with every VMA mapped whole (mm->lock) */
	void *backend_data;		/* the backend's own, per reservation */
	_Atomic uint32_t prot_lock;	/* serialises app-view mprotect; a leaf */
	_Atomic long resident;		/* pages of this reservation in physmem */
	_Atomic uintptr_t ra_lo, ra_hi;	/* the last swap-in window: streams continue it */
	_Atomic uintptr_t fa_next, fa_win;	/* the last fault-around window's end, size */
	_Atomic uint32_t clean_maps, clean_writes;	/* clean anonymous pages mapped read-only,
							 * and writes to them since: fault.c */
	_Atomic uint32_t clean_seq;
	_Atomic uint32_t ra_read, ra_hits;	/* pages read around faults, and touched */
	_Atomic uintptr_t ra_last;		/* the last swap-in outside a stream */
	_Atomic uintptr_t ra_mark[RA_MARKS];	/* pages whose touch asks for a
						 * stream's next window: readahead.c */
	_Atomic uint32_t ra_mark_seq;
	_Atomic uint32_t fa_mapped, fa_zero;	/* pages mapped around first touches,
						 * and evicted still zero: fault.c */
	struct rsv *next;
};

#define UFFD_THREADS_MAX	64
/* The LRU's inactive_ratio (vmscan.c): what it is unless set, and at most. */
#define INACTIVE_RATIO_DEFAULT	4
#define INACTIVE_RATIO_MAX	64

/* cfg.flags of emm's own, beside EMM_OPEN_* (and stats_shm.h's CFG_STATS_SHM):
 * a userfaultfd backend may let writes to clean pages through unseen and
 * read later which were written (on unless EMM_UFFD_WP_ASYNC=0). */
#define CFG_WP_ASYNC		0x40000000u
/* A page read back from swap within its refault distance goes onto the
 * active list (workingset.c; on unless EMM_WORKINGSET=0). */
#define CFG_WORKINGSET		0x20000000u
/* Threads read a stream's next windows, of swap or of a file, while the
 * program reads the current one (readahead.c; on unless
 * EMM_READAHEAD_ASYNC=0). */
#define CFG_RA_ASYNC		0x10000000u
/* A page read back from swap beyond its refault distance is evicted at
 * its first turn on the inactive list unless touched again (vmscan.c; on
 * unless EMM_COLD_REFAULT=0). */
#define CFG_COLD_REFAULT	0x08000000u
/* A thread waiting for a small swap read may poll for it a while before
 * it sleeps, where polling has measured faster (swap_ring.c, poll_pick;
 * on unless EMM_SWAP_SPIN=0). */
#define CFG_SWAP_SPIN		0x04000000u
#define SWAP_SPIN_NS		200000u

struct emm_config {
	_Atomic uint64_t mem_limit;	/* set by emm_set_limit, read by faults */
	char *swap_path;
	uint64_t swap_size;
	uint64_t swap_margin;
	int backend;
	int thp;
	unsigned flags;			/* EMM_OPEN_*, CFG_* */
	unsigned fault_around;
	unsigned max_kernel_vmas;
	int thp_max_ptes_none;		/* missing pages the scanner fills first */
	bool thp_max_ptes_set;
	unsigned thp_scan_ms;		/* scanner period */
	unsigned uffd_threads;		/* fault-service threads; 0: default */
	unsigned inactive_ratio;	/* active may be this many times inactive */
	_Atomic uint64_t wmark_min, wmark_low, wmark_high;	/* headroom below mem_limit */
	bool wmark_min_set, wmark_low_set, wmark_high_set;
	void (*oom)(struct emm *mm, uint64_t excess_bytes, void *arg);
	void *oom_arg;
};

/* Counters bumped in the fault path: relaxed atomics, read by emm_stats. */
struct emm_counters {
	_Atomic uint64_t faults, faults_minor, faults_major, faults_zero;
	_Atomic uint64_t faults_wp, faults_bad;
	_Atomic uint64_t swapins, swapouts, pgscan, pgsteal, pgactivate, pgdeactivate;
	_Atomic uint64_t thp_collapse, thp_collapse_failed, thp_split;
	_Atomic uint64_t io_errors, oom_events, writebacks;
	_Atomic uint64_t workingset_refault, workingset_activate;
	_Atomic uint64_t move_swapped;
	_Atomic uint64_t allocstall, pgsteal_direct, revoke_around, revokes, refault_around;
	_Atomic long thp_extents;
	_Atomic uint64_t vmas;		/* VMAs of every reservation, after merging */
	_Atomic uint64_t resident_pages;
	_Atomic long kernel_vmas;
};

struct backend_ops;
struct emm_file;
struct emm_vma;
struct extent;
struct kswapd;
struct lru;
struct pager;
struct readahead;
struct swap_dev;
struct vma_table;

/* Sleepable RCU (srcu.c): lock-free readers, writers sleep until they have
 * left. One per instance, one for the reservation registry. Zeroes: idle. */
struct emm_srcu {
	_Atomic unsigned idx;
	_Atomic long cnt[2];
	_Atomic uint32_t wake;		/* futex word: bumped by the last reader out */
	_Atomic uint32_t waiters;	/* a writer sleeps on wake */
	_Atomic uint32_t wlock;		/* writers serialise on it (mutex_lock) */
};

struct emm {
	struct emm_config cfg;
	const struct backend_ops *backend;	/* backend.h; set by emm_open */
	void *backend_data;		/* the backend's own, per instance */
	bool wp_async;			/* the backend learns of writes to clean pages
					   after the fact (backend_ops.harvest) */
	struct lru *lru;
	int memfd;
	uint64_t phys_end;		/* physmem bytes handed to reservations */
	pthread_mutex_t lock;		/* serialises reservation and VMA writers */
	long kvma_need;			/* the kvma_need of its reservations (lock) */
	pid_t pid;			/* the process that opened it (see mm_foreign) */
	struct rsv *rsvs;		/* RCU list: readers use rsv_first/rsv_next */
	struct emm_srcu srcu;		/* read side of rsvs and of the VMA tables */
	struct swap_dev *swap;
	struct pager *pager;		/* started by the first PAGER VMA */
	struct kswapd *kswapd;		/* reclaim threads, KSWAPD_PER_NODE per node */
	/* A reclaim batch's work space for a program thread's direct reclaim,
	 * taken by one at a time (kswapd.c, direct_reclaim); NULL while taken. */
	_Atomic(struct reclaim *) direct_rc;
	struct readahead *readahead;	/* the asynchronous readahead threads, or NULL */
	_Atomic bool kswapd_stop;
	uint64_t ino_bias;		/* physmem's inode: the kernel's interleave bias */
	pthread_t khugepaged;
	bool khugepaged_started;
	_Atomic bool khugepaged_stop;
	_Atomic uint32_t khugepaged_wake;
	_Atomic bool khugepaged_idle;	/* asleep: no VMA may have huge pages */
	struct emm_counters c;
	_Atomic unsigned faulting;	/* faults in do_user_fault now (swap_set_busy) */
	struct stats_shm *stats_shm;	/* the page emmstat reads, or NULL */
	struct profile *profile;	/* EMM_PROFILE's samples, or NULL */
};

/*
 * Async-signal-safe. Is mm an instance this process inherited through
 * fork? A child has none of its threads, and its views are not mapped
 * there (MADV_DONTFORK): every call on it fails with -ECHILD and a touch
 * of its memory is not served, so the child cannot change the parent's
 * pages, swap slots or rings behind its back.
 */
static inline bool mm_foreign(const struct emm *mm)
{
	return mm->pid != getpid();
}

#define count_event(mm, field)	\
	atomic_fetch_add_explicit(&(mm)->c.field, 1, memory_order_relaxed)
#define count_events(mm, field, n)	\
	atomic_fetch_add_explicit(&(mm)->c.field, (n), memory_order_relaxed)

void mutex_lock(_Atomic uint32_t *m);
bool mutex_trylock(_Atomic uint32_t *m);
void mutex_unlock(_Atomic uint32_t *m);
void fork_gate_enter(void);
void fork_gate_leave(void);
void fork_gate_shut(void);
void fork_gate_open(void);
void fork_gate_reset(void);
#endif /* EMM_INTERNAL_H */
