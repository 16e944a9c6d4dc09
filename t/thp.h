/* SPDX-License-Identifier: MIT */
/* Huge-page checks for tests: PMD-mapped bytes of a range, and whether the machine can collapse. */
#ifndef EMM_T_THP_H
#define EMM_T_THP_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define THP_SIZE (2UL << 20)

struct thp_smaps {
	char buf[1 << 16];
	size_t have;
	int fd;
};

/* The next line of smaps in the buffer, NUL-terminated, or NULL at the end.
 * read(2) rather than stdio, so that looking does not map memory. */
static char *thp_smaps_line(struct thp_smaps *s, size_t *used)
{
	char *nl;

	memmove(s->buf, s->buf + *used, s->have - *used);
	s->have -= *used;
	*used = 0;
	while (!(nl = memchr(s->buf, '\n', s->have))) {
		ssize_t n;

		if (s->have == sizeof(s->buf) - 1)
			return NULL;
		n = read(s->fd, s->buf + s->have, sizeof(s->buf) - 1 - s->have);
		if (n <= 0)
			return NULL;
		s->have += (size_t)n;
	}
	*nl = '\0';
	*used = (size_t)(nl - s->buf) + 1;
	return s->buf;
}

/* Bytes of the whole 2 MiB extents of [lo, hi): a mapping's PMD-mapped
 * bytes inside the overlap cannot exceed that. */
static uint64_t thp_whole_extents(uintptr_t lo, uintptr_t hi)
{
	uintptr_t a = (lo + THP_SIZE - 1) & ~(THP_SIZE - 1), b = hi & ~(THP_SIZE - 1);

	return b > a ? b - a : 0;
}

/*
 * Bytes of [addr, addr + len) the kernel maps with PMDs of shared memory:
 * ShmemPmdMapped summed over the mappings that overlap the range. smaps
 * counts per mapping, so a mapping sticking out of the range counts its
 * huge pages outside it too (clipped to the whole extents of the overlap):
 * a test wanting an exact answer gives the range neighbours with another
 * protection, or none. Returns -errno on failure.
 */
static __attribute__((unused)) int64_t thp_pmd_mapped(const void *addr, size_t len)
{
	static struct thp_smaps s;
	uintptr_t lo = (uintptr_t)addr, hi = lo + len, vlo = 0, vhi = 0;
	size_t used = 0;
	int64_t sum = 0;
	char *line;

	s.have = 0;
	s.fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	if (s.fd < 0)
		return -errno;
	while ((line = thp_smaps_line(&s, &used))) {
		char *end;
		uintptr_t a = (uintptr_t)strtoull(line, &end, 16);

		if (*end == '-' && end > line) {	/* a mapping's header line */
			vlo = a;
			vhi = (uintptr_t)strtoull(end + 1, NULL, 16);
		} else if (!strncmp(line, "ShmemPmdMapped:", 15) && vlo < hi && vhi > lo) {
			uint64_t kb = strtoull(line + 15, NULL, 10);
			uint64_t most = thp_whole_extents(vlo > lo ? vlo : lo, vhi < hi ? vhi : hi);

			sum += (int64_t)(kb * 1024 < most ? kb * 1024 : most);
		}
	}
	close(s.fd);
	return sum;
}

/* Can the kernel collapse shared memory here? One page written in a 2 MiB
 * aligned memfd mapping, then MADV_COLLAPSE, as emm does. Returns 1 or 0,
 * and a reason for 0 in *why. */
static __attribute__((unused)) int thp_can_collapse(const char **why)
{
	int fd = memfd_create("thp-probe", MFD_CLOEXEC);
	char *area, *a;
	int can = 0;

	int cfd = open("/proc/sys/vm/compact_memory", O_WRONLY | O_CLOEXEC);

	/* Where the test may, it asks the kernel to make huge pages available. */
	if (cfd >= 0) {
		ssize_t n = write(cfd, "1", 1);	/* refused: run on what there is */

		(void)n;
		close(cfd);
	}
	*why = "memfd_create failed";
	if (fd < 0)
		return 0;
	*why = "cannot size or map a memfd";
	area = mmap(NULL, 2 * THP_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (area == MAP_FAILED || ftruncate(fd, THP_SIZE) < 0)
		goto out;
	a = (char *)(((uintptr_t)area + THP_SIZE - 1) & ~(THP_SIZE - 1));
	if (mmap(a, THP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
		goto out;
	a[0] = 1;
	*why = "MADV_COLLAPSE fails on shared memory";
	if (madvise(a, THP_SIZE, MADV_COLLAPSE) == 0) {
		*why = "MADV_COLLAPSE does not PMD-map shared memory";
		can = thp_pmd_mapped(a, THP_SIZE) == (int64_t)THP_SIZE;
	}
out:
	if (area != MAP_FAILED)
		munmap(area, 2 * THP_SIZE);
	close(fd);
	if (can)
		*why = NULL;
	return can;
}

/* Polls every 50 ms until [p, p + len) is wholly PMD-mapped: the
 * milliseconds it took, or -1 after wait_ms. */
static __attribute__((unused)) long thp_wait_huge(const void *p, size_t len, long wait_ms)
{
	struct timespec t0, t;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (thp_pmd_mapped(p, len) == (int64_t)len)
			return ms;
		if (ms >= wait_ms)
			return -1;
		usleep(50 * 1000);
	}
}

#endif /* EMM_T_THP_H */
