/* SPDX-License-Identifier: MIT */
/*
 * The uffd backend's fault-service threads: each reads its userfaultfd's
 * messages and serves each page fault through the core (do_user_fault),
 * while the thread that faulted sleeps, in user or kernel mode. The page
 * tables themselves are the backend's (backend-uffd.c).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "backend.h"
#include "emm_numa.h"
#include "fault.h"
#include "futex.h"
#include "kswapd.h"
#include "lru.h"
#include "physmem.h"
#include "profile.h"
#include "pte.h"
#include "uffd.h"
#include "uffd_fail.h"
#include "uffd_service.h"
#include "util.h"

#define UFFD_MSGS	16		/* fault messages taken per read */
#define UFFD_SPIN_NS	20000		/* a service thread polls this long before sleeping,
				   after messages served faster than this each */
#define UFFD_THREADS_MIN 4		/* by default: at least these, */
#define UFFD_THREADS_CPUS 16		/* and one a CPU up to these */
#define UFFD_PIN_CPUS	4		/* uffd_pin: on at most these CPUs */

/* A fault-service thread. */
struct uffd_worker {
	struct emm *mm;
	struct uffd_service *u;
	pthread_t thread;
	_Atomic uint64_t serving;	/* odd while it serves a message */
	int epfd;			/* its epoll: the userfaultfd, exclusive; the stop */
	int cpu;			/* the CPU it runs on (uffd_pin), or -1: any */
	bool extra;			/* pinned where one before it is: polls only when needed */
	struct reclaim *rc;		/* its direct reclaim's work space */
};

struct uffd_service {
	int fd;				/* the userfaultfd, the backend's */
	int stopfd;			/* eventfd: wakes sleeping service threads to exit */
	_Atomic bool stop;
	unsigned nthreads;		/* started */
	unsigned nworkers;		/* of workers[] */
	unsigned pollers;		/* pinned: threads that always poll, one a CPU (uffd_pin) */
	bool extras;			/* pinned: and threads beyond them */
	_Atomic unsigned busy;		/* threads serving messages now */
	_Atomic uint32_t extra_gen;	/* futex: extras wait on it until all pollers are busy */
	struct uffd_worker *workers;
};

/*
 * A fault on a page emm maps already for this access: another thread's
 * fault mapped it meanwhile, or the kernel retried a fault it had woken
 * early (unregistering a range wakes its waiters), or the kernel dropped
 * the mapping. Map it again, without counting a fault. false: the page is
 * not mapped for this access, and the core must see the fault.
 */
static bool uffd_remap(struct rsv *r, uintptr_t addr, int access)
{
	_Atomic uint64_t *p = pte_of(r, addr);
	uint64_t v = atomic_load_explicit(p, memory_order_relaxed);
	int prot = pte_prot(v);
	bool mapped;

	if (pte_state(v) != PTE_RESIDENT || prot == EMM_PROT_NONE ||
	    ((access & EMM_PROT_WRITE) && !(prot & EMM_PROT_WRITE)))
		return false;
	v = pte_lock(p);
	prot = pte_prot(v);
	mapped = pte_state(v) == PTE_RESIDENT && prot != EMM_PROT_NONE &&
		 (!(access & EMM_PROT_WRITE) || (prot & EMM_PROT_WRITE));
	if (mapped)	/* which may mark it dirty (the backend's harvest) */
		backend_grant(r, addr, addr + PAGE_SIZE, prot, BACKEND_FORCE | BACKEND_REMAP);
	pte_unlock(p, pte_locked_val(p));
	return mapped;
}

/*
 * On a machine of several nodes, LOCAL means the node of the thread that
 * faulted, asleep now, not this service thread's: emm counts the page
 * there (numa_set_fault_cpu), and the pages this thread allocates for it,
 * zeroed by fallocate or read in through the alias view, are taken there.
 * A CPU that cannot be told leaves both to this thread's own node.
 */
static void uffd_follow_node(pid_t tid)
{
	int cpu = uffd_thread_cpu(tid);

	numa_set_fault_cpu(cpu);
	numa_prefer_node(cpu < 0 ? -1 : numa_cpu_node(cpu));
}

/*
 * A service thread serves one message: a page fault of a thread of this
 * process, in user or kernel mode, which sleeps until woken. No VMA, or one
 * that forbids the access (emm_unmap or emm_protect is changing it): the
 * thread is woken and its access meets the kernel VMA's protection.
 */
