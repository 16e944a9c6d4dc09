/* SPDX-License-Identifier: MIT */
/* System calls on swapped-out and never-touched emm memory: full counts and right bytes on uffd, EFAULT or a short count (nothing worse) elsewhere. */
#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define MIB (1UL << 20)
#define LEN (256 * MIB)
#define LIMIT (32 * MIB)
#define OLD (128 * MIB)		/* [0, OLD) written first, mostly swapped out */
#define NEW (OLD + 64 * MIB)	/* [NEW, LEN) never touched until a call fills it */

static char *mem;
static int uffd;		/* system calls must work: the uffd backend */

/* The byte at offset off of the written region. */
static unsigned char pat(size_t off)
{
	return (unsigned char)(off * 2654435761u >> 13);
}

static void fill(size_t off, size_t len)
{
	for (size_t i = off; i < off + len; i++)
		mem[i] = (char)pat(i);
}

/* Does buf hold the pattern of the written region from off? */
static int holds(const unsigned char *buf, size_t len, size_t off)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pat(off + i))
			return 0;
	return 1;
}

/*
 * One call's result: on uffd the full count; elsewhere the full count,
 * EFAULT or a short count. Returns whether the bytes must be checked.
 */
static int check(const char *what, ssize_t n, size_t want)
{
	int err = errno;

	if (uffd) {
		ok(n == (ssize_t)want, "%s: %zd of %zu bytes (%s)", what, n, want,
		   n < 0 ? strerror(err) : "ok");
		return n == (ssize_t)want;
	}
	ok(n == (ssize_t)want || (n < 0 && err == EFAULT) || (n >= 0 && n < (ssize_t)want),
	   "%s: %zd of %zu bytes (%s): the full count, EFAULT or a short count", what, n, want,
	   n < 0 ? strerror(err) : "ok");
	return n > 0;
}

/* File bytes [off, off + len) hold the pattern from pat_off? */
static int file_holds(int fd, size_t off, size_t len, size_t pat_off)
{
	unsigned char *buf = malloc(len);
	int good = buf && pread(fd, buf, len, (off_t)off) == (ssize_t)len &&
		   holds(buf, len, pat_off);

	free(buf);
	return good;
}

static void test_writes(int fd)
{
	struct iovec iov[4];
	ssize_t n;

	n = write(fd, mem, 64 * MIB);
	if (check("write(2) of 64 MiB, mostly swapped out", n, 64 * MIB))
		ok(file_holds(fd, 0, (size_t)n, 0), "  the file holds the bytes written");
	n = pwrite(fd, mem + 64 * MIB, 32 * MIB, 64 * MIB);
	if (check("pwrite(2) of 32 MiB, mostly swapped out", n, 32 * MIB))
		ok(file_holds(fd, 64 * MIB, (size_t)n, 64 * MIB), "  the file holds them");
	for (int i = 0; i < 4; i++) {
		iov[i].iov_base = mem + (size_t)(3 - i) * 8 * MIB;
		iov[i].iov_len = 8 * MIB;
	}
	n = pwritev(fd, iov, 4, 96 * MIB);
	if (check("pwritev(2) of 4 x 8 MiB, mostly swapped out", n, 32 * MIB))
		ok(file_holds(fd, 96 * MIB, 8 * MIB, 24 * MIB) &&
		   file_holds(fd, 120 * MIB, 8 * MIB, 0), "  the file holds them, in order");
}

static void test_reads(int fd)
{
	struct iovec iov[2] = { { mem + NEW + 40 * MIB, 4 * MIB }, { mem + NEW + 20 * MIB, 4 * MIB } };
	ssize_t n;

	n = pread(fd, mem + NEW, 16 * MIB, 0);
	if (check("pread(2) of 16 MiB into never-touched memory", n, 16 * MIB))
		ok(holds((unsigned char *)mem + NEW, (size_t)n, 0), "  the bytes arrived");
	/* The written region is swapped out again by now: read into it. */
	n = pread(fd, mem + 8 * MIB, 8 * MIB, 8 * MIB);
	if (check("pread(2) of 8 MiB into swapped-out memory", n, 8 * MIB))
		ok(holds((unsigned char *)mem + 8 * MIB, (size_t)n, 8 * MIB), "  the bytes are right");
	if (lseek(fd, 32 * MIB, SEEK_SET) < 0)
		bail("lseek: %s", strerror(errno));
	n = read(fd, mem + NEW + 16 * MIB, 4 * MIB);
	if (check("read(2) of 4 MiB into never-touched memory", n, 4 * MIB))
		ok(holds((unsigned char *)mem + NEW + 16 * MIB, (size_t)n, 32 * MIB), "  the bytes arrived");
	n = preadv(fd, iov, 2, 0);
	if (check("preadv(2) of 2 x 4 MiB into never-touched memory", n, 8 * MIB))
		ok(holds(iov[0].iov_base, 4 * MIB, 0) && holds(iov[1].iov_base, 4 * MIB, 4 * MIB),
		   "  the bytes arrived, in order");
}

