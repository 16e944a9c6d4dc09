/* SPDX-License-Identifier: MIT */
/* The kernel VMAs emm's app view costs: kept under max_kernel_vmas, and counted right. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "emm.h"
#include "tap.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LEN (256 * MIB)
#define PAGES (LEN / PAGE)
#define TOUCHES 20000
#define LIMIT 64

static uint64_t seed = 0x5eed0105;

static uint64_t value(const void *addr)
{
	uint64_t s = (uintptr_t)addr;

	return tap_rand(&s) | 1;
}

static long kernel_vmas(struct emm *mm)
{
	EMM_OPTS(emm_stats, st);

	return emm_stats(mm, &st) ? -1 : (long)st.kernel_vmas;
}

static long lines_in(const void *r)
{
	return maps_count_range((uintptr_t)r, (uintptr_t)r + LEN);
}

static void test_limit(void)
{
	EMM_OPTS(emm_opts, o, .max_kernel_vmas = LIMIT, .fault_around = 1);
	static uint8_t touched[PAGES];
	long max_stat = 0, max_lines = 0, stat_errors = 0;
	size_t bad = 0, bad_zero = 0;
	struct emm *mm;
	char *base;
	void *r;

	is_int(emm_open(&o, &mm), 0, "open with max_kernel_vmas %d, fault_around 1", LIMIT);
	ok(emm_reserve(mm, LEN, &r) == 0 && emm_map(mm, r, LEN, NULL) == 0, "map 256 MiB");
	base = r;
	for (int i = 1; i <= TOUCHES; i++) {
		size_t pg = tap_rand(&seed) % PAGES;
		uint64_t *p = (uint64_t *)(base + pg * PAGE) + pg % 511;

		*p = value(p);
		touched[pg] = 1;
		if (i % 100)
			continue;
		long k = kernel_vmas(mm), l = lines_in(r);

		stat_errors += k < 0;
		max_stat = k > max_stat ? k : max_stat;
		max_lines = l > max_lines ? l : max_lines;
	}
	is_int(stat_errors, 0, "emm_stats worked every time");
	ok(max_stat <= LIMIT, "kernel_vmas never above %d (max seen %ld)", LIMIT, max_stat);
	ok(max_lines <= LIMIT, "lines of /proc/self/maps in the range never above %d (max %ld)",
	   LIMIT, max_lines);
	for (size_t pg = 0; pg < PAGES; pg++) {
		uint64_t *p = (uint64_t *)(base + pg * PAGE) + pg % 511;

		if (touched[pg] && *p != value(p) && bad++ < 5)
			diag("page %zu: 0x%" PRIx64 ", want 0x%" PRIx64, pg, *p, value(p));
		if (!touched[pg] && pg % 64 == 0 && *p != 0)
			bad_zero++;
	}
	is_int(bad, 0, "every touched page holds its value");
	is_int(bad_zero, 0, "untouched pages read zero");
	ok(kernel_vmas(mm) <= LIMIT, "kernel_vmas still at most %d after reading it all back (%ld)",
	   LIMIT, kernel_vmas(mm));
	emm_close(mm);
}

static void test_default_count(void)
{
	struct emm *mm;
	char *base;
	void *r;
	long k, l;

	is_int(emm_open(NULL, &mm), 0, "open with the default limit");
	ok(emm_reserve(mm, LEN, &r) == 0 && emm_map(mm, r, LEN, NULL) == 0, "map 256 MiB");
	base = r;
	for (int i = 0; i < 3000; i++) {
		size_t pg = tap_rand(&seed) % PAGES;

		base[pg * PAGE + i % PAGE] = (char)i;
	}
	k = kernel_vmas(mm);
	l = lines_in(r);
	diag("kernel_vmas %ld, lines in the reservation %ld", k, l);
	if (emm_backend(mm) == EMM_BACKEND_SIGNAL)
		ok(k > 1, "random touches cost more than one kernel VMA");
	else
		is_int(k, 1, "random touches cost no kernel VMA: the userfaultfd maps pages");
	is_int(k, l, "kernel_vmas equals the lines of /proc/self/maps in the reservation");
	is_int(emm_protect(mm, base + 64 * MIB, 64 * MIB, EMM_PROT_READ), 0, "protect a quarter read-only");
	is_int(kernel_vmas(mm), lines_in(r), "and still after that");
	emm_close(mm);
}

/* Layouts whose runs begin or end at the reservation's edges, or whose
 * neighbours merge in the kernel: the count follows /proc/self/maps. */
static void test_layouts(void)
{
	EMM_OPTS(emm_map_opts, wo, .prot = EMM_PROT_WRITE);
	struct emm *mm;
	char *base;
	void *r;

	is_int(emm_open(NULL, &mm), 0, "open for the layouts");
	is_int(emm_reserve(mm, LEN, &r), 0, "reserve 256 MiB");
	base = r;
	is_int(kernel_vmas(mm), lines_in(r), "empty: %ld kernel VMAs", kernel_vmas(mm));
	is_int(emm_map(mm, base, LEN, NULL), 0, "map it whole");
	is_int(kernel_vmas(mm), lines_in(r), "mapped whole: %ld", kernel_vmas(mm));
	is_int(emm_protect(mm, base, MIB, EMM_PROT_READ), 0, "protect its first MiB read-only");
	is_int(kernel_vmas(mm), lines_in(r), "read-only at the start: %ld", kernel_vmas(mm));
	is_int(emm_protect(mm, base + LEN - MIB, MIB, EMM_PROT_READ), 0, "and its last MiB");
	is_int(kernel_vmas(mm), lines_in(r), "read-only at both ends: %ld", kernel_vmas(mm));
	is_int(emm_unmap(mm, base, 2 * MIB), 0, "unmap its first 2 MiB");
	is_int(kernel_vmas(mm), lines_in(r), "a hole at the start: %ld", kernel_vmas(mm));
	is_int(emm_unmap(mm, base + 64 * MIB, MIB), 0, "unmap a MiB in the middle");
	is_int(kernel_vmas(mm), lines_in(r), "a hole in the middle: %ld", kernel_vmas(mm));
	is_int(emm_map(mm, base + 64 * MIB, MIB, &wo), 0, "map it again write-only");
	is_int(kernel_vmas(mm), lines_in(r), "write-only between read-write: %ld",
	       kernel_vmas(mm));
	is_int(emm_unmap(mm, base, LEN), 0, "unmap it all");
	is_int(kernel_vmas(mm), lines_in(r), "empty again: %ld", kernel_vmas(mm));
	emm_close(mm);
}

int main(void)
{
	unsetenv("EMM_FAULT_AROUND");
	unsetenv("EMM_MAX_KERNEL_VMAS");
	diag("seed 0x%" PRIx64, seed);
	test_limit();
	test_default_count();
	test_layouts();
	return done_testing();
}
