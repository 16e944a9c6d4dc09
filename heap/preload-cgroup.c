/* SPDX-License-Identifier: MIT */
/* The preload's answer to a program that reads its memory cgroup's limit: the budget, where that is less. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload.h"

/*
 * Runtimes size themselves by the memory their cgroup allows: V8 (through
 * libuv's uv_get_constrained_memory) sets its heap limit and its young
 * generation by it, the JVM its default heap and ergonomics. Under a
 * budget the program knows nothing of, V8 keeps a 32 MiB young generation
 * that a scavenge writes all over every few milliseconds, where a cgroup
 * of the same size would have it keep 2 MiB. Node.js building and sorting
 * a 300,000-key Map under 88 MiB (uffd, 2-vCPU VM): 29.8 to 33.3 K pages
 * swapped in and 2.6 to 2.9 s so, 13.7 and 13.9 K and 1.9 and 2.0 s with
 * the young generation it has in a cgroup of 88 MiB (the kernel's swap in
 * that cgroup: 9.6 and 11.1 K, 2.1 s). So a read of the limit files of
 * cgroup v1 (memory.limit_in_bytes) and v2 (memory.max, memory.high)
 * finds the budget, or the cgroup's own limit where that is less, as it
 * would in a cgroup of the budget's size. The file read is a memfd made
 * for the open; any other open, and every one with EMM_PRELOAD_CGROUP=0,
 * is the C library's.
 */

static const char *const limit_files[] = { "memory.limit_in_bytes", "memory.max", "memory.high" };

static bool cgroup_on = false;

void preload_cgroup_init(bool on)
{
	cgroup_on = on;
}

/* Does path name one of the limit files under /sys/fs/cgroup? */
static bool limit_path(const char *path)
{
	static const char root[] = "/sys/fs/cgroup/";
	const char *base;

	if (strncmp(path, root, sizeof(root) - 1))
		return false;
	base = strrchr(path, '/') + 1;
	for (size_t i = 0; i < sizeof(limit_files) / sizeof(limit_files[0]); i++)
		if (!strcmp(base, limit_files[i]))
			return true;
	return false;
}

/* The limit the file at path holds: UINT64_MAX for "max", for a missing
 * file or one that does not parse. */
static uint64_t file_limit(const char *path)
{
	char buf[32];
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : (ssize_t)syscall(SYS_read, fd, buf, sizeof(buf) - 1);
	uint64_t v = 0;
	ssize_t i;

	if (fd >= 0)
		syscall(SYS_close, fd);
	for (i = 0; i < n && buf[i] >= '0' && buf[i] <= '9' && v <= UINT64_MAX / 10 - 1; i++)
		v = v * 10 + (uint64_t)(buf[i] - '0');
	return i > 0 && (i == n || buf[i] == '\n') ? v : UINT64_MAX;
}

/* A read-only memfd holding v and a newline, from offset 0; -1 (errno) on failure. */
static int limit_fd(uint64_t v, bool cloexec)
{
	char buf[24];
	size_t n = sizeof(buf);
	int fd = memfd_create("emm-cgroup-limit", cloexec ? MFD_CLOEXEC : 0);

	if (fd < 0)
		return -1;
	buf[--n] = '\n';
	do
		buf[--n] = (char)('0' + v % 10);
	while ((v /= 10));
	if (syscall(SYS_pwrite64, fd, buf + n, sizeof(buf) - n, 0) != (long)(sizeof(buf) - n)) {
		int e = errno;

		syscall(SYS_close, fd);
		errno = e;
		return -1;
	}
	return fd;
}

int preload_cgroup_open(const char *path, int flags)
{
	struct emm *m = preload_mm();
	EMM_OPTS(emm_stats, st);
	uint64_t v;

	if (!cgroup_on || !m || !path || (flags & O_ACCMODE) != O_RDONLY || !limit_path(path) ||
	    emm_stats(m, &st))
		return -2;
	v = file_limit(path);
	return limit_fd(st.limit_bytes < v ? st.limit_bytes : v, flags & O_CLOEXEC);
}
