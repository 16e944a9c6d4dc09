/* SPDX-License-Identifier: MIT */
/* NUMA topology: the real machine's nodes and CPU map, faked 2-, 3- and 4-node machines, and the fallback when hwloc fails. */
#include <dlfcn.h>
#include <hwloc.h>
#include <limits.h>
#include <numaif.h>
#include <pthread.h>

#include "numa-fake.h"
#include "../numa/emm_numa.h"

#define GiB (1ULL << 30)

/*
 * The fallback case needs hwloc to fail: this definition stands in front
 * of libhwloc's and fails when EMM_TEST_HWLOC_FAIL is set, else passes on.
 */
int hwloc_topology_load(hwloc_topology_t t)
{
	int (*real_load)(hwloc_topology_t);

	if (getenv("EMM_TEST_HWLOC_FAIL")) {
		errno = EINVAL;
		return -1;
	}
	real_load = (int (*)(hwloc_topology_t))dlsym(RTLD_NEXT, "hwloc_topology_load");
	return real_load ? real_load(t) : -1;
}

static uint64_t all_of(int n)
{
	return n >= 64 ? ~0ULL : (1ULL << n) - 1;
}

/* ---- the faked machines, run in a re-executed copy of this program ---- */

/* A description: n nodes of p PUs each, numbered from base on. */
struct shape { int n, p, base; };

/* The node of OS CPU c: its PU's node, or for a CPU the description does
 * not have, round-robin in CPU order. */
static int want_node(const struct shape *s, int c, bool *described)
{
	int end = s->base + s->n * s->p;

	*described = c >= s->base && c < end;
	if (*described)
		return (c - s->base) / s->p;
	return (c < s->base ? c : c - s->n * s->p) % s->n;
}

/* The first CPU, described or not, whose node is wrong; -1 if none. */
static int cpu_map_mismatch(const struct shape *s, int ncpus, bool described)
{
	for (int c = 0; c < ncpus; c++) {
		bool d;
		int want = want_node(s, c, &d);

		if (d == described && numa_cpu_node(c) != want)
			return c;
	}
	return -1;
}

static void child_shape(const struct numa_topo *tp, const struct shape *s, uint64_t mem)
{
	int bad, mem_ok = 1, os_ok = 1, n = s->n, p = s->p, end = s->base + n * p;

	check(tp->nnodes == n, "%d nodes (got %d)", n, tp->nnodes);
	check(!tp->real, "a faked topology is not real");
	check(tp->ncpus >= end && tp->ncpus >= sysconf(_SC_NPROCESSORS_CONF),
	      "the CPU table covers the description's PUs and the machine's CPUs (%d)",
	      tp->ncpus);
	bad = cpu_map_mismatch(s, tp->ncpus, true);
	check(bad < 0, "PUs %d-%d: %d per node, in order, as described (first wrong: %d)",
	      s->base, end - 1, p, bad);
	bad = cpu_map_mismatch(s, tp->ncpus, false);
	check(bad < 0, "%d CPUs the description lacks go round-robin (first wrong: %d)",
	      tp->ncpus - n * p, bad);
	for (int i = 0; i < tp->nnodes; i++) {
		mem_ok &= tp->node_mem[i] == mem;
		os_ok &= tp->os_node[i] == i;
	}
	check(mem_ok, "each node has the described %llu bytes", (unsigned long long)mem);
	check(os_ok, "node i is the description's node i");
	check(numa_current_node() >= 0 && numa_current_node() < n,
	      "this CPU's node is one of them (%d)", numa_current_node());
}

