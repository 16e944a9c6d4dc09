/* SPDX-License-Identifier: MIT */
/* The userfaultfd primitives the userfaultfd backends use: opening one, mapping, write-protecting, waking, registering, zapping many ranges in one call, and what a service thread needs to know of a faulting thread. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "uffd.h"

/* A userfaultfd: from the system call, else from /dev/userfaultfd (which
 * needs access to the device, not privilege). user_only: faults in kernel
 * mode are not reported (and need no privilege). */
static int uffd_new(bool user_only)
{
	int flags = O_CLOEXEC | O_NONBLOCK | (user_only ? UFFD_USER_MODE_ONLY : 0);
	int fd = (int)syscall(SYS_userfaultfd, flags), dev, err;

	if (fd >= 0)
		return fd;
	err = -errno;
	if (user_only || err == -ENOSYS)
		return err;
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return err;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
	err = fd < 0 ? -errno : fd;
	close(dev);
	return err;
}

/* The features the kernel offers a userfaultfd like this one. */
static int uffd_features(bool user_only, uint64_t *features)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = uffd_new(user_only), err = 0;

	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_API, &api) < 0)
		err = -errno;
	close(fd);
	*features = api.features;
	return err;
}

/*
 * A userfaultfd, handshaken, with SIGBUS delivery (sigbus) or for service threads,
 * or -errno: -EPERM (or -EACCES) where the system does not allow it,
 * -EOPNOTSUPP where the kernel lacks what emm needs. *wp_async on entry:
 * ask for UFFD_WP_ASYNC; on exit: whether it was had.
 */
int uffd_open_fd(bool sigbus, bool *wp_async)
{
	uint64_t want = UFFD_NEEDED | (sigbus ? UFFD_FEATURE_SIGBUS : UFFD_FEATURE_THREAD_ID);
	uint64_t have;
	struct uffdio_api api = { .api = UFFD_API };
	int fd, err = uffd_features(sigbus, &have);

	if (err == -ENOSYS || err == -EINVAL)
		return -EOPNOTSUPP;
	if (err)
		return err;
	if ((have & want) != want)
		return -EOPNOTSUPP;
	/* A SIGBUS emm sends names the byte touched, as the kernel's would. */
	api.features = want | (have & UFFD_FEATURE_EXACT_ADDRESS);
	*wp_async = *wp_async && (have & UFFD_WP_ASYNC) == UFFD_WP_ASYNC;
	if (*wp_async)
		api.features |= UFFD_WP_ASYNC;
	fd = uffd_new(sigbus);
	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		err = -errno;
		close(fd);
		return err == -EINVAL ? -EOPNOTSUPP : err;
	}
	return fd;
}

/*
 * What a service thread mapped while serving one message: the threads
 * waiting there are woken once emm is done with the fault (its counters,
 * LRU and PTE locks), not as soon as the page is mapped. Only service
 * threads wake; elsewhere this range just grows, unused.
 */
static __thread uintptr_t wake_lo __attribute__((tls_model("initial-exec")));
static __thread uintptr_t wake_hi __attribute__((tls_model("initial-exec")));

/* Async-signal-safe. [s, e) was mapped: wake its waiters later. */
void uffd_wake_later(uintptr_t s, uintptr_t e)
{
	if (!wake_hi || s < wake_lo)
		wake_lo = s;
	if (e > wake_hi)
		wake_hi = e;
}

/* Wake the threads waiting on [s, e) and on what was mapped since the last wake. */
void uffd_wake(int fd, uintptr_t s, uintptr_t e)
{
	struct uffdio_range rg;

	uffd_wake_later(s, e);
	rg.start = wake_lo;
	rg.len = wake_hi - wake_lo;
	ioctl(fd, UFFDIO_WAKE, &rg);
	wake_lo = wake_hi = 0;
}

/* Async-signal-safe. Write-protect [s, e) (wp) or give write access back. */
int uffd_wp(int fd, uintptr_t s, uintptr_t e, bool wp)
{
	struct uffdio_writeprotect w = {
		.range = { .start = s, .len = e - s },
		/* Taking write access wakes nobody (the kernel refuses DONTWAKE then). */
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
	};

	if (!wp)
		uffd_wake_later(s, e);
	while (ioctl(fd, UFFDIO_WRITEPROTECT, &w) < 0)
		if (errno != EAGAIN)
			return -errno;
	return 0;
}

/*
 * Async-signal-safe. Map [s, e) of the app view over the pages physmem
 * holds, without write access if wp, in as few calls as it takes. A page
 * the kernel already maps (EEXIST) is given the write access asked for;
 * before it is write-protected, exists(arg, page) hears of it and says
 * whether to protect it: a write to it that the last harvest did not see
 * (another thread's, a moment before) would leave no trace once the page
 * is protected again.
 *
 * The kernel maps a range in one call only inside one kernel VMA (else
 * ENOENT). emm's VMA table and the kernel's VMAs change one after the
 * other: while emm_protect or emm_map gives a neighbouring range access,
 * emm's VMA may already reach over it where the kernel's does not yet, and
 * a fault-around cluster crosses the boundary. Page by page, each call is
 * inside one kernel VMA; a page of one that has no access yet is mapped
 * with none, and the kernel's mprotect, when it comes, gives it the rest.
 * Only a page outside every registered VMA fails.
 */
