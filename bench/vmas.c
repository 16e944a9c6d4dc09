/* SPDX-License-Identifier: MIT */
/* vmas: many one-page VMAs mapped, protected and unmapped, against the kernel's own mmap. */
#include "bench.h"

#include <emm.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define DEFAULT_VMAS	20000

/* Seconds each phase took, emm's and the kernel's. */
struct vma_times {
	double map, protect, unmap;
};

static int complain(const char *what, int err)
{
	fprintf(stderr, "emm-bench: vmas: %s: %s\n", what, strerror(-err));
	return err;
}

/* Every other page, so that no two VMAs merge: n VMAs in 2n pages. */
static int emm_phases(struct emm *mm, char *base, size_t n, struct vma_times *t)
{
	uint64_t t0 = bench_now_ns();
	int err = 0;

	for (size_t i = 0; i < n && !err; i++)
		err = emm_map(mm, base + 2 * i * PAGE_SIZE, PAGE_SIZE, NULL);
	t->map = (double)(bench_now_ns() - t0) / 1e9;
	t0 = bench_now_ns();
	for (size_t i = 0; i < n && !err; i++)
		err = emm_protect(mm, base + 2 * i * PAGE_SIZE, PAGE_SIZE, EMM_PROT_READ);
	t->protect = (double)(bench_now_ns() - t0) / 1e9;
	t0 = bench_now_ns();
	for (size_t i = 0; i < n && !err; i++)
		err = emm_unmap(mm, base + 2 * i * PAGE_SIZE, PAGE_SIZE);
	t->unmap = (double)(bench_now_ns() - t0) / 1e9;
	return err;
}

/* The same with the kernel: MAP_FIXED pages in a PROT_NONE reservation. */
static int kernel_phases(size_t n, struct vma_times *t)
{
	char *base = mmap(NULL, 2 * n * PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t t0;
	int err = 0;

	if (base == MAP_FAILED)
		return -errno;
	t0 = bench_now_ns();
	for (size_t i = 0; i < n && !err; i++)
		if (mmap(base + 2 * i * PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
			err = -errno;
	t->map = (double)(bench_now_ns() - t0) / 1e9;
	t0 = bench_now_ns();
	for (size_t i = 0; i < n && !err; i++)
		if (mprotect(base + 2 * i * PAGE_SIZE, PAGE_SIZE, PROT_READ) < 0)
			err = -errno;
	t->protect = (double)(bench_now_ns() - t0) / 1e9;
	t0 = bench_now_ns();
	for (size_t i = 0; i < n && !err; i++)
		if (mmap(base + 2 * i * PAGE_SIZE, PAGE_SIZE, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED)
			err = -errno;
	t->unmap = (double)(bench_now_ns() - t0) / 1e9;
	munmap(base, 2 * n * PAGE_SIZE);
	return err;
}

static void report(const char *phase, size_t n, double e, double k)
{
	printf("%-8s  emm %8.3f s (%7.2f us/VMA)  kernel %8.3f s (%6.2f us/VMA)  emm/kernel %6.1f\n",
	       phase, e, e * 1e6 / (double)n, k, k * 1e6 / (double)n, k > 0 ? e / k : 0);
	printf("data: vmas %s n=%zu emm_s=%.6f kernel_s=%.6f\n", phase, n, e, k);
}

int bench_vmas(const struct bench_opts *o)
{
	size_t n = o->ops ? (size_t)o->ops : DEFAULT_VMAS;
	struct vma_times e = { 0, 0, 0 }, k = e, best_e = { 1e30, 1e30, 1e30 }, best_k = best_e;
	struct emm *mm;
	void *base;
	int err;

	printf("vmas: %zu one-page VMAs (every other page, so none merge): emm_map, "
	       "emm_protect, emm_unmap each, against the kernel's mmap, mprotect and mmap(PROT_NONE); "
	       "best of %u run(s)\n", n, o->runs);
	err = emm_open(NULL, &mm);
	if (err)
		return complain("emm_open", err);
	err = emm_reserve(mm, 2 * n * PAGE_SIZE, &base);
	if (err) {
		emm_close(mm);
		return complain("emm_reserve", err);
	}
	for (unsigned r = 0; r < o->runs && !err; r++) {
		err = emm_phases(mm, base, n, &e);
		if (!err)
			err = kernel_phases(n, &k);
		best_e.map = e.map < best_e.map ? e.map : best_e.map;
		best_e.protect = e.protect < best_e.protect ? e.protect : best_e.protect;
		best_e.unmap = e.unmap < best_e.unmap ? e.unmap : best_e.unmap;
		best_k.map = k.map < best_k.map ? k.map : best_k.map;
		best_k.protect = k.protect < best_k.protect ? k.protect : best_k.protect;
		best_k.unmap = k.unmap < best_k.unmap ? k.unmap : best_k.unmap;
	}
	emm_close(mm);
	if (err)
		return complain("a phase", err);
	report("map", n, best_e.map, best_k.map);
	report("protect", n, best_e.protect, best_k.protect);
	report("unmap", n, best_e.unmap, best_k.unmap);
	report("total", n, best_e.map + best_e.protect + best_e.unmap,
	       best_k.map + best_k.protect + best_k.unmap);
	return 0;
}
