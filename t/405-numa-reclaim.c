/* SPDX-License-Identifier: MIT */
/* Per-node reclaim on a faked 2-node machine: a small share on node 0 evicts from node 0 alone, emm_set_node_limit's errors and its reclaim at once, emm_migrate between nodes. */
#include "emm.h"
#include "numa-fake.h"
#include "util.h"

#define PAGE	4096UL
#define MIB	(1UL << 20)
#define LIMIT	(64 * MIB)
#define SHARE0	(4 * MIB)		/* node 0's small share */
#define SHARE1	(48 * MIB)		/* node 1's large one */
#define LEN0	(16 * MIB)		/* written to node 0: four times its share */
#define LEN1	(8 * MIB)		/* written to node 1: well inside its share */
#define MLEN	(1 * MIB)		/* the range migrated */
/* Node 0 may pass its share by a fault's worth of pages (fault-around 16)
 * plus what a reclaim batch (32) could not yet free. */
#define SLACK	(64 * PAGE)
#define MAX(a, b)	((a) > (b) ? (a) : (b))

/* ---- the child: the faked machine, in a re-executed copy of this program ---- */

static struct emm *mm;
static char *v0, *v1;			/* BIND node 0 and BIND node 1 */

static struct emm_node_stats nstats(int node)
{
	EMM_OPTS(emm_node_stats, ns);

	if (emm_node_stats(mm, node, &ns))
		memset(&ns, 0xff, sizeof(ns));
	return ns;
}

static void say_node(const char *when, int node)
{
	struct emm_node_stats ns = nstats(node);

	note("%s: node %d resident %" PRIu64 " pages (active %" PRIu64 ", inactive %" PRIu64
	     "), limit %" PRIu64 " KiB, pgscan %" PRIu64 " pgsteal %" PRIu64 " swapouts %" PRIu64
	     " swapins %" PRIu64, when, node, ns.resident_bytes / PAGE, ns.active_bytes / PAGE,
	     ns.inactive_bytes / PAGE, ns.limit_bytes >> 10, ns.pgscan, ns.pgsteal, ns.swapouts,
	     ns.swapins);
}

static char *map_bound(char *at, size_t len, int node)
{
	EMM_OPTS(emm_map_opts, mo, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .numa_policy = EMM_NUMA_BIND, .numa_nodes = 1ULL << node);
	int err = emm_map(mm, at, len, &mo);

	check(!err, "emm_map %zu MiB BIND node %d (%s)", len / MIB, node, err ? strerror(-err) : "ok");
	return err ? NULL : at;
}

/* What the page at addr holds: its address, scrambled. */
static uint64_t word(const char *addr)
{
	return (uint64_t)(uintptr_t)addr ^ 0x9e3779b97f4a7c15ULL;
}

/* Writes one word per page, and keeps the highest resident count node 0
 * reached on the way. */
static void write_range(char *p, size_t len, uint64_t *peak0)
{
	for (size_t off = 0; off < len; off += PAGE) {
		*(volatile uint64_t *)(p + off) = word(p + off);
		if (peak0)
			*peak0 = MAX(*peak0, nstats(0).resident_bytes);
	}
}

static long first_bad(const char *p, size_t len, uint64_t *peak0)
{
	long bad = -1;

	for (size_t off = 0; off < len; off += PAGE) {
		if (*(volatile uint64_t *)(p + off) != word(p + off) && bad < 0)
			bad = (long)(off / PAGE);
		if (peak0)
			*peak0 = MAX(*peak0, nstats(0).resident_bytes);
	}
	return bad;
}

/* Waits until no reclaim thread has scanned anything for 100 ms (5 s at most). */
static void settle(void)
{
	uint64_t last = stats(mm).pgscan;
	long quiet_since = now_ms(), end = quiet_since + 5000;

	while (now_ms() < end && now_ms() - quiet_since < 100) {
		usleep(10000);
		if (stats(mm).pgscan != last) {
			last = stats(mm).pgscan;
			quiet_since = now_ms();
		}
	}
}