int uffd_continue(int fd, uintptr_t s, uintptr_t e, bool wp,
		  bool (*exists)(void *arg, uintptr_t a), void *arg)
{
	uintptr_t step = e - s;

	while (s < e) {
		struct uffdio_continue c = {
			.range = { .start = s, .len = MIN(step, e - s) },
			.mode = (wp ? UFFDIO_CONTINUE_MODE_WP : 0) | UFFDIO_CONTINUE_MODE_DONTWAKE,
		};
		int err;

		uffd_wake_later(s, e);
		if (ioctl(fd, UFFDIO_CONTINUE, &c) == 0) {
			s += c.range.len;
			continue;
		}
		err = errno;
		s += c.mapped > 0 ? (uintptr_t)c.mapped : 0;
		if (err == EEXIST) {
			if (!wp || exists(arg, s))
				uffd_wp(fd, s, s + PAGE_SIZE, wp);
			s += PAGE_SIZE;
		} else if (err == ENOENT && step > PAGE_SIZE) {
			step = PAGE_SIZE;
		} else if (err != EAGAIN) {
			return -err;
		}
	}
	return 0;
}

/*
 * Async-signal-safe. Fill the holes [s, e) of the app view with the bytes
 * at src and map them (wp: without write access), in one pass:
 * UFFDIO_COPY. Returns the bytes mapped from s; on a page that was there
 * already (EEXIST) or any other error it stops there.
 */
size_t uffd_copy(int fd, uintptr_t s, uintptr_t e, const void *src, bool wp)
{
	uintptr_t a = s;

	while (a < e) {
		struct uffdio_copy c = {
			.dst = a, .src = (uintptr_t)src + (a - s), .len = e - a,
			.mode = (wp ? UFFDIO_COPY_MODE_WP : 0) | UFFDIO_COPY_MODE_DONTWAKE,
		};

		uffd_wake_later(a, e);
		if (ioctl(fd, UFFDIO_COPY, &c) == 0)
			return e - s;
		a += c.copy > 0 ? (uintptr_t)c.copy : 0;
		if (errno != EAGAIN)
			break;
	}
	return a - s;
}

/*
 * Async-signal-safe. Give the holes [s, e) of the app view zeroed pages and
 * map them writable, in one pass: UFFDIO_ZEROPAGE, which on shared memory
 * allocates, clears and maps each page (every kernel with the minor faults
 * of shared memory has it). fallocate and UFFDIO_CONTINUE walk the range
 * twice (measured on a 2-vCPU VM, 1.45 us a page in runs of 16 against
 * 1.17 for UFFDIO_COPY from zeros); the copy reads a source page for each
 * page it fills, which the clear does not: emm-bench first-touch on
 * uffd-sigbus, another 2-vCPU VM, ran 8 to 13% more pages a second with
 * UFFDIO_ZEROPAGE than with the copy. -EEXIST: a page was there already;
 * what came before it is mapped.
 */
int uffd_zero_fill(int fd, uintptr_t s, uintptr_t e)
{
	while (s < e) {
		struct uffdio_zeropage z = {
			.range = { .start = s, .len = e - s },
			.mode = UFFDIO_ZEROPAGE_MODE_DONTWAKE,
		};

		uffd_wake_later(s, e);
		if (ioctl(fd, UFFDIO_ZEROPAGE, &z) == 0)
			return 0;
		s += z.zeropage > 0 ? (uintptr_t)z.zeropage : 0;
		if (errno != EAGAIN)
			return -errno;
	}
	return 0;
}

