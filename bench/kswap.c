/* SPDX-License-Identifier: MIT */
/* The kernel's swap as a baseline: a child in a memory cgroup v1 with a swap file of its own. */
#include "kswap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <unistd.h>

#define CGROUP_V1_MEMORY "/sys/fs/cgroup/memory"
#define SWAP_PAGE 4096

static int write_file(const char *dir, const char *name, const char *val)
{
	char path[512];
	int fd, n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = (int)write(fd, val, strlen(val));
	n = n < 0 ? -errno : 0;
	close(fd);
	return n;
}

static uint64_t read_u64(const char *dir, const char *name)
{
	char path[512], buf[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return strtoull(buf, NULL, 10);
}

/* A swap area as mkswap(8) writes it: version 1 header, SWAPSPACE2 magic. */
static int write_swap_header(int fd, uint64_t size)
{
	static char page[SWAP_PAGE];
	uint32_t hdr[3] = { 1, (uint32_t)(size / SWAP_PAGE - 1), 0 };	/* version, last page */

	memset(page, 0, sizeof(page));
	memcpy(page + 1024, hdr, sizeof(hdr));
	memcpy(page + SWAP_PAGE - 10, "SWAPSPACE2", 10);
	return pwrite(fd, page, sizeof(page), 0) == sizeof(page) ? 0 : -errno;
}

/* Swap files may have no holes: write every block. */
static int make_swapfile(const char *path, uint64_t size)
{
	static char zero[1 << 20];
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int err = 0;

	if (fd < 0)
		return -errno;
	for (uint64_t off = 0; off < size && !err; off += sizeof(zero))
		if (pwrite(fd, zero, sizeof(zero), (off_t)off) != (ssize_t)sizeof(zero))
			err = -errno;
	if (!err)
		err = write_swap_header(fd, size);
	if (!err && fsync(fd))
		err = -errno;
	close(fd);
	return err;
}

static int fail(struct bench_kswap *k, int err, const char *what)
{
	snprintf(k->why, sizeof(k->why), "%s: %s", what, strerror(-err));
	bench_kswap_teardown(k);
	return err;
}

int bench_kswap_setup(struct bench_kswap *k, uint64_t limit, uint64_t swap_size)
{
	const char *dir = getenv("TMPDIR");
	char val[32];
	int err;

	memset(k, 0, sizeof(*k));
	if (geteuid() != 0) {
		snprintf(k->why, sizeof(k->why), "not root: no cgroup or swapon");
		return -EPERM;
	}
	if (access(CGROUP_V1_MEMORY "/cgroup.procs", W_OK)) {
		snprintf(k->why, sizeof(k->why), "no writable cgroup v1 memory controller at %s",
			 CGROUP_V1_MEMORY);
		return -ENOENT;
	}
	snprintf(k->cgroup, sizeof(k->cgroup), CGROUP_V1_MEMORY "/emm-bench-%d", (int)getpid());
	if (mkdir(k->cgroup, 0700))
		return fail(k, -errno, "mkdir of the cgroup");
	snprintf(val, sizeof(val), "%llu", (unsigned long long)limit);
	if ((err = write_file(k->cgroup, "memory.limit_in_bytes", val)))
		return fail(k, err, "memory.limit_in_bytes");
	write_file(k->cgroup, "memory.swappiness", "60");
	snprintf(k->swapfile, sizeof(k->swapfile), "%s/emm-bench-swap-%d",
		 dir && *dir ? dir : "/var/tmp", (int)getpid());
	if ((err = make_swapfile(k->swapfile, swap_size))) {
		k->swapfile[0] = 0;
		return fail(k, err, "writing the swap file");
	}
	if (swapon(k->swapfile, 0))
		return fail(k, -errno, "swapon (the file system may not hold swap)");
	k->swap_on = true;
	return 0;
}

int bench_kswap_run(struct bench_kswap *k, int (*fn)(void *arg, void *out), void *arg,
		    void *out, size_t len)
{
	int pfd[2], status;
	pid_t pid;
	ssize_t got;

	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char me[32];

		close(pfd[0]);
		snprintf(me, sizeof(me), "%d", (int)getpid());
		if (write_file(k->cgroup, "cgroup.procs", me) || fn(arg, out))
			_exit(1);
		_exit(write(pfd[1], out, len) == (ssize_t)len ? 0 : 1);
	}
	close(pfd[1]);
	got = read(pfd[0], out, len);
	close(pfd[0]);
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && !WEXITSTATUS(status) && got == (ssize_t)len ? 0 : -ECHILD;
}

uint64_t bench_kswap_max_usage(struct bench_kswap *k)
{
	return read_u64(k->cgroup, "memory.max_usage_in_bytes");
}

void bench_kswap_teardown(struct bench_kswap *k)
{
	if (k->swap_on && swapoff(k->swapfile) == 0)
		k->swap_on = false;
	if (k->swapfile[0] && !k->swap_on)
		unlink(k->swapfile);
	if (k->cgroup[0] && rmdir(k->cgroup) == 0)
		k->cgroup[0] = 0;
}
