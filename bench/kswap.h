/* SPDX-License-Identifier: MIT */
/* The kernel's swap as a baseline: a child in a memory cgroup v1 with a swap file of its own. */
#ifndef EMM_BENCH_KSWAP_H
#define EMM_BENCH_KSWAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct bench_kswap {
	char cgroup[256];	/* the cgroup's directory, made here */
	char swapfile[256];	/* the swap file, made and swapon'ed here */
	bool swap_on;
	char why[256];		/* why the baseline cannot run, or why its run failed */
};

/*
 * Make a memory cgroup limited to limit bytes and swapon a swap_size file in
 * $TMPDIR (else /var/tmp). 0 on success; else -errno, with k->why saying
 * what is missing (not root, no cgroup v1 memory controller, no swap on that
 * file system), and nothing left behind.
 */
int bench_kswap_setup(struct bench_kswap *k, uint64_t limit, uint64_t swap_size);

/* Set the cgroup's limit anew (no task in it), and start its peak again. */
int bench_kswap_set_limit(struct bench_kswap *k, uint64_t limit);

/* Reclaim all the cgroup can give back (memory.force_empty), from inside it too. */
int bench_kswap_force_empty(struct bench_kswap *k);

/* Move the calling process into the cgroup: for a child, before it execs. */
int bench_kswap_join(struct bench_kswap *k);

/*
 * The child now running in the cgroup, or 0 when none: on SIGINT, SIGTERM
 * or SIGHUP it is killed and waited for, and everything set up torn down,
 * before the signal takes its course.
 */
void bench_kswap_child(struct bench_kswap *k, pid_t pid);

/* A "name value" counter of the cgroup's file (memory.stat: pgmajfault, swap, ...;
 * memory.oom_control: oom_kill); 0 if absent. */
uint64_t bench_kswap_counter(struct bench_kswap *k, const char *file, const char *name);

/* The cgroup's swap-ins (workingset_refault_anon) and major faults
 * (pgmajfault) so far: a run's are the difference of two readings. */
struct bench_kswap_faults {
	uint64_t swapins, major;
};
struct bench_kswap_faults bench_kswap_faults(struct bench_kswap *k);

/*
 * Run fn(arg) in a child moved into the cgroup; the child's result (up to
 * len bytes written to out by fn) comes back through a pipe. 0 when the
 * child exited with 0, else -errno or -ECHILD.
 */
int bench_kswap_run(struct bench_kswap *k, int (*fn)(void *arg, void *out), void *arg,
		    void *out, size_t len);

/* The cgroup's peak memory usage and swap written, from its own counters. */
uint64_t bench_kswap_max_usage(struct bench_kswap *k);

/* swapoff, remove the file and the cgroup; the signal handlers go. */
void bench_kswap_teardown(struct bench_kswap *k);

#endif /* EMM_BENCH_KSWAP_H */
