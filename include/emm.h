/* SPDX-License-Identifier: MIT */
/* emm: an embeddable memory manager -- the one public header. */
#ifndef EMM_H
#define EMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define EMM_API __attribute__((visibility("default")))
#else
#define EMM_API
#endif

#define EMM_VERSION_MAJOR 0
#define EMM_VERSION_MINOR 1

/*
 * Options structs start with their own size. EMM_OPTS declares one with
 * sz set and the named fields given, every other byte zero:
 *	EMM_OPTS(emm_opts, o, .mem_limit = 1UL << 30);
 */
#define EMM_OPTS(TYPE, NAME, ...)					\
	struct TYPE NAME = ({						\
		__builtin_memset(&NAME, 0, sizeof(struct TYPE));	\
		(struct TYPE){ .sz = sizeof(struct TYPE), __VA_ARGS__ };	\
	})

struct emm;

/* Fault backends (emm(7)): AUTO picks UFFD where a userfaultfd that serves
 * kernel-mode faults can be had, else UFFD_SIGBUS, else SIGNAL. */
enum { EMM_BACKEND_AUTO, EMM_BACKEND_SIGNAL, EMM_BACKEND_UFFD, EMM_BACKEND_UFFD_SIGBUS };
enum { EMM_THP_MADVISE, EMM_THP_ALWAYS, EMM_THP_NEVER };

/* emm_opts.flags */
#define EMM_OPEN_SHOW_STATS	0x1u	/* print statistics at emm_close */
#define EMM_OPEN_VERBOSE	0x2u	/* say what emm decided, on stderr */
#define EMM_OPEN_NO_PAGEVEC	0x4u	/* LRU operations take the node lock one by one */
#define EMM_OPEN_NO_FORK_COPY	0x8u	/* a forked child gets no copy of the memory */

struct emm_opts {
	size_t sz;
	uint64_t mem_limit;      /* resident budget in bytes; 0: EMM_MEM_LIMIT, else half of RAM */
	const char *swap_path;   /* NULL: unlinked temporary file in $TMPDIR (or /var/tmp) */
	uint64_t swap_size;      /* bytes of swap; 0: what its file system has free */
	int backend;             /* EMM_BACKEND_* */
	int thp;                 /* EMM_THP_MADVISE (default), EMM_THP_ALWAYS, EMM_THP_NEVER */
	unsigned flags;          /* EMM_OPEN_* */
	unsigned fault_around;   /* pages a first-touch fault maps; 0: EMM_FAULT_AROUND, else 16 */
	unsigned max_kernel_vmas;/* app-view kernel VMAs emm may create; 0: from vm.max_map_count */
	/* Reclaim watermarks, as headroom in bytes below mem_limit (0: defaults,
	 * see emm-tuning(7)); they must keep min < low < high <= mem_limit / 2. */
	uint64_t wmark_min;      /* resident above limit - min: the faulting thread reclaims */
	uint64_t wmark_low;      /* above limit - low: the reclaim thread wakes */
	uint64_t wmark_high;     /* the reclaim thread stops below limit - high */
	/* Called on the reclaim thread when the budget is exceeded and nothing
	 * more can be evicted (swap full, writes failing). */
	void (*oom)(struct emm *mm, uint64_t excess_bytes, void *arg);
	void *oom_arg;
	/* Huge pages (see emm-tuning(7)): never-touched pages the promotion
	 * scanner may fill to make an extent whole (0: 64; -1: none; at most
	 * 511), and how often it scans (0: every 100 ms). */
	int thp_max_ptes_none;
	unsigned thp_scan_ms;
	/* EMM_BACKEND_UFFD: fault-service threads (0: EMM_UFFD_THREADS, else
	 * the number of CPUs up to 16, at least 4; at most 64). */
	unsigned uffd_threads;
	/* With swap_size 0, the swap file may grow into the free space of its
	 * file system but leaves this much free (0: EMM_SWAP_MARGIN, else 5%
	 * of the file system, at most 1 GiB). */
	uint64_t swap_margin;
	/* The LRU: the active list may grow to this many times the inactive
	 * one before reclaim deactivates from it (0: EMM_INACTIVE_RATIO, else
	 * 2; at most 64). See emm-tuning(7), "The LRU". */
	unsigned inactive_ratio;
};

EMM_API int emm_open(const struct emm_opts *opts, struct emm **mmp);
EMM_API int emm_close(struct emm *mm);
/* The EMM_BACKEND_* the instance uses (never AUTO), or -EINVAL. */
EMM_API int emm_backend(struct emm *mm);

EMM_API int emm_reserve(struct emm *mm, size_t len, void **addrp);
struct emm_reserve_opts {
	size_t sz;
	size_t align;            /* of the start: a power of two >= 2 MiB; 0: 2 MiB */
};
EMM_API int emm_reserve_ex(struct emm *mm, size_t len, const struct emm_reserve_opts *o,
			   void **addrp);
EMM_API int emm_release(struct emm *mm, void *addr);

enum { EMM_POLICY_ANON, EMM_POLICY_FILE, EMM_POLICY_PAGER, EMM_POLICY_GUARD };

#define EMM_PROT_NONE	0
#define EMM_PROT_READ	1
#define EMM_PROT_WRITE	2
#define EMM_PROT_EXEC	4

struct emm_fault {
	void *addr;
	int write;               /* 1 for a write access */
	void *vma_start;
	size_t vma_len;
	int policy;
};

