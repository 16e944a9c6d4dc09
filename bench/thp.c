/* SPDX-License-Identifier: MIT */
/* thp: random reads of a resident region, 4 KiB-mapped against huge, and the cost of a collapse. */
#include "bench.h"

#include <emm.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define WORDS		(PAGE_SIZE / sizeof(uint64_t))
#define DEFAULT_READS	(16UL << 20)
#define COST_EXTENTS	64		/* extents the collapse cost is measured on */
#define CHASE_DIV	16		/* dependent reads: this fraction of --ops */
#define MIB		(1024.0 * 1024.0)

/* How much faster reads must be once the region is promoted. */
#define GOAL_THP	1.3

/* One emm instance holding a resident anonymous region. */
struct region {
	const char *name;
	int thp;		/* EMM_THP_* */
	struct emm *mm;
	uint64_t *p;
	size_t size;
	uint64_t touch_ns;	/* first touch of every page */
	uint64_t best_ns;	/* the fastest timed pass of reads */
	uint64_t chase_ns;	/* the fastest pass of dependent reads */
	uint64_t sum;		/* of the words read: both regions must agree */
	uint64_t faults;	/* emm faults during the timed reads: none expected */
	uint64_t pmd_bytes;	/* ShmemPmdMapped of the region, from smaps */
	uint64_t anon_huge;	/* the kernel's regions: AnonHugePages */
	char *raw;		/* the kernel's regions: the mapping to unmap */
	struct emm_stats st;
};

static int complain(const char *what, int err)
{
	fprintf(stderr, "emm-bench: thp: %s: %s\n", what, strerror(-err));
	return err;
}


/*
 * The sum of one smaps field (in bytes) over the entries inside
 * [p, p + len): emm's view of a region may be several kernel VMAs.
 */
static uint64_t smaps_sum(const void *p, size_t len, const char *field)
{
	uintptr_t lo = (uintptr_t)p, hi = lo + len, s = 0, e = 0;
	FILE *f = fopen("/proc/self/smaps", "r");
	size_t flen = strlen(field);
	uint64_t total = 0;
	char line[512];

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long a, b;

		if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' '))
			s = a, e = b;
		else if (s < hi && e > lo && strncmp(line, field, flen) == 0)
			total += strtoull(line + flen, NULL, 10) << 10;
	}
	fclose(f);
	return total;
}

/* Bytes of an emm region the kernel maps with PMDs. */
static uint64_t pmd_mapped(const void *p, size_t len)
{
	return smaps_sum(p, len, "ShmemPmdMapped:");
}

/* Bytes of a kernel anonymous region in transparent huge pages. */
static uint64_t anon_huge(const void *p, size_t len)
{
	return smaps_sum(p, len, "AnonHugePages:");
}

/* A fresh instance, the region mapped and every page written once (timed). */
static int region_open(struct region *rg, size_t size)
{
	EMM_OPTS(emm_opts, eo, .mem_limit = 2 * size + (256ULL << 20), .thp = rg->thp);
	volatile uint64_t *w;
	uint64_t t0;
	void *p;
	int err = emm_open(&eo, &rg->mm);

	if (err < 0)
		return err;
	err = emm_reserve(rg->mm, size, &p);
	if (err == 0)
		err = emm_map(rg->mm, p, size, NULL);
	if (err < 0) {
		emm_close(rg->mm);
		rg->mm = NULL;
		return err;
	}
	rg->p = p;
	rg->size = size;
	w = p;
	t0 = bench_now_ns();
	for (size_t pg = 0; pg < size / PAGE_SIZE; pg++)
		w[pg * WORDS] = pg + 1;
	rg->touch_ns = bench_now_ns() - t0;
	rg->pmd_bytes = pmd_mapped(p, size);
	bench_stats(rg->mm, &rg->st);
	rg->best_ns = rg->chase_ns = UINT64_MAX;
	return 0;
}

/* Zero, but the compiler cannot know it: it chains each read to the last. */
static volatile uint64_t chain_mask;

/*
 * One timed pass: a read of the word at each precomputed offset. The loads
 * are independent, so the CPU overlaps their misses (throughput); then a
 * shorter pass where each offset depends on the word read before, so every
 * TLB and cache miss is paid in full (latency).
 */
static void reads(const uint64_t *p, const uint32_t *off, size_t n, uint64_t *sum,
		  uint64_t *ns, uint64_t *chase_ns)
{
	uint64_t s = 0, v = 0, mask = chain_mask, t0 = bench_now_ns(), t1;

	for (size_t i = 0; i < n; i++)
		s += p[off[i]];
	t1 = bench_now_ns();
	for (size_t i = 0; i < n / CHASE_DIV; i++)
		v = p[off[i] ^ (v & mask)];
	*chase_ns = bench_now_ns() - t1;
	*ns = t1 - t0;
	*sum = s + (v & mask);
}

