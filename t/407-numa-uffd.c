/* SPDX-License-Identifier: MIT */
/* NUMA on the uffd backend, whose service threads fill pages for threads asleep in a fault: they find the faulting thread's CPU, and steer their own allocations to its node. */
#include <errno.h>
#include <numaif.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"
#include "../numa/emm_numa.h"
#include "../lib/uffd.h"

#define PAGE	4096UL
#define MIB	(1UL << 20)

/* ---- uffd_thread_cpu: the CPU a sleeping thread last ran on ---- */

struct sleeper {
	int cpu;			/* pinned here */
	pid_t tid;
	int pinned;			/* 0, or -errno */
	int fds[2];			/* it sleeps in read(fds[0]) */
	pthread_barrier_t ready;
};

static void *sleeper_main(void *arg)
{
	struct sleeper *s = arg;
	cpu_set_t one;
	char c;

	CPU_ZERO(&one);
	CPU_SET(s->cpu, &one);
	s->pinned = sched_setaffinity(0, sizeof(one), &one) < 0 ? -errno
		    : sched_getcpu() == s->cpu ? 0 : -EAGAIN;
	s->tid = (pid_t)syscall(SYS_gettid);
	pthread_barrier_wait(&s->ready);
	if (read(s->fds[0], &c, 1) < 0)
		return NULL;
	return NULL;
}

/* What uffd_thread_cpu says of a thread pinned to cpu and asleep: -errno
 * when it could not be pinned there. */
static int cpu_of_sleeper(int cpu)
{
	struct sleeper s = { .cpu = cpu };
	pthread_t t;
	int got;

	if (pipe(s.fds) < 0 || pthread_barrier_init(&s.ready, NULL, 2))
		bail("pipe or barrier");
	if (pthread_create(&t, NULL, sleeper_main, &s))
		bail("pthread_create");
	pthread_barrier_wait(&s.ready);
	usleep(20000);		/* asleep in read(2) by now, or about to be */
	got = s.pinned ? s.pinned : uffd_thread_cpu(s.tid);
	if (write(s.fds[1], "x", 1) != 1)
		bail("write");
	pthread_join(t, NULL);
	close(s.fds[0]);
	close(s.fds[1]);
	pthread_barrier_destroy(&s.ready);
	return got;
}

static void test_thread_cpu(void)
{
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN), seen = 0, wrong = -1;

	for (int c = 0; c < ncpu && c < 64; c++) {
		int got = cpu_of_sleeper(c);

		if (got == -EINVAL || got == -EAGAIN)
			continue;	/* outside this process's CPU set */
		seen++;
		if (got != c && wrong < 0)
			wrong = c;
	}
	ok(seen > 0 && wrong < 0, "a thread pinned to each of %d CPUs, asleep: uffd_thread_cpu "
	   "names its CPU (first wrong: %d)", seen, wrong);
	is_int(uffd_thread_cpu(0), -1, "no such thread: -1");
}

/* ---- numa_prefer_node: the service thread's own policy ---- */

/* The calling thread's policy: its mode, and in *node the first node of
 * its mask as a logical node (-1: empty). */
static int own_policy(int *node)
{
	const struct numa_topo *tp = numa_topology();
	unsigned long mask[1024 / (8 * sizeof(unsigned long))] = { 0 };
	int mode = -1;

	*node = -1;
	if (get_mempolicy(&mode, mask, 1024 + 1, NULL, 0) < 0)
		return -errno;
	for (int i = tp->nnodes - 1; i >= 0; i--) {
		int os = tp->os_node[i];

		if (mask[os / (8 * sizeof(long))] & 1UL << (os % (8 * sizeof(long))))
			*node = i;
	}
	return mode;
}

struct prefer_result {
	int bind_first;			/* the program's own policy first: MPOL_BIND */
	int err[3];			/* numa_prefer_node(0), (-1), (nnodes) */
	int mode[2], node[2];		/* the policy after the first two */
};

static void *prefer_main(void *arg)
{
	struct prefer_result *r = arg;
	const struct numa_topo *tp = numa_topology();
	unsigned long mask[1024 / (8 * sizeof(unsigned long))] = { 0 };
	int os = tp->os_node[0];

	if (r->bind_first) {
		mask[os / (8 * sizeof(long))] |= 1UL << (os % (8 * sizeof(long)));
		if (set_mempolicy(MPOL_BIND, mask, 1024 + 1) < 0)
			r->bind_first = -errno;
	}
	r->err[0] = numa_prefer_node(0);
	r->mode[0] = own_policy(&r->node[0]);
	r->err[1] = numa_prefer_node(-1);
	r->mode[1] = own_policy(&r->node[1]);
	r->err[2] = numa_prefer_node(tp->nnodes);
	return NULL;
}

