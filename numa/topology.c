/* SPDX-License-Identifier: MIT */
/* The NUMA topology: nodes, their memory and the node of each CPU, discovered once through hwloc. */
#include <hwloc.h>
#include <numa.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "emm_numa.h"
#include "util.h"

_Static_assert(NUMA_MAX_NODES == EMM_MAX_NODES, "one lruvec per node");
_Static_assert(NUMA_MAX_NODES <= 64, "node masks are 64 bits");

static struct numa_topo topo;
static pthread_once_t topo_once = PTHREAD_ONCE_INIT;
/* Set once the table is complete; read by numa_cpu_node, which may run in a
 * signal handler and so cannot go through pthread_once. */
static const struct numa_topo *_Atomic topo_ready;

/* CPUs the kernel may number: sched_getcpu() stays below this. */
static int machine_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_CONF);

	return n > 0 ? (int)n : 1;
}

/* A table of n CPUs, every one on node 0; a static one-entry table when
 * even that cannot be had (numa_cpu_node says 0 beyond ncpus anyway). */
static int *cpu_table(int *n)
{
	static int one_cpu[1];
	int *t = calloc((size_t)*n, sizeof(*t));

	if (!t) {
		*n = 1;
		t = one_cpu;
	}
	return t;
}

/*
 * Only NUMA nodes and PUs matter, but packages, dies and groups stay: a
 * memory object takes its parent's cpuset, so without them every node
 * would claim every CPU. Caches, I/O and the x86 backend (it binds the
 * calling thread to each CPU in turn to run cpuid) are left out.
 */
static void hwloc_trim(hwloc_topology_t t)
{
	hwloc_topology_set_cache_types_filter(t, HWLOC_TYPE_FILTER_KEEP_NONE);
	hwloc_topology_set_icache_types_filter(t, HWLOC_TYPE_FILTER_KEEP_NONE);
	hwloc_topology_set_io_types_filter(t, HWLOC_TYPE_FILTER_KEEP_NONE);
	hwloc_topology_set_type_filter(t, HWLOC_OBJ_MISC, HWLOC_TYPE_FILTER_KEEP_NONE);
	hwloc_topology_set_components(t, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, "x86");
#if HWLOC_API_VERSION >= 0x00020800
	hwloc_topology_set_flags(t, HWLOC_TOPOLOGY_FLAG_NO_DISTANCES |
				 HWLOC_TOPOLOGY_FLAG_NO_MEMATTRS | HWLOC_TOPOLOGY_FLAG_NO_CPUKINDS);
#endif
}

static int hwloc_open(hwloc_topology_t *tp)
{
	hwloc_topology_t t;

	if (hwloc_topology_init(&t) < 0)
		return -1;
	hwloc_trim(t);
	if (hwloc_topology_load(t) < 0) {
		hwloc_topology_destroy(t);
		return -1;
	}
	*tp = t;
	return 0;
}

/* Logical node i's kernel number and memory. */
static void read_nodes(hwloc_topology_t t, struct numa_topo *tp)
{
	for (int i = 0; i < tp->nnodes; i++) {
		hwloc_obj_t o = hwloc_get_obj_by_type(t, HWLOC_OBJ_NUMANODE, (unsigned)i);

		tp->os_node[i] = (int)o->os_index;
		tp->node_mem[i] = o->attr->numanode.local_memory;
	}
}

/* Every PU in node i's cpuset is an OS CPU index on node i. -1 marks the
 * CPUs no node claims. */
static void map_cpus(hwloc_topology_t t, struct numa_topo *tp, int *map)
{
	for (int c = 0; c < tp->ncpus; c++)
		map[c] = -1;
	for (int i = 0; i < tp->nnodes; i++) {
		hwloc_obj_t o = hwloc_get_obj_by_type(t, HWLOC_OBJ_NUMANODE, (unsigned)i);
		int c;

		hwloc_bitmap_foreach_begin(c, o->cpuset) {
			if (c < tp->ncpus)
				map[c] = i;
		} hwloc_bitmap_foreach_end();
	}
}

/*
 * CPUs no node claims. On the real machine they are offline or outside the
 * process's cpuset: node 0 will do. A faked topology (HWLOC_SYNTHETIC or
 * XML) may describe fewer PUs than the machine has; the OS CPUs beyond them
 * go round-robin onto the nodes, so that threads running there still spread
 * over every node instead of all landing on node 0.
 */
static void map_unclaimed(struct numa_topo *tp, int *map, bool faked)
{
	int k = 0;

	for (int c = 0; c < tp->ncpus; c++)
		if (map[c] < 0)
			map[c] = faked ? k++ % tp->nnodes : 0;
}