static void region_read(struct region *rg, const uint32_t *off, size_t n)
{
	struct emm_stats s0, s1;
	uint64_t ns, chase;

	if (rg->mm)
		bench_stats(rg->mm, &s0);
	reads(rg->p, off, n, &rg->sum, &ns, &chase);
	if (rg->mm) {
		bench_stats(rg->mm, &s1);
		rg->faults += s1.faults - s0.faults;
	}
	if (ns < rg->best_ns)
		rg->best_ns = ns;
	if (chase < rg->chase_ns)
		rg->chase_ns = chase;
}

/* The machine's own ceiling: kernel anonymous memory, huge or not. */
static int kernel_open(struct region *rg, size_t size, bool huge)
{
	char *raw = mmap(NULL, size + PMD_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *p, t0;

	if (raw == MAP_FAILED)
		return -errno;
	p = (uint64_t *)(((uintptr_t)raw + PMD_SIZE - 1) & ~(PMD_SIZE - 1));
	madvise(p, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	t0 = bench_now_ns();
	for (size_t pg = 0; pg < size / PAGE_SIZE; pg++)
		p[pg * WORDS] = pg + 1;
	rg->touch_ns = bench_now_ns() - t0;
	rg->raw = raw;
	rg->p = p;
	rg->size = size;
	rg->best_ns = rg->chase_ns = UINT64_MAX;
	rg->anon_huge = anon_huge(p, size);
	return 0;
}

static void region_close(struct region *rg)
{
	if (rg->mm)
		emm_close(rg->mm);
	if (rg->raw)
		munmap(rg->raw, rg->size + PMD_SIZE);
	rg->mm = NULL;
	rg->raw = NULL;
}

/* ---- the cost of one collapse ---- */

/* Nanoseconds to write every page of n fresh extents in an emm instance. */
static int64_t emm_fault_extents(size_t n, int thp, struct emm_stats *st)
{
	EMM_OPTS(emm_opts, eo, .mem_limit = 2 * n * PMD_SIZE + (256ULL << 20), .thp = thp);
	volatile uint64_t *w;
	struct emm *mm;
	uint64_t t0, ns;
	void *p;
	int err = emm_open(&eo, &mm);

	if (err < 0)
		return err;
	err = emm_reserve(mm, n * PMD_SIZE, &p);
	if (err == 0)
		err = emm_map(mm, p, n * PMD_SIZE, NULL);
	if (err < 0) {
		emm_close(mm);
		return err;
	}
	w = p;
	t0 = bench_now_ns();
	for (size_t pg = 0; pg < n * PMD_SIZE / PAGE_SIZE; pg++)
		w[pg * WORDS] = pg + 1;
	ns = bench_now_ns() - t0;
	bench_stats(mm, st);
	emm_close(mm);
	return (int64_t)ns;
}

/*
 * The reference: MADV_COLLAPSE on a plain shared memfd mapping, n extents
 * each with every page populated (full) or only its first one. Only the
 * collapse calls are timed; *done counts the ones that succeeded.
 */
static int64_t memfd_collapse(size_t n, bool full, size_t *done, uint64_t *pmd)
{
	size_t len = n * PMD_SIZE;
	int fd = memfd_create("emm-bench-thp", MFD_CLOEXEC);
	char *raw, *p;
	uint64_t ns = 0;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)len) < 0) {
		close(fd);
		return -errno;
	}
	/* An aligned window of a larger reservation, so each extent can be one PMD. */
	raw = mmap(NULL, len + PMD_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p = raw == MAP_FAILED ? MAP_FAILED
			      : mmap((char *)(((uintptr_t)raw + PMD_SIZE - 1) & ~(PMD_SIZE - 1)),
				     len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		if (raw != MAP_FAILED)
			munmap(raw, len + PMD_SIZE);
		return -ENOMEM;
	}
	*done = 0;
	for (size_t i = 0; i < n; i++)
		madvise(p + i * PMD_SIZE, full ? PMD_SIZE : PAGE_SIZE, MADV_POPULATE_WRITE);
	for (size_t i = 0; i < n; i++) {
		uint64_t t0 = bench_now_ns();
		int rc = madvise(p + i * PMD_SIZE, PMD_SIZE, MADV_COLLAPSE);

		ns += bench_now_ns() - t0;
		*done += rc == 0;
	}
	*pmd = pmd_mapped(p, len);
	munmap(raw, len + PMD_SIZE);
	return (int64_t)ns;
}