static void uffd_serve(struct emm *mm, struct uffd_service *u, const struct uffd_msg *m,
		       _Atomic uint64_t *serving)
{
	uintptr_t addr = (uintptr_t)m->arg.pagefault.address;
	int access = (m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) ? EMM_PROT_WRITE
									  : EMM_PROT_READ;
	const struct emm_vma *vma;
	int idx, ret = FAULT_DONE;
	struct rsv *r;

	if (m->event != UFFD_EVENT_PAGEFAULT)
		return;
	atomic_fetch_add_explicit(serving, 1, memory_order_relaxed);
	if (mm->lru->nnodes > 1)
		uffd_follow_node((pid_t)m->arg.pagefault.feat.ptid);
	r = rsv_enter(addr, &idx);
	if (r && r->mm == mm && !uffd_remap(r, ALIGN_DOWN(addr, PAGE_SIZE), access)) {
		profile_fault(r, addr, NULL);
		ret = do_user_fault(r, addr, access, &vma);
	}
	if (ret == FAULT_SIGBUS)
		uffd_fail(u->fd, r, (pid_t)m->arg.pagefault.feat.ptid, addr, access);
	if (r)
		rsv_leave(r, idx);
	addr = ALIGN_DOWN(addr, PAGE_SIZE);
	uffd_wake(u->fd, addr, addr + PAGE_SIZE);
	/* Release: the fault's counters are written before it reads as served. */
	atomic_fetch_add_explicit(serving, 1, memory_order_release);
}

/*
 * Wait until every message a service thread was serving has been served.
 * A faulting thread may resume a little before that (unregistering a range
 * for a huge page wakes it): emm_stats waits here, so that what a thread
 * reads counts the faults it has taken. Waits for one message per thread.
 */
void uffd_service_quiesce(struct uffd_service *u)
{
	for (unsigned i = 0; u && i < u->nthreads; i++) {
		_Atomic uint64_t *serving = &u->workers[i].serving;
		/* Acquire: pairs with the release at the end of uffd_serve. */
		uint64_t s = atomic_load_explicit(serving, memory_order_acquire);

		while ((s & 1) && atomic_load_explicit(serving, memory_order_acquire) == s)
			sched_yield();
	}
}

/*
 * Sleep until the userfaultfd has messages or the instance closes. Each
 * thread waits on an epoll of its own that holds the userfaultfd with
 * EPOLLEXCLUSIVE: a new fault wakes one sleeping thread, and the next
 * fault the next one, where poll(2) woke every sleeping thread for each
 * (all but one to find nothing to read). Measured on a 2-vCPU VM, a
 * page revoked (EMM_ADV_COLD) and read again, four service threads:
 * 29.0 to 38.1 us a minor fault (median 31) against 37.8 to 40.1 with
 * poll(2); with two, as fast either way. poll(2) where no epoll could
 * be made, and where the threads are pinned (uffd_pin): there the one a
 * fault must wake is the one on the faulting thread's CPU, which the
 * exclusive wake does not choose.
 */
static void uffd_sleep(struct uffd_service *u, struct uffd_worker *w)
{
	struct pollfd pfd[2] = { { .fd = u->fd, .events = POLLIN },
				 { .fd = u->stopfd, .events = POLLIN } };
	struct epoll_event ev[2];

	if (w->epfd < 0 || epoll_wait(w->epfd, ev, 2, -1) < 0)
		poll(pfd, 2, -1);
}

/* The epoll uffd_sleep waits on, or -1 (then it polls). */
static int uffd_epoll(const struct uffd_service *u)
{
	struct epoll_event fault = { .events = EPOLLIN | EPOLLEXCLUSIVE };
	struct epoll_event stop = { .events = EPOLLIN };
	int epfd = epoll_create1(EPOLL_CLOEXEC);

	if (epfd < 0)
		return -1;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, u->fd, &fault) < 0 ||
	    epoll_ctl(epfd, EPOLL_CTL_ADD, u->stopfd, &stop) < 0) {
		close(epfd);
		return -1;
	}
	return epfd;
}

/*
 * Pinned (uffd_pin), one thread a CPU polls the userfaultfd, and a fault
 * wakes each of those that sleep; the others of a CPU, the extras, sleep
 * on a futex until every poller is serving, then poll too, so that as
 * many faults as threads are still served side by side. Each thread that
 * polled woke for every fault, to find nothing to read but one: Python
 * under a budget on a 2-vCPU VM woke the four service threads 124,800
 * times for its 32,900 faults, 2.7 s of their CPU time in a 4.6 s run.
 * busy counts the threads serving; the one that makes every poller busy
 * wakes an extra (which, serving in its turn, may wake the next).
 */