static void child_checks(int n)
{
	check(numa_check(EMM_NUMA_BIND, all_of(n)) == 0, "BIND to every node is fine");
	check(numa_check(EMM_NUMA_BIND, 1ULL << n) == -EINVAL, "BIND to node %d is -EINVAL", n);
	check(numa_check(EMM_NUMA_PREFERRED, 3) == -EINVAL, "PREFERRED with two nodes is -EINVAL");
	check(numa_check(EMM_NUMA_PREFERRED, 1ULL << (n - 1)) == 0, "PREFERRED node %d is fine",
	      n - 1);
	check(numa_check(EMM_NUMA_INTERLEAVE, all_of(n)) == 0, "INTERLEAVE over all is fine");
	check(numa_check(EMM_NUMA_LOCAL, 1) == -EINVAL, "LOCAL with a node is -EINVAL");
}

/* The range's policy as the kernel has it, or -1 without NUMA calls. */
static int range_mode(void *p)
{
	int mode = -1;

	if (get_mempolicy(&mode, NULL, 0, p, MPOL_F_ADDR) < 0)
		return -1;
	return mode;
}

static void child_apply(int n)
{
	size_t len = 16 * 4096;
	int fd = memfd_create("emm-test", MFD_CLOEXEC);
	char *p;

	if (fd < 0 || ftruncate(fd, (off_t)len) < 0) {
		check(0, "memfd: %s", strerror(errno));
		return;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	check(p != MAP_FAILED, "memfd mapped");
	if (p == MAP_FAILED)
		return;
	check(numa_apply(p, len, EMM_NUMA_BIND, 1ULL << (n - 1)) == 0, "numa_apply BIND returns 0");
	check(numa_apply_fd(fd, 0, len, EMM_NUMA_INTERLEAVE, all_of(n)) == 0,
	      "numa_apply_fd INTERLEAVE returns 0");
	check(range_mode(p) == MPOL_DEFAULT || range_mode(p) == -1,
	      "and nothing reached the kernel (mode %d)", range_mode(p));
	check(numa_apply(p, len, EMM_NUMA_BIND, 1ULL << n) == -EINVAL,
	      "numa_apply to a node beyond them is -EINVAL");
	munmap(p, len);
	close(fd);
}

static void child_pages(int n)
{
	void *pages[3] = { &n, &n, &n };
	int st[3] = { -1, -1, -1 }, node[3];

	check(numa_move(pages, 3, n - 1, st) == 0 && st[0] == n - 1 && st[2] == n - 1,
	      "numa_move is a no-op success");
	check(numa_move(pages, 3, n, st) == -EINVAL, "numa_move to node %d is -EINVAL", n);
	check(numa_pages_node(pages, 3, node) == -EOPNOTSUPP,
	      "numa_pages_node has nothing to say on a faked machine");
}

/* Each node of mask gets 1000 / popcount pages, +-1; the others none. */
static void child_interleave(int n, uint64_t mask)
{
	int count[NUMA_MAX_NODES] = { 0 }, k = __builtin_popcountll(mask), even = 1;

	for (uint64_t i = 0; i < 1000; i++) {
		int node = numa_node_of_interleave(mask, i);

		if (node >= 0 && node < n)
			count[node]++;
		even &= node == numa_policy_node(EMM_NUMA_INTERLEAVE, mask, i);
	}
	for (int i = 0; i < n; i++) {
		int want = mask >> i & 1 ? 1000 / k : 0;

		even &= count[i] >= want && count[i] <= want + (want > 0);
	}
	check(even, "1000 pages interleaved over mask %#llx: %d per node (+-1), none elsewhere",
	      (unsigned long long)mask, 1000 / k);
}

/* A thread pinned to each CPU it may run on finds the table's node. */
static void child_pinned(const struct numa_topo *tp)
{
	cpu_set_t allowed;
	int bad = -1;

	sched_getaffinity(0, sizeof(allowed), &allowed);
	for (int c = 0; c < CPU_SETSIZE && c < tp->ncpus; c++) {
		if (!CPU_ISSET(c, &allowed))
			continue;
		if (pin_to_cpu(c) == 0 && numa_current_node() != tp->cpu_node[c])
			bad = c;
	}
	sched_setaffinity(0, sizeof(allowed), &allowed);
	check(bad < 0, "pinned to each CPU, numa_current_node follows the table (wrong: %d)", bad);
}

static int child_faked(int n, int p, int base, uint64_t mem)
{
	const struct numa_topo *tp = numa_topology();
	const struct shape s = { n, p, base };

	child_shape(tp, &s, mem);
	child_checks(n);
	child_apply(n);
	child_pages(n);
	child_interleave(n, all_of(n));
	child_interleave(n, n > 2 ? 1ULL << (n - 1) | 1 : 2);
	child_pinned(tp);
	return child_failed;
}

/* hwloc failed: one node, every CPU on it, said once on stderr. */
static int child_fallback(void)
{
	const struct numa_topo *tp = numa_topology();
	int bad = -1;

	check(numa_topology() == tp, "discovery happens once");
	check(tp->nnodes == 1 && !tp->real, "one node, not real");
	check(tp->ncpus >= sysconf(_SC_NPROCESSORS_CONF), "every CPU in the table (%d)", tp->ncpus);
	for (int c = 0; c < tp->ncpus; c++)
		if (tp->cpu_node[c] != 0)
			bad = c;
	check(bad < 0, "every CPU on node 0 (wrong: %d)", bad);
	check(tp->node_mem[0] > 0, "node 0 has the machine's memory");
	check(numa_check(EMM_NUMA_BIND, 1) == 0 && numa_check(EMM_NUMA_BIND, 2) == -EINVAL,
	      "BIND accepts node 0 only");
	return child_failed;
}

/* ---- the parent: the real machine, then the children ---- */

struct faked {
	const char *name;
	const char *synthetic;		/* or NULL */
	const char *xml;		/* a description to write to an XML file, or NULL */
	int nodes, pus_per_node, first_pu;
	uint64_t mem;
};

/* Descriptions in the syntax hwloc 2.9 takes. The last one leaves the
 * machine's CPUs 0 and 1 out, so they take the round-robin path. */
static const struct faked cases[] = {
	{ "2 nodes", "pack:2 numa:1(memory=2GiB) core:2 pu:1", NULL, 2, 2, 0, 2 * GiB },
	{ "4 nodes", "pack:2 numa:2(memory=2GiB) core:3 pu:1", NULL, 4, 3, 0, 2 * GiB },
	{ "3 nodes, XML", NULL, "pack:3 numa:1(memory=1GiB) core:2 pu:1", 3, 2, 0, 1 * GiB },
	{ "2 nodes, PUs 2-3", "pack:2 numa:1(memory=1GiB) core:1 pu:1(indexes=2,3)", NULL,
	  2, 1, 2, 1 * GiB },
};

/* The synthetic description as hwloc XML, in a memfd the child inherits
 * and names as /proc/self/fd/N: no file left behind. -1 on failure. */
static int write_xml(const char *synthetic, char *path, size_t cap)
{
	hwloc_topology_t t;
	char *buf = NULL;
	int len = 0, fd = -1;

	if (hwloc_topology_init(&t) < 0)
		return -1;
	if (hwloc_topology_set_synthetic(t, synthetic) == 0 && hwloc_topology_load(t) == 0 &&
	    hwloc_topology_export_xmlbuffer(t, &buf, &len, 0) == 0)
		fd = memfd_create("emm-401-xml", 0);
	if (fd >= 0 && write(fd, buf, (size_t)len) != len) {
		close(fd);
		fd = -1;
	}
	if (buf)
		hwloc_free_xmlbuffer(t, buf);
	hwloc_topology_destroy(t);
	snprintf(path, cap, "/proc/self/fd/%d", fd);
	return fd;
}

/* The environment of one case, set in the child before it runs. */
struct child_env { const struct faked *f; const char *xml; };

static void set_env(const void *arg)
{
	const struct child_env *e = arg;

	unsetenv("HWLOC_SYNTHETIC");
	unsetenv("HWLOC_XMLFILE");
	unsetenv("HWLOC_THISSYSTEM");
	if (e->f && e->f->synthetic)
		setenv("HWLOC_SYNTHETIC", e->f->synthetic, 1);
	if (e->xml)
		setenv("HWLOC_XMLFILE", e->xml, 1);
	if (!e->f) {
		/* A faked topology makes emm ask hwloc even on a one-node
		 * machine (where it otherwise asks libnuma alone); then hwloc fails. */
		setenv("HWLOC_SYNTHETIC", "pack:2 numa:1 core:1 pu:1", 1);
		setenv("EMM_TEST_HWLOC_FAIL", "1", 1);
	}
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Runs one child, this program again; reports what it said. */
static void run_child(const char *mode, const struct faked *f, const char *xml)
{
	const struct child_env e = { f, xml };
	const char *name = f ? f->name : "hwloc fails";
	char n[16], p[16], base[16], mem[32];
	struct child_report *rep;

	snprintf(n, sizeof(n), "%d", f ? f->nodes : 1);
	snprintf(p, sizeof(p), "%d", f ? f->pus_per_node : 1);
	snprintf(base, sizeof(base), "%d", f ? f->first_pu : 0);
	snprintf(mem, sizeof(mem), "%llu", f ? (unsigned long long)f->mem : 0ULL);
	rep = child_spawn(set_env, &e, (const char *const[]){ mode, n, p, base, mem, NULL });
	child_relay(name, rep);
	if (f)
		child_quiet(name, rep);
	else
		ok(count_lines(rep->err) == 1 && !strncmp(rep->err, "emm: warning: ", 14),
		   "[%s] one warning line on stderr", name);
}

static void faked_machines(void)
{
	char xml[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd;

		if (!cases[i].xml) {
			run_child("faked", &cases[i], NULL);
			continue;
		}
		fd = write_xml(cases[i].xml, xml, sizeof(xml));
		if (fd < 0) {
			skip(3, "cannot make an hwloc XML description");
			continue;
		}
		run_child("faked", &cases[i], xml);
		close(fd);
	}
	run_child("fallback", NULL, NULL);
}

static pthread_barrier_t start;

static void *first_call(void *arg)
{
	pthread_barrier_wait(&start);
	return (void *)numa_topology();
}

/* Threads racing to the first call all get the one topology. */
static const struct numa_topo *race_first_call(void)
{
	pthread_t th[4];
	void *got[4];
	int same = 1;

	pthread_barrier_init(&start, NULL, 4);
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, first_call, NULL);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], &got[i]);
		same &= got[i] == got[0] && got[i];
	}
	ok(same, "four threads racing to the first numa_topology() get one topology");
	return numa_topology();
}