static void limits(void)
{
	check(emm_set_node_limit(mm, 0, SHARE0) == 0, "emm_set_node_limit(node 0, 4 MiB)");
	check(emm_set_node_limit(mm, 1, SHARE1) == 0, "emm_set_node_limit(node 1, 48 MiB)");
	check(nstats(0).limit_bytes == SHARE0 && nstats(1).limit_bytes == SHARE1,
	      "the nodes' limits are 4 MiB and 48 MiB (%" PRIu64 " and %" PRIu64 " KiB)",
	      nstats(0).limit_bytes >> 10, nstats(1).limit_bytes >> 10);
	check(emm_set_node_limit(mm, 2, SHARE0) == -EINVAL, "emm_set_node_limit(node 2): -EINVAL");
	check(emm_set_node_limit(mm, -1, SHARE0) == -EINVAL, "emm_set_node_limit(node -1): -EINVAL");
	check(emm_set_node_limit(NULL, 0, SHARE0) == -EINVAL, "emm_set_node_limit(NULL): -EINVAL");
	check(emm_set_node_limit(mm, 64, SHARE0) == -EINVAL, "emm_set_node_limit(node 64): -EINVAL");
	check(emm_set_node_limit(mm, 0, 4096) == -EINVAL, "a share of 4 KiB: -EINVAL");
	check(emm_set_node_limit(mm, 0, MIB - 1) == -EINVAL, "a share of 1 MiB - 1: -EINVAL");
	check(nstats(0).limit_bytes == SHARE0, "node 0's limit is still 4 MiB after the errors");
	check(emm_set_node_limit(mm, 0, MIB + 100) == 0 && nstats(0).limit_bytes == MIB,
	      "a share of 1 MiB + 100 bytes is taken, rounded down to 1 MiB");
	check(emm_set_node_limit(mm, 0, SHARE0) == 0, "node 0 back to 4 MiB");
}

/* Node 1 first, then four times node 0's share to node 0. */
static void pressure(void)
{
	struct emm_node_stats n0, n1, n1_before;
	uint64_t peak0 = 0;

	write_range(v1, LEN1, NULL);
	emm_reclaim(mm, 0);
	n1_before = nstats(1);
	check(n1_before.resident_bytes == LEN1 && nstats(0).resident_bytes == 0,
	      "node 1 holds the 8 MiB written to it, node 0 nothing");
	write_range(v0, LEN0, &peak0);
	settle();
	n0 = nstats(0);
	n1 = nstats(1);
	say_node("after writing", 0);
	say_node("after writing", 1);
	check(n0.pgsteal > 0 && n0.swapouts > 0, "node 0 reclaimed: pgsteal %" PRIu64
	      ", swapouts %" PRIu64, n0.pgsteal, n0.swapouts);
	check(n0.pgsteal >= (LEN0 - SHARE0 - SLACK) / PAGE,
	      "at least what did not fit in node 0's share was evicted");
	check(peak0 <= SHARE0 + SLACK, "node 0's resident never passed its 4 MiB share by more "
	      "than 64 pages (peak %" PRIu64 " pages)", peak0 / PAGE);
	check(n0.resident_bytes <= SHARE0 && n0.resident_bytes >= SHARE0 / 2,
	      "and it stays near it: between 2 and 4 MiB (%" PRIu64 " pages)",
	      n0.resident_bytes / PAGE);
	check(n1.resident_bytes == LEN1, "node 1's resident is untouched (%" PRIu64 " pages)",
	      n1.resident_bytes / PAGE);
	check(n1.pgsteal == 0 && n1.swapouts == 0 && n1.pgscan == n1_before.pgscan,
	      "node 1: nothing scanned, stolen or swapped out");
}

static void verify(void)
{
	struct emm_node_stats n0, n1;
	uint64_t peak0 = 0;
	long bad1 = first_bad(v1, LEN1, NULL), bad0 = first_bad(v0, LEN0, &peak0);

	check(bad1 < 0, "node 1's data reads back (first wrong page: %ld)", bad1);
	check(bad0 < 0, "node 0's data reads back through swap (first wrong page: %ld)", bad0);
	settle();
	n0 = nstats(0);
	n1 = nstats(1);
	check(n0.swapins > 0, "node 0 swapped pages in (%" PRIu64 ")", n0.swapins);
	check(peak0 <= SHARE0 + SLACK, "node 0 stayed within its share while reading "
	      "(peak %" PRIu64 " pages)", peak0 / PAGE);
	check(n1.resident_bytes == LEN1 && n1.pgsteal == 0 && n1.swapins == 0,
	      "node 1 still untouched: all resident, no pgsteal, no swapins");
}

/* The nodes' counters add up to the instance's. */
static void sums(void)
{
	struct emm_stats st = stats(mm);
	struct emm_node_stats a = nstats(0), b = nstats(1);

	check(a.pgscan + b.pgscan == st.pgscan && a.pgsteal + b.pgsteal == st.pgsteal &&
	      a.swapouts + b.swapouts == st.swapouts && a.swapins + b.swapins == st.swapins,
	      "pgscan, pgsteal, swapouts and swapins of the nodes add up to emm_stats'");
}

/* Every resident page on one list of its node, once the pagevecs drain. */
static void lists_add_up(const char *when)
{
	struct emm_node_stats a, b;

	emm_reclaim(mm, 0);
	a = nstats(0);
	b = nstats(1);
	check(a.active_bytes + a.inactive_bytes == a.resident_bytes &&
	      b.active_bytes + b.inactive_bytes == b.resident_bytes &&
	      a.resident_bytes + b.resident_bytes == stats(mm).resident_bytes,
	      "%s: each node's lists hold its resident pages, which add up to emm_stats'", when);
}