static void uffd_busy(struct uffd_service *u)
{
	unsigned b = atomic_fetch_add_explicit(&u->busy, 1, memory_order_relaxed) + 1;

	if (u->extras && b >= u->pollers) {
		atomic_fetch_add_explicit(&u->extra_gen, 1, memory_order_release);
		futex_wake(&u->extra_gen, 1);
	}
}

/* An extra whose pollers are not all busy sleeps until they are (or the
 * service stops). true: it slept, and must look again. */
static bool uffd_extra_idle(struct uffd_service *u)
{
	uint32_t gen = atomic_load_explicit(&u->extra_gen, memory_order_acquire);

	if (atomic_load_explicit(&u->busy, memory_order_relaxed) >= u->pollers ||
	    atomic_load_explicit(&u->stop, memory_order_relaxed))
		return false;
	futex_wait(&u->extra_gen, gen, -1);
	return true;
}

/*
 * A fault-service thread: takes every pending message in one read, serves
 * them, and when they were quick to serve (no I/O, cheap page tables),
 * polls a little while before it sleeps: waking a sleeping thread costs
 * more than a minor fault, and the thread it just woke may fault again at
 * once. After slower ones (I/O, or page tables that trap to a hypervisor)
 * it sleeps at once: the next fault is far off, and on a VM a vCPU that
 * polls takes time from the one the faulting thread runs on (measured on
 * a 2-vCPU VM against polling after every message: random swap-ins 11%
 * faster, back-to-back minor faults no slower). A pinned thread never
 * polls: it shares its CPU with the thread it served, which its polling
 * would keep from running (Python under a budget, uffd_pin's measure:
 * 1.93 to 2.00 s against 2.32 to 2.42 with the poll). A pager's fill
 * still runs on the pager threads, which this thread waits for.
 */
static void *uffd_thread(void *arg)
{
	struct uffd_worker *w = arg;
	struct uffd_service *u = w->u;
	struct uffd_msg msg[UFFD_MSGS];
	uint64_t idle_since = 0;
	bool quick = false;
	sigset_t old;

	sig_block(&old);
	reclaim_thread_attach(w->rc);
	if (w->cpu >= 0) {
		cpu_set_t one;

		CPU_ZERO(&one);
		CPU_SET(w->cpu, &one);
		if (sched_setaffinity(0, sizeof(one), &one) < 0)
			w->cpu = -1;
	}
	while (!atomic_load_explicit(&u->stop, memory_order_relaxed)) {
		ssize_t n = read(u->fd, msg, sizeof(msg));

		if (n > 0) {
			ssize_t nmsg = n / (ssize_t)sizeof(msg[0]);
			uint64_t t = now_ns();

			uffd_busy(u);
			for (ssize_t i = 0; i < nmsg; i++)
				uffd_serve(w->mm, u, &msg[i], &w->serving);
			atomic_fetch_sub_explicit(&u->busy, 1, memory_order_relaxed);
			idle_since = now_ns();
			quick = w->cpu < 0 && idle_since - t < UFFD_SPIN_NS * (uint64_t)nmsg;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			break;
		if (w->extra && uffd_extra_idle(u))
			continue;
		if (!quick || !idle_since || now_ns() - idle_since > UFFD_SPIN_NS) {
			uffd_sleep(u, w);
			idle_since = 0;
			quick = false;
		}
	}
	return NULL;
}

/*
 * How many service threads. Not fewer than the CPUs' count would suggest:
 * a thread that serves a major fault sleeps on the device, and each fault
 * another thread takes meanwhile is one more read in flight, as the kernel
 * has one for each thread that faults. Measured on a 2-vCPU VM, four
 * threads reading 1 GiB under 256 MiB at random on uffd (out-of-core
 * --threads 4): two service threads 0.72 to 0.80x the kernel's swap in
 * seven runs, four 0.83 to 1.11x (median 0.93) in six, with less CPU.
 */
static unsigned uffd_nthreads(const struct emm *mm)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (mm->cfg.uffd_threads)
		return mm->cfg.uffd_threads;
	return (unsigned)MAX(MIN(cpus, UFFD_THREADS_CPUS), UFFD_THREADS_MIN);
}

