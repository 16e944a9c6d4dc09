/* SPDX-License-Identifier: MIT */
/* NUMA on the real one-node machine: policies for node 0 accepted and node 1 refused in silence, pages on node 0, node 0's statistics, emm_migrate's errors. */
#include <numa.h>
#include <numaif.h>

#include "emm.h"
#include "tap.h"
#include "util.h"
#include "../numa/emm_numa.h"

#define PAGE	4096UL
#define MIB	(1UL << 20)
#define NPAGES	64
#define VLEN	(NPAGES * PAGE)
#define LIMIT	(64 * MIB)

static struct emm *mm;
static char *rsv;

static int map_policy(void *addr, size_t len, int policy, uint64_t nodes)
{
	EMM_OPTS(emm_map_opts, mo, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .numa_policy = policy, .numa_nodes = nodes);

	return emm_map(mm, addr, len, &mo);
}

/* The n-th VMA of the reservation: one per policy, a hole after each. */
static char *slot(int n)
{
	return rsv + (size_t)n * 2 * VLEN;
}

static void fill(char *p, size_t len, int seed)
{
	for (size_t off = 0; off < len; off += PAGE)
		memset(p + off, (int)(off / PAGE + (size_t)seed) | 1, 64);
}

/* The first page whose data is not what fill wrote, or -1. */
static long first_bad(const char *p, size_t len, int seed)
{
	for (size_t off = 0; off < len; off += PAGE)
		for (size_t i = 0; i < 64; i++)
			if ((unsigned char)p[off + i] != (unsigned char)((off / PAGE + (size_t)seed) | 1))
				return (long)(off / PAGE);
	return -1;
}

static void policies_node0(void)
{
	is_int(map_policy(slot(0), VLEN, EMM_NUMA_BIND, 1), 0, "emm_map BIND node 0");
	is_int(map_policy(slot(1), VLEN, EMM_NUMA_PREFERRED, 1), 0, "emm_map PREFERRED node 0");
	is_int(map_policy(slot(2), VLEN, EMM_NUMA_INTERLEAVE, 1), 0, "emm_map INTERLEAVE node 0");
	is_int(map_policy(slot(3), VLEN, EMM_NUMA_LOCAL, 0), 0, "emm_map LOCAL");
	is_int((long long)stats(mm).vmas, 4, "four VMAs");
}

/* In a child with stderr to a pipe: each policy naming node 1 is refused
 * and leaves nothing behind. Exits with one bit per wrong answer. The
 * parent's instance is not the child's (emm(7)): it opens its own. */
static void node1_child(void *arg)
{
	char *free_slot;
	uint64_t vmas;
	int bad = 0;

	if (emm_open(NULL, &mm) || emm_reserve(mm, 16 * VLEN, (void **)&rsv))
		_exit(255);
	free_slot = slot(4);
	vmas = stats(mm).vmas;

	bad |= (map_policy(free_slot, VLEN, EMM_NUMA_BIND, 2) != -EINVAL) << 0;
	bad |= (map_policy(free_slot, VLEN, EMM_NUMA_BIND, 3) != -EINVAL) << 1;
	bad |= (map_policy(free_slot, VLEN, EMM_NUMA_PREFERRED, 2) != -EINVAL) << 2;
	bad |= (map_policy(free_slot, VLEN, EMM_NUMA_INTERLEAVE, 2) != -EINVAL) << 3;
	bad |= (map_policy(free_slot, VLEN, EMM_NUMA_INTERLEAVE, 3) != -EINVAL) << 4;
	bad |= (map_policy(free_slot, VLEN, EMM_NUMA_BIND, 1ULL << 63) != -EINVAL) << 5;
	bad |= (stats(mm).vmas != vmas) << 6;
	_exit(bad);
}

static void policies_node1(void)
{
	char err[1024];
	int status = -1;

	is_int(fork_stderr(node1_child, NULL, err, sizeof(err), &status), 0, "child ran");
	is_int(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0,
	       "node 1: BIND, PREFERRED, INTERLEAVE (alone or with node 0) all -EINVAL, "
	       "no VMA left (bits of wrong answers)");
	is_str(err, "", "and nothing on stderr");
	is_int(map_policy(slot(4), VLEN, EMM_NUMA_LOCAL, 1), -EINVAL, "LOCAL with a node: -EINVAL");
	is_int(map_policy(slot(4), VLEN, EMM_NUMA_PREFERRED, 3), -EINVAL,
	       "PREFERRED with two nodes: -EINVAL");
	is_int(map_policy(slot(4), VLEN, EMM_NUMA_BIND, 0), -EINVAL, "BIND to no node: -EINVAL");
	is_int(map_policy(slot(4), VLEN, EMM_NUMA_BIND, 1), 0, "the refused range maps fine");
	is_int(emm_unmap(mm, slot(4), VLEN), 0, "and unmaps");
}

