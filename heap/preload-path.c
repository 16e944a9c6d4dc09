/* SPDX-License-Identifier: MIT */
/* The preload's open, fopen, opendir, stat, access, readlink and the like: a path on emm memory brought in first where the kernel would not wait. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <utime.h>

#include "preload.h"

/*
 * A path is a string, and a program keeps its strings on its heap: Lua's
 * io.open passes the interpreter's own string, Python a bytes object. On
 * the signal and uffd-sigbus backends the kernel does not wait for a page
 * of it that is not resident, and the call fails with EFAULT: Lua's script
 * of `emm-bench clients --backend uffd-sigbus` stopped so at io.open in
 * every run. These calls read the path first (the access brings its pages
 * in through emm's handler, as the program's own would), then make the
 * call, again if reclaim took a page back in between. What the kernel
 * stores (a struct stat, readlink's name) is brought in for writing the
 * same way when it is on emm memory. On uffd, on emm's own threads and for
 * memory elsewhere they are the C library's calls. The names are the ones
 * Debian's programs link to: Python, SQLite and Perl call stat64, lstat64
 * and fstatat64 (built with 64-bit file offsets), sort calls stat.
 */

#define RETRIES	16

/* Async-signal-safe. Bring the path at p in, if it is on emm memory
 * that a system call must find resident; true if it is. */
static bool bring_in(const char *p)
{
	size_t n;

	if (!p || !preload_io_wanted((uintptr_t)p, 1))
		return false;
	n = strlen(p) + 1;	/* reading it faults its pages in */
	return preload_io_wanted((uintptr_t)p, n);
}

/* Async-signal-safe. Bring the paths a and b in, and the n bytes at o
 * for the kernel to store into; true if any of them is on emm memory. */
static bool bring(const char *a, const char *b, void *o, size_t n)
{
	bool w = bring_in(a) | bring_in(b);

	if (!o || !preload_io_wanted((uintptr_t)o, n))
		return w;
	preload_io_fault_in(o, n, true);
	return true;
}

/* The C library's functions, found when the library is loaded (not in
 * a call that may come from a signal handler of emm's own), or at the
 * first call made before that. */
#define REALS(X) X(open) X(open64) X(openat) X(openat64) X(__open_2) X(__open64_2)	\
	X(__openat_2) X(creat) X(fopen) X(fopen64) X(freopen) X(opendir) X(stat)	\
	X(lstat) X(access) X(unlink) X(rename) X(mkdir) X(rmdir) X(stat64) X(lstat64)	\
	X(fstatat) X(fstatat64) X(statx) X(faccessat) X(readlink) X(readlinkat)	\
	X(remove) X(unlinkat) X(renameat) X(mkdirat) X(chdir) X(chmod) X(chown)	\
	X(lchown) X(truncate) X(truncate64) X(link) X(linkat) X(symlink) X(symlinkat)	\
	X(utime) X(utimes) X(utimensat)

extern int __open_2(const char *path, int flags);
extern int __open64_2(const char *path, int flags);
extern int __openat_2(int dir, const char *path, int flags);

#define DECLARE(fn) static __typeof__(&fn) real_##fn;
REALS(DECLARE)

#define FIND(fn) __atomic_store_n(&real_##fn, (__typeof__(&fn))dlsym(RTLD_NEXT, #fn),	\
				  __ATOMIC_RELAXED);

__attribute__((constructor)) static void preload_path_init(void)
{
	REALS(FIND)
}

#define REAL(fn) ({								\
	__typeof__(&fn) f_ = __atomic_load_n(&real_##fn, __ATOMIC_RELAXED);	\
	if (!f_) {								\
		f_ = (__typeof__(&fn))dlsym(RTLD_NEXT, #fn);			\
		__atomic_store_n(&real_##fn, f_, __ATOMIC_RELAXED);		\
	}									\
	f_; })

/* call, with its paths a and b and the n bytes at o it stores into brought
 * in first, made again while it fails (returns fail) with EFAULT: a page
 * taken back before the kernel reached it. */
#define OUT_CALL(fail, call, a, b, o, n) ({					\
	bool w_ = bring(a, b, o, n);						\
	__typeof__(call) r_;							\
	for (int n_ = 0; (r_ = (call)) == (fail) && w_ && errno == EFAULT &&	\
			 ++n_ < RETRIES;)					\
		(void)bring(a, b, o, n);					\
	r_; })
#define PATH_CALL(fail, call, a, b) OUT_CALL(fail, call, a, b, NULL, 0)

/* An open of a memory cgroup's limit for reading, answered by
 * preload-cgroup.c; else call. */
