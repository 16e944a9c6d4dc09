/* SPDX-License-Identifier: MIT */
/* System calls on emm memory: EFAULT (or a short count) where emm has not mapped the page for
 * the access, success after emm_prefault or emm_pin. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "emm.h"
#include "internal.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define FILE_PAGES 64
#define GROUP 16		/* the default fault-around group, in pages */

/* A read-write temporary file, already unlinked, FILE_PAGES pages of byte
 * pattern (offset * 7 + 3) & 0xff. */
static int pattern_file(void)
{
	static unsigned char buf[FILE_PAGES * PAGE];
	int fd = tmp_file("syscalls", NULL, 0);

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)((i * 7 + 3) & 0xff);
	if (pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
		bail("pwrite: %s", strerror(errno));
	return fd;
}

static int pattern_at(const unsigned char *p, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (unsigned char)(((off + i) * 7 + 3) & 0xff))
			return 0;
	return 1;
}

/* The result of a system call as "n" or "-ERRNO", for messages. */
static const char *res(ssize_t n, int err)
{
	static char buf[4][64];
	static int k;

	k = (k + 1) % 4;
	if (n >= 0)
		snprintf(buf[k], sizeof(buf[k]), "%zd", n);
	else
		snprintf(buf[k], sizeof(buf[k]), "-%s", strerrorname_np(err));
	return buf[k];
}

/* Read whatever the pipe holds (at most len bytes) into buf. */
static ssize_t drain(int fd, void *buf, size_t len)
{
	ssize_t n = read(fd, buf, len);

	return n < 0 ? -errno : n;
}

static void test_anon(struct emm *mm, char *a, int file)
{
	static char sink[8 * PAGE];
	int p[2];
	ssize_t n;
	int err;

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK))
		bail("pipe: %s", strerror(errno));
	is_int(emm_map(mm, a, 4 * GROUP * PAGE, NULL), 0, "map 64 anonymous pages");

	n = write(p[1], a, PAGE);
	err = errno;
	ok(n < 0 && err == EFAULT, "write(2) from an untouched page to a pipe: -EFAULT (got %s)",
	   res(n, err));
	lseek(file, 0, SEEK_SET);
	n = read(file, a + PAGE, PAGE);
	err = errno;
	ok(n < 0 && err == EFAULT, "read(2) from a file into an untouched page: -EFAULT (got %s)",
	   res(n, err));
	is_int(emm_prefault(mm, a + PAGE, PAGE, 1), 0, "emm_prefault(write = 1) of that page");
	lseek(file, 0, SEEK_SET);
	n = read(file, a + PAGE, PAGE);
	ok(n == (ssize_t)PAGE && pattern_at((unsigned char *)a + PAGE, 0, PAGE),
	   "now read(2) into it works and the bytes are there (got %s)", res(n, errno));

	/* The last page of a group mapped, the first of the next one not. */
	is_int(emm_prefault(mm, a + (GROUP - 1) * PAGE, PAGE, 0), 0,
	       "emm_prefault(write = 0) of page 15");
	n = write(p[1], a + (GROUP - 1) * PAGE, 2 * PAGE);
	err = errno;
	ok((n < 0 && err == EFAULT) || n == (ssize_t)PAGE,
	   "write(2) of pages 15-16, 16 untouched: a short count or -EFAULT (got %s)", res(n, err));
	diag("write(2) over a mapped and an unmapped page: %s", res(n, err));
	drain(p[0], sink, sizeof(sink));

	/* Data that was evicted: not mapped, so write(2) cannot read it. */
	memset(a + 2 * GROUP * PAGE, 'e', PAGE);
	is_int(emm_advise(mm, a + 2 * GROUP * PAGE, GROUP * PAGE, EMM_ADV_PAGEOUT), 0,
	       "write page 32, EMM_ADV_PAGEOUT its group");
	ok(stats(mm).swapouts > 0, "it went to swap");
	n = write(p[1], a + 2 * GROUP * PAGE, PAGE);
	err = errno;
	ok(n < 0 && err == EFAULT, "write(2) from the paged-out page: -EFAULT (got %s)", res(n, err));
	is_int(emm_pin(mm, a + 2 * GROUP * PAGE, PAGE), 0, "emm_pin it");
	is_int(emm_advise(mm, a + 2 * GROUP * PAGE, GROUP * PAGE, EMM_ADV_PAGEOUT), 0,
	       "EMM_ADV_PAGEOUT again (a pinned page stays)");
	n = write(p[1], a + 2 * GROUP * PAGE, PAGE);
	ok(n == (ssize_t)PAGE, "write(2) from the pinned page works (got %s)", res(n, errno));
	n = drain(p[0], sink, sizeof(sink));
	ok(n == (ssize_t)PAGE && sink[0] == 'e' && sink[PAGE - 1] == 'e',
	   "and the pipe got the page's data back from swap");
	is_int(emm_unpin(mm, a + 2 * GROUP * PAGE, PAGE), 0, "emm_unpin");
	is_int(emm_unmap(mm, a, 4 * GROUP * PAGE), 0, "unmap them");
	close(p[0]);
	close(p[1]);
}