static void real_shape(const struct numa_topo *tp)
{
	int bad = -1, distinct = 1;
	uint64_t mem = 0;

	ok(tp->nnodes >= 1 && tp->nnodes <= NUMA_MAX_NODES, "%d node(s)", tp->nnodes);
	ok(tp->ncpus >= sysconf(_SC_NPROCESSORS_CONF), "the CPU table covers the machine (%d)",
	   tp->ncpus);
	for (int c = 0; c < tp->ncpus; c++)
		if (tp->cpu_node[c] < 0 || tp->cpu_node[c] >= tp->nnodes ||
		    numa_cpu_node(c) != tp->cpu_node[c])
			bad = c;
	ok(bad < 0, "every CPU maps to a valid node (wrong: %d)", bad);
	ok(numa_current_node() >= 0 && numa_current_node() < tp->nnodes, "this CPU's node is valid");
	for (int i = 0; i < tp->nnodes; i++) {
		mem += tp->node_mem[i];
		for (int j = 0; j < i; j++)
			distinct &= tp->os_node[i] != tp->os_node[j];
		distinct &= tp->os_node[i] >= 0;
	}
	ok(distinct, "the kernel's node numbers are distinct");
	ok(mem > 0, "the nodes have memory (%llu MiB)", (unsigned long long)(mem >> 20));
	if (getenv("HWLOC_SYNTHETIC") || getenv("HWLOC_XMLFILE"))
		skip(1, "HWLOC_SYNTHETIC or HWLOC_XMLFILE set");
	else if (get_mempolicy(NULL, NULL, 0, NULL, 0) < 0)
		ok(!tp->real, "no NUMA system calls: not real");
	else
		ok(tp->real, "the machine's own topology is real");
}

