/* SPDX-License-Identifier: MIT */
/* emm-bench: pick a mode from the table, parse the options, run it. */
#include <emm.h>

#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct bench_mode modes[] = {
	{ "first-touch", "sequential and random first touch, emm vs kernel anonymous memory",
	  bench_first_touch, 0, 0 },
	{ "out-of-core", "a region larger than the budget: swap against O_DIRECT on a plain file",
	  bench_out_of_core, 4ULL << 30, 1 },
	{ "file", "a file larger than the budget: FILE VMA reads against O_DIRECT pread and mmap",
	  bench_file, 2ULL << 30, 1 },
	{ "thp", "random reads of a resident region, 4 KiB-mapped against huge; collapse cost",
	  bench_thp, 1ULL << 30, 3 },
	{ "lru", "two threads faulting and reclaiming, per-CPU pagevecs on against off",
	  bench_lru, 64ULL << 20, 2 },
	{ "heap", "threads allocating and freeing: libemm-heap vs mimalloc vs glibc; under a budget",
	  bench_heap, 128ULL << 20, 3 },
};

#define NR_MODES	(sizeof(modes) / sizeof(modes[0]))

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* emm's counters now, whatever the library's struct size. */
void bench_stats(struct emm *mm, struct emm_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->sz = sizeof(*st);
	emm_stats(mm, st);
}

/* d = b - a, counter by counter (the sz field aside). */
void bench_stats_delta(const struct emm_stats *a, const struct emm_stats *b,
		       struct emm_stats *d)
{
	const uint64_t *pa = &a->resident_bytes, *pb = &b->resident_bytes;
	uint64_t *pd = &d->resident_bytes;
	size_t n = (sizeof(*a) - offsetof(struct emm_stats, resident_bytes)) / sizeof(uint64_t);

	d->sz = sizeof(*d);
	for (size_t i = 0; i < n; i++)
		pd[i] = pb[i] - pa[i];
}

double bench_rate(uint64_t events, uint64_t ns)
{
	return ns ? events * 1e9 / ns : 0.0;
}

/* A byte count with an optional K/M/G/T suffix (powers of 1024). */
int bench_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	if (*end) {
		const char *u = strchr(units, *end & ~0x20);
		if (!u || end[1])
			return -EINVAL;
		for (int shift = (int)(u - units + 1) * 10; shift; shift -= 10) {
			if (v > UINT64_MAX >> 10)
				return -ERANGE;
			v <<= 10;
		}
	}
	*out = v;
	return 0;
}

/* Fisher-Yates with xorshift64: the same seed gives the same order. */
void bench_shuffle(size_t *v, size_t n, uint64_t seed)
{
	uint64_t x = seed | 1;

	for (size_t i = 0; i < n; i++)
		v[i] = i;
	for (size_t i = n; i > 1; i--) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t j = x % i, t = v[i - 1];
		v[i - 1] = v[j], v[j] = t;
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: emm-bench MODE [--size BYTES] [--runs N] [--limit BYTES] [--ops N]\n"
		   "                      [--threads N]\n"
		   "       emm-bench --help\n"
		   "  --size BYTES  memory each run touches, K/M/G/T suffixes (default 256M;\n"
		   "                out-of-core 4G; file: the file, 2G; thp 1G; lru: each\n"
		   "                thread's region, 64M; heap: live data, 128M)\n"
		   "  --runs N      repeat each measurement N times, keep the best (default 3;\n"
		   "                out-of-core and file 1, lru 2)\n"
		   "  --limit BYTES emm's memory budget (out-of-core 1G, file 512M, lru 64M;\n"
		   "                heap: a quarter of the live data)\n"
		   "  --ops N       random accesses per pattern (out-of-core 64K, file 32K;\n"
		   "                thp: reads per pass, 16M; heap: per thread, 2M)\n"
		   "  --threads N   out-of-core: threads for the random patterns (default 1);\n"
		   "                lru: threads faulting at once (default 2); heap: 2\n"
		   "modes:\n");
	for (size_t i = 0; i < NR_MODES; i++)
		fprintf(f, "  %-12s  %s\n", modes[i].name, modes[i].help);
}

static const struct bench_mode *find_mode(const char *name)
{
	for (size_t i = 0; i < NR_MODES; i++)
		if (strcmp(modes[i].name, name) == 0)
			return &modes[i];
	return NULL;
}

static int parse_opts(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "runs", required_argument, NULL, 'r' },
		{ "limit", required_argument, NULL, 'l' },
		{ "ops", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "s:r:l:n:t:", longopts, NULL)) != -1) {
		if (c == 's' && bench_parse_size(optarg, &o->size) == 0 && o->size >= PAGE_SIZE)
			continue;
		if (c == 'r' && (o->runs = (unsigned)atoi(optarg)) > 0)
			continue;
		if (c == 'l' && bench_parse_size(optarg, &o->limit) == 0 && o->limit >= PAGE_SIZE)
			continue;
		if (c == 'n' && bench_parse_size(optarg, &o->ops) == 0 && o->ops > 0)
			continue;
		if (c == 't' && (o->threads = (unsigned)atoi(optarg)) > 0 && o->threads <= 256)
			continue;
		return -1;
	}
	o->size &= ~(PAGE_SIZE - 1);
	return optind == argc ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct bench_opts o = { 0 };
	const struct bench_mode *m;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	if (argc < 2 || parse_opts(argc - 1, argv + 1, &o) < 0) {
		usage(stderr);
		return 2;
	}
	if (!(m = find_mode(argv[1]))) {
		fprintf(stderr, "emm-bench: unknown mode '%s'; emm-bench --help lists them\n", argv[1]);
		return 2;
	}
	/* Unset options take the mode's defaults. */
	if (!o.size)
		o.size = m->size ? m->size : 256UL << 20;
	if (!o.runs)
		o.runs = m->runs ? m->runs : 3;
	return m->run(&o);
}
