/* SPDX-License-Identifier: MIT */
/* Two threads pinned to the CPUs of a faked 2-node machine fault at once, with and without pagevecs, roomy and tight: no page lost from the lists, local pages on their node. */
#include <pthread.h>

#include "internal.h"
#include "lru.h"
#include "numa-fake.h"
#include "physmem.h"
#include "pte.h"
#include "util.h"

#define MIB		(1UL << 20)
#define ROOMY		(256 * MIB)	/* nothing is reclaimed */
#define TIGHT		(8 * MIB)	/* reclaim runs on both nodes while the threads fault */
/* Pages of thread 0's LOCAL VMA, of thread 1's (another size, so that a
 * mix-up shows), and of the INTERLEAVE VMA both write; half as many under
 * the tight budget, where every page goes through swap. */
static const long sizes[2][3] = { { 3000, 4000, 4099 }, { 1500, 2000, 2049 } };

/* ---- the child: the faked machine, in a re-executed copy of this program ---- */

struct round {
	const char *name;
	struct emm *mm;
	char *local[2], *shared;
	long local_pages[2], shared_pages;
	bool roomy;			/* nothing reclaimed: diag only the tight rounds */
	pthread_barrier_t step;
	int err[2];			/* errno of a thread that could not be pinned */
	long bad[2];			/* pages that read back wrong */
};

/* What the page at addr holds: its address, scrambled. */
static uint64_t word(const char *addr)
{
	return (uint64_t)(uintptr_t)addr * 0x9e3779b97f4a7c15ULL;
}

/* Writes (or counts wrong) one word per page of the n pages at p, every
 * step-th page from first on. */
static long pages_do(char *p, long n, long first, long step, bool write)
{
	long bad = 0;

	for (long i = first; i < n; i += step) {
		volatile uint64_t *w = (volatile uint64_t *)(p + (size_t)i * PAGE_SIZE);

		if (write)
			*w = word((char *)w);
		else
			bad += *w != word((char *)w);
	}
	return bad;
}

struct worker { struct round *rd; int cpu; };

/* Pinned to its CPU: its LOCAL VMA, then its half of the shared one, both
 * at the same time as the other thread; then it reads both back there, so
 * pages swapped in come back on its node, its LOCAL VMA last so that under
 * a tight budget those pages are the ones still resident. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct round *rd = w->rd;
	int me = w->cpu;

	rd->err[me] = -pin_to_cpu(me);
	pthread_barrier_wait(&rd->step);
	pages_do(rd->local[me], rd->local_pages[me], 0, 1, true);
	pthread_barrier_wait(&rd->step);
	pages_do(rd->shared, rd->shared_pages, me, 2, true);
	pthread_barrier_wait(&rd->step);
	rd->bad[me] = pages_do(rd->shared, rd->shared_pages, me, 2, false);
	pthread_barrier_wait(&rd->step);
	rd->bad[me] += pages_do(rd->local[me], rd->local_pages[me], 0, 1, false);
	return NULL;
}

/* Waits until the reclaim threads have scanned nothing for 100 ms (5 s at most). */
static void settle(struct emm *mm)
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

/* The node whose lists hold the page at a, or -1 when it is not resident.
 * The public calls give counts per node, not where one page is: this asks
 * the page's PTE for its frame, and the frame table for the frame's node. */
static int page_node(struct emm *mm, char *a)
{
	int idx = 0;
	struct rsv *r = rsv_enter((uintptr_t)a, &idx);
	uint64_t v;

	if (!r)
		return -2;
	v = pte_locked_val(pte_of(r, (uintptr_t)a));
	rsv_leave(r, idx);
	if (pte_state(v) != PTE_RESIDENT)
		return -1;
	return frame_lruvec(mm->lru, pte_val(v))->node;
}

/* Resident pages of a VMA per node: cnt[0], cnt[1]; cnt[2] the others. */
static void count_nodes(struct emm *mm, char *p, long n, long *cnt)
{
	cnt[0] = cnt[1] = cnt[2] = 0;
	for (long i = 0; i < n; i++) {
		int node = page_node(mm, p + (size_t)i * PAGE_SIZE);

		if (node == 0 || node == 1)
			cnt[node]++;
		else if (node != -1)
			cnt[2]++;
	}
}

