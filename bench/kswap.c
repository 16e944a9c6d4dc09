/* SPDX-License-Identifier: MIT */
/* The kernel's swap as a baseline: a child in a memory cgroup v1 with a swap file of its own. */
#include "kswap.h"
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <unistd.h>

#define CGROUP_V1_MEMORY "/sys/fs/cgroup/memory"
#define SWAP_PAGE 4096
#define PREFIX "emm-bench-"
#define SWAP_PREFIX "emm-bench-swap-"

/* What a signal must tear down: one set-up at a time, made by owner. */
static struct bench_kswap *active;
static volatile pid_t active_child, owner;
static const int signals[] = { SIGINT, SIGTERM, SIGHUP };
static struct sigaction old_action[3];

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

/* Is the process that named a cgroup or swap file gone (killed before its teardown)? */
static bool dead(const char *name, const char *prefix)
{
	long pid;

	if (strncmp(name, prefix, strlen(prefix)))
		return false;
	pid = strtol(name + strlen(prefix), NULL, 10);
	return pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* What an earlier run killed with SIGKILL left: its swap file and cgroup. */
static void sweep(void)
{
	char line[512], path[512];
	FILE *f = fopen("/proc/swaps", "re");
	DIR *d;
	struct dirent *e;

	while (f && fgets(line, sizeof(line), f)) {
		char *base;

		if (sscanf(line, "%511s", path) != 1 || !(base = strrchr(path, '/')))
			continue;
		if (dead(base + 1, SWAP_PREFIX) && swapoff(path) == 0)
			unlink(path);
	}
	if (f)
		fclose(f);
	if (!(d = opendir(CGROUP_V1_MEMORY)))
		return;
	while ((e = readdir(d)))
		if (dead(e->d_name, PREFIX) && !dead(e->d_name, SWAP_PREFIX)) {
			snprintf(path, sizeof(path), CGROUP_V1_MEMORY "/%s", e->d_name);
			rmdir(path);
		}
	closedir(d);
}

/* Kill the child, tear down, then let the signal do what it would have done. */
static void on_signal(int sig)
{
	int i;

	if (active && getpid() == owner) {
		if (active_child > 0) {
			kill(active_child, SIGKILL);
			waitpid(active_child, NULL, 0);
		}
		bench_kswap_teardown(active);
	}
	for (i = 0; i < 3 && signals[i] != sig; i++)
		;
	sigaction(sig, i < 3 ? &old_action[i] : NULL, NULL);
	raise(sig);
}

static void catch_signals(struct bench_kswap *k)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	active = k;
	owner = getpid();
	for (int i = 0; i < 3; i++)
		sigaction(signals[i], &sa, &old_action[i]);
}

static int fail(struct bench_kswap *k, int err, const char *what)
{
	snprintf(k->why, sizeof(k->why), "%s: %s", what, strerror(-err));
	bench_kswap_teardown(k);
	return err;
}

int bench_kswap_setup(struct bench_kswap *k, uint64_t limit, uint64_t swap_size)
{
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
	sweep();
	catch_signals(k);
	snprintf(k->cgroup, sizeof(k->cgroup), CGROUP_V1_MEMORY "/" PREFIX "%d", (int)getpid());
	if (mkdir(k->cgroup, 0700))
		return fail(k, -errno, "mkdir of the cgroup");
	if ((err = bench_kswap_set_limit(k, limit)))
		return fail(k, err, "memory.limit_in_bytes");
	write_file(k->cgroup, "memory.swappiness", "60");
	snprintf(k->swapfile, sizeof(k->swapfile), "%s/" SWAP_PREFIX "%d",
		 bench_tmpdir(), (int)getpid());
	if ((err = make_swapfile(k->swapfile, swap_size))) {
		k->swapfile[0] = 0;
		return fail(k, err, "writing the swap file");
	}
	if (swapon(k->swapfile, 0))
		return fail(k, -errno, "swapon (the file system may not hold swap)");
	k->swap_on = true;
	return 0;
}

int bench_kswap_set_limit(struct bench_kswap *k, uint64_t limit)
{
	char val[32];

	snprintf(val, sizeof(val), "%llu", (unsigned long long)limit);
	write_file(k->cgroup, "memory.max_usage_in_bytes", "0");
	return write_file(k->cgroup, "memory.limit_in_bytes", val);
}

int bench_kswap_force_empty(struct bench_kswap *k)
{
	return write_file(k->cgroup, "memory.force_empty", "0");
}

int bench_kswap_join(struct bench_kswap *k)
{
	char me[32];

	snprintf(me, sizeof(me), "%d", (int)getpid());
	return write_file(k->cgroup, "cgroup.procs", me);
}

void bench_kswap_child(struct bench_kswap *k, pid_t pid)
{
	active_child = pid;
}

uint64_t bench_kswap_counter(struct bench_kswap *k, const char *file, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", k->cgroup, file);
	return bench_counter(path, name);
}

struct bench_kswap_faults bench_kswap_faults(struct bench_kswap *k)
{
	return (struct bench_kswap_faults){
		.swapins = bench_kswap_counter(k, "memory.stat", "workingset_refault_anon"),
		.major = bench_kswap_counter(k, "memory.stat", "pgmajfault"),
	};
}

int bench_kswap_run(struct bench_kswap *k, int (*fn)(void *arg, void *out), void *arg,
		    void *out, size_t len)
{
	int pfd[2], status, err;
	pid_t pid;
	ssize_t got;

	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(pfd[0]);
		if (bench_kswap_join(k) || fn(arg, out))
			_exit(1);
		_exit(write(pfd[1], out, len) == (ssize_t)len ? 0 : 1);
	}
	bench_kswap_child(k, pid);
	close(pfd[1]);
	got = read(pfd[0], out, len);
	close(pfd[0]);
	err = waitpid(pid, &status, 0) < 0 ? -errno : 0;
	bench_kswap_child(k, 0);
	if (err) {
		snprintf(k->why, sizeof(k->why), "waitpid: %s", strerror(-err));
		return err;
	}
	if (WIFSIGNALED(status))
		snprintf(k->why, sizeof(k->why), "the program was killed by signal %d%s",
			 WTERMSIG(status), WTERMSIG(status) == SIGKILL ? " (the OOM killer)" : "");
	else if (!WIFEXITED(status) || WEXITSTATUS(status) || got != (ssize_t)len)
		snprintf(k->why, sizeof(k->why), "the program failed (exit status %d)",
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	else
		return 0;
	return -ECHILD;
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
	if (active == k && getpid() == owner) {
		active = NULL;
		for (int i = 0; i < 3; i++)
			sigaction(signals[i], &old_action[i], NULL);
	}
}