/*
 * Pin the service threads, one to each CPU this process may run on, in
 * turn, where it may run on 2 to UFFD_PIN_CPUS of them: a fault then wakes
 * the first thread of each CPU that sleeps on the userfaultfd (uffd_sleep;
 * the others are extras, uffd_busy), the one on the faulting thread's CPU
 * among them, which runs as soon as the faulting thread sleeps. Unpinned,
 * the thread the kernel wakes runs where it last slept, the other CPU
 * when that one is idle: on a VM, waking an idle vCPU is what costs.
 * Measured on a 2-vCPU VM (Linux 6.18, uffd): the faulting
 * thread waited 30 us on average from its wake-up to running, the service
 * thread 24, 1.6 s of a 2.9 s run of Python under a budget (a dict of
 * 300,000 keys sorted, 44 MiB of its 88 MiB peak: 32,000 faults). Pinned:
 * that run 2.6 to 3.2 s -> 1.8 to 2.0 s; emm-bench out-of-core, one
 * thread, random reads 9,756 -> 11,956 a second, random writes 8,789 ->
 * 10,833, the first touch of 4 GiB under 1 GiB 747 -> 1,007 MiB/s; four
 * threads, random reads 28,093 -> 28,929, random writes 19,906 -> 23,339.
 * On more CPUs each fault would wake more threads than it gains: as
 * before, exclusive wakes, threads unpinned.
 */
static void uffd_pin(struct uffd_service *u)
{
	cpu_set_t set;
	int cpus, k = -1;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return;
	cpus = CPU_COUNT(&set);
	if (cpus < 2 || cpus > UFFD_PIN_CPUS)
		return;
	for (unsigned i = 0; i < u->nworkers; i++) {
		do
			k = (k + 1) % CPU_SETSIZE;
		while (!CPU_ISSET(k, &set));
		u->workers[i].cpu = k;
		u->workers[i].extra = i >= (unsigned)cpus;
	}
	u->pollers = MIN(u->nworkers, (unsigned)cpus);
	u->extras = u->nworkers > u->pollers;
}

/* Start the service threads of the userfaultfd fd; *out is what
 * uffd_service_stop must be given, whether this failed or not. */
int uffd_service_start(struct emm *mm, int fd, struct uffd_service **out)
{
	struct uffd_service *u = calloc(1, sizeof(*u));
	unsigned n = uffd_nthreads(mm);

	*out = u;
	if (!u)
		return -ENOMEM;
	u->fd = fd;
	u->stopfd = eventfd(0, EFD_CLOEXEC);
	u->workers = calloc(n, sizeof(*u->workers));
	u->nworkers = u->workers ? n : 0;
	for (unsigned i = 0; i < u->nworkers; i++)
		u->workers[i].epfd = u->workers[i].cpu = -1;
	if (u->stopfd < 0 || !u->workers)
		return -ENOMEM;
	uffd_pin(u);
	for (; u->nthreads < n; u->nthreads++) {
		struct uffd_worker *w = &u->workers[u->nthreads];
		int err;

		w->mm = mm;
		w->u = u;
		w->epfd = w->cpu < 0 ? uffd_epoll(u) : -1;
		w->rc = reclaim_space_alloc();
		if (!w->rc)
			return -ENOMEM;
		err = thread_start(&w->thread, "emm-uffd", (int)u->nthreads, uffd_thread, w);
		if (err)
			return err;
	}
	return 0;
}

/* Stop the service threads; the userfaultfd stays open. */
void uffd_service_stop(struct uffd_service *u)
{
	uint64_t one = 1;

	if (!u)
		return;
	atomic_store_explicit(&u->stop, true, memory_order_relaxed);
	if (u->stopfd >= 0 && write(u->stopfd, &one, sizeof(one)) < 0)
		emm_warn("cannot wake the fault-service threads");
	atomic_fetch_add_explicit(&u->extra_gen, 1, memory_order_release);
	futex_wake(&u->extra_gen, INT32_MAX);
	for (unsigned i = 0; i < u->nthreads; i++)
		pthread_join(u->workers[i].thread, NULL);
	for (unsigned i = 0; i < u->nworkers; i++) {
		free(u->workers[i].rc);	/* and that of a thread that failed to start */
		if (u->workers[i].epfd >= 0)
			close(u->workers[i].epfd);
	}
	free(u->workers);
	if (u->stopfd >= 0)
		close(u->stopfd);
	free(u);
}