/* Async-signal-safe. (Re-)register [s, e) of the app view in mode. */
int uffd_register(int fd, uintptr_t s, uintptr_t e, uint64_t mode)
{
	struct uffdio_register reg = { .range = { .start = s, .len = e - s }, .mode = mode };

	return ioctl(fd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

/* Poison [s, e) of the app view: an access there now fails (a system
 * call's with EFAULT) until the range is zapped. Wakes its waiters. */
int uffd_poison(int fd, uintptr_t s, uintptr_t e)
{
	struct uffdio_poison p = { .range = { .start = s, .len = e - s } };

	while (ioctl(fd, UFFDIO_POISON, &p) < 0)
		if (errno != EAGAIN)
			return -errno;
	return 0;
}

/* A file of /proc/self/task/tid/, whole in buf (cap bytes with the NUL):
 * its length, or -errno. */
static int read_task_file(pid_t tid, const char *name, char *buf, size_t cap)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/%s", (int)tid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return (int)n;
}

/*
 * What thread tid (asleep in a fault) is doing, as the kernel says: the
 * number and arguments of the system call it is in, "-1 ..." in none (a
 * fault in user mode), "running". Returns the system call's number, -1 in
 * none or when it cannot be told.
 */
int uffd_thread_syscall(pid_t tid, char *buf, size_t cap)
{
	if (read_task_file(tid, "syscall", buf, cap) <= 0 || !strcmp(buf, "running\n"))
		return -1;
	return atoi(buf);
}

/* Whether thread tid sleeps in a userfaultfd fault now, as its wchan says:
 * 1; 0 asleep elsewhere; -1 when it cannot be told (it runs, or the kernel
 * names no function there). */
int uffd_thread_in_fault(pid_t tid)
{
	char buf[64];

	if (read_task_file(tid, "wchan", buf, sizeof(buf)) <= 0 || !strcmp(buf, "0"))
		return -1;
	return !strcmp(buf, "handle_userfault");
}

/*
 * Where thread tid is, from what uffd_thread_syscall read into buf: 1 and
 * *pc, the instruction it sleeps on in a fault in user mode ("-1 sp pc");
 * 0 when it is running or in a system call; -1 when it cannot be told.
 */
int uffd_thread_fault_pc(const char *buf, int syscall_nr, uintptr_t *pc)
{
	unsigned long sp, ip;

	*pc = 0;
	if (!strcmp(buf, "running\n") || syscall_nr >= 0)
		return 0;
	if (sscanf(buf, "-1 %lx %lx", &sp, &ip) != 2 || !ip)
		return -1;
	*pc = ip;
	return 1;
}

/* The signals thread tid blocks (bit sig - 1); all of them when it cannot be told. */
uint64_t uffd_thread_blocked(pid_t tid)
{
	char buf[2048], *p;

	if (read_task_file(tid, "status", buf, sizeof(buf)) <= 0 || !(p = strstr(buf, "\nSigBlk:")))
		return ~0ull;
	return strtoull(p + 8, NULL, 16);
}

/* The CPU thread tid last ran on (it sleeps in its fault now): field 39 of
 * its stat. Only asked on NUMA machines, where LOCAL means its node. */
int uffd_thread_cpu(pid_t tid)
{
	char buf[512], *p;
	int i;

	if (read_task_file(tid, "stat", buf, sizeof(buf)) <= 0)
		return -1;
	p = strrchr(buf, ')');
	for (i = 3; p && i <= 39; i++)
		p = strchr(p + 1, ' ');
	return p ? atoi(p + 1) : -1;
}


/*
 * Async-signal-safe. MADV_DONTNEED over the n ranges of iov of this
 * process's own memory in one process_madvise(2) call (pidfd: from
 * zap_open), up to UIO_MAXIOV at a time. Returns the bytes advised: the
 * ranges are taken in order, and the kernel stops at the first it
 * refuses; -errno when it advised none.
 */
ssize_t zap_many(int pidfd, const struct iovec *iov, unsigned n)
{
	ssize_t done = 0;

	while (n) {
		unsigned k = MIN(n, ZAP_IOV_MAX);
		size_t want = 0;
		ssize_t got;

		for (unsigned i = 0; i < k; i++)
			want += iov[i].iov_len;
		got = syscall(SYS_process_madvise, pidfd, iov, (size_t)k, MADV_DONTNEED, 0u);
		if (got < 0)
			return done ? done : -errno;
		done += got;
		if ((size_t)got < want)
			break;
		iov += k;
		n -= k;
	}
	return done;
}

/*
 * *pidfd: what zap_many takes as this process: PIDFD_SELF (Linux 6.14),
 * else a pidfd of its own (the caller closes it; it is not inherited
 * across exec), once process_madvise(2) was seen to take MADV_DONTNEED
 * from a process for itself (6.13; a seccomp filter may still refuse it).
 * -errno when it cannot be had; *how says which it is, for EMM_VERBOSE.
 */
int zap_open(int *pidfd, const char **how)
{
	long page = sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	struct iovec v = { .iov_base = p, .iov_len = (size_t)page };
	int fd = PIDFD_SELF_GROUP;
	ssize_t got;

	if (p == MAP_FAILED)
		return -errno;
	*how = "PIDFD_SELF";
	got = zap_many(fd, &v, 1);
	if (got == -EBADF || got == -ESRCH) {
		*how = "a pidfd of its own";
		fd = (int)syscall(SYS_pidfd_open, getpid(), 0u);
		got = fd < 0 ? -errno : zap_many(fd, &v, 1);
	}
	munmap(p, (size_t)page);
	if (got == page) {
		*pidfd = fd;
		return 0;
	}
	if (fd >= 0)
		close(fd);
	return got < 0 ? (int)got : -EIO;
}
