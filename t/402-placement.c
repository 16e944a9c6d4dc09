/* SPDX-License-Identifier: MIT */
/* NUMA placement on the real machine: policies set with mbind before the first touch, pages found and moved with move_pages, a missing node refused in silence. */
#include <numa.h>
#include <numaif.h>
#include <sys/mman.h>

#include "tap.h"
#include "../numa/emm_numa.h"

#define NPAGES	64
#define LEN	(NPAGES * 4096UL)

static const struct numa_topo *tp;
static int memfd;
static char *view, *alias;		/* the memfd mapped twice, as emm maps physmem */

/* The kernel's policy for an address: its mode, and in *node0 whether the
 * mask holds logical node 0's kernel node. */
static int mode_at(void *addr, int *node0)
{
	unsigned long mask[1024 / (8 * sizeof(unsigned long))] = { 0 };
	int mode = -1, os = tp->os_node[0];

	if (get_mempolicy(&mode, mask, 1024 + 1, addr, MPOL_F_ADDR) < 0)
		return -errno;
	if (node0)
		*node0 = !!(mask[os / (8 * sizeof(long))] & 1UL << (os % (8 * sizeof(long))));
	return mode;
}

/* Kernel VMAs of /proc/self/maps that start inside a mapping. */
static long vmas_in(char *p, size_t len)
{
	return maps_count_range((uintptr_t)p, (uintptr_t)p + len);
}

static void setup(void)
{
	memfd = memfd_create("emm-402", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, (off_t)LEN) < 0)
		bail("memfd: %s", strerror(errno));
	view = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	alias = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (view == MAP_FAILED || alias == MAP_FAILED)
		bail("mmap: %s", strerror(errno));
}

static void pages_of(char *base, void **pages, int n)
{
	for (int i = 0; i < n; i++)
		pages[i] = base + (size_t)i * 4096;
}

/* BIND to node 0, touch half the pages: they are on node 0, the rest absent. */
static void bind_and_touch(void)
{
	void *pages[NPAGES];
	int node[NPAGES], on0 = 1, absent = 1, in_mask = 0;

	is_int(numa_apply(view, LEN, EMM_NUMA_BIND, 1 << 0), 0, "numa_apply BIND node 0");
	is_int(mode_at(alias, &in_mask), MPOL_BIND, "the kernel has BIND for the file's pages");
	ok(in_mask, "with node 0 in its mask");
	memset(view, 0x5a, LEN / 2);
	pages_of(view, pages, NPAGES);
	is_int(numa_pages_node((void *const *)pages, NPAGES, node), 0, "numa_pages_node");
	for (int i = 0; i < NPAGES / 2; i++)
		on0 &= node[i] == 0;
	for (int i = NPAGES / 2; i < NPAGES; i++)
		absent &= node[i] == -ENOENT;
	ok(on0, "every touched page is on node 0 (first: %d)", node[0]);
	ok(absent, "every untouched page is absent (first: %d)", node[NPAGES / 2]);
}

/* Moving pages already on node 0 there: done, through either view. */
static void move_to_node0(void)
{
	void *pages[NPAGES / 2];
	int st[NPAGES / 2], all0 = 1;

	pages_of(view, pages, NPAGES / 2);
	is_int(numa_move((void *const *)pages, NPAGES / 2, 0, st), 0, "numa_move to node 0");
	for (int i = 0; i < NPAGES / 2; i++)
		all0 &= st[i] == 0;
	ok(all0, "each page's status is node 0 (first: %d)", st[0]);
	pages_of(alias, pages, NPAGES / 2);
	is_int(numa_pages_node((void *const *)pages, 1, st), 0, "query through the other view");
	is_int(st[0], -ENOENT, "a page that view never mapped is -ENOENT there");
	for (int i = 0; i < NPAGES / 2; i++)
		all0 &= alias[(size_t)i * 4096] == 0x5a;
	ok(all0, "read through the other view: the same data");
	is_int(numa_move((void *const *)pages, NPAGES / 2, 0, NULL), 0,
	       "numa_move through the other view, without statuses");
	is_int(numa_move(NULL, 0, 0, NULL), 0, "numa_move of no page");
}

