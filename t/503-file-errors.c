/* SPDX-License-Identifier: MIT */
/* FILE VMA error rows: bad, closed and wrong-mode descriptors, unaligned offsets, non-files,
 * and write errors (RLIMIT_FSIZE) that lose nothing. */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define FILE_PAGES 16
#define FSIZE_LIMIT MIB		/* RLIMIT_FSIZE while writes must fail */
#define FAR_OFF (2 * MIB)	/* a file offset past that limit */

static char path[4096];

/* A temporary file of FILE_PAGES pages whose bytes are (offset & 0xff) ^ 0x5a;
 * its name stays in path until the end so it can be opened in other modes. */
static int make_file(void)
{
	static unsigned char buf[FILE_PAGES * PAGE];
	int fd = tmp_file("file-errors", path, sizeof(path));

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)((i & 0xff) ^ 0x5a);
	if (pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
		bail("pwrite: %s", strerror(errno));
	return fd;
}

static int reopen(int flags)
{
	int fd = open(path, flags | O_CLOEXEC);

	if (fd < 0)
		bail("open %s: %s", path, strerror(errno));
	return fd;
}

static int map_file(struct emm *mm, void *addr, size_t len, int fd, int prot, uint64_t off)
{
	EMM_OPTS(emm_map_opts, o, .prot = prot, .policy = EMM_POLICY_FILE, .fd = fd,
		 .offset = off);

	return emm_map(mm, addr, len, &o);
}

/* The number of descriptors this process has open. */
static int open_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 4096; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

#define RW (EMM_PROT_READ | EMM_PROT_WRITE)

static void test_rows(struct emm *mm, char *at, int rdwr)
{
	int closed = reopen(O_RDONLY), rdonly = reopen(O_RDONLY), wronly = reopen(O_WRONLY);
	int append = reopen(O_RDWR | O_APPEND), p[2], dir, null;
	size_t len = FILE_PAGES * PAGE;

	if (pipe2(p, O_CLOEXEC))
		bail("pipe: %s", strerror(errno));
	dir = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	close(closed);
	is_int(map_file(mm, at, len, -1, EMM_PROT_READ, 0), -EBADF, "fd -1: -EBADF");
	is_int(map_file(mm, at, len, closed, EMM_PROT_READ, 0), -EBADF, "a closed fd: -EBADF");
	is_int(map_file(mm, at, len, rdonly, RW, 0), -EACCES,
	       "an O_RDONLY fd with EMM_PROT_WRITE: -EACCES");
	is_int(map_file(mm, at, len, wronly, EMM_PROT_READ, 0), -EACCES, "an O_WRONLY fd: -EACCES");
	is_int(map_file(mm, at, len, append, RW, 0), -EACCES, "an O_APPEND fd: -EACCES");
	is_int(map_file(mm, at, len, rdwr, RW, 100), -EINVAL, "offset 100: -EINVAL");
	is_int(map_file(mm, at, len, rdwr, RW, PAGE / 2), -EINVAL, "offset 2048: -EINVAL");
	is_int(map_file(mm, at, len, p[0], EMM_PROT_READ, 0), -ENODEV, "a pipe: -ENODEV");
	is_int(map_file(mm, at, len, dir, EMM_PROT_READ, 0), -ENODEV, "a directory: -ENODEV");
	is_int(map_file(mm, at, len, null, EMM_PROT_READ, 0), -ENODEV,
	       "a character device (/dev/null): -ENODEV");
	is_int(stats(mm).vmas, 0, "none of them made a VMA");
	is_int(map_file(mm, at, len, rdonly, EMM_PROT_READ, 0), 0,
	       "the O_RDONLY fd read-only maps");
	ok(at[PAGE + 7] == ((7 ^ 0x5a) & 0xff), "and reads the file");
	is_int(emm_unmap(mm, at, len), 0, "unmap it");
	close(rdonly);
	close(wronly);
	close(append);
	close(p[0]);
	close(p[1]);
	close(dir);
	close(null);
}

/* The caller's descriptor may go right after emm_map; emm's own goes with
 * the last VMA naming it. */