/* The best of the runs of each way of making n extents huge (or not). */
struct cost {
	int64_t huge, small, full, one;	/* ns for all n extents */
	struct emm_stats huge_st, small_st;
	size_t full_ok, one_ok;		/* memfd extents collapsed */
	uint64_t full_pmd, one_pmd;	/* and then PMD-mapped */
};

static void keep_min(int64_t *best, int64_t v)
{
	if (*best < 0 || v < *best)
		*best = v;
}

static int cost_run(struct cost *c, size_t n)
{
	struct emm_stats st;
	int64_t v;

	if ((v = emm_fault_extents(n, EMM_THP_ALWAYS, &st)) < 0)
		return complain("emm, EMM_THP_ALWAYS", (int)v);
	if (c->huge < 0 || v < c->huge)
		c->huge = v, c->huge_st = st;
	if ((v = emm_fault_extents(n, EMM_THP_NEVER, &st)) < 0)
		return complain("emm, EMM_THP_NEVER", (int)v);
	if (c->small < 0 || v < c->small)
		c->small = v, c->small_st = st;
	if ((v = memfd_collapse(n, true, &c->full_ok, &c->full_pmd)) < 0)
		return complain("memfd", (int)v);
	keep_min(&c->full, v);
	if ((v = memfd_collapse(n, false, &c->one_ok, &c->one_pmd)) < 0)
		return complain("memfd", (int)v);
	keep_min(&c->one, v);
	return 0;
}

static int collapse_cost(size_t n, unsigned runs)
{
	struct cost c = { .huge = -1, .small = -1, .full = -1, .one = -1 };
	double diff;

	for (unsigned r = 0; r < runs; r++)
		if (cost_run(&c, n) < 0)
			return -1;
	diff = (c.huge - c.small) / 1e3 / n;
	printf("collapse cost, %zu extents of 2 MiB, every page written once, best of %u run(s):\n"
	       "  emm, fault-time huge (EMM_THP_ALWAYS) %7.0f us per extent  (faults %llu,"
	       " thp_collapse %llu, failed %llu)\n"
	       "  emm, 4 KiB pages (EMM_THP_NEVER)      %7.0f us per extent  (faults %llu)\n"
	       "  one collapse in emm, the difference  %7.0f us per 2 MiB%s\n",
	       n, runs, c.huge / 1e3 / n, (unsigned long long)c.huge_st.faults,
	       (unsigned long long)c.huge_st.thp_collapse,
	       (unsigned long long)c.huge_st.thp_collapse_failed, c.small / 1e3 / n,
	       (unsigned long long)c.small_st.faults, diff,
	       diff < 0 ? " (the huge fault is the cheaper way to map 512 pages)" : "");
	printf("  reference, MADV_COLLAPSE alone on a plain memfd mapping:\n"
	       "    every page populated %7.0f us per 2 MiB  (%zu/%zu collapsed, %.0f MiB PMD-mapped)\n"
	       "    first page only      %7.0f us per 2 MiB  (%zu/%zu collapsed, %.0f MiB PMD-mapped)\n",
	       c.full / 1e3 / n, c.full_ok, n, c.full_pmd / MIB, c.one / 1e3 / n, c.one_ok, n,
	       c.one_pmd / MIB);
	return 0;
}

/* ---- report ---- */

static void report(const struct region *rg, size_t nreads)
{
	printf("%-15s %10.0f reads/s (%5.1f ns), dependent %6.1f ns  (first touch %.0f ms; ",
	       rg->name, bench_rate(nreads, rg->best_ns), (double)rg->best_ns / nreads,
	       (double)rg->chase_ns / (nreads / CHASE_DIV), rg->touch_ns / 1e6);
	if (rg->raw)
		printf("AnonHugePages %.0f MiB)\n", rg->anon_huge / MIB);
	else
		printf("faults %llu, thp_collapse %llu, failed %llu, huge_bytes %.0f MiB,"
		       " ShmemPmdMapped %.0f MiB; faults while reading %llu)\n",
		       (unsigned long long)rg->st.faults, (unsigned long long)rg->st.thp_collapse,
		       (unsigned long long)rg->st.thp_collapse_failed, rg->st.huge_bytes / MIB,
		       rg->pmd_bytes / MIB, (unsigned long long)rg->faults);
}

/* Word offsets spread over the whole region, the same for every region. */
static uint32_t *offsets(size_t size, size_t n)
{
	uint32_t *off = malloc(n * sizeof(*off));
	uint64_t x = 0x746870, words = size / sizeof(uint64_t);

	for (size_t i = 0; off && i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		off[i] = (uint32_t)(x % words);
	}
	return off;
}