/* Each case in a thread of its own: the policy and what numa_prefer_node
 * remembers of it are the thread's. */
static struct prefer_result run_prefer(int bind_first)
{
	struct prefer_result r = { .bind_first = bind_first };
	pthread_t t;

	if (pthread_create(&t, NULL, prefer_main, &r))
		bail("pthread_create");
	pthread_join(t, NULL);
	return r;
}

static void test_prefer(void)
{
	struct prefer_result r;

	if (!numa_topology()->real) {
		skip(8, "the topology is not the kernel's: emm sets no memory policy");
		return;
	}
	r = run_prefer(0);

	is_int(r.err[0], 0, "numa_prefer_node(0): 0");
	ok(r.mode[0] == MPOL_PREFERRED && r.node[0] == 0,
	   "the thread's policy is MPOL_PREFERRED node 0 (mode %d, node %d)", r.mode[0], r.node[0]);
	is_int(r.err[1], 0, "numa_prefer_node(-1): 0");
	is_int(r.mode[1], MPOL_DEFAULT, "the thread's policy is the default again");
	is_int(r.err[2], -EINVAL, "a node beyond the machine's: -EINVAL");

	r = run_prefer(1);
	if (r.bind_first < 0) {
		skip(3, "set_mempolicy(MPOL_BIND) refused");
		return;
	}
	is_int(r.err[0], 0, "a thread the program bound: numa_prefer_node(0) is 0");
	is_int(r.mode[0], MPOL_BIND, "and its MPOL_BIND stays");
	is_int(r.mode[1], MPOL_BIND, "numa_prefer_node(-1) leaves it too");
}

/* ---- end to end: LOCAL pages on the faulting thread's node, by the kernel's account ---- */

struct toucher {
	struct emm *mm;
	char *page;
	int cpu, pinned;
};

static void *toucher_main(void *arg)
{
	struct toucher *t = arg;
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(t->cpu, &one);
	t->pinned = sched_setaffinity(0, sizeof(one), &one) == 0 && sched_getcpu() == t->cpu;
	if (t->pinned)
		*(volatile char *)t->page = 1;
	return NULL;
}

/* The first CPU of logical node n this process may run on, or -1. */
static int cpu_on_node(int n)
{
	const struct numa_topo *tp = numa_topology();
	cpu_set_t s;

	if (sched_getaffinity(0, sizeof(s), &s) < 0)
		return -1;
	for (int c = 0; c < tp->ncpus && c < CPU_SETSIZE; c++)
		if (tp->cpu_node[c] == n && CPU_ISSET(c, &s))
			return c;
	return -1;
}

static void test_real_placement(void)
{
	const struct numa_topo *tp = numa_topology();
	EMM_OPTS(emm_opts, o, .backend = EMM_BACKEND_UFFD, .mem_limit = 64 * MIB,
		 .fault_around = 1);
	struct emm *mm;
	char *r;
	int wrong = -1, tried = 0;

	if (!tp->real || tp->nnodes < 2) {
		skip(1, "placement by the kernel needs a machine with two NUMA nodes");
		return;
	}
	if (emm_open(&o, &mm)) {
		skip(1, "the uffd backend cannot be had here");
		return;
	}
	if (emm_reserve(mm, 2 * MIB, (void **)&r) || emm_map(mm, r, 2 * MIB, NULL))
		bail("cannot reserve and map");
	for (int n = 0; n < tp->nnodes && n < 64; n++) {
		struct toucher t = { .mm = mm, .page = r + (size_t)n * PAGE, .cpu = cpu_on_node(n) };
		void *pages[1] = { t.page };
		pthread_t th;
		int where = -1;

		if (t.cpu < 0 || pthread_create(&th, NULL, toucher_main, &t))
			continue;
		pthread_join(th, NULL);
		if (!t.pinned)
			continue;
		tried++;
		if ((numa_pages_node(pages, 1, &where) || where != n) && wrong < 0)
			wrong = n;
	}
	ok(tried >= 2 && wrong < 0, "a LOCAL page touched from each of %d nodes lies on that node "
	   "(first wrong: %d)", tried, wrong);
	emm_close(mm);
}

int main(void)
{
	plan(2 + 8 + 1);
	test_thread_cpu();
	test_prefer();
	test_real_placement();
	return done_testing();
}