static int map_file(struct emm *mm, void *addr, size_t len, int fd, int prot)
{
	EMM_OPTS(emm_map_opts, o, .prot = prot, .policy = EMM_POLICY_FILE, .fd = fd);

	return emm_map(mm, addr, len, &o);
}

static void test_file(struct emm *mm, char *a, int file)
{
	static unsigned char sink[8 * PAGE];
	uint64_t major0, major1, faults1;
	int p[2], err;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK))
		bail("pipe: %s", strerror(errno));
	is_int(map_file(mm, a, FILE_PAGES * PAGE, file, EMM_PROT_READ), 0,
	       "map the 64-page file read-only");
	n = write(p[1], a + 8 * PAGE, PAGE);
	err = errno;
	ok(n < 0 && err == EFAULT, "write(2) from an untouched FILE page: -EFAULT (got %s)",
	   res(n, err));
	major0 = stats(mm).faults_major;
	is_int(emm_prefault(mm, a + 8 * PAGE, 8 * PAGE, 0), 0, "emm_prefault of 8 FILE pages");
	major1 = stats(mm).faults_major;
	faults1 = stats(mm).faults;
	ok(major1 > major0, "it read them from the file (faults_major %" PRIu64 " -> %" PRIu64 ")",
	   major0, major1);
	n = write(p[1], a + 8 * PAGE, 8 * PAGE);
	ok(n == (ssize_t)(8 * PAGE), "write(2) of the 8 pages to a pipe works (got %s)",
	   res(n, errno));
	n = drain(p[0], sink, sizeof(sink));
	ok(n == (ssize_t)(8 * PAGE) && pattern_at(sink, 8 * PAGE, 8 * PAGE),
	   "the pipe got the file's contents");
	ok(pattern_at((unsigned char *)a + 8 * PAGE, 8 * PAGE, 8 * PAGE) &&
	   stats(mm).faults == faults1, "the program reads them without a fault");
	is_int(emm_prefault(mm, a, PAGE, 1), -EACCES,
	       "emm_prefault(write = 1) on the read-only FILE VMA: -EACCES");
	is_int(emm_unmap(mm, a, FILE_PAGES * PAGE), 0, "unmap it");

	/* Read-write: a clean page is mapped without write access. */
	is_int(map_file(mm, a, FILE_PAGES * PAGE, file, EMM_PROT_READ | EMM_PROT_WRITE), 0,
	       "map it read-write");
	ok(pattern_at((unsigned char *)a + 20 * PAGE, 20 * PAGE, 16),
	   "read page 20 (now mapped, clean)");
	memset(sink, 'w', PAGE);
	if (write(p[1], sink, PAGE) != (ssize_t)PAGE)
		bail("write to pipe: %s", strerror(errno));
	n = read(p[0], a + 20 * PAGE, PAGE);
	err = errno;
	if (mm->wp_async) {
		/* uffd-sigbus where the kernel lets writes to clean pages through */
		ok(n == (ssize_t)PAGE, "read(2) into the clean page works: the kernel lets the "
		   "write through (got %s)", res(n, err));
		if (write(p[1], sink, PAGE) != (ssize_t)PAGE)
			bail("write to pipe: %s", strerror(errno));
	} else {
		ok(n < 0 && err == EFAULT, "read(2) into the clean page: -EFAULT (got %s)",
		   res(n, err));
	}
	is_int(emm_prefault(mm, a + 20 * PAGE, PAGE, 1), 0, "emm_prefault(write = 1) of it");
	n = read(p[0], a + 20 * PAGE, PAGE);
	ok(n == (ssize_t)PAGE && a[20 * PAGE] == 'w' && a[21 * PAGE - 1] == 'w',
	   "read(2) into it works now (got %s)", res(n, errno));
	is_int(emm_sync(mm, a, FILE_PAGES * PAGE), 0, "emm_sync");
	n = pread(file, sink, PAGE, 20 * PAGE);
	ok(n == (ssize_t)PAGE && sink[0] == 'w' && sink[PAGE - 1] == 'w',
	   "what read(2) put there reached the file");
	is_int(emm_unmap(mm, a, FILE_PAGES * PAGE), 0, "unmap it");
	close(p[0]);
	close(p[1]);
}

