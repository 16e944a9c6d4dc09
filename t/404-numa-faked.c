/* SPDX-License-Identifier: MIT */
/* Faked 2- and 4-node machines: interleave spreads a VMA evenly over the nodes' lists, bind and preferred keep pages on their node, local follows the CPU, the lists add up. */
#include <pthread.h>

#include "emm.h"
#include "numa-fake.h"

#define PAGE	4096UL
#define MIB	(1UL << 20)
#define LIMIT	(256 * MIB)		/* far above what is touched: nothing is reclaimed */
#define RLEN	(256 * MIB)
#define NSPREAD	4099			/* pages interleaved: a count no node number divides */
#define NPAGES	1000			/* pages of each other VMA */
#define ALIGN_MIB(x)	(((x) + MIB - 1) & ~(MIB - 1))

/* ---- the child: one faked machine, in a re-executed copy of this program ---- */

static struct emm *mm;
static int nnodes;
static char *next_free;		/* the next unused part of the reservation */

static uint64_t all_nodes(void)
{
	return (1ULL << nnodes) - 1;
}

static long node_pages(int node)
{
	EMM_OPTS(emm_node_stats, ns);

	if (emm_node_stats(mm, node, &ns))
		return -1;
	return (long)(ns.resident_bytes / PAGE);
}

static void snapshot(long *res)
{
	for (int n = 0; n < nnodes; n++)
		res[n] = node_pages(n);
}

/* A new VMA of npages with a policy, after the previous one. */
static char *new_vma(long npages, int policy, uint64_t nodes)
{
	EMM_OPTS(emm_map_opts, mo, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .numa_policy = policy, .numa_nodes = nodes);
	char *p = next_free;
	int err = emm_map(mm, p, (size_t)npages * PAGE, &mo);

	if (err) {
		check(0, "emm_map of %ld pages, policy %d, nodes %#llx: %s", npages, policy,
		      (unsigned long long)nodes, strerror(-err));
		return NULL;
	}
	next_free += ALIGN_MIB((size_t)npages * PAGE) + MIB;
	return p;
}

/* Each page gets a word naming it and the VMA. */
struct touch { char *p; long npages; int seed; long per_node[64]; };

static uint64_t word(const struct touch *t, long i)
{
	return (uint64_t)t->seed << 32 | (uint64_t)i;
}

static void write_pages(void *arg)
{
	struct touch *t = arg;

	for (long i = 0; i < t->npages; i++)
		*(volatile uint64_t *)(t->p + (size_t)i * PAGE) = word(t, i);
}

static void read_pages(void *arg)
{
	struct touch *t = arg;
	volatile uint64_t sink = 0;

	for (long i = 0; i < t->npages; i++)
		sink += *(volatile uint64_t *)(t->p + (size_t)i * PAGE);
	(void)sink;
}

static long first_bad(const struct touch *t)
{
	for (long i = 0; i < t->npages; i++)
		if (*(volatile uint64_t *)(t->p + (size_t)i * PAGE) != word(t, i))
			return i;
	return -1;
}

struct pinned { int cpu; void (*fn)(void *); void *arg; int err; };

static void *pinned_main(void *arg)
{
	struct pinned *pn = arg;

	pn->err = pin_to_cpu(pn->cpu);
	if (!pn->err)
		pn->fn(pn->arg);
	return NULL;
}

/* Runs fn(arg) on a thread pinned to cpu; 0 or -errno. */
static int on_cpu(int cpu, void (*fn)(void *), void *arg)
{
	struct pinned pn = { cpu, fn, arg, 0 };
	pthread_t th;
	int err = pthread_create(&th, NULL, pinned_main, &pn);

	if (err)
		return -err;
	pthread_join(th, NULL);
	return pn.err;
}

/* Touches a new VMA of npages (from cpu, or -1: wherever this thread runs)
 * and checks that node `want` got every page and the others none. */
static struct touch placed(const char *what, int policy, uint64_t nodes, int cpu, int want)
{
	static int seed = 100;		/* each VMA's words differ from every other's */
	struct touch t = { .p = new_vma(NPAGES, policy, nodes), .npages = NPAGES, .seed = seed++ };
	long before[64], after[64];
	int others = 0, err = 0;