/* Each policy reaches the kernel as its MPOL_ mode. */
static void each_policy(void)
{
	is_int(numa_apply(view, LEN, EMM_NUMA_PREFERRED, 1), 0, "numa_apply PREFERRED node 0");
	is_int(mode_at(view, NULL), MPOL_PREFERRED, "the kernel has PREFERRED");
	is_int(numa_apply(view, LEN, EMM_NUMA_INTERLEAVE, 1), 0, "numa_apply INTERLEAVE node 0");
	is_int(mode_at(view, NULL), MPOL_INTERLEAVE, "the kernel has INTERLEAVE");
	is_int(numa_apply(view, LEN, EMM_NUMA_LOCAL, 0), 0, "numa_apply LOCAL");
	is_int(mode_at(view, NULL), MPOL_DEFAULT, "LOCAL clears the range's policy");
	is_int(numa_apply(view + 1, 4096, EMM_NUMA_BIND, 1), -EINVAL, "a misaligned range is -EINVAL");
	is_int(numa_apply(view, 0, EMM_NUMA_BIND, 1), -EINVAL, "an empty range is -EINVAL");
}

/* Through the file, the policy rules both views and splits neither. */
static void apply_through_fd(void)
{
	long before = vmas_in(view, LEN) + vmas_in(alias, LEN);

	is_int(numa_apply_fd(memfd, LEN / 2, LEN / 4, EMM_NUMA_BIND, 1), 0,
	       "numa_apply_fd BIND node 0 on a quarter of the file");
	is_int(mode_at(view + LEN / 2, NULL), MPOL_BIND, "the view sees BIND there");
	is_int(mode_at(alias + LEN / 2 + LEN / 4 - 4096, NULL), MPOL_BIND, "so does the alias");
	is_int(mode_at(alias + LEN / 2 + LEN / 4, NULL), MPOL_DEFAULT, "not past the quarter");
	is_int(vmas_in(view, LEN) + vmas_in(alias, LEN), before, "no kernel VMA was split");
	is_int(numa_apply_fd(memfd, 100, 4096, EMM_NUMA_BIND, 1), -EINVAL,
	       "a misaligned offset is -EINVAL");
	is_int(numa_apply_fd(-1, 0, 4096, EMM_NUMA_BIND, 1), -EBADF, "a bad descriptor is -EBADF");
}

/* In a child whose stderr is a pipe: every call with a missing node. */
static void missing_node(void *arg)
{
	int n = tp->nnodes, bad = 0;
	void *pages[1] = { view };

	bad |= numa_apply(view, LEN, EMM_NUMA_BIND, 1ULL << n) != -EINVAL;
	bad |= numa_apply(view, LEN, EMM_NUMA_PREFERRED, 1ULL << 63) != -EINVAL;
	bad |= numa_apply(view, LEN, EMM_NUMA_INTERLEAVE, 1 | 1ULL << n) != -EINVAL;
	bad |= numa_apply_fd(memfd, 0, LEN, EMM_NUMA_BIND, 1ULL << n) != -EINVAL;
	bad |= numa_move((void *const *)pages, 1, n, NULL) != -EINVAL;
	bad |= numa_move((void *const *)pages, 1, -1, NULL) != -EINVAL;
	_exit(bad);
}

static void missing_node_silent(void)
{
	char err[1024];
	int status = -1;

	is_int(fork_stderr(missing_node, NULL, err, sizeof(err), &status), 0, "child ran");
	is_int(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0,
	       "node %d (missing): every call is -EINVAL", tp->nnodes);
	is_str(err, "", "and nothing was printed on stderr");
}

static void query_edges(void)
{
	void *pages[2] = { (void *)4096, view };
	int node[2] = { 0, -1 };

	is_int(numa_pages_node((void *const *)pages, 2, node), 0, "query with an unmapped address");
	is_int(node[0], -EFAULT, "the unmapped address is -EFAULT");
	is_int(node[1], 0, "the page next to it is still on node 0");
	is_int(numa_pages_node(NULL, 1, node), -EINVAL, "no page array is -EINVAL");
}

int main(void)
{
	if (numa_available() < 0)
		skip_all("the kernel has no NUMA support (numa_available() < 0)");
	tp = numa_topology();
	if (!tp->real)
		skip_all("hwloc's topology is not the kernel's (HWLOC_SYNTHETIC or HWLOC_XMLFILE?)");
	plan(35);
	setup();
	bind_and_touch();
	move_to_node0();
	each_policy();
	apply_through_fd();
	missing_node_silent();
	query_edges();
	return done_testing();
}