static struct emm_node_stats nstats(struct emm *mm, int node)
{
	EMM_OPTS(emm_node_stats, ns);

	emm_node_stats(mm, node, &ns);
	return ns;
}

static void lists_add_up(struct round *rd)
{
	struct emm_node_stats a = nstats(rd->mm, 0), b = nstats(rd->mm, 1);
	uint64_t res = stats(rd->mm).resident_bytes;

	if (!rd->roomy)
		note("%s: node 0: resident %" PRIu64 " (active %" PRIu64 ", inactive %" PRIu64
		     ", pgsteal %" PRIu64 "); node 1: resident %" PRIu64 " (active %" PRIu64
		     ", inactive %" PRIu64 ", pgsteal %" PRIu64 ")", rd->name,
		     a.resident_bytes / PAGE_SIZE, a.active_bytes / PAGE_SIZE,
		     a.inactive_bytes / PAGE_SIZE, a.pgsteal, b.resident_bytes / PAGE_SIZE,
		     b.active_bytes / PAGE_SIZE, b.inactive_bytes / PAGE_SIZE, b.pgsteal);
	check(a.active_bytes + a.inactive_bytes == a.resident_bytes &&
	      b.active_bytes + b.inactive_bytes == b.resident_bytes,
	      "%s: on each node, active + inactive == resident", rd->name);
	check(a.active_bytes + a.inactive_bytes + b.active_bytes + b.inactive_bytes == res &&
	      a.resident_bytes + b.resident_bytes == res,
	      "%s: the lists of both nodes add up to emm_stats' resident (%" PRIu64 " pages)",
	      rd->name, res / PAGE_SIZE);
}

/* Where the pages are: each LOCAL page on its thread's CPU's node; with
 * nothing reclaimed, every page resident and the shared VMA spread evenly. */
static void placement(struct round *rd, bool roomy)
{
	long c0[3], c1[3], cs[3];
	long total = rd->local_pages[0] + rd->local_pages[1] + rd->shared_pages;

	count_nodes(rd->mm, rd->local[0], rd->local_pages[0], c0);
	count_nodes(rd->mm, rd->local[1], rd->local_pages[1], c1);
	count_nodes(rd->mm, rd->shared, rd->shared_pages, cs);
	check(c0[1] == 0 && c0[2] == 0 && c1[0] == 0 && c1[2] == 0,
	      "%s: thread 0's resident LOCAL pages on node 0 (%ld, %ld elsewhere), thread 1's on "
	      "node 1 (%ld, %ld elsewhere)", rd->name, c0[0], c0[1] + c0[2], c1[1], c1[0] + c1[2]);
	check(cs[2] == 0, "%s: the shared VMA's pages on nodes 0 and 1 (%ld, %ld)", rd->name,
	      cs[0], cs[1]);
	if (!roomy) {
		check(c0[0] > 0 && c1[1] > 0, "%s: both LOCAL VMAs have pages resident to look at "
		      "(%ld and %ld)", rd->name, c0[0], c1[1]);
		return;
	}
	check(c0[0] == rd->local_pages[0] && c1[1] == rd->local_pages[1] &&
	      cs[0] + cs[1] == rd->shared_pages && stats(rd->mm).resident_bytes / PAGE_SIZE ==
	      (uint64_t)total, "%s: all %ld pages resident, no page lost", rd->name, total);
	check(labs(cs[0] - cs[1]) <= 1, "%s: the shared VMA split evenly (%ld and %ld)", rd->name,
	      cs[0], cs[1]);
	check(nstats(rd->mm, 0).resident_bytes / PAGE_SIZE == (uint64_t)(c0[0] + cs[0]) &&
	      nstats(rd->mm, 1).resident_bytes / PAGE_SIZE == (uint64_t)(c1[1] + cs[1]),
	      "%s: each node's resident count is its pages of the three VMAs", rd->name);
}

