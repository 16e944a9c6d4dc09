/* SPDX-License-Identifier: MIT */
/* Memory placement: NUMA policies checked and applied with mbind, pages found and moved with move_pages. */
#include <errno.h>
#include <limits.h>
#include <numaif.h>
#include <sys/mman.h>

#include "internal.h"
#include "emm_numa.h"

/*
 * The raw system call wrappers of <numaif.h> are used rather than libnuma's
 * numa_* calls: those print on failure (numa_error) and may exit, while emm
 * must only return -errno.
 */

/* Kernel node masks: wide enough for any kernel node number (distribution
 * kernels have MAX_NUMNODES at most 1024). */
#define OS_NODE_BITS	1024
#define LONG_BITS	(8 * sizeof(unsigned long))
#define MOVE_BATCH	128		/* pages per move_pages call: its node array lives on the stack */

static uint64_t all_nodes(int nnodes)
{
	return nnodes >= 64 ? ~0ULL : (1ULL << nnodes) - 1;
}

int numa_check(int policy, uint64_t nodes)
{
	uint64_t bad = nodes & ~all_nodes(numa_topology()->nnodes);

	switch (policy) {
	case EMM_NUMA_LOCAL:
		return nodes ? -EINVAL : 0;
	case EMM_NUMA_PREFERRED:
		if (nodes & (nodes - 1))
			return -EINVAL;
		/* fall through */
	case EMM_NUMA_BIND:
	case EMM_NUMA_INTERLEAVE:
		return !nodes || bad ? -EINVAL : 0;
	}
	return -EINVAL;
}

/* LOCAL is MPOL_DEFAULT, not MPOL_LOCAL: it clears what an earlier VMA of
 * the same physmem range set, and a program run under numactl keeps the
 * policy it asked for. */
static int sys_mode(int policy)
{
	switch (policy) {
	case EMM_NUMA_BIND:
		return MPOL_BIND;
	case EMM_NUMA_PREFERRED:
		return MPOL_PREFERRED;
	case EMM_NUMA_INTERLEAVE:
		return MPOL_INTERLEAVE;
	}
	return MPOL_DEFAULT;
}

/* The kernel's mask for a logical node mask. */
static int os_mask(uint64_t nodes, unsigned long *mask)
{
	const struct numa_topo *tp = numa_topology();

	for (int i = 0; i < tp->nnodes; i++) {
		int os = tp->os_node[i];

		if (!(nodes >> i & 1))
			continue;
		if (os < 0 || os >= OS_NODE_BITS)
			return -EINVAL;
		mask[os / LONG_BITS] |= 1UL << (os % LONG_BITS);
	}
	return 0;
}

static int apply_check(uint64_t addr_or_off, size_t len, int policy, uint64_t nodes)
{
	int err = numa_check(policy, nodes);

	if (err)
		return err;
	if (!len || !IS_ALIGNED(addr_or_off, PAGE_SIZE) || !IS_ALIGNED(len, PAGE_SIZE))
		return -EINVAL;
	return 0;
}

/* mbind on a checked range. maxnode counts one more than the mask's bits:
 * the kernel drops the last one. */
static int do_mbind(void *addr, size_t len, int policy, uint64_t nodes)
{
	unsigned long mask[OS_NODE_BITS / LONG_BITS] = { 0 };
	bool local = policy == EMM_NUMA_LOCAL;
	int err = os_mask(nodes, mask);

	if (err)
		return err;
	if (mbind(addr, len, sys_mode(policy), local ? NULL : mask,
		  local ? 0 : OS_NODE_BITS + 1, 0) < 0)
		return -errno;
	return 0;
}

int numa_apply(void *addr, size_t len, int policy, uint64_t nodes)
{
	int err = apply_check((uintptr_t)addr, len, policy, nodes);

	if (err || !numa_topology()->real)
		return err;
	return do_mbind(addr, len, policy, nodes);
}

/* The policy of a memfd lives in the file, per page offset (shmem's shared
 * policy): set through a short-lived mapping, it still rules every later
 * allocation, through any view or fallocate, without splitting the views. */
int numa_apply_fd(int fd, uint64_t offset, size_t len, int policy, uint64_t nodes)
{
	int err = apply_check(offset, len, policy, nodes);
	void *win;

	if (err || !numa_topology()->real)
		return err;
	win = mmap(NULL, len, PROT_NONE, MAP_SHARED, fd, (off_t)offset);
	if (win == MAP_FAILED)
		return -errno;
	err = do_mbind(win, len, policy, nodes);
	munmap(win, len);
	return err;
}

/*
 * The calling thread's own policy, as numa_prefer_node left it: the
 * default (-1), preferring a node (>= 0), not looked at yet, or one the
 * program gave the thread (numactl), which stays.
 */
#define PREFER_UNKNOWN	(-2)
#define PREFER_OFF	(-3)
static __thread int prefer __attribute__((tls_model("initial-exec"))) = PREFER_UNKNOWN;