#define OPEN_CALL(path, flags, call) ({						\
	int fd_ = preload_cgroup_open(path, flags);				\
	fd_ == -2 ? PATH_CALL(-1, call, path, NULL) : fd_; })

/* The same for fopen's mode: a stream on the file preload-cgroup.c made. */
#define FOPEN_CALL(path, mode, call) ({						\
	bool ro_ = mode && mode[0] == 'r' && !strchr(mode, '+');		\
	int fd_ = ro_ ? preload_cgroup_open(path, O_RDONLY |			\
					    (strchr(mode, 'e') ? O_CLOEXEC : 0)) : -2; \
	fd_ == -2 ? PATH_CALL(NULL, call, path, mode) : cgroup_stream(fd_); })

static FILE *cgroup_stream(int fd)
{
	FILE *f = fd < 0 ? NULL : fdopen(fd, "r");

	if (fd >= 0 && !f)
		close(fd);
	return f;
}

/* open's third argument, which it has only when it creates a file. */
#define MODE(flags) ({								\
	mode_t m_ = 0;								\
	if ((flags) & O_CREAT || ((flags) & O_TMPFILE) == O_TMPFILE) {		\
		va_list ap_;							\
		va_start(ap_, flags);						\
		m_ = va_arg(ap_, mode_t);					\
		va_end(ap_);							\
	}									\
	m_; })

PRELOAD_API int open(const char *path, int flags, ...)
{
	mode_t mode = MODE(flags);

	return OPEN_CALL(path, flags, REAL(open)(path, flags, mode));
}

PRELOAD_API int open64(const char *path, int flags, ...)
{
	mode_t mode = MODE(flags);

	return OPEN_CALL(path, flags, REAL(open64)(path, flags, mode));
}

PRELOAD_API int openat(int dir, const char *path, int flags, ...)
{
	mode_t mode = MODE(flags);

	return OPEN_CALL(path, flags, REAL(openat)(dir, path, flags, mode));
}

PRELOAD_API int openat64(int dir, const char *path, int flags, ...)
{
	mode_t mode = MODE(flags);

	return OPEN_CALL(path, flags, REAL(openat64)(dir, path, flags, mode));
}

/* _FORTIFY_SOURCE's forms, for flags without O_CREAT. */
PRELOAD_API int __open_2(const char *path, int flags)
{
	return OPEN_CALL(path, flags, REAL(__open_2)(path, flags));
}

PRELOAD_API int __open64_2(const char *path, int flags)
{
	return OPEN_CALL(path, flags, REAL(__open64_2)(path, flags));
}

PRELOAD_API int __openat_2(int dir, const char *path, int flags)
{
	return OPEN_CALL(path, flags, REAL(__openat_2)(dir, path, flags));
}

PRELOAD_API int creat(const char *path, mode_t mode)
{
	return PATH_CALL(-1, REAL(creat)(path, mode), path, NULL);
}

PRELOAD_API FILE *fopen(const char *path, const char *mode)
{
	return FOPEN_CALL(path, mode, REAL(fopen)(path, mode));
}

PRELOAD_API FILE *fopen64(const char *path, const char *mode)
{
	return FOPEN_CALL(path, mode, REAL(fopen64)(path, mode));
}

PRELOAD_API FILE *freopen(const char *path, const char *mode, FILE *f)
{
	return PATH_CALL(NULL, REAL(freopen)(path, mode, f), path, mode);
}

PRELOAD_API DIR *opendir(const char *path)
{
	return PATH_CALL(NULL, REAL(opendir)(path), path, NULL);
}

PRELOAD_API int stat(const char *path, struct stat *st)
{
	return OUT_CALL(-1, REAL(stat)(path, st), path, NULL, st, sizeof(*st));
}

PRELOAD_API int lstat(const char *path, struct stat *st)
{
	return OUT_CALL(-1, REAL(lstat)(path, st), path, NULL, st, sizeof(*st));
}

PRELOAD_API int stat64(const char *path, struct stat64 *st)
{
	return OUT_CALL(-1, REAL(stat64)(path, st), path, NULL, st, sizeof(*st));
}

PRELOAD_API int lstat64(const char *path, struct stat64 *st)
{
	return OUT_CALL(-1, REAL(lstat64)(path, st), path, NULL, st, sizeof(*st));
}

PRELOAD_API int fstatat(int dir, const char *path, struct stat *st, int flags)
{
	return OUT_CALL(-1, REAL(fstatat)(dir, path, st, flags), path, NULL, st, sizeof(*st));
}

PRELOAD_API int fstatat64(int dir, const char *path, struct stat64 *st, int flags)
{
	return OUT_CALL(-1, REAL(fstatat64)(dir, path, st, flags), path, NULL, st, sizeof(*st));
}

