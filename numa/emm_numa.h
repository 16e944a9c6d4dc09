/* SPDX-License-Identifier: MIT */
/* The NUMA layer: the topology hwloc finds, and memory placement through the kernel's mempolicy calls. */
#ifndef EMM_EMM_NUMA_H
#define EMM_EMM_NUMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "emm.h"

/*
 * Nodes are "logical": 0..nnodes-1 in hwloc's order, the numbers emm_map's
 * numa_nodes bits and emm_node_stats use. os_node[] turns one into the
 * kernel's node number; only this layer ever hands a node to the kernel.
 *
 * Note: this header shadows libnuma's <numa.h> for any file compiled with
 * -Inuma; the files here use <numaif.h> (not shadowed) for the system calls.
 */
#define NUMA_MAX_NODES	64		/* equals EMM_MAX_NODES in lib/internal.h */

struct numa_topo {
	int nnodes;			/* >= 1 */
	int ncpus;			/* entries of cpu_node */
	const int *cpu_node;		/* logical node of each OS CPU index (sched_getcpu()), 0 if unknown */
	uint64_t node_mem[NUMA_MAX_NODES];	/* bytes of memory per node (0 unknown) */
	int os_node[NUMA_MAX_NODES];	/* the kernel's node number of logical node i */
	bool real;			/* the nodes are the kernel's: placement syscalls make sense */
};

/*
 * Discovered once per process (pthread_once; the first call costs the hwloc
 * load), never NULL, never freed. Honours HWLOC_SYNTHETIC and HWLOC_XMLFILE.
 * If hwloc fails: one node holding every CPU, real false, one warning line.
 * Not async-signal-safe: call it before the fault path needs a node.
 */
const struct numa_topo *numa_topology(void);

/* Async-signal-safe. The logical node of an OS CPU index; 0 for an unknown
 * CPU or before numa_topology() has run once. */
int numa_cpu_node(int cpu);

/* Async-signal-safe. The logical node of the CPU the caller runs on. */
int numa_current_node(void);
void numa_set_fault_cpu(int cpu);
int numa_fault_cpu(void);

/*
 * EMM_NUMA_* policy and node mask: 0 or -EINVAL (a node beyond nnodes, an
 * empty mask for BIND/PREFERRED/INTERLEAVE, a non-empty one for LOCAL,
 * PREFERRED with more than one bit, an unknown policy).
 */
int numa_check(int policy, uint64_t nodes);

/*
 * Sets the policy of a page-aligned range of a MAP_SHARED memfd mapping.
 * A memfd keeps the policy with the file (per offset), so it governs the
 * pages whichever view faults them in; pages already allocated stay where
 * they are. LOCAL removes the range's policy (the thread's own policy, local
 * allocation unless the program runs under numactl, applies again).
 * Returns 0; -EINVAL as numa_check or for a misaligned or empty range;
 * -errno of mbind. A no-op returning 0 when the topology is not real.
 * Never prints. Note that mbind splits the mapping's kernel VMA wherever
 * the policy changes: numa_apply_fd does not touch the caller's mappings.
 */
int numa_apply(void *addr, size_t len, int policy, uint64_t nodes);

/*
 * The same for the range [offset, offset + len) of a memfd, through a
 * mapping of its own that is gone on return, so the program's mappings of
 * the file keep one kernel VMA each. offset and len page-aligned.
 */
int numa_apply_fd(int fd, uint64_t offset, size_t len, int policy, uint64_t nodes);

/*
 * Pages the calling thread allocates from now on where the range has no
 * policy (EMM_NUMA_LOCAL) go to logical node node, falling back to the
 * others as local allocation does: the thread's policy becomes
 * MPOL_PREFERRED. node -1 gives it back the default policy. A thread
 * whose policy the program set (numactl, set_mempolicy) keeps that one.
 * 0, -EINVAL for a node beyond nnodes, -errno of the system call; a no-op
 * when the topology is not real. Not async-signal-safe (numa_topology):
 * for threads of emm's own, not for the fault path of a signal handler.
 */
int numa_prefer_node(int node);

/*
 * move_pages query: node[i] gets the logical node of pages[i], or -errno
 * for that page (-ENOENT: not allocated, or not yet mapped in this view's
 * page tables: ask through the view that faulted it in; -EFAULT: no
 * mapping there; -ENODEV: on a kernel node emm does not know). Returns 0, -errno, or -EOPNOTSUPP when
 * the topology is not real (the kernel's nodes mean nothing there: use the
 * node the policy chose, numa_policy_node).
 */
int numa_pages_node(void *const *pages, unsigned n, int *node);

/*
 * Moves pages to a logical node with move_pages. status (may be NULL) gets
 * each page's logical node afterwards or -errno (as numa_pages_node: only
 * pages mapped in this view's page tables can move). Returns the number of
 * pages that may not be on the node (0: all are), or -errno. The kernel
 * moves only pages mapped once (-EACCES otherwise, without CAP_SYS_NICE):
 * a page mapped in two views must be unmapped from one first. No-op
 * success (status = node) when the topology is not real.
 */
int numa_move(void *const *pages, unsigned n, int node, int *status);

/*
 * Async-signal-safe. The node interleave over nodes gives page page_index:
 * the (page_index mod popcount)-th set bit; -EINVAL for an empty mask.
 * Linux interleaves a memfd by file page offset plus a per-file bias (the
 * inode number), so on a real topology pass that sum, or ask the kernel.
 */
int numa_node_of_interleave(uint64_t nodes, uint64_t page_index);

/*
 * Async-signal-safe. The logical node a page allocated now by the calling
 * thread lands on under a policy: LOCAL the current node; BIND the current
 * node if in the mask, else its lowest node (the kernel would take the
 * nearest); PREFERRED its node; INTERLEAVE as numa_node_of_interleave.
 * -EINVAL for an empty mask where one is needed or an unknown policy.
 */
int numa_policy_node(int policy, uint64_t nodes, uint64_t page_index);

#endif /* EMM_EMM_NUMA_H */