/* Placement calls make sense only on the system hwloc read, and only if
 * libnuma sees the same nodes: a count check rather than numa_max_node()+1,
 * which breaks on machines whose node numbers have gaps. */
static bool kernel_agrees(hwloc_topology_t t, const struct numa_topo *tp)
{
	int max;

	if (!hwloc_topology_is_thissystem(t) || numa_available() < 0)
		return false;
	max = numa_max_node();
	for (int i = 0; i < tp->nnodes; i++)
		if (tp->os_node[i] > max)
			return false;
	return tp->nnodes == numa_num_task_nodes();
}

static int topo_from_hwloc(struct numa_topo *tp)
{
	hwloc_topology_t t;
	int n, last;
	int *map;

	if (hwloc_open(&t) < 0)
		return -1;
	n = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE);
	if (n < 1) {
		hwloc_topology_destroy(t);
		return -1;
	}
	if (n > NUMA_MAX_NODES)
		emm_warn("%d NUMA nodes: using the first %d, without memory placement",
			 n, NUMA_MAX_NODES);
	tp->nnodes = MIN(n, NUMA_MAX_NODES);
	last = hwloc_bitmap_last(hwloc_topology_get_complete_cpuset(t));
	tp->ncpus = MAX(machine_cpus(), last + 1);
	map = cpu_table(&tp->ncpus);
	read_nodes(t, tp);
	map_cpus(t, tp, map);
	map_unclaimed(tp, map, !hwloc_topology_is_thissystem(t));
	tp->cpu_node = map;
	tp->real = n <= NUMA_MAX_NODES && kernel_agrees(t, tp);
	hwloc_topology_destroy(t);
	return 0;
}

/* One node with every CPU and all the memory; no placement. */
static void topo_fallback(struct numa_topo *tp)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

	memset(tp, 0, sizeof(*tp));
	tp->nnodes = 1;
	tp->ncpus = machine_cpus();
	tp->cpu_node = cpu_table(&tp->ncpus);
	tp->node_mem[0] = pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

/*
 * A machine the kernel says has one memory node, and no faked topology
 * asked for: one node, without loading hwloc. Loading it costs 45-50 ms at
 * the first emm_open (its plugins) and leaves libstdc++ mapped in every
 * program that links emm, to learn what libnuma tells in microseconds.
 */
static bool topo_single_node(struct numa_topo *tp)
{
	int node = 0;

	if (getenv("HWLOC_SYNTHETIC") || getenv("HWLOC_XMLFILE") ||
	    numa_available() < 0 || numa_num_configured_nodes() != 1)
		return false;
	topo_fallback(tp);
	while (node <= numa_max_node() && numa_node_size64(node, NULL) <= 0)
		node++;
	tp->os_node[0] = node <= numa_max_node() ? node : 0;
	if (numa_node_size64(tp->os_node[0], NULL) > 0)
		tp->node_mem[0] = (uint64_t)numa_node_size64(tp->os_node[0], NULL);
	tp->real = true;
	return true;
}

static void topo_discover(void)
{
	if (topo_single_node(&topo))
		goto out;
	if (topo_from_hwloc(&topo) < 0) {
		emm_warn("hwloc could not read the NUMA topology: using one node");
		topo_fallback(&topo);
	}
out:
	/* Release: a reader that sees the pointer sees the whole table. */
	atomic_store_explicit(&topo_ready, &topo, memory_order_release);
}

/* The table lives as long as the process: the fault path may read it at
 * any time, so it is never freed. */
const struct numa_topo *numa_topology(void)
{
	pthread_once(&topo_once, topo_discover);
	return &topo;
}

/* Async-signal-safe. */
int numa_cpu_node(int cpu)
{
	/* Acquire: pairs with the release in topo_discover. */
	const struct numa_topo *tp = atomic_load_explicit(&topo_ready, memory_order_acquire);

	if (!tp || cpu < 0 || cpu >= tp->ncpus)
		return 0;
	return tp->cpu_node[cpu];
}

/* The CPU a fault-service thread serves a fault for, or -1: its own. */
static __thread int fault_cpu __attribute__((tls_model("initial-exec"))) = -1;

void numa_set_fault_cpu(int cpu)
{
	fault_cpu = cpu;
}

/* Async-signal-safe: sched_getcpu reads rseq or the vDSO. The CPU whose
 * fault this thread serves: where work done for the fault elsewhere (a
 * readahead thread) should place its pages. */
int numa_fault_cpu(void)
{
	return fault_cpu >= 0 ? fault_cpu : sched_getcpu();
}

/* Async-signal-safe. The node of the CPU whose fault this thread serves. */
int numa_current_node(void)
{
	return numa_cpu_node(numa_fault_cpu());
}