PRELOAD_API int statx(int dir, const char *path, int flags, unsigned mask, struct statx *st)
{
	return OUT_CALL(-1, REAL(statx)(dir, path, flags, mask, st), path, NULL, st,
			sizeof(*st));
}

PRELOAD_API ssize_t readlink(const char *path, char *buf, size_t n)
{
	return OUT_CALL(-1, REAL(readlink)(path, buf, n), path, NULL, buf, n);
}

PRELOAD_API ssize_t readlinkat(int dir, const char *path, char *buf, size_t n)
{
	return OUT_CALL(-1, REAL(readlinkat)(dir, path, buf, n), path, NULL, buf, n);
}

PRELOAD_API int faccessat(int dir, const char *path, int mode, int flags)
{
	return PATH_CALL(-1, REAL(faccessat)(dir, path, mode, flags), path, NULL);
}

PRELOAD_API int access(const char *path, int mode)
{
	return PATH_CALL(-1, REAL(access)(path, mode), path, NULL);
}

PRELOAD_API int unlink(const char *path)
{
	return PATH_CALL(-1, REAL(unlink)(path), path, NULL);
}

PRELOAD_API int rename(const char *from, const char *to)
{
	return PATH_CALL(-1, REAL(rename)(from, to), from, to);
}

PRELOAD_API int mkdir(const char *path, mode_t mode)
{
	return PATH_CALL(-1, REAL(mkdir)(path, mode), path, NULL);
}

PRELOAD_API int rmdir(const char *path)
{
	return PATH_CALL(-1, REAL(rmdir)(path), path, NULL);
}

PRELOAD_API int remove(const char *path)
{
	return PATH_CALL(-1, REAL(remove)(path), path, NULL);
}

PRELOAD_API int unlinkat(int dir, const char *path, int flags)
{
	return PATH_CALL(-1, REAL(unlinkat)(dir, path, flags), path, NULL);
}

PRELOAD_API int renameat(int dir, const char *from, int todir, const char *to)
{
	return PATH_CALL(-1, REAL(renameat)(dir, from, todir, to), from, to);
}

PRELOAD_API int mkdirat(int dir, const char *path, mode_t mode)
{
	return PATH_CALL(-1, REAL(mkdirat)(dir, path, mode), path, NULL);
}

PRELOAD_API int chdir(const char *path)
{
	return PATH_CALL(-1, REAL(chdir)(path), path, NULL);
}

PRELOAD_API int chmod(const char *path, mode_t mode)
{
	return PATH_CALL(-1, REAL(chmod)(path, mode), path, NULL);
}

PRELOAD_API int chown(const char *path, uid_t uid, gid_t gid)
{
	return PATH_CALL(-1, REAL(chown)(path, uid, gid), path, NULL);
}

PRELOAD_API int lchown(const char *path, uid_t uid, gid_t gid)
{
	return PATH_CALL(-1, REAL(lchown)(path, uid, gid), path, NULL);
}

PRELOAD_API int truncate(const char *path, off_t len)
{
	return PATH_CALL(-1, REAL(truncate)(path, len), path, NULL);
}

PRELOAD_API int truncate64(const char *path, off64_t len)
{
	return PATH_CALL(-1, REAL(truncate64)(path, len), path, NULL);
}

PRELOAD_API int link(const char *from, const char *to)
{
	return PATH_CALL(-1, REAL(link)(from, to), from, to);
}

PRELOAD_API int linkat(int dir, const char *from, int todir, const char *to, int flags)
{
	return PATH_CALL(-1, REAL(linkat)(dir, from, todir, to, flags), from, to);
}

PRELOAD_API int symlink(const char *target, const char *path)
{
	return PATH_CALL(-1, REAL(symlink)(target, path), target, path);
}

PRELOAD_API int symlinkat(const char *target, int dir, const char *path)
{
	return PATH_CALL(-1, REAL(symlinkat)(target, dir, path), target, path);
}

PRELOAD_API int utime(const char *path, const struct utimbuf *t)
{
	return PATH_CALL(-1, REAL(utime)(path, t), path, NULL);
}

PRELOAD_API int utimes(const char *path, const struct timeval t[2])
{
	return PATH_CALL(-1, REAL(utimes)(path, t), path, NULL);
}

/* path may be NULL (the file dir names itself, in the C library's form). */
PRELOAD_API int utimensat(int dir, const char *path, const struct timespec t[2], int flags)
{
	return PATH_CALL(-1, REAL(utimensat)(dir, path, t, flags), path, NULL);
}