	if (!t.p)
		return t;
	snapshot(before);
	if (cpu < 0)
		write_pages(&t);
	else
		err = on_cpu(cpu, write_pages, &t);
	snapshot(after);
	for (int n = 0; n < nnodes; n++)
		if (n != want)
			others += after[n] != before[n];
	check(!err, "%s: the writer ran%s (%s)", what, cpu < 0 ? "" : " on its CPU",
	      err ? strerror(-err) : "fine");
	check(after[want] - before[want] == NPAGES && !others,
	      "%s: all %d pages on node %d (it got %ld), no other node changed (%d did)", what,
	      NPAGES, want, after[want] - before[want], others);
	return t;
}

/* Interleave over mask: each node of it gets NSPREAD / k pages rounded
 * down or up, whatever the fault-around window; the others get none. */
static struct touch spread(uint64_t mask)
{
	struct touch t = { .p = new_vma(NSPREAD, EMM_NUMA_INTERLEAVE, mask), .npages = NSPREAD,
			   .seed = (int)mask };
	int k = __builtin_popcountll(mask), even = 1;
	long before[64], after[64], sum = 0;
	char counts[256] = "";

	if (!t.p)
		return t;
	snapshot(before);
	write_pages(&t);
	snapshot(after);
	for (int n = 0; n < nnodes; n++) {
		long got = after[n] - before[n], lo = mask >> n & 1 ? NSPREAD / k : 0;
		long hi = lo + (mask >> n & 1 && NSPREAD % k);

		t.per_node[n] = got;
		sum += got;
		even &= got >= lo && got <= hi;
		snprintf(counts + strlen(counts), sizeof(counts) - strlen(counts), " %ld", got);
	}
	check(sum == NSPREAD, "interleave %#llx: the %d pages touched are all resident (%ld)",
	      (unsigned long long)mask, NSPREAD, sum);
	check(even, "interleave %#llx: each node of the mask got %d pages, +-1, the others none "
	      "(per node:%s)", (unsigned long long)mask, NSPREAD / k, counts);
	return t;
}

static void active_pages(long *act)
{
	for (int n = 0; n < nnodes; n++) {
		EMM_OPTS(emm_node_stats, ns);

		emm_node_stats(mm, n, &ns);
		act[n] = (long)(ns.active_bytes / PAGE);
	}
}

/* The interleaved VMA made cold, then read on one CPU: the activations
 * queue in that CPU's pagevec, and each lands on its own page's node.
 * EMM_ADV_RANDOM: one minor fault, so one activation, per page read (the
 * fault-around of a minor fault leaves its neighbours for reclaim to
 * activate). */
static void activate_from(int cpu, struct touch *t)
{
	long before[64], after[64];
	int right = 1, err;

	emm_reclaim(mm, 0);
	active_pages(before);
	check(emm_advise(mm, t->p, (size_t)t->npages * PAGE, EMM_ADV_RANDOM) == 0 &&
	      emm_advise(mm, t->p, (size_t)t->npages * PAGE, EMM_ADV_COLD) == 0,
	      "EMM_ADV_RANDOM and EMM_ADV_COLD on the interleaved VMA");
	err = on_cpu(cpu, read_pages, t);
	check(!err, "read it again on CPU %d (%s)", cpu, err ? strerror(-err) : "fine");
	emm_reclaim(mm, 0);
	active_pages(after);
	for (int n = 0; n < nnodes; n++) {
		right &= after[n] - before[n] == t->per_node[n];
		if (after[n] - before[n] != t->per_node[n])
			note("node %d: %ld more active pages, %ld of the VMA's are on it", n,
			     after[n] - before[n], t->per_node[n]);
	}
	check(right, "each node's active list grew by the VMA's pages on that node");
}

/* After draining the pagevecs, every resident page is on one list of its node. */
static void lists_add_up(void)
{
	EMM_OPTS(emm_stats, st);
	uint64_t listed = 0, resident = 0;
	int each = 1;

	check(emm_reclaim(mm, 0) == 0, "emm_reclaim(mm, 0) drains the pagevecs, frees nothing");
	emm_stats(mm, &st);
	for (int n = 0; n < nnodes; n++) {
		EMM_OPTS(emm_node_stats, ns);

		emm_node_stats(mm, n, &ns);
		listed += ns.active_bytes + ns.inactive_bytes;
		resident += ns.resident_bytes;
		each &= ns.active_bytes + ns.inactive_bytes == ns.resident_bytes;
		note("node %d: resident %" PRIu64 " pages, active %" PRIu64 ", inactive %" PRIu64
		     ", limit %" PRIu64 " MiB", n, ns.resident_bytes / PAGE, ns.active_bytes / PAGE,
		     ns.inactive_bytes / PAGE, ns.limit_bytes / MIB);
	}
	check(resident == st.resident_bytes, "the nodes' resident pages add up to emm_stats' (%"
	      PRIu64 " == %" PRIu64 ")", resident / PAGE, st.resident_bytes / PAGE);
	check(listed == st.resident_bytes, "the nodes' active + inactive add up to resident (%"
	      PRIu64 " == %" PRIu64 ")", listed / PAGE, st.resident_bytes / PAGE);
	check(each, "on each node, active + inactive == its resident");
}

