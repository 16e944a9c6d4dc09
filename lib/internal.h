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
	void *backend_data;		/* the backend's own, per reservation */
	_Atomic uint32_t prot_lock;	/* serialises app-view mprotect; a leaf */
	_Atomic long resident;		/* pages of this reservation in physmem */
	_Atomic uintptr_t ra_lo, ra_hi;	/* the last swap-in window: streams continue it */
	_Atomic uintptr_t fa_next, fa_win;	/* the last fault-around window's end, size */
	struct rsv *next;
};

#define UFFD_THREADS_MAX	64

struct emm_config {
	uint64_t mem_limit;
	char *swap_path;
	uint64_t swap_size;
	int backend;
	int thp;
	unsigned flags;
	unsigned fault_around;
	unsigned max_kernel_vmas;
	int thp_max_ptes_none;		/* missing pages the scanner fills first */
	bool thp_max_ptes_set;
	unsigned thp_scan_ms;		/* scanner period */
	unsigned uffd_threads;		/* fault-service threads; 0: default */
	uint64_t wmark_min, wmark_low, wmark_high;	/* headroom below mem_limit */
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
	_Atomic long thp_extents;
	_Atomic uint64_t vmas;		/* VMAs of every reservation, after merging */
	_Atomic uint64_t resident_pages;
	_Atomic long kernel_vmas;
};

/* lru.c: frames (struct page), per-node lists, per-CPU pagevecs */
#define PAGEVEC_SIZE	15
#define EMM_MAX_NODES	64
enum { LRU_INACTIVE, LRU_ACTIVE };
enum { PV_ADD, PV_ACTIVATE, PV_DEACTIVATE, NR_PV };

struct frame {
	uint32_t next, prev;		/* list links; top bits: on a list, active */
	uint32_t ppn;			/* physmem page; all ones when free */
	uint32_t slot;			/* swap slot kept while clean, or 0 */
};

struct lruvec {
	_Atomic uint32_t lock;		/* the node's lru_lock: lists and free frames */
	int node;
	uint64_t nr[2];			/* frames on the inactive and active lists */
	uint32_t free_head;
	size_t top, end;		/* the node's range of the frame table */
	_Atomic long resident;		/* its frames in use */
	long limit;			/* its share of the budget, in pages */
	bool limit_set;			/* by emm_set_node_limit */
	_Atomic uint64_t pgscan, pgsteal, swapouts, swapins;
};

struct pagevec {
	unsigned nr;
	uint32_t frame[PAGEVEC_SIZE];
	uint32_t ppn[PAGEVEC_SIZE];
};

struct cpu_lru {
	_Atomic uint32_t lock;		/* only ever tried: a busy CPU slot is bypassed */
	int node;			/* of the frames in free[] */
	struct pagevec pv[NR_PV];
	unsigned nfree;
	uint32_t free[32];
} __attribute__((aligned(64)));

struct lru {
	struct frame *frames;
	size_t frames_len, cap;
	size_t base, per_node;		/* node n owns frames base + n * per_node on */
	int nnodes;
	bool batching;			/* per-CPU pagevecs on (the default) */
	unsigned ncpu;
	struct cpu_lru *cpu;
	_Atomic uint64_t drains;	/* node-lock acquisitions for pagevecs */
	struct lruvec node[EMM_MAX_NODES];
};

struct kswapd {
	struct emm *mm;
	int node;
	pthread_t thread;
	bool started;
	_Atomic bool running;
	_Atomic uint32_t wake;		/* futex word: bumped to wake the thread */
	_Atomic long want;		/* pages the waking fault is about to add */
	struct reclaim *rc;		/* its batch work space */
};

struct backend_ops;

struct emm {
	struct emm_config cfg;
	const struct backend_ops *backend;	/* backend.h; set by emm_open */
	void *backend_data;		/* the backend's own, per instance */
	pid_t pid;			/* the process that opened it (fork: emm(7)) */
	struct lru *lru;
	int memfd;
	uint64_t phys_end;		/* physmem bytes handed to reservations */
	pthread_mutex_t lock;		/* serialises reservation and VMA writers */
	struct rsv *rsvs;		/* RCU list: readers use rsv_first/rsv_next */
	struct swap_dev *swap;
	struct pager *pager;		/* started by the first PAGER VMA */
	struct kswapd *kswapd;		/* one reclaim thread per node */
	_Atomic bool kswapd_stop;
	uint64_t ino_bias;		/* physmem's inode: the kernel's interleave bias */
	pthread_t khugepaged;
	bool khugepaged_started;
	_Atomic bool khugepaged_stop;
	_Atomic uint32_t khugepaged_wake;
	struct emm_counters c;
};

#define count_event(mm, field)	\
	atomic_fetch_add_explicit(&(mm)->c.field, 1, memory_order_relaxed)
#define count_events(mm, field, n)	\
	atomic_fetch_add_explicit(&(mm)->c.field, (n), memory_order_relaxed)