static void test_access_rows(struct emm *mm, char *a)
{
	EMM_OPTS(emm_map_opts, ro, .prot = EMM_PROT_READ);
	EMM_OPTS(emm_map_opts, guard, .prot = EMM_PROT_NONE, .policy = EMM_POLICY_GUARD);

	is_int(emm_map(mm, a, GROUP * PAGE, &ro), 0, "map 16 anonymous pages read-only");
	is_int(emm_prefault(mm, a, GROUP * PAGE, 1), -EACCES,
	       "emm_prefault(write = 1) on a read-only VMA: -EACCES");
	is_int(emm_prefault(mm, a, GROUP * PAGE, 0), 0, "emm_prefault(write = 0) on it: 0");
	is_int(emm_map(mm, a + GROUP * PAGE, GROUP * PAGE, &guard), 0, "map 16 guard pages after it");
	is_int(emm_prefault(mm, a + GROUP * PAGE, PAGE, 0), -EACCES,
	       "emm_prefault on a guard VMA: -EACCES");
	is_int(emm_pin(mm, a + GROUP * PAGE, PAGE), -EACCES, "emm_pin on a guard VMA: -EACCES");
	is_int(emm_prefault(mm, a + 2 * GROUP * PAGE, PAGE, 0), -ENOMEM,
	       "emm_prefault over a hole: -ENOMEM");
	is_int(emm_unmap(mm, a, 2 * GROUP * PAGE), 0, "unmap them");
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 16 * MIB);
	struct emm *mm;
	char *r;
	int file;

	if (emm_open(&o, &mm))
		bail("emm_open failed");
	if (emm_backend(mm) == EMM_BACKEND_UFFD) {
		emm_close(mm);
		skip_all("the uffd backend serves system calls' faults: t/110-uffd-syscalls.t");
	}
	emm_close(mm);
	plan(44);
	file = pattern_file();
	is_int(emm_open(&o, &mm), 0, "emm_open");
	is_int(emm_reserve(mm, 2 * MIB, (void **)&r), 0, "reserve 2 MiB");
	test_anon(mm, r, file);
	test_file(mm, r, file);
	test_access_rows(mm, r);
	is_int(emm_close(mm), 0, "emm_close");
	close(file);
	return done_testing();
}
