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
	  bench_first_touch, 0, 0, true },
	{ "out-of-core", "a region larger than the budget: emm's swap against the kernel's swap\n"
	  "                and O_DIRECT on a plain file",
	  bench_out_of_core, 4ULL << 30, 1, true },
	{ "file", "a file larger than the budget: FILE VMA reads against O_DIRECT pread and mmap",
	  bench_file, 2ULL << 30, 1, true },
	{ "thp", "random reads of a resident region, 4 KiB-mapped against huge; collapse cost",
	  bench_thp, 1ULL << 30, 3, false },
	{ "lru", "two threads faulting and reclaiming, per-CPU pagevecs on against off",
	  bench_lru, 64ULL << 20, 2, false },
	{ "syscalls", "pread into swapped-out emm pages (uffd serves the kernel's faults) "
	  "against resident memory", bench_syscalls, 256ULL << 20, 3, false },
	{ "vmas", "--ops one-page VMAs (20000) mapped, protected, unmapped, against the kernel's mmap",
	  bench_vmas, 0, 1, false },
	{ "heap", "threads allocating and freeing: libemm-heap vs mimalloc vs glibc; under a budget",
	  bench_heap, 128ULL << 20, 3, false },
	{ "loop", "a region larger than the budget read in order again and again, with and\n"
	  "                without sequential advice, against the kernel's swap",
	  bench_loop, 384ULL << 20, 1, false },
	{ "instructions", "emm's instructions per first touch, sequential and random swap-in,\n"
	  "                counted by valgrind's callgrind (signal backend)",
	  bench_instructions, 0, 1, false },
	{ "clients", "Lua, the sqlite3 shell, Python, sort, Perl, Node.js and Java under a budget:\n"
	  "                libemm-preload.so against the kernel's swap in a memory cgroup\n"
	  "                (with the program's usual malloc, and with mimalloc), and\n"
	  "                unconstrained",
	  bench_clients, 0, 1, false },
};