static void test_uring(int fd)
{
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	int res[2] = { 0, 0 };

	if (io_uring_queue_init(4, &ring, 0) < 0) {
		skip(2, "io_uring is not available here");
		return;
	}
	io_uring_prep_write(io_uring_get_sqe(&ring), fd, mem + 100 * MIB, 4 * MIB, 200 * MIB);
	io_uring_submit(&ring);
	if (io_uring_wait_cqe(&ring, &cqe) == 0) {
		res[0] = cqe->res;
		io_uring_cqe_seen(&ring, cqe);
	}
	io_uring_prep_read(io_uring_get_sqe(&ring), fd, mem + NEW + 48 * MIB, 4 * MIB, 200 * MIB);
	io_uring_submit(&ring);
	if (io_uring_wait_cqe(&ring, &cqe) == 0) {
		res[1] = cqe->res;
		io_uring_cqe_seen(&ring, cqe);
	}
	io_uring_queue_exit(&ring);
	errno = res[0] < 0 ? -res[0] : 0;
	check("io_uring write of 4 MiB from swapped-out memory", res[0] < 0 ? -1 : res[0], 4 * MIB);
	errno = res[1] < 0 ? -res[1] : 0;
	if (check("io_uring read of 4 MiB into never-touched memory", res[1] < 0 ? -1 : res[1],
		  4 * MIB) && res[0] == (int)(4 * MIB))
		ok(holds((unsigned char *)mem + NEW + 48 * MIB, 4 * MIB, 100 * MIB),
		   "  the bytes went through the file and back");
}

static void test_socket(void)
{
	char *src = mem + 110 * MIB, *dst = mem + NEW + 56 * MIB;
	struct iovec in = { src, 64 * 1024 }, out = { dst, 64 * 1024 };
	struct msghdr sm = { .msg_iov = &in, .msg_iovlen = 1 };
	struct msghdr rm = { .msg_iov = &out, .msg_iovlen = 1 };
	int sv[2];
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		bail("socketpair: %s", strerror(errno));
	n = sendmsg(sv[0], &sm, MSG_DONTWAIT);
	check("sendmsg(2) of 64 KiB from swapped-out memory", n, 64 * 1024);
	n = recvmsg(sv[1], &rm, MSG_DONTWAIT);
	if (n < 0 && errno == EAGAIN)
		n = 0;	/* nothing was sent */
	if (check("recvmsg(2) of 64 KiB into never-touched memory", n, 64 * 1024))
		ok(holds((unsigned char *)dst, (size_t)n, 110 * MIB), "  the bytes arrived");
	close(sv[0]);
	close(sv[1]);
}

static void test_small(const char *path)
{
	char here[4096], *buf = mem + NEW + 60 * MIB;
	struct stat *st = (struct stat *)(mem + NEW + 62 * MIB), mine;
	char *got;

	if (!getcwd(here, sizeof(here)))
		bail("getcwd: %s", strerror(errno));
	got = getcwd(buf, 4096);
	check("getcwd(3) into a never-touched page", got ? (ssize_t)strlen(here) : -1,
	      strlen(here));
	if (got)
		is_str(buf, here, "  it names the directory");
	stat(path, &mine);
	errno = 0;
	check("stat(2) into a never-touched page", stat(path, st) == 0 ? 1 : -1, 1);
	if (uffd)
		is_int(st->st_size, mine.st_size, "  st_size is right");
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT);
	EMM_OPTS(emm_stats, st);
	char path[4096];
	struct emm *mm;
	int fd;

	if (emm_open(&o, &mm))
		bail("emm_open failed");
	uffd = emm_backend(mm) == EMM_BACKEND_UFFD;
	diag("backend %d: %s", emm_backend(mm), uffd ? "every call must transfer all"
						       : "EFAULT or a short count is documented");
	if (emm_reserve(mm, LEN, (void **)&mem) || emm_map(mm, mem, LEN, NULL))
		bail("reserve and map 256 MiB");
	fd = tmp_file("syscalls", path, sizeof(path));
	fill(0, OLD);
	emm_stats(mm, &st);
	diag("128 MiB written under a 32 MiB budget: %llu MiB swapped out",
	     (unsigned long long)(st.swap_used_bytes / MIB));
	test_writes(fd);
	test_reads(fd);
	test_uring(fd);
	test_socket();
	test_small(path);
	/* Direct reclaim may stop a batch short when the pages it scans are
	 * busy; the reclaim thread catches up. Give it two seconds. */
	for (long t0 = now_ms(); emm_stats(mm, &st) == 0 && st.resident_bytes > LIMIT + MIB &&
	     now_ms() - t0 < 2000;)
		usleep(10000);
	ok(st.resident_bytes <= LIMIT + MIB, "resident %llu KiB: the 32 MiB budget held, "
	   "give or take a reclaim batch", (unsigned long long)(st.resident_bytes >> 10));
	is_int(emm_close(mm), 0, "emm_close");
	close(fd);
	unlink(path);
	return done_testing();
}
