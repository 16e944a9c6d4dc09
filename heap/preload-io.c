/* SPDX-License-Identifier: MIT */
/* The preload's read, write, pread, pwrite, readv, writev, fread and fwrite: heap buffers brought in first where the kernel would not wait. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "preload.h"

/*
 * On the signal and uffd-sigbus backends the kernel does not wait for a
 * heap page that a system call touches: a read(2) into, or a write(2) from,
 * a page emm has not mapped fails with EFAULT or stops short there (emm(7),
 * "System calls and EFAULT"). An unmodified program does that all the time
 * (a compiler reading its source into a heap buffer, SQLite writing from its
 * page cache). So these calls, given a buffer in the heap, touch its pages
 * first -- the access faults them in through emm's own handler, as the
 * program's would -- and then make the call, a chunk at a time so that a
 * buffer larger than the budget is never all wanted at once. A page that
 * reclaim revokes again between the touch and the call costs a retry, not
 * an error.
 *
 * What the kernel sees differs only in how a large transfer is cut: several
 * calls of CHUNK bytes. A read from a pipe, socket or terminal makes one
 * call of at most CHUNK bytes (a short read, which such a read may always
 * be) and never waits for more; a write makes as many calls as it takes, so
 * that a write to an O_APPEND file larger than CHUNK is not one atomic
 * append. On the uffd backend, on emm's own threads and for buffers outside
 * the heap, the C library's functions are called as they are. Calls made
 * inside the C library (its stdio reading into a stream's buffer) are not
 * seen here: fread and fwrite bring the program's buffer in themselves, and
 * the buffers the C library allocates for itself are not on the heap on
 * these backends (preload.c, target_for). A vectored call's buffers are
 * touched all at once, and the call is made once.
 */

#define CHUNK	(256UL << 10)
#define RETRIES	16		/* EFAULT at a chunk's start, touched anew each time */

extern ssize_t __read(int fd, void *buf, size_t n);
extern ssize_t __write(int fd, const void *buf, size_t n);
extern ssize_t __pread64(int fd, void *buf, size_t n, off_t off);
extern ssize_t __pwrite64(int fd, const void *buf, size_t n, off_t off);
extern size_t _IO_fread(void *p, size_t size, size_t n, FILE *f);
extern size_t _IO_fwrite(const void *p, size_t size, size_t n, FILE *f);
extern void __chk_fail(void) __attribute__((noreturn));

/* emm's own calls (renamed by the build) go straight to the C library. */
HEAP_INTERNAL ssize_t emm_preload_read(int fd, void *buf, size_t n)
{
	return __read(fd, buf, n);
}

HEAP_INTERNAL ssize_t emm_preload_write(int fd, const void *buf, size_t n)
{
	return __write(fd, buf, n);
}

HEAP_INTERNAL ssize_t emm_preload_pread(int fd, void *buf, size_t n, off_t off)
{
	return __pread64(fd, buf, n, off);
}

HEAP_INTERNAL ssize_t emm_preload_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return __pwrite64(fd, buf, n, off);
}

/* Whether [p, p + n) lies in the heap (or in the mappings preload-mmap.c
 * serves) and must be brought in first. */
bool preload_io_wanted(uintptr_t p, size_t n)
{
	const void *first = (const void *)p, *last = (const void *)(p + n - 1);

	if (!n || !preload_io_touch())
		return false;
	if (preload_mmap_owns(first))
		return preload_mmap_owns(last);
	return heap_of(first) && heap_of(last) == heap_of(first);
}

/* Fault in each page of [p, p + len): for writing (the kernel will store
 * there) with an atomic no-op, else with a load. Async-signal-safe. */
void preload_io_fault_in(const void *p, size_t len, bool for_write)
{
	uintptr_t a = (uintptr_t)p, e = a + len;

	while (a < e) {
		if (for_write)
			__atomic_fetch_or((unsigned char *)a, 0, __ATOMIC_RELAXED);
		else
			(void)*(volatile const unsigned char *)a;
		a = (a | (OS_PAGE - 1)) + 1;
	}
}

/* A file whose reads never wait for data: regular files, block devices. */
static bool seekable(int fd)
{
	struct stat st;

	return !fstat(fd, &st) && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
}

/*
 * The transfer, a chunk at a time: into memory (read, pread) or out of it;
 * at off, or at the file's offset when off is -1. What the C library's
 * call would return, but that a read from a pipe or socket stops after
 * one chunk.
 */
static ssize_t chunked(int fd, char *buf, size_t n, off_t off, bool into)
{
	size_t done = 0;
	int faults = 0, seek = off >= 0 ? 1 : -1;

	while (done < n) {
		size_t c = n - done < CHUNK ? n - done : CHUNK;
		ssize_t k;

		preload_io_fault_in(buf + done, c, into);
		if (into)
			k = off >= 0 ? __pread64(fd, buf + done, c, off + (off_t)done) :
				       __read(fd, buf + done, c);
		else
			k = off >= 0 ? __pwrite64(fd, buf + done, c, off + (off_t)done) :
				       __write(fd, buf + done, c);
		if (k < 0) {
			if (errno == EFAULT && ++faults < RETRIES)
				continue;
			return done ? (ssize_t)done : -1;
		}
		faults = 0;
		done += (size_t)k;
		if (!k)
			break;
		if (!into)
			continue;
		/* A read from a pipe, socket or terminal must not wait for more. */
		if (seek < 0)
			seek = seekable(fd);
		if (!seek)
			break;
	}
	return (ssize_t)done;
}