void mutex_lock(_Atomic uint32_t *m);
bool mutex_trylock(_Atomic uint32_t *m);
void mutex_unlock(_Atomic uint32_t *m);
int lru_init(struct emm *mm);
void lru_destroy(struct emm *mm);
uint32_t frame_alloc(struct emm *mm, uint32_t ppn, int node);
void lru_split_limit(struct emm *mm);
void frame_free(struct emm *mm, uint32_t f);
bool frame_on_lru(const struct lru *lru, uint32_t f);
int frame_active(const struct lru *lru, uint32_t f);
struct lruvec *frame_lruvec(struct lru *lru, uint32_t f);
void lru_queue(struct emm *mm, uint32_t f, int op);
void lru_add_drain_all(struct emm *mm);
unsigned lru_isolate(struct emm *mm, struct lruvec *lv, int list, uint32_t *f, uint32_t *ppn,
		     unsigned n);
void lru_putback(struct emm *mm, uint32_t f, int list, bool tail);
void lru_take(struct emm *mm, uint32_t f);
void frame_set_huge(struct emm *mm, uint32_t f, bool huge);

/* options.c */
int opts_check(const void *opts, size_t opts_sz, size_t min_sz, size_t known_sz);
int config_load(struct emm_config *cfg, const struct emm_opts *opts);
int config_limit(struct emm_config *cfg, uint64_t limit, bool strict);
void config_free(struct emm_config *cfg);
int parse_size(const char *s, uint64_t *out);

/* util.c: async-signal-safe output */
struct sbuf { char *p; size_t len, cap; };
void sb_puts(struct sbuf *b, const char *s);
void sb_putu(struct sbuf *b, uint64_t v, unsigned base, unsigned width);
void sb_putx(struct sbuf *b, uint64_t v);
void write_all(int fd, const char *s, size_t len);
void emm_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void emm_log(const struct emm *mm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
unsigned long sys_max_map_count(void);
void kvma_global_add(long delta);
long kvma_global(void);
long kvma_process_limit(void);
void sig_fill_async(sigset_t *set);
void sig_block(sigset_t *old);
void sig_restore(const sigset_t *old);
void *mmap_aligned(size_t len, size_t align, int prot, int flags, int fd, off_t off);

/* srcu.c: readers never block, writers wait for readers to leave */
struct emm_srcu {
	_Atomic unsigned idx;
	_Atomic long cnt[2];
};
int srcu_read_lock(void);
void srcu_read_unlock(int idx);
void synchronize_srcu(void);

/* physmem.c: reservations and the process-wide lookup */
int rsv_create(struct emm *mm, size_t len, size_t align, struct rsv **rp);
void rsv_unregister(struct rsv *r);
void rsv_destroy(struct rsv *r);
struct rsv *rsv_lookup(uintptr_t addr);
int rsv_find_range(struct emm *mm, uintptr_t addr, size_t len, struct rsv **rp);
int physmem_punch(struct rsv *r, uintptr_t addr, size_t len);
struct rsv *rsv_of_ppn(struct emm *mm, uint32_t ppn);
static inline uint32_t rsv_ppn(const struct rsv *r, uintptr_t addr)
{
	return (uint32_t)((r->pgoff + (addr - r->start)) >> PAGE_SHIFT);
}
static inline char *rsv_alias(const struct rsv *r, uintptr_t addr)
{
	return r->alias + (addr - r->start);
}

/* vma.c */
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

/* range.c: an API call's range */
int check_range(const struct emm *mm, const void *addr, size_t len);
typedef int (*range_fn)(struct rsv *r, uintptr_t s, uintptr_t e, void *arg);
int with_range(struct emm *mm, void *addr, size_t len, range_fn fn, void *arg);
int with_range_holes(struct emm *mm, void *addr, size_t len, bool holes_ok, range_fn fn,
		     void *arg);
void vma_table_free(struct rsv *r);

/* vmscan.c: reclaim */
#define SWAP_CLUSTER_MAX	32
void mm_charge(struct emm *mm, int node, long pages);
long shrink_node(struct emm *mm, int node, long nr_to_reclaim);
long pageout_range(struct rsv *r, uintptr_t s, uintptr_t e);
void deactivate_range(struct rsv *r, uintptr_t s, uintptr_t e);
int kswapd_start(struct emm *mm);
void kswapd_stop(struct emm *mm);

/* pager.c: requests to the pager threads */
enum { PAGER_FILL, PAGER_WRITEBACK };
struct pager_req {
	int op;
	const struct emm_pager_ops *ops;
	void *arg;
	uint64_t offset;
	void *buf;
	size_t len;
	_Atomic uint32_t done;
	int err;
};
int pager_call(struct emm *mm, struct pager_req *req);
int pager_start(struct emm *mm);
void pager_stop(struct emm *mm);
bool current_is_pager(void);

/* filemap.c: FILE and PAGER pages */
int filemap_read(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e);
int filemap_write(struct rsv *r, const struct emm_vma *vma, uintptr_t s, uintptr_t e);
int sync_range(struct rsv *r, uintptr_t s, uintptr_t e);

/* thp.c: 2 MiB extents */
bool thp_fault_eligible(struct rsv *r, const struct emm_vma *vma, uintptr_t addr);
void split_huge_locked(struct rsv *r, uintptr_t a);
void collapse_fresh(struct rsv *r, uintptr_t a);
void thp_split_range(struct rsv *r, uintptr_t s, uintptr_t e, bool all);
int khugepaged_start(struct emm *mm);
void khugepaged_stop(struct emm *mm);

/* report.c */
void report_bad_fault(int sig, const siginfo_t *si, void *uc, int access, struct rsv *r);

/* emm.c */
void emm_instances_lock(void);
void emm_instances_unlock(void);

#endif /* EMM_INTERNAL_H */