/* Two regions read in turn, the passes alternating so drift hits both alike. */
static void read_pair(struct region *rg, const uint32_t *off, size_t n, unsigned runs)
{
	for (unsigned r = 0; r < runs; r++)
		for (int i = 0; i < 2; i++)
			region_read(&rg[i], off, n);
	for (int i = 0; i < 2; i++)
		report(&rg[i], n);
	if (rg[0].sum != rg[1].sum)
		printf("the two regions read DIFFERENT sums: %llu and %llu\n",
		       (unsigned long long)rg[0].sum, (unsigned long long)rg[1].sum);
}

static double speedup(const struct region *rg)
{
	return rg[1].best_ns ? (double)rg[0].best_ns / rg[1].best_ns : 0;
}

static double chase_speedup(const struct region *rg)
{
	return rg[1].chase_ns ? (double)rg[0].chase_ns / rg[1].chase_ns : 0;
}

/* emm's two regions: 4 KiB-mapped and promoted at first touch. */
static int emm_pair(size_t size, const uint32_t *off, size_t n, unsigned runs, double *ratio,
		    double *chase)
{
	struct region rg[2] = {
		{ .name = "emm 4k-mapped", .thp = EMM_THP_NEVER },
		{ .name = "emm promoted", .thp = EMM_THP_ALWAYS },
	};
	int err = 0;

	for (int i = 0; i < 2 && err == 0; i++)
		if ((err = region_open(&rg[i], size)) < 0)
			complain(rg[i].name, err);
	if (err == 0) {
		read_pair(rg, off, n, runs);
		if (rg[1].pmd_bytes < size)
			printf("note: only %.0f of %.0f MiB of the promoted region is PMD-mapped\n",
			       rg[1].pmd_bytes / MIB, size / MIB);
		*ratio = speedup(rg);
		*chase = chase_speedup(rg);
	}
	for (int i = 0; i < 2; i++)
		region_close(&rg[i]);
	return err;
}

/* The kernel's own anonymous memory, MADV_NOHUGEPAGE and MADV_HUGEPAGE. */
static int kernel_pair(size_t size, const uint32_t *off, size_t n, unsigned runs, double *ratio,
		       double *chase)
{
	struct region rg[2] = { { .name = "kernel 4k" }, { .name = "kernel THP" } };
	int err = 0;

	for (int i = 0; i < 2 && err == 0; i++)
		if ((err = kernel_open(&rg[i], size, i == 1)) < 0)
			complain("mmap", err);
	if (err == 0) {
		read_pair(rg, off, n, runs);
		*ratio = speedup(rg);
		*chase = chase_speedup(rg);
	}
	for (int i = 0; i < 2; i++)
		region_close(&rg[i]);
	return err;
}

int bench_thp(const struct bench_opts *o)
{
	size_t size = (o->size + PMD_SIZE - 1) & ~(PMD_SIZE - 1);
	size_t nreads = o->ops ? o->ops : DEFAULT_READS;
	size_t ncost = size / PMD_SIZE < COST_EXTENTS ? size / PMD_SIZE : COST_EXTENTS;
	double ratio = 0, chase = 0, kratio = 0, kchase = 0;
	uint32_t *off;
	int err;

	if (size / sizeof(uint64_t) > UINT32_MAX) {
		fprintf(stderr, "emm-bench: thp: --size is at most 32G\n");
		return 1;
	}
	off = offsets(size, nreads);
	if (!off)
		return complain("memory for the offsets", -ENOMEM), 1;
	printf("thp: %.0f MiB resident anonymous region, %zu random 8-byte reads over all of it\n"
	       "  (independent loads), then %zu dependent ones (each offset chained to the word\n"
	       "  read before); best of %u pass(es). emm 4k-mapped: emm_opts.thp = EMM_THP_NEVER;\n"
	       "  emm promoted: EMM_THP_ALWAYS, each extent collapsed at its first touch;\n"
	       "  kernel: anonymous mmap with MADV_NOHUGEPAGE / MADV_HUGEPAGE, the machine's ceiling\n",
	       size / MIB, nreads, nreads / CHASE_DIV, o->runs);
	err = emm_pair(size, off, nreads, o->runs, &ratio, &chase);
	if (err == 0)
		err = kernel_pair(size, off, nreads, o->runs, &kratio, &kchase);
	free(off);
	if (err < 0)
		return 1;
	printf("promoted/4k-mapped: emm %.2fx reads/s, dependent %.2fx;"
	       " kernel THP/4k %.2fx, dependent %.2fx\n", ratio, chase, kratio, kchase);
	printf("goal: emm promoted >= %.1fx faster than 4k-mapped: %s (%.2fx)\n", GOAL_THP,
	       ratio >= GOAL_THP ? "met" : "NOT met", ratio);
	collapse_cost(ncost, o->runs);
	return 0;
}