/* move_pages query on the app view: each page's kernel node. */
static int nodes_of(char *p, int n, int *status)
{
	void *pages[NPAGES];

	for (int i = 0; i < n; i++)
		pages[i] = p + (size_t)i * PAGE;
	return (int)move_pages(0, (unsigned long)n, pages, NULL, status, 0);
}

/* How many of the n pages at p are on the kernel node want (diag the first other). */
static int count_on(char *p, int n, int want, const char *what)
{
	int status[NPAGES], on = 0;

	if (nodes_of(p, n, status) < 0) {
		diag("%s: move_pages: %s", what, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (status[i] == want)
			on++;
		else if (on == i)
			diag("%s: page %d has status %d", what, i, status[i]);
	}
	return on;
}

static void placement(void)
{
	int os0 = numa_topology()->os_node[0];
	const char *names[3] = { "BIND", "PREFERRED", "INTERLEAVE" };

	for (int i = 0; i < 4; i++)
		fill(slot(i), VLEN, i);
	if (numa_available() < 0) {
		skip(3, "no NUMA system calls (numa_available() < 0)");
		return;
	}
	for (int i = 0; i < 3; i++)
		is_int(count_on(slot(i), NPAGES, os0, names[i]), NPAGES,
		       "%s node 0: move_pages finds all %d touched pages on node 0 (kernel node %d)",
		       names[i], NPAGES, os0);
}

static void node_stats(void)
{
	EMM_OPTS(emm_node_stats, ns);
	struct emm_node_stats small = { .sz = offsetof(struct emm_node_stats, swapins) };
	struct emm_stats st = stats(mm);

	is_int(emm_node_stats(mm, 0, &ns), 0, "emm_node_stats(node 0)");
	diag("before draining: resident %" PRIu64 " KiB, active %" PRIu64 " + inactive %" PRIu64
	     " KiB", ns.resident_bytes >> 10, ns.active_bytes >> 10, ns.inactive_bytes >> 10);
	is_int(ns.resident_bytes, st.resident_bytes, "resident is emm_stats' resident (%" PRIu64
	       " KiB)", st.resident_bytes >> 10);
	ok(ns.resident_bytes >= 4 * VLEN, "at least the 4 x %d pages touched", NPAGES);
	is_int(ns.limit_bytes, LIMIT, "limit is the whole budget");
	ok(ns.active_bytes + ns.inactive_bytes <= ns.resident_bytes,
	   "active + inactive <= resident before draining");
	is_int(emm_reclaim(mm, 0), 0, "emm_reclaim(mm, 0) frees nothing (and drains the pagevecs)");
	is_int(emm_node_stats(mm, 0, &ns), 0, "emm_node_stats(node 0) again");
	is_int(ns.active_bytes + ns.inactive_bytes, ns.resident_bytes,
	       "active + inactive == resident after draining");
	is_int(ns.resident_bytes, stats(mm).resident_bytes, "resident unchanged");
	ok(ns.pgsteal == 0 && ns.swapouts == 0, "no reclaim under the budget");
	is_int(emm_node_stats(mm, 1, &ns), -EINVAL, "emm_node_stats(node 1): -EINVAL");
	is_int(emm_node_stats(mm, -1, &ns), -EINVAL, "emm_node_stats(node -1): -EINVAL");
	small.swapins = 0xdead;
	is_int(emm_node_stats(mm, 0, &small), 0, "emm_node_stats with sz short of swapins: accepted");
	is_int(small.swapins, 0xdead, "emm_node_stats: nothing written past sz");
}

static void migrate(void)
{
	uint64_t before = stats(mm).resident_bytes;
	int os0 = numa_topology()->os_node[0];

	is_int(emm_migrate(mm, slot(0), VLEN, 0), 0, "emm_migrate to node 0: 0");
	is_int(emm_migrate(mm, slot(0), 4 * 2 * VLEN, 0), -ENOMEM,
	       "emm_migrate over VMAs and holes: -ENOMEM");
	is_int(emm_migrate(mm, slot(0) + VLEN, VLEN, 0), -ENOMEM, "emm_migrate of a hole: -ENOMEM");
	is_int(emm_migrate(mm, slot(0), VLEN, 1), -EINVAL, "emm_migrate to node 1: -EINVAL");
	is_int(emm_migrate(mm, slot(0), VLEN, -1), -EINVAL, "emm_migrate to node -1: -EINVAL");
	is_int(emm_migrate(NULL, slot(0), VLEN, 0), -EINVAL, "emm_migrate with mm NULL: -EINVAL");
	is_int(emm_migrate(mm, slot(0) + 1, VLEN, 0), -EINVAL,
	       "emm_migrate of a misaligned address: -EINVAL");
	is_int(emm_migrate(mm, slot(0), 0, 0), -EINVAL, "emm_migrate of no bytes: -EINVAL");
	is_int(emm_migrate(mm, slot(1), 3 * 2 * VLEN - VLEN, 0), -ENOMEM,
	       "emm_migrate over three VMAs and the holes between: -ENOMEM");
	is_int(stats(mm).resident_bytes, before, "migrating within node 0 keeps every page");
	is_int(first_bad(slot(0), VLEN, 0), -1, "the migrated range reads what was written");
	if (numa_available() < 0)
		skip(1, "no NUMA system calls (numa_available() < 0)");
	else
		is_int(count_on(slot(0), NPAGES, os0, "migrated"), NPAGES,
		       "and its pages are still on node 0");
	for (int i = 1; i < 4; i++)
		if (first_bad(slot(i), VLEN, i) >= 0)
			diag("VMA %d: page %ld is wrong", i, first_bad(slot(i), VLEN, i));
	ok(first_bad(slot(1), VLEN, 1) < 0 && first_bad(slot(2), VLEN, 2) < 0 &&
	   first_bad(slot(3), VLEN, 3) < 0, "the other VMAs read what was written");
}

/* A collapsed 2 MiB extent is 512 resident pages but one entry on its
 * list, which the list fields count as one page (see emm_numa(3)). */
static void huge_extent(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .thp = EMM_THP_MADVISE);
	EMM_OPTS(emm_map_opts, mo, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .flags = EMM_MAP_HUGEPAGE, .numa_policy = EMM_NUMA_BIND, .numa_nodes = 1);
	EMM_OPTS(emm_node_stats, ns);
	EMM_OPTS(emm_stats, st);
	struct emm *hm;
	char *p;

	if (emm_open(&o, &hm) || emm_reserve(hm, 4 * MIB, (void **)&p) ||
	    emm_map(hm, p, 4 * MIB, &mo))
		bail("cannot set up the huge-page instance");
	memset(p, 0x3c, 4 * MIB);
	emm_reclaim(hm, 0);
	emm_stats(hm, &st);
	emm_node_stats(hm, 0, &ns);
	diag("two huge extents: resident %" PRIu64 " pages, huge %" PRIu64 ", active %" PRIu64
	     " + inactive %" PRIu64, ns.resident_bytes / PAGE, st.huge_bytes / PAGE,
	     ns.active_bytes / PAGE, ns.inactive_bytes / PAGE);
	if (!st.huge_bytes)
		skip(1, "no extent was collapsed (MADV_COLLAPSE failed here)");
	else
		is_int(ns.active_bytes + ns.inactive_bytes, ns.resident_bytes,
		       "active + inactive == resident, huge extents counted in pages");
	emm_close(hm);
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .thp = EMM_THP_NEVER);

	/* The topology is read once, at the first emm_open: a faked one from
	 * the environment must not hide the machine's own. */
	unsetenv("HWLOC_SYNTHETIC");
	unsetenv("HWLOC_XMLFILE");
	if (numa_available() >= 0 && numa_num_configured_nodes() != 1)
		skip_all("this machine has more than one NUMA node; the test is for one-node machines");
	plan(48);
	if (!is_int(emm_open(&o, &mm), 0, "emm_open"))
		bail("cannot open an instance");
	is_int(emm_numa_nodes(mm), 1, "emm_numa_nodes: 1");
	is_int(emm_numa_nodes(NULL), -EINVAL, "emm_numa_nodes(NULL): -EINVAL");
	if (emm_reserve(mm, 16 * VLEN, (void **)&rsv))
		bail("cannot reserve");
	policies_node0();
	policies_node1();
	placement();
	node_stats();
	migrate();
	is_int(emm_close(mm), 0, "emm_close");
	huge_extent();
	return done_testing();
}