/* Node 0's share raised so nothing is reclaimed while pages are counted;
 * a fully resident 1 MiB of node 0's VMA moves to node 1 and back; then
 * all of the VMA's resident pages move. */
static void migrate(void)
{
	char *range = v0 + LEN0 - MLEN;
	struct emm_node_stats a, b, a2, b2;
	uint64_t steal;
	int err;

	check(emm_set_node_limit(mm, 0, 32 * MIB) == 0, "emm_set_node_limit(node 0, 32 MiB)");
	check(emm_prefault(mm, range, MLEN, 0) == 0, "emm_prefault the last MiB of node 0's VMA");
	settle();
	emm_reclaim(mm, 0);
	a = nstats(0);
	b = nstats(1);
	steal = stats(mm).pgsteal;
	err = emm_migrate(mm, range, MLEN, 1);
	check(!err, "emm_migrate(1 MiB, node 1): %s", err ? strerror(-err) : "0");
	a2 = nstats(0);
	b2 = nstats(1);
	check(a.resident_bytes - a2.resident_bytes == MLEN &&
	      b2.resident_bytes - b.resident_bytes == MLEN,
	      "256 pages left node 0 (%ld) and reached node 1 (%ld)",
	      (long)(a.resident_bytes - a2.resident_bytes) / (long)PAGE,
	      (long)(b2.resident_bytes - b.resident_bytes) / (long)PAGE);
	check(stats(mm).pgsteal == steal, "nothing was reclaimed meanwhile");
	lists_add_up("after migrating to node 1");
	check(first_bad(range, MLEN, NULL) < 0, "the migrated range reads back");
	check(emm_migrate(mm, range, MLEN, 0) == 0, "emm_migrate it back to node 0");
	check(nstats(0).resident_bytes == a2.resident_bytes + MLEN &&
	      nstats(1).resident_bytes == b2.resident_bytes - MLEN, "the 256 pages are back");
	/* Reading the rest swaps node 0's evicted pages in: all of the VMA is resident. */
	check(first_bad(v0, LEN0, NULL) < 0, "node 0's VMA reads back");
	a = nstats(0);
	b = nstats(1);
	check(emm_migrate(mm, v0, LEN0, 1) == 0, "emm_migrate all of node 0's VMA to node 1");
	check(nstats(0).resident_bytes == 0 &&
	      nstats(1).resident_bytes == b.resident_bytes + a.resident_bytes,
	      "its %" PRIu64 " resident pages moved, and only those", a.resident_bytes / PAGE);
	check(stats(mm).resident_bytes == a.resident_bytes + b.resident_bytes, "none was lost");
	lists_add_up("after migrating the VMA");
	check(first_bad(v0, LEN0, NULL) < 0 && first_bad(v1, LEN1, NULL) < 0,
	      "both VMAs read back");
	check(emm_migrate(mm, v0, LEN0, 2) == -EINVAL, "emm_migrate to node 2: -EINVAL");
}

/* Node 1's share cut below what it holds: reclaimed on return. */
static void cut_node1(void)
{
	struct emm_node_stats b;

	check(emm_set_node_limit(mm, 1, 4 * MIB) == 0, "emm_set_node_limit(node 1, 4 MiB)");
	b = nstats(1);
	check(b.resident_bytes <= 4 * MIB, "node 1 was reclaimed to it at once (%" PRIu64
	      " pages)", b.resident_bytes / PAGE);
	check(b.pgsteal > 0, "node 1's pgsteal counts it (%" PRIu64 ")", b.pgsteal);
	check(emm_set_node_limit(mm, 1, 0) == 0, "emm_set_node_limit(node 1, 0)");
	b = nstats(1);
	check(b.limit_bytes == LIMIT / 2, "gives back its proportional share, half the budget (%"
	      PRIu64 " MiB)", b.limit_bytes / MIB);
	check(first_bad(v0, LEN0, NULL) < 0 && first_bad(v1, LEN1, NULL) < 0,
	      "both VMAs read back");
	sums();
}

static int child(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .thp = EMM_THP_NEVER);
	char *r;

	child_begin();
	check(emm_open(&o, &mm) == 0, "emm_open: 64 MiB budget");
	check(emm_numa_nodes(mm) == 2, "2 nodes (got %d)", emm_numa_nodes(mm));
	if (emm_numa_nodes(mm) != 2 || emm_reserve(mm, 64 * MIB, (void **)&r))
		return 1;
	limits();
	v0 = map_bound(r, LEN0, 0);
	v1 = map_bound(r + LEN0 + MIB, LEN1, 1);
	if (!v0 || !v1)
		return 1;
	pressure();
	verify();
	sums();
	migrate();
	cut_node1();
	check(emm_close(mm) == 0, "emm_close");
	return child_failed;
}

/* ---- the parent: runs the faked machine and relays its report ---- */

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "child"))
		return child();
	run_faked("2 nodes", "pack:2 numa:1 core:1 pu:1", (const char *const[]){ "child", NULL });
	return done_testing();
}
