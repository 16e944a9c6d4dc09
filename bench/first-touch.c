/* SPDX-License-Identifier: MIT */
/* first-touch: faulting in never-touched pages, emm against the kernel. */
#include "bench.h"

#include <emm.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

/* What emm must reach, as a fraction of the kernel's pages/s: within the
 * budget, a first touch in order at least as fast as the kernel's
 * anonymous memory, at random four fifths of it. */
#define GOAL_SEQUENTIAL	1.0
#define GOAL_RANDOM	0.8

struct pattern {
	const char *name;
	const size_t *order;	/* page indices in touch order; NULL: ascending */
	double goal;
};

/* One timed touch: how long, and how many page faults the kernel served. */
struct sample {
	uint64_t ns;
	long minflt;
};

struct result {
	struct sample emm, kernel;	/* best of the runs */
	struct emm_stats st;		/* of emm's best run */
};

static long minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/* One write per page; volatile so every store reaches memory. */
static struct sample touch(volatile char *p, const size_t *order, size_t pages)
{
	long flt = minflt();
	uint64_t t0 = bench_now_ns();

	for (size_t i = 0; i < pages; i++)
		p[(order ? order[i] : i) * PAGE_SIZE] = 1;
	return (struct sample){ bench_now_ns() - t0, minflt() - flt };
}

/* A fresh instance, reservation and VMA; only the touching is timed. */
static int emm_run(uint64_t size, const size_t *order, struct sample *sm, struct emm_stats *st)
{
	struct emm *mm;
	void *p;
	int err;

	err = emm_open(NULL, &mm);
	if (err < 0)
		return err;
	err = emm_reserve(mm, size, &p);
	if (err == 0)
		err = emm_map(mm, p, size, NULL);
	if (err == 0) {
		*sm = touch(p, order, size / PAGE_SIZE);
		memset(st, 0, sizeof(*st));
		st->sz = sizeof(*st);
		err = emm_stats(mm, st);
	}
	emm_close(mm);
	return err < 0 ? err : 0;
}

/* The same with fresh private anonymous memory from the kernel. */
static int kernel_run(uint64_t size, const size_t *order, struct sample *sm)
{
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	*sm = touch(p, order, size / PAGE_SIZE);
	munmap(p, size);
	return 0;
}

/* Alternate emm and kernel runs so drift in the machine hits both alike. */
static int measure(const struct bench_opts *o, const struct pattern *pat, struct result *res)
{
	res->emm.ns = res->kernel.ns = UINT64_MAX;
	for (unsigned r = 0; r < o->runs; r++) {
		struct emm_stats st = { 0 };
		struct sample e = { 0 }, k = { 0 };
		int err = emm_run(o->size, pat->order, &e, &st);

		if (err < 0) {
			fprintf(stderr, "emm-bench: first-touch %s: emm: %s\n", pat->name, strerror(-err));
			return err;
		}
		err = kernel_run(o->size, pat->order, &k);
		if (err < 0) {
			fprintf(stderr, "emm-bench: first-touch %s: mmap: %s\n", pat->name, strerror(-err));
			return err;
		}
		if (e.ns < res->emm.ns)
			res->emm = e, res->st = st;
		if (k.ns < res->kernel.ns)
			res->kernel = k;
	}
	return 0;
}

static double report(const struct pattern *pat, const struct result *res, size_t pages)
{
	double emm = bench_rate(pages, res->emm.ns);
	double kernel = bench_rate(pages, res->kernel.ns);
	double ratio = kernel > 0 ? emm / kernel : 0;

	printf("%-10s  emm %8.0f pages/s  kernel %8.0f pages/s  emm/kernel %5.2f"
	       "  (emm faults %llu, zero %llu; getrusage minflt: emm run %ld, kernel run %ld)\n",
	       pat->name, emm, kernel, ratio,
	       (unsigned long long)res->st.faults, (unsigned long long)res->st.faults_zero,
	       res->emm.minflt, res->kernel.minflt);
	bench_data("first-touch", pat->name, "emm", emm, "pages/s");
	bench_data("first-touch", pat->name, "kernel", kernel, "pages/s");
	bench_record(pat->name, emm, "pages/s");
	return ratio;
}

int bench_first_touch(const struct bench_opts *o)
{
	size_t pages = o->size / PAGE_SIZE;
	size_t *perm = malloc(pages * sizeof(*perm));
	struct pattern pats[] = {
		{ "sequential", NULL, GOAL_SEQUENTIAL },
		{ "random", perm, GOAL_RANDOM },
	};
	double ratio[2];
	struct result res = { 0 };

	if (!perm) {
		fprintf(stderr, "emm-bench: out of memory\n");
		return 1;
	}
	bench_shuffle(perm, pages, 0x656d6d);
	printf("first-touch: %llu KiB (%zu pages), one write per page, best of %u run(s)\n",
	       (unsigned long long)(o->size >> 10), pages, o->runs);
	for (int i = 0; i < 2; i++) {
		if (measure(o, &pats[i], &res) < 0) {
			free(perm);
			return 1;
		}
		ratio[i] = report(&pats[i], &res, pages);
	}
	for (int i = 0; i < 2; i++)
		printf("goal: %-10s emm >= %.1fx kernel: %s (%.2fx)\n", pats[i].name,
		       pats[i].goal, ratio[i] >= pats[i].goal ? "met" : "NOT met", ratio[i]);
	free(perm);
	return 0;
}
