/* SPDX-License-Identifier: MIT */
/* A pinned range survives pressure and takes read(2); unpinned, it can be evicted again. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LIMIT (16 * MIB)
#define PINNED (4 * MIB)
#define STREAM (128 * MIB)
#define WORDS_PER_PAGE (PAGE / 8)
#define IO_LEN (64 * 1024UL)	/* what one read(2) moves */

static uint64_t *pin, *stream, *fresh;

static uint64_t value(uint64_t word)
{
	return word * 0x9e3779b97f4a7c15ULL | 1;
}

static void fill(uint64_t *p, size_t len)
{
	for (size_t w = 0; w < len / 8; w++)
		p[w] = value(w + (uint64_t)(uintptr_t)p);
}

static size_t bad_words(const uint64_t *p, size_t len)
{
	size_t bad = 0;

	for (size_t w = 0; w < len / 8; w++)
		bad += p[w] != value(w + (uint64_t)(uintptr_t)p);
	return bad;
}

/* 128 MiB written then read through the 16 MiB budget. */
static void pressure(void)
{
	fill(stream, STREAM);
	if (bad_words(stream, STREAM))
		diag("the stream did not read back right");
}

static void test_pinned_survives(struct emm *mm)
{
	struct emm_stats s0, s1, s2;

	fill(pin, PINNED);
	is_int(emm_pin(mm, pin, PINNED), 0, "emm_pin 4 MiB of written data");
	s0 = stats(mm);
	pressure();
	s1 = stats(mm);
	is_int(bad_words(pin, PINNED), 0, "after 128 MiB of pressure the pinned data is intact");
	s2 = stats(mm);
	diag("pressure: swapouts +%" PRIu64 ", swapins +%" PRIu64 "; reading the pinned range: "
	     "faults +%" PRIu64, s1.swapouts - s0.swapouts, s1.swapins - s0.swapins,
	     s2.faults - s1.faults);
	ok(s1.swapouts - s0.swapouts >= (STREAM - LIMIT) / PAGE, "the pressure went through swap");
	is_int(s2.faults, s1.faults, "and reading the pinned range took no fault at all");
}

/* A pipe with IO_LEN bytes waiting. */
static void pipe_with_data(int p[2])
{
	static char src[IO_LEN];

	memset(src, 0x5a, sizeof(src));
	if (pipe(p) < 0 || fcntl(p[1], F_SETPIPE_SZ, (int)IO_LEN) < 0 ||
	    write(p[1], src, IO_LEN) != (ssize_t)IO_LEN)
		bail("pipe: %s", strerror(errno));
}

static int all_bytes(const void *buf, size_t len, int c)
{
	const unsigned char *b = buf;

	for (size_t i = 0; i < len; i++)
		if (b[i] != c)
			return 0;
	return 1;
}

static void test_syscalls(struct emm *mm)
{
	int p[2];
	ssize_t n;

	pipe_with_data(p);
	n = read(p[0], pin, IO_LEN);
	is_int(n, IO_LEN, "read(2) from a pipe into the pinned buffer works");
	ok(all_bytes(pin, IO_LEN, 0x5a), "and the bytes arrived");
	fill(pin, IO_LEN);	/* back to the pattern the other checks expect */
	close(p[0]);
	close(p[1]);
	pipe_with_data(p);
	errno = 0;
	n = read(p[0], fresh, PAGE);
	if (emm_backend(mm) == EMM_BACKEND_UFFD)
		ok(n == PAGE, "read(2) into a never-touched emm page works (%zd, %s): a service "
		   "thread serves the kernel's fault", n, strerror(errno));
	else
		ok(n == -1 && errno == EFAULT,
		   "read(2) into a never-touched emm page fails with EFAULT (%zd, %s): the kernel "
		   "cannot fault emm pages in, hence emm_pin and emm_prefault", n, strerror(errno));
	is_int(emm_prefault(mm, fresh, IO_LEN, 1), 0, "emm_prefault the buffer for writing");
	n = read(p[0], fresh, IO_LEN);
	ok(n > 0 && all_bytes(fresh, (size_t)n, 0x5a), "then read(2) into it works (%zd bytes)", n);
	close(p[0]);
	close(p[1]);
}

/*
 * Unpinned, the range can go. A stream alone need not evict it (a set
 * smaller than the stream's inactive list is protected, by design), so the
 * pressure here is a lower limit that leaves no room for it.
 */
static void test_unpin(struct emm *mm)
{
	struct emm_stats s0, s1;

	is_int(emm_set_limit(mm, 2 * MIB), 0, "pinned: emm_set_limit to 2 MiB");
	ok(stats(mm).resident_bytes >= PINNED, "the pinned 4 MiB stay resident over the limit");
	is_int(emm_unpin(mm, pin, PINNED), 0, "emm_unpin");
	s0 = stats(mm);
	is_int(emm_set_limit(mm, 2 * MIB), 0, "emm_set_limit to 2 MiB again");
	s1 = stats(mm);
	diag("unpinned: resident %" PRIu64 " -> %" PRIu64 " KiB, swapouts +%" PRIu64,
	     s0.resident_bytes >> 10, s1.resident_bytes >> 10, s1.swapouts - s0.swapouts);
	ok(s1.resident_bytes <= 2 * MIB, "now resident drops under the limit");
	ok(s1.swapouts - s0.swapouts >= (PINNED - 2 * MIB) / PAGE,
	   "the unpinned pages were written out (swapouts grew)");
	is_int(emm_set_limit(mm, LIMIT), 0, "limit back to 16 MiB");
	is_int(bad_words(pin, PINNED), 0, "the data comes back from swap intact");
}

static void test_errors(struct emm *mm)
{
	is_int(emm_pin(NULL, pin, PAGE), -EINVAL, "emm_pin(NULL): -EINVAL");
	is_int(emm_pin(mm, (char *)pin + 1, PAGE), -EINVAL, "emm_pin unaligned: -EINVAL");
	is_int(emm_pin(mm, pin, 0), -EINVAL, "emm_pin of 0 bytes: -EINVAL");
	is_int(emm_pin(mm, (char *)pin + PINNED, 2 * PAGE), -ENOMEM,
	       "emm_pin over a hole: -ENOMEM");
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 512 * MIB);
	struct emm *mm;
	void *r;

	plan(24);
	if (!is_int(emm_open(&o, &mm), 0, "emm_open: 16 MiB budget"))
		bail("cannot open an instance");
	/* pinned 4 MiB, a hole, a fresh 2 MiB, the stream */
	is_int(emm_reserve(mm, PINNED + 4 * MIB + STREAM, &r), 0, "reserve");
	pin = r;
	fresh = (uint64_t *)((char *)r + PINNED + 2 * MIB);
	stream = (uint64_t *)((char *)r + PINNED + 4 * MIB);
	if (emm_map(mm, pin, PINNED, NULL) || emm_map(mm, fresh, 2 * MIB, NULL) ||
	    emm_map(mm, stream, STREAM, NULL))
		bail("emm_map failed");
	test_pinned_survives(mm);
	test_syscalls(mm);
	test_unpin(mm);
	test_errors(mm);
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