static void test_close_after_map(struct emm *mm, char *at)
{
	int before = open_fds(), fd = reopen(O_RDWR), check, mid;
	char c = 0;

	is_int(map_file(mm, at, FILE_PAGES * PAGE, fd, RW, 0), 0, "map a file read-write");
	close(fd);
	mid = open_fds();
	ok(at[3 * PAGE + 9] == ((9 ^ 0x5a) & 0xff), "after the caller closed its fd, it still reads");
	at[3 * PAGE + 9] = 'x';
	is_int(emm_sync(mm, at, FILE_PAGES * PAGE), 0, "and a write is synced");
	check = reopen(O_RDONLY);
	ok(pread(check, &c, 1, 3 * PAGE + 9) == 1 && c == 'x', "the write is in the file");
	close(check);
	/* Its own, and the same file opened O_DIRECT where the file system allows. */
	ok(mid == before + 1 || mid == before + 2,
	   "emm holds its own descriptors while mapped (%d more)", mid - before);
	is_int(emm_unmap(mm, at, FILE_PAGES * PAGE), 0, "unmap it");
	is_int(open_fds(), before, "and closes it when the VMA goes");
}

static void set_fsize(rlim_t soft)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_FSIZE, &rl))
		bail("getrlimit: %s", strerror(errno));
	rl.rlim_cur = soft;
	if (setrlimit(RLIMIT_FSIZE, &rl))
		bail("setrlimit: %s", strerror(errno));
}

static rlim_t fsize_max(void)
{
	struct rlimit rl;

	return getrlimit(RLIMIT_FSIZE, &rl) ? RLIM_INFINITY : rl.rlim_max;
}

/* Writes at 2 MiB into the file fail with EFBIG while RLIMIT_FSIZE is
 * 1 MiB: emm_sync and emm_unmap report -EIO and keep the data. */
static void test_write_error(struct emm *mm, char *at)
{
	int fd = reopen(O_RDWR), check = reopen(O_RDONLY);
	uint64_t io0, io1, v = 0xfeedfacecafebeefULL, got = 0;
	uint64_t *p = (uint64_t *)(at + 2 * PAGE);

	if (fsize_max() != RLIM_INFINITY && fsize_max() < 4 * MIB) {
		skip(11, "RLIMIT_FSIZE hard limit too low");
		return;
	}
	signal(SIGXFSZ, SIG_IGN);
	is_int(map_file(mm, at, FILE_PAGES * PAGE, fd, RW, FAR_OFF), 0,
	       "map the file read-write at offset 2 MiB (past its end)");
	close(fd);
	set_fsize(FSIZE_LIMIT);
	*p = v;
	io0 = stats(mm).io_errors;
	is_int(emm_sync(mm, at, FILE_PAGES * PAGE), -EIO,
	       "RLIMIT_FSIZE 1 MiB: emm_sync of a write at 2 MiB: -EIO");
	io1 = stats(mm).io_errors;
	ok(io1 > io0, "io_errors grew (%" PRIu64 " -> %" PRIu64 ")", io0, io1);
	is_int(emm_sync(mm, at, FILE_PAGES * PAGE), -EIO, "a second emm_sync: -EIO again (still dirty)");
	is_int(emm_unmap(mm, at, FILE_PAGES * PAGE), -EIO, "emm_unmap: -EIO");
	ok(*p == v, "the range is still mapped and holds the write");
	set_fsize(fsize_max());
	is_int(emm_sync(mm, at, FILE_PAGES * PAGE), 0, "limit raised: emm_sync returns 0");
	if (pread(check, &got, 8, FAR_OFF + 2 * PAGE) != 8)
		diag("pread: %s", strerror(errno));
	ok(got == v, "the write is in the file (0x%016" PRIx64 ")", got);
	is_int(lseek(check, 0, SEEK_END), FAR_OFF + 3 * PAGE,
	       "which grew to the end of the page written");
	is_int(emm_sync(mm, at, FILE_PAGES * PAGE), 0, "emm_sync again: 0");
	is_int(emm_unmap(mm, at, FILE_PAGES * PAGE), 0, "emm_unmap: 0");
	close(check);
}

int main(void)
{
	struct emm *mm;
	char *r;
	int fd;

	plan(35);
	fd = make_file();
	is_int(emm_open(NULL, &mm), 0, "emm_open");
	is_int(emm_reserve(mm, 2 * MIB, (void **)&r), 0, "reserve 2 MiB");
	test_rows(mm, r, fd);
	test_close_after_map(mm, r);
	test_write_error(mm, r);
	is_int(emm_close(mm), 0, "emm_close");
	close(fd);
	unlink(path);
	return done_testing();
}