static int prefer_set(int node)
{
	unsigned long mask[OS_NODE_BITS / LONG_BITS] = { 0 };
	int err = node >= 0 ? os_mask(1ULL << node, mask) : 0;

	if (err)
		return err;
	if (node < 0 ? set_mempolicy(MPOL_DEFAULT, NULL, 0) < 0
		     : set_mempolicy(MPOL_PREFERRED, mask, OS_NODE_BITS + 1) < 0)
		return -errno;
	prefer = node;
	return 0;
}

/*
 * A thread that fills pages for a thread of another node (a fault-service
 * thread) allocates them on that node: where the range has no policy of
 * its own (LOCAL), a memfd page goes where the allocating thread's policy
 * says, and MPOL_PREFERRED says node, falling back as local allocation
 * does. One system call per change of node.
 */
int numa_prefer_node(int node)
{
	const struct numa_topo *tp = numa_topology();
	int mode = MPOL_DEFAULT;

	if (node >= tp->nnodes)
		return -EINVAL;
	node = MAX(node, -1);
	if (!tp->real)
		return 0;
	if (prefer == PREFER_UNKNOWN) {
		if (get_mempolicy(&mode, NULL, 0, NULL, 0) < 0)
			return -errno;
		prefer = mode == MPOL_DEFAULT ? -1 : PREFER_OFF;
	}
	if (prefer == PREFER_OFF || prefer == node)
		return 0;
	return prefer_set(node);
}

/* The logical node of a kernel node, -ENODEV for one emm does not know. */
static int logical_node(const struct numa_topo *tp, int os)
{
	for (int i = 0; i < tp->nnodes; i++)
		if (tp->os_node[i] == os)
			return i;
	return -ENODEV;
}

static void status_to_logical(const struct numa_topo *tp, int *st, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (st[i] >= 0)
			st[i] = logical_node(tp, st[i]);
}

int numa_pages_node(void *const *pages, unsigned n, int *node)
{
	const struct numa_topo *tp = numa_topology();

	if (n && (!pages || !node))
		return -EINVAL;
	if (!tp->real)
		return -EOPNOTSUPP;
	if (n && move_pages(0, n, (void **)pages, NULL, node, 0) < 0)
		return -errno;
	status_to_logical(tp, node, n);
	return 0;
}

/*
 * One move_pages call of at most MOVE_BATCH pages. A positive return of the
 * kernel counts pages it could not migrate although their status may name
 * the target, so the count is added to the failed statuses.
 */
static long move_batch(const struct numa_topo *tp, void *const *pages, unsigned n, int node,
		       int *status)
{
	int nodes[MOVE_BATCH] = { 0 }, st[MOVE_BATCH];
	long r, missed = 0;

	for (unsigned i = 0; i < n; i++)
		nodes[i] = tp->os_node[node];
	r = move_pages(0, n, (void **)pages, nodes, st, MPOL_MF_MOVE);
	if (r < 0)
		return -errno;
	status_to_logical(tp, st, n);
	for (unsigned i = 0; i < n; i++) {
		missed += st[i] != node;
		if (status)
			status[i] = st[i];
	}
	return missed + r;
}

/* A faked topology: every page counts as being where it was sent. */
static int fake_move(unsigned n, int node, int *status)
{
	for (unsigned i = 0; i < n && status; i++)
		status[i] = node;
	return 0;
}

int numa_move(void *const *pages, unsigned n, int node, int *status)
{
	const struct numa_topo *tp = numa_topology();
	long missed = 0;

	if ((n && !pages) || node < 0 || node >= tp->nnodes)
		return -EINVAL;
	if (!tp->real)
		return fake_move(n, node, status);
	for (unsigned done = 0, k; done < n; done += k) {
		long r;

		k = MIN(n - done, MOVE_BATCH);
		r = move_batch(tp, pages + done, k, node, status ? status + done : NULL);
		if (r < 0)
			return (int)r;
		missed += r;
	}
	return missed > INT_MAX ? INT_MAX : (int)missed;
}

/* Async-signal-safe. */
int numa_node_of_interleave(uint64_t nodes, uint64_t page_index)
{
	int k = __builtin_popcountll(nodes);

	if (!k)
		return -EINVAL;
	for (uint64_t r = page_index % (unsigned)k; r; r--)
		nodes &= nodes - 1;
	return __builtin_ctzll(nodes);
}

/* Async-signal-safe. */
int numa_policy_node(int policy, uint64_t nodes, uint64_t page_index)
{
	int here = numa_current_node();

	switch (policy) {
	case EMM_NUMA_LOCAL:
		return here;
	case EMM_NUMA_BIND:
	case EMM_NUMA_PREFERRED:
		if (!nodes)
			return -EINVAL;
		return nodes >> here & 1 ? here : __builtin_ctzll(nodes);
	case EMM_NUMA_INTERLEAVE:
		return numa_node_of_interleave(nodes, page_index);
	}
	return -EINVAL;
}