PRELOAD_API ssize_t read(int fd, void *buf, size_t n)
{
	return preload_io_wanted((uintptr_t)buf, n) ? chunked(fd, buf, n, -1, true) : __read(fd, buf, n);
}

PRELOAD_API ssize_t write(int fd, const void *buf, size_t n)
{
	return preload_io_wanted((uintptr_t)buf, n) ? chunked(fd, (char *)buf, n, -1, false) : __write(fd, buf, n);
}

PRELOAD_API ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	if (off < 0 || !preload_io_wanted((uintptr_t)buf, n))
		return __pread64(fd, buf, n, off);
	return chunked(fd, buf, n, off, true);
}

PRELOAD_API ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (off < 0 || !preload_io_wanted((uintptr_t)buf, n))
		return __pwrite64(fd, buf, n, off);
	return chunked(fd, (char *)buf, n, off, false);
}

/* On LP64 the 64-bit names are the same calls. */
PRELOAD_API ssize_t pread64(int fd, void *buf, size_t n, off_t off)
	__attribute__((alias("pread")));
PRELOAD_API ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
	__attribute__((alias("pwrite")));

/* A stream's calls, a chunk at a time; the count of whole items done. */
static size_t stream_chunked(void *p, size_t size, size_t n, FILE *f, bool into)
{
	size_t total, done = 0;
	bool had_error;
	int faults = 0;

	if (!size || !n || __builtin_mul_overflow(size, n, &total) || !preload_io_wanted((uintptr_t)p, total))
		return into ? _IO_fread(p, size, n, f) : _IO_fwrite(p, size, n, f);
	had_error = ferror(f);

	while (done < total) {
		size_t c = total - done < CHUNK ? total - done : CHUNK, k;

		preload_io_fault_in((char *)p + done, c, into);
		k = into ? _IO_fread((char *)p + done, 1, c, f) :
			   _IO_fwrite((char *)p + done, 1, c, f);
		done += k;
		if (k == c) {
			faults = 0;
			continue;
		}
		/* A page revoked again before the C library's read or write:
		 * the stream's error is this call's own, and goes with a retry
		 * (the bytes not transferred are still the program's). */
		if (!had_error && ferror(f) && errno == EFAULT && ++faults < RETRIES) {
			clearerr(f);
			continue;
		}
		break;
	}
	return done / size;
}

PRELOAD_API size_t fread(void *p, size_t size, size_t n, FILE *f)
{
	return stream_chunked(p, size, n, f, true);
}

PRELOAD_API size_t fwrite(const void *p, size_t size, size_t n, FILE *f)
{
	return stream_chunked((void *)p, size, n, f, false);
}

/* coreutils' programs call these (gnulib's unlocked-io.h); the locking
 * calls do the same for a caller that holds the stream's lock or needs none.
 * (The C library's header may make them macros.) */
#undef fread_unlocked
#undef fwrite_unlocked
PRELOAD_API size_t fread_unlocked(void *p, size_t size, size_t n, FILE *f)
	__attribute__((alias("fread")));
PRELOAD_API size_t fwrite_unlocked(const void *p, size_t size, size_t n, FILE *f)
	__attribute__((alias("fwrite")));

/* The vectored calls: every heap buffer of the vector touched, then one call. */
static ssize_t (*real_readv)(int, const struct iovec *, int);
static ssize_t (*real_writev)(int, const struct iovec *, int);

__attribute__((constructor)) static void preload_io_init(void)
{
	real_readv = (ssize_t (*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "readv");
	real_writev = (ssize_t (*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
}

static ssize_t vectored(int fd, const struct iovec *iov, int n, bool into)
{
	ssize_t (*call)(int, const struct iovec *, int) = into ? real_readv : real_writev;
	bool any = false;
	ssize_t k;

	if (!call) {
		errno = ENOSYS;
		return -1;
	}
	for (int i = 0; i < n && iov; i++)
		any |= preload_io_wanted((uintptr_t)iov[i].iov_base, iov[i].iov_len);
	if (!any)
		return call(fd, iov, n);
	for (int faults = 0;; faults++) {
		for (int i = 0; i < n; i++)
			if (preload_io_wanted((uintptr_t)iov[i].iov_base, iov[i].iov_len))
				preload_io_fault_in(iov[i].iov_base, iov[i].iov_len, into);
		k = call(fd, iov, n);
		if (k >= 0 || errno != EFAULT || faults + 1 >= RETRIES)
			return k;
	}
}

PRELOAD_API ssize_t readv(int fd, const struct iovec *iov, int n)
{
	return vectored(fd, iov, n, true);
}

PRELOAD_API ssize_t writev(int fd, const struct iovec *iov, int n)
{
	return vectored(fd, iov, n, false);
}

/* _FORTIFY_SOURCE's checked forms, when the compiler knows the buffer's size. */
PRELOAD_API ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return read(fd, buf, n);
}

PRELOAD_API ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return pread(fd, buf, n, off);
}

PRELOAD_API ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
	__attribute__((alias("__pread64_chk")));

PRELOAD_API size_t __fread_chk(void *p, size_t plen, size_t size, size_t n, FILE *f)
{
	size_t total;

	if (__builtin_mul_overflow(size, n, &total) || total > plen)
		__chk_fail();
	return fread(p, size, n, f);
}

PRELOAD_API size_t __fread_unlocked_chk(void *p, size_t plen, size_t size, size_t n, FILE *f)
	__attribute__((alias("__fread_chk")));