static void real_checks(const struct numa_topo *tp)
{
	int n = tp->nnodes;

	is_int(numa_check(EMM_NUMA_BIND, 1 << 0), 0, "BIND to node 0 is fine");
	is_int(numa_check(EMM_NUMA_BIND, 1ULL << n), -EINVAL, "BIND to node %d is -EINVAL", n);
	is_int(numa_check(EMM_NUMA_BIND, 1ULL << 63), -EINVAL, "BIND to node 63 is -EINVAL");
	is_int(numa_check(EMM_NUMA_BIND, 0), -EINVAL, "BIND to no node is -EINVAL");
	is_int(numa_check(EMM_NUMA_INTERLEAVE, 0), -EINVAL, "INTERLEAVE over no node is -EINVAL");
	is_int(numa_check(EMM_NUMA_PREFERRED, 0), -EINVAL, "PREFERRED no node is -EINVAL");
	is_int(numa_check(EMM_NUMA_PREFERRED, 1), 0, "PREFERRED node 0 is fine");
	is_int(numa_check(EMM_NUMA_PREFERRED, 3), -EINVAL, "PREFERRED with two bits is -EINVAL");
	is_int(numa_check(EMM_NUMA_LOCAL, 0), 0, "LOCAL without nodes is fine");
	is_int(numa_check(EMM_NUMA_LOCAL, 1), -EINVAL, "LOCAL with nodes is -EINVAL");
	is_int(numa_check(EMM_NUMA_INTERLEAVE + 1, 1), -EINVAL, "an unknown policy is -EINVAL");
	is_int(numa_check(-1, 0), -EINVAL, "a negative policy is -EINVAL");
}