static void shares(void)
{
	uint64_t sum = 0;
	int equal = 1;

	for (int n = 0; n < nnodes; n++) {
		EMM_OPTS(emm_node_stats, ns);

		emm_node_stats(mm, n, &ns);
		sum += ns.limit_bytes;
		equal &= ns.limit_bytes == LIMIT / (uint64_t)nnodes;
	}
	check(equal, "nodes of equal memory: each share of the budget is %lu MiB",
	      LIMIT / MIB / (unsigned long)nnodes);
	check(sum == LIMIT, "the shares add up to the budget");
}

static void errors(void)
{
	EMM_OPTS(emm_map_opts, mo, .numa_policy = EMM_NUMA_BIND, .numa_nodes = 1ULL << nnodes);
	EMM_OPTS(emm_node_stats, ns);

	check(emm_map(mm, next_free, PAGE, &mo) == -EINVAL, "emm_map BIND node %d: -EINVAL", nnodes);
	check(emm_node_stats(mm, nnodes, &ns) == -EINVAL, "emm_node_stats(node %d): -EINVAL",
	      nnodes);
	check(emm_set_node_limit(mm, nnodes, MIB) == -EINVAL, "emm_set_node_limit(node %d): -EINVAL",
	      nnodes);
}

static int child(int n)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .thp = EMM_THP_NEVER);
	struct touch t[8];
	int nt = 0, bad = 0;
	void *r;

	child_begin();
	nnodes = n;
	check(emm_open(&o, &mm) == 0, "emm_open");
	check(emm_numa_nodes(mm) == n, "emm_numa_nodes: %d (got %d)", n, emm_numa_nodes(mm));
	if (emm_numa_nodes(mm) != n || emm_reserve(mm, RLEN, &r))
		return 1;
	next_free = r;
	shares();
	t[nt++] = spread(all_nodes());
	t[nt++] = spread(n > 2 ? 0xa : 0x2);
	t[nt++] = placed("BIND node 1, written on CPU 0", EMM_NUMA_BIND, 2, cpus_usable() ? 0 : -1, 1);
	if (n > 2)
		t[nt++] = placed("PREFERRED node 2, written on CPU 1", EMM_NUMA_PREFERRED, 4,
				 cpus_usable() ? 1 : -1, 2);
	else
		t[nt++] = placed("PREFERRED node 0, written on CPU 1", EMM_NUMA_PREFERRED, 1,
				 cpus_usable() ? 1 : -1, 0);
	if (cpus_usable()) {
		t[nt++] = placed("LOCAL, written on CPU 1", EMM_NUMA_LOCAL, 0, 1, 1);
		t[nt++] = placed("LOCAL, written on CPU 0", EMM_NUMA_LOCAL, 0, 0, 0);
		t[nt++] = placed("BIND to every node, written on CPU 1", EMM_NUMA_BIND, all_nodes(),
				 1, 1);
		activate_from(1, &t[0]);
	} else {
		note("skip: CPUs 0 and 1 are not both allowed: no LOCAL checks");
	}
	lists_add_up();
	for (int i = 0; i < nt; i++)
		bad += t[i].p && first_bad(&t[i]) >= 0;
	check(!bad, "every VMA reads what was written (%d do not)", bad);
	errors();
	check(emm_close(mm) == 0, "emm_close");
	return child_failed;
}

/* ---- the parent: runs each faked machine and relays its report ---- */

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "child"))
		return child(atoi(argv[2]));
	run_faked("2 nodes", "pack:2 numa:1 core:1 pu:1",
		  (const char *const[]){ "child", "2", NULL });
	run_faked("4 nodes", "pack:2 numa:2 core:1 pu:1",
		  (const char *const[]){ "child", "4", NULL });
	return done_testing();
}