/* What a trap callback returns: retry the access after fixing its cause, or
 * pass the signal on to the handler installed before emm. It may also leave
 * with siglongjmp. It runs in a signal handler: emm_map, emm_unmap and
 * emm_protect fail there with -EDEADLK (emm_map(3), "Trap callbacks"). */
enum { EMM_TRAP_RETRY, EMM_TRAP_CHAIN };
typedef int (*emm_trap_fn)(const struct emm_fault *f, void *arg);

struct emm_pager_ops {
	int (*fill)(void *arg, uint64_t offset, void *buf, size_t len);
	int (*writeback)(void *arg, uint64_t offset, const void *buf, size_t len);
};

/* emm_map_opts.flags */
#define EMM_MAP_HUGEPAGE	0x1u
#define EMM_MAP_NOHUGEPAGE	0x2u
#define EMM_MAP_LOCKED		0x4u

enum { EMM_NUMA_LOCAL, EMM_NUMA_BIND, EMM_NUMA_PREFERRED, EMM_NUMA_INTERLEAVE };

struct emm_map_opts {
	size_t sz;
	int prot;                /* EMM_PROT_* */
	int policy;              /* EMM_POLICY_* */
	int fd;                  /* FILE: the file */
	uint64_t offset;         /* FILE: offset of the first byte; PAGER: base offset */
	const struct emm_pager_ops *pager;
	void *pager_arg;
	emm_trap_fn trap;        /* access errors, GUARD */
	void *trap_arg;
	unsigned flags;          /* EMM_MAP_* */
	int numa_policy;         /* EMM_NUMA_* */
	uint64_t numa_nodes;     /* bit i: node i */
};

EMM_API int emm_map(struct emm *mm, void *addr, size_t len, const struct emm_map_opts *opts);
EMM_API int emm_unmap(struct emm *mm, void *addr, size_t len);
EMM_API int emm_protect(struct emm *mm, void *addr, size_t len, int prot);

enum {
	EMM_ADV_NORMAL, EMM_ADV_RANDOM, EMM_ADV_SEQUENTIAL, EMM_ADV_WILLNEED,
	EMM_ADV_DONTNEED, EMM_ADV_COLD, EMM_ADV_PAGEOUT, EMM_ADV_HUGEPAGE,
	EMM_ADV_NOHUGEPAGE,
};
EMM_API int emm_advise(struct emm *mm, void *addr, size_t len, int advice);
EMM_API int emm_sync(struct emm *mm, void *addr, size_t len);
EMM_API int emm_pin(struct emm *mm, void *addr, size_t len);
EMM_API int emm_unpin(struct emm *mm, void *addr, size_t len);
EMM_API int emm_prefault(struct emm *mm, void *addr, size_t len, int write);
EMM_API int emm_move(struct emm *mm, void *dst, void *src, size_t len);

EMM_API int emm_set_limit(struct emm *mm, uint64_t bytes);
EMM_API long emm_reclaim(struct emm *mm, uint64_t bytes);

struct emm_stats {
	size_t sz;
	uint64_t resident_bytes, limit_bytes, swap_used_bytes, swap_total_bytes;
	uint64_t faults, faults_minor, faults_major, faults_zero, faults_wp, faults_bad;
	uint64_t swapins, swapouts, pgscan, pgsteal, pgactivate, pgdeactivate;
	uint64_t thp_collapse, thp_collapse_failed, thp_split;
	uint64_t io_errors, kernel_vmas;
	uint64_t vmas;           /* emm VMAs, after merging */
	uint64_t oom_events;     /* times reclaim could not keep the budget (swap full) */
	uint64_t writebacks;     /* pages written back to their file or pager */
	uint64_t huge_bytes;     /* resident in collapsed 2 MiB extents */
	uint64_t workingset_refault;  /* pages read back from swap, their refault distance checked */
	uint64_t workingset_activate; /* of those, the ones close enough to go onto the active list */
	uint64_t move_swapped;   /* swapped pages emm_move gave to their new address, no I/O */
	uint64_t allocstall;     /* times a faulting thread reclaimed itself (past wmark_min) */
	uint64_t pgsteal_direct; /* of pgsteal, the pages those threads evicted */
	uint64_t revoke_around;  /* userfaultfd: cold mapped pages revoked in a neighbour's zap */
	uint64_t revokes;        /* ranges of mapped pages revoked, each its own TLB flush */
	uint64_t refault_around; /* of revoke_around, the pages touched again: minor faults */
};
EMM_API int emm_stats(struct emm *mm, struct emm_stats *st);
EMM_API void emm_stats_print(struct emm *mm, void (*out)(const char *line, void *arg), void *arg);
/* The fault profile EMM_PROFILE collects, top call sites first. */
EMM_API int emm_profile_dump(struct emm *mm, void (*out)(const char *line, void *arg), void *arg);

EMM_API int emm_numa_nodes(struct emm *mm);
struct emm_node_stats {
	size_t sz;
	uint64_t resident_bytes, active_bytes, inactive_bytes, limit_bytes;
	uint64_t pgscan, pgsteal, swapouts, swapins;
};
EMM_API int emm_node_stats(struct emm *mm, int node, struct emm_node_stats *st);
EMM_API int emm_migrate(struct emm *mm, void *addr, size_t len, int node);
EMM_API int emm_set_node_limit(struct emm *mm, int node, uint64_t bytes);

#ifdef __cplusplus
}
#endif
#endif /* EMM_H */
