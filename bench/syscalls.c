/* SPDX-License-Identifier: MIT */
/* syscalls: pread(2) into swapped-out emm pages, which the uffd backend's service threads fault in, against pread into resident memory. */
#include "bench.h"

#include <emm.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READS	4096		/* 4 KiB preads per pass */

/* A file of READS pages to read from, unlinked, in $TMPDIR or /var/tmp. */
static int source_file(void)
{
	char path[4096], page[PAGE_SIZE];
	int fd;

	snprintf(path, sizeof(path), "%s/emm-bench-XXXXXX", bench_tmpdir());
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	unlink(path);
	memset(page, 0x5a, sizeof(page));
	for (int i = 0; i < READS; i++)
		if (write(fd, page, sizeof(page)) != (ssize_t)sizeof(page))
			return -EIO;
	return fd;
}

/* READS preads of one page each into buf at the pages order gives; ns, or 0 on a failed read. */
static uint64_t pread_pass(int fd, char *buf, const size_t *order)
{
	uint64_t t0 = bench_now_ns();

	for (int i = 0; i < READS; i++)
		if (pread(fd, buf + order[i] * PAGE_SIZE, PAGE_SIZE, (off_t)i * PAGE_SIZE) !=
		    (ssize_t)PAGE_SIZE)
			return 0;
	return bench_now_ns() - t0;
}

int bench_syscalls(const struct bench_opts *o)
{
	uint64_t limit = o->limit ? o->limit : 32ULL << 20, best_emm = UINT64_MAX, best_res = UINT64_MAX;
	size_t pages = o->size / PAGE_SIZE, *order = malloc(READS * sizeof(*order));
	char *resident = malloc(READS * PAGE_SIZE);
	struct emm_opts eo = { .sz = sizeof(eo), .mem_limit = limit };
	struct emm_stats st;
	struct emm *mm;
	int fd = source_file(), err;
	char *p;

	if (fd < 0 || !order || !resident || pages < 2 * READS) {
		fprintf(stderr, "emm-bench: syscalls: a source file, memory, --size >= 32M\n");
		return 1;
	}
	err = emm_open(&eo, &mm);
	if (err) {
		fprintf(stderr, "emm-bench: syscalls: emm_open: %s\n", strerror(-err));
		return 1;
	}
	if (emm_backend(mm) != EMM_BACKEND_UFFD)
		printf("syscalls: note: the backend is not uffd: preads into pages not mapped fail\n");
	if (emm_reserve(mm, o->size, (void **)&p) || emm_map(mm, p, o->size, NULL)) {
		fprintf(stderr, "emm-bench: syscalls: reserve and map failed\n");
		return 1;
	}
	memset(resident, 1, READS * PAGE_SIZE);
	for (unsigned r = 0; r < o->runs; r++) {
		uint64_t ns;

		/* Write it all, so the first pages are swapped out by the end. */
		for (size_t i = 0; i < pages; i++)
			p[i * PAGE_SIZE] = (char)i;
		bench_shuffle(order, READS, 0x737973 + r);
		ns = pread_pass(fd, p, order);
		best_emm = ns && ns < best_emm ? ns : best_emm;
		ns = pread_pass(fd, resident, order);
		best_res = ns && ns < best_res ? ns : best_res;
	}
	memset(&st, 0, sizeof(st));
	st.sz = sizeof(st);
	emm_stats(mm, &st);
	printf("syscalls: %d preads of 4 KiB into swapped-out pages of %llu MiB under a %llu MiB "
	       "budget, best of %u\n", READS, (unsigned long long)(o->size >> 20),
	       (unsigned long long)(limit >> 20), o->runs);
	if (best_emm == UINT64_MAX) {
		printf("swapped-out  every pass had a failed pread (EFAULT)\n");
	} else {
		printf("swapped-out  %7.1f us/pread   resident %7.1f us/pread   swapped/resident %5.1f"
		       "  (faults_major %llu, swapins %llu)\n",
		       best_emm / 1e3 / READS, best_res / 1e3 / READS, (double)best_emm / best_res,
		       (unsigned long long)st.faults_major, (unsigned long long)st.swapins);
		bench_record("pread-swapped", bench_rate(READS, best_emm), "preads/s");
		bench_data("syscalls", "pread-swapped", "emm", bench_rate(READS, best_emm), "preads/s");
	}
	bench_record("pread-resident", bench_rate(READS, best_res), "preads/s");
	bench_data("syscalls", "pread-resident", "emm", bench_rate(READS, best_res), "preads/s");
	emm_close(mm);
	close(fd);
	free(order);
	free(resident);
	return 0;
}
