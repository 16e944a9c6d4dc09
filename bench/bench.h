/* SPDX-License-Identifier: MIT */
/* What the emm-bench modes share: options, timing and reporting functions. */
#ifndef EMM_BENCH_H
#define EMM_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#define PAGE_SIZE	4096UL
#define PMD_SHIFT	21
#define PMD_SIZE	(1UL << PMD_SHIFT)

/* Debian 12's headers (Linux 6.1) may lack them. */
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE		25
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif

struct bench_opts {
	uint64_t size;		/* bytes each run touches */
	unsigned runs;		/* repeats per measurement; the best counts */
	uint64_t limit;		/* emm's memory budget; 0: the mode's default */
	uint64_t limits[8];	/* --limit A,B,...: every budget given (limit is the first) */
	unsigned limit_pct[8];	/* clients: N% there, a share of each program's
				   unconstrained peak (limits[i] 0); else 0 */
	unsigned nr_limits;
	uint64_t ops;		/* random accesses per pattern; 0: the mode's default */
	unsigned threads;	/* threads doing them; 0: the mode's default */
	bool hugepage;		/* out-of-core: the region mapped with EMM_MAP_HUGEPAGE */
	int backend;		/* EMM_BACKEND_*; -1: every backend offered, side by side */
};

/* One subcommand: runs with the parsed options, returns the exit status. */
struct bench_mode {
	const char *name;
	const char *help;
	int (*run)(const struct bench_opts *o);
	uint64_t size;		/* default --size; 0: 256M */
	unsigned runs;		/* default --runs; 0: 3 */
	bool all_backends;	/* without --backend: every backend offered, side by side */
};

/*
 * Everything here carries the bench_ prefix: libemm.a is linked statically,
 * and its internal names must not meet ours.
 */
int bench_first_touch(const struct bench_opts *o);
int bench_out_of_core(const struct bench_opts *o);
int bench_file(const struct bench_opts *o);
int bench_thp(const struct bench_opts *o);
int bench_lru(const struct bench_opts *o);
int bench_vmas(const struct bench_opts *o);
int bench_syscalls(const struct bench_opts *o);

/* A mode's headline figure for one pattern, for the table across backends. */
void bench_record(const char *pattern, double rate, const char *unit);
/* The same pattern's baseline (one per pattern), for emm/baseline in that table. */
void bench_record_baseline(const char *pattern, const char *subject, double rate);
/* Can this process have an instance on backend b (EMM_BACKEND_*)? */
bool bench_offered(int b);
int bench_heap(const struct bench_opts *o);
int bench_clients(const struct bench_opts *o);
int bench_loop(const struct bench_opts *o);
int bench_instructions(const struct bench_opts *o);

uint64_t bench_now_ns(void);
/* A pause before a timed run, after memory was freed (emm-bench.c). */
void bench_settle(void);
/* Where the benches put their files: $TMPDIR, else /var/tmp (often not tmpfs). */
const char *bench_tmpdir(void);
/* The number after name in a file of "name value" lines (memory.stat, emm's
 * statistics); 0 if absent. */
uint64_t bench_counter(const char *path, const char *name);
int bench_parse_size(const char *s, uint64_t *out);
void bench_shuffle(size_t *v, size_t n, uint64_t seed);
double bench_rate(uint64_t events, uint64_t ns);
void bench_data(const char *mode, const char *pattern, const char *subject, double value,
		const char *unit);

/* A measured pattern and its same-run baseline (file, out-of-core). */
struct bench_pattern {
	const char *name;
	const char *device;	/* what the baseline does */
	bool random;		/* rates in operations/s, else MiB/s */
	double goal;		/* emm / baseline to reach; 0: none */
};

void bench_data_pattern(const char *mode, const struct bench_pattern *p, const char *subject,
			double rate);

struct emm;
struct emm_stats;
void bench_stats(struct emm *mm, struct emm_stats *st);
void bench_stats_delta(const struct emm_stats *a, const struct emm_stats *b,
		       struct emm_stats *d);

#endif /* EMM_BENCH_H */