#define NR_MODES	(sizeof(modes) / sizeof(modes[0]))

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * For a while after the kernel frees a few GiB (a dropped page cache, a
 * closed instance's physmem), reads into newly allocated pages run slower
 * on some virtual machines: measured on a 2-vCPU VM, 4 KiB reads of a FILE
 * VMA took 55 to 60 us each right after 2 GiB of page cache was dropped,
 * 44 to 45 once three seconds had passed, while the device's own reads
 * into one reused buffer did not slow. A figure should not carry the run
 * before it: each timed run that follows such a release starts after this
 * pause.
 */
#define SETTLE_MS	3000

void bench_settle(void)
{
	struct timespec ts = { SETTLE_MS / 1000, (SETTLE_MS % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

const char *bench_tmpdir(void)
{
	const char *dir = getenv("TMPDIR");

	return dir && *dir ? dir : "/var/tmp";
}

uint64_t bench_counter(const char *path, const char *name)
{
	char line[256], key[64];
	unsigned long long v, found = 0;
	FILE *f = fopen(path, "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %llu", key, &v) == 2 && strcmp(key, name) == 0)
			found = v;
	if (f)
		fclose(f);
	return found;
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

static const char *const backend_names[] = { "auto", "signal", "uffd", "uffd-sigbus" };
#define NR_BACKENDS	4
static int cur_backend;

/*
 * One measurement as one machine-readable line, what bench/plot.sh and
 * other scripts read: "data: mode=M pattern=P subject=S value=V unit=U",
 * where the subject is emm or the baseline it is compared with.
 */
void bench_data(const char *mode, const char *pattern, const char *subject, double value,
		const char *unit)
{
	/* emm's own figures are named by the backend that made them. */
	if (strcmp(subject, "emm") == 0)
		printf("data: mode=%s pattern=%s subject=emm-%s value=%.0f unit=%s\n", mode,
		       pattern, backend_names[cur_backend], value, unit);
	else
		printf("data: mode=%s pattern=%s subject=%s value=%.0f unit=%s\n", mode, pattern,
		       subject, value, unit);
}

/* A pattern's rate as a data line in pages/s: random patterns touch one
 * word per page (operations/s), the others count MiB/s. */
void bench_data_pattern(const char *mode, const struct bench_pattern *p, const char *subject,
			double rate)
{
	bench_data(mode, p->name, subject, p->random ? rate : rate * (1 << 20) / PAGE_SIZE,
		   "pages/s");
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
		   "                      [--threads N] [--hugepage]\n"
		   "       emm-bench --help\n"
		   "  --size BYTES  memory each run touches, K/M/G/T suffixes (default 256M;\n"
		   "                out-of-core 4G; file: the file, 2G; thp 1G; lru: each\n"
		   "                thread's region, 64M; heap: live data, 128M; loop 384M)\n"
		   "  --runs N      repeat each measurement N times, keep the best (default 3;\n"
		   "                out-of-core and file 1, lru 2; loop runs once)\n"
		   "  --limit BYTES emm's memory budget (out-of-core 1G, file 512M, lru 64M,\n"
		   "                loop 256M; heap: a quarter of the live data); clients takes a list,\n"
		   "                each budget in turn, N%% a share of each program's unconstrained\n"
		   "                peak (default 50%%,64M,48M)\n"
		   "  --ops N       random accesses per pattern (out-of-core 64K, file 32K;\n"
		   "                thp: reads per pass, 16M; heap: per thread, 2M); clients:\n"
		   "                the Lua script's strings (400000; SQLite's rows are 5/8 of it,\n"
		   "                Python's keys 3/4, sort's lines twice as many, Perl's keys 3/8)\n"
		   "  --threads N   out-of-core: threads for the random patterns, on emm and on\n"
		   "                the kernel's swap (default 1);\n"
		   "                lru: threads faulting at once (default 2); heap: 2\n"
		   "  --hugepage    out-of-core: emm's region mapped with EMM_MAP_HUGEPAGE\n"
		   "                (emm-thp(7))\n"
		   "  --backend NAME  signal, uffd, uffd-sigbus or auto (default: first-touch,\n"
		   "                out-of-core and file run every backend offered, side by side;\n"
		   "                clients runs the preload on uffd; the others auto)\n"
		   "out-of-core, heap, loop and clients measure the kernel's swap too when run as root\n"
		   "with a cgroup v1 memory controller: a memory cgroup limited to the budget\n"
		   "and a swap file in $TMPDIR (else /var/tmp), both removed at the end (or\n"
		   "by the next run, if this one was killed)\n"
		   "modes:\n");
	for (size_t i = 0; i < NR_MODES; i++)
		fprintf(f, "  %-12s  %s\n", modes[i].name, modes[i].help);
}


static int backend_of(const char *name)
{
	for (int b = 0; b < NR_BACKENDS; b++)
		if (strcmp(backend_names[b], name) == 0)
			return b;
	return -1;
}

/* The figures each backend's run recorded, for the table at the end. */
#define MAX_FIGURES	16
static struct figure {
	const char *pattern, *unit;
	double rate[NR_BACKENDS];
	const char *base;	/* the baseline's subject, or NULL */
	double base_rate;
} figures[MAX_FIGURES];
static int nr_figures;
static const char *cur_mode;

static struct figure *figure_of(const char *pattern)
{
	int i;

	for (i = 0; i < nr_figures && strcmp(figures[i].pattern, pattern); i++)
		;
	if (i == MAX_FIGURES)
		return NULL;
	if (i == nr_figures)
		figures[nr_figures++] = (struct figure){ .pattern = pattern };
	return &figures[i];
}

void bench_record(const char *pattern, double rate, const char *unit)
{
	struct figure *f = figure_of(pattern);

	if (f) {
		f->unit = unit;
		f->rate[cur_backend] = rate;
	}
}

void bench_record_baseline(const char *pattern, const char *subject, double rate)
{
	struct figure *f = figure_of(pattern);

	if (f) {
		f->base = subject;
		f->base_rate = rate;
	}
}

bool bench_offered(int b)
{
	struct emm_opts o = { .sz = sizeof(o), .mem_limit = 16 << 20, .backend = b };
	struct emm *mm;

	if (emm_open(&o, &mm))
		return false;
	emm_close(mm);
	return true;
}

/* Every backend offered in turn, then the table: rates, and each one's
 * ratio to the signal backend's. */
static int run_all(const struct bench_mode *m, struct bench_opts *o)
{
	int rc = 0, ran[NR_BACKENDS] = { 0 };

	for (int b = EMM_BACKEND_SIGNAL; b < NR_BACKENDS; b++) {
		if (!bench_offered(b)) {
			printf("== backend %s: not offered here\n", backend_names[b]);
			continue;
		}
		printf("== backend %s\n", backend_names[b]);
		fflush(stdout);
		setenv("EMM_BACKEND", backend_names[b], 1);
		cur_backend = b;
		o->backend = b;
		rc |= m->run(o);
		ran[b] = 1;
	}
	printf("\n%s across backends (ratios to signal; the machine's load varies between runs):\n",
	       m->name);
	for (int i = 0; i < nr_figures; i++) {
		const struct figure *f = &figures[i];

		printf("%-12s", f->pattern);
		for (int b = EMM_BACKEND_SIGNAL; b < NR_BACKENDS; b++)
			if (ran[b])
				printf("  %s %9.0f %s", backend_names[b], f->rate[b], f->unit);
		for (int b = EMM_BACKEND_UFFD; b < NR_BACKENDS; b++)
			if (ran[b] && ran[EMM_BACKEND_SIGNAL] && f->rate[EMM_BACKEND_SIGNAL] > 0)
				printf("  %s/signal %5.2f", backend_names[b],
				       f->rate[b] / f->rate[EMM_BACKEND_SIGNAL]);
		printf("\n");
		if (!f->base || f->base_rate <= 0)
			continue;
		printf("%-12s  %s %9.0f %s", "", f->base, f->base_rate, f->unit);
		for (int b = EMM_BACKEND_SIGNAL; b < NR_BACKENDS; b++)
			if (ran[b])
				printf("  %s/%s %5.2f", backend_names[b], f->base,
				       f->rate[b] / f->base_rate);
		printf("\n");
	}
	return rc;
}

static const struct bench_mode *find_mode(const char *name)
{
	for (size_t i = 0; i < NR_MODES; i++)
		if (strcmp(modes[i].name, name) == 0)
			return &modes[i];
	return NULL;
}

/* One budget, or a comma-separated list of them. */
static int parse_limits(const char *arg, struct bench_opts *o)
{
	char buf[256], *save, *tok;

	if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf))
		return -1;
	o->nr_limits = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t len = strlen(tok);
		uint64_t v = 0;
		char *end;

		if (o->nr_limits == 8)
			return -1;
		if (len > 1 && tok[len - 1] == '%') {
			unsigned long pct = strtoul(tok, &end, 10);

			if (end != tok + len - 1 || pct < 1 || pct > 100)
				return -1;
			o->limit_pct[o->nr_limits] = (unsigned)pct;
		} else if (bench_parse_size(tok, &v) || v < PAGE_SIZE) {
			return -1;
		}
		o->limits[o->nr_limits++] = v;
	}
	o->limit = o->nr_limits ? o->limits[0] : 0;
	return o->nr_limits ? 0 : -1;
}