static char *map_at(struct round *rd, char *at, long pages, int policy, uint64_t nodes)
{
	EMM_OPTS(emm_map_opts, mo, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .numa_policy = policy, .numa_nodes = nodes);

	return emm_map(rd->mm, at, (size_t)pages * PAGE_SIZE, &mo) ? NULL : at;
}

static bool setup(struct round *rd, unsigned flags, uint64_t limit)
{
	EMM_OPTS(emm_opts, o, .mem_limit = limit, .flags = flags, .thp = EMM_THP_NEVER);
	char *r;

	if (emm_open(&o, &rd->mm) || emm_reserve(rd->mm, 64 * MIB, (void **)&r)) {
		check(0, "%s: emm_open and emm_reserve", rd->name);
		return false;
	}
	rd->local_pages[0] = sizes[limit != ROOMY][0];
	rd->local_pages[1] = sizes[limit != ROOMY][1];
	rd->shared_pages = sizes[limit != ROOMY][2];
	rd->local[0] = map_at(rd, r, rd->local_pages[0], EMM_NUMA_LOCAL, 0);
	rd->local[1] = map_at(rd, r + 16 * MIB, rd->local_pages[1], EMM_NUMA_LOCAL, 0);
	rd->shared = map_at(rd, r + 32 * MIB, rd->shared_pages, EMM_NUMA_INTERLEAVE, 3);
	check(rd->local[0] && rd->local[1] && rd->shared, "%s: two LOCAL VMAs and an INTERLEAVE one",
	      rd->name);
	return rd->local[0] && rd->local[1] && rd->shared;
}

static void run_round(const char *name, unsigned flags, uint64_t limit)
{
	struct round rd = { .name = name, .roomy = limit == ROOMY };
	struct worker w[2] = { { &rd, 0 }, { &rd, 1 } };
	pthread_t th[2];
	long t0 = now_ms(), t1, t2;

	if (!setup(&rd, flags, limit))
		return;
	pthread_barrier_init(&rd.step, NULL, 2);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&rd.step);
	check(!rd.err[0] && !rd.err[1], "%s: the threads ran pinned to CPUs 0 and 1 (%s, %s)",
	      name, strerror(rd.err[0]), strerror(rd.err[1]));
	check(!rd.bad[0] && !rd.bad[1], "%s: each thread read back what it wrote (%ld, %ld wrong)",
	      name, rd.bad[0], rd.bad[1]);
	t1 = now_ms();
	settle(rd.mm);
	t2 = now_ms();
	check(emm_reclaim(rd.mm, 0) == 0, "%s: emm_reclaim(mm, 0) drains the pagevecs", name);
	lists_add_up(&rd);
	placement(&rd, limit == ROOMY);
	if (limit != ROOMY)
		check(nstats(rd.mm, 0).pgsteal > 0 && nstats(rd.mm, 1).pgsteal > 0,
		      "%s: both nodes reclaimed", name);
	check(pages_do(rd.local[0], rd.local_pages[0], 0, 1, false) == 0 &&
	      pages_do(rd.local[1], rd.local_pages[1], 0, 1, false) == 0 &&
	      pages_do(rd.shared, rd.shared_pages, 0, 1, false) == 0,
	      "%s: every page reads back from here too", name);
	check(emm_close(rd.mm) == 0, "%s: emm_close", name);
	if (!rd.roomy)
		note("%s: %ld ms (threads %ld, settling %ld)", name, now_ms() - t0, t1 - t0,
		     t2 - t1);
}

static int child(void)
{
	child_begin();
	if (!cpus_usable()) {
		printf("skip CPUs 0 and 1 are not both available to this process\n");
		return 0;
	}
	for (int i = 0; i < 3; i++) {
		run_round("pagevecs, roomy", 0, ROOMY);
		run_round("no pagevecs, roomy", EMM_OPEN_NO_PAGEVEC, ROOMY);
	}
	run_round("pagevecs, tight", 0, TIGHT);
	run_round("no pagevecs, tight", EMM_OPEN_NO_PAGEVEC, TIGHT);
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