static void real_edges(const struct numa_topo *tp)
{
	is_int(numa_cpu_node(-1), 0, "CPU -1: node 0");
	is_int(numa_cpu_node(tp->ncpus), 0, "a CPU beyond the table: node 0");
	is_int(numa_cpu_node(INT_MAX), 0, "CPU INT_MAX: node 0");
	is_int(numa_node_of_interleave(0, 5), -EINVAL, "interleave over no node is -EINVAL");
	is_int(numa_node_of_interleave(1ULL << 5, 12345), 5, "interleave over one node stays there");
	is_int(numa_node_of_interleave(0x22, 3), 5, "interleave 0x22, page 3: node 5");
	ok(numa_policy_node(EMM_NUMA_LOCAL, 0, 0) >= 0 &&
	   numa_policy_node(EMM_NUMA_LOCAL, 0, 0) < tp->nnodes, "LOCAL: this CPU's node");
	is_int(numa_policy_node(EMM_NUMA_PREFERRED, 1ULL << 7, 0), 7, "PREFERRED 7: node 7");
	is_int(numa_policy_node(EMM_NUMA_BIND, 0, 0), -EINVAL, "BIND to no node is -EINVAL");
	is_int(numa_policy_node(9, 1, 0), -EINVAL, "an unknown policy is -EINVAL");
}

int main(int argc, char **argv)
{
	const struct numa_topo *tp;

	if (argc == 6 && !strcmp(argv[1], "faked"))
		return child_faked(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]),
				   strtoull(argv[5], NULL, 10));
	if (argc == 6 && !strcmp(argv[1], "fallback"))
		return child_fallback();
	tp = race_first_call();
	real_shape(tp);
	real_checks(tp);
	real_edges(tp);
	faked_machines();
	return done_testing();
}