static int parse_opts(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "runs", required_argument, NULL, 'r' },
		{ "limit", required_argument, NULL, 'l' },
		{ "ops", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "backend", required_argument, NULL, 'b' },
		{ "hugepage", no_argument, NULL, 'H' },
		{ 0 },
	};
	int c;

	o->backend = -1;
	while ((c = getopt_long(argc, argv, "s:r:l:n:t:b:H", longopts, NULL)) != -1) {
		if (c == 'H' && (o->hugepage = true))
			continue;
		if (c == 'b' && (o->backend = backend_of(optarg)) >= 0)
			continue;
		if (c == 's' && bench_parse_size(optarg, &o->size) == 0 && o->size >= PAGE_SIZE)
			continue;
		if (c == 'r' && (o->runs = (unsigned)atoi(optarg)) > 0)
			continue;
		if (c == 'l' && parse_limits(optarg, o) == 0)
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
	cur_mode = m->name;
	for (unsigned i = 0; i < o.nr_limits; i++)
		if (o.limit_pct[i] && strcmp(m->name, "clients")) {
			fprintf(stderr, "emm-bench: %s: --limit takes bytes, not a share\n", m->name);
			return 2;
		}
	if (o.backend < 0 && m->all_backends)
		return run_all(m, &o);
	if (o.backend >= 0)
		setenv("EMM_BACKEND", backend_names[o.backend], 1);
	cur_backend = o.backend < 0 ? 0 : o.backend;
	return m->run(&o);
}
