/* SPDX-License-Identifier: MIT */
/* The userfaultfd backends: the app view registered with a userfaultfd, faults served by service threads (uffd) or in the faulting thread (uffd-sigbus). */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "numa.h"

/* Debian 12's headers are Linux 6.1's: what came later is probed at run time. */
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON		(1 << 14)
#endif
#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP		((__u64)1 << 1)
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW		_IO(0xAA, 0x00)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY		1
#endif

/*
 * Shmem missing and minor faults (5.14), write-protection of shmem (5.19)
 * and UFFDIO_CONTINUE_MODE_WP (6.6, which came with UFFD_FEATURE_POISON:
 * that bit says the kernel has both): clean pages are mapped without write
 * access so that their first write is seen.
 */
#define UFFD_NEEDED	(UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM | \
			 UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_POISON)
#define UFFD_REG_MODE	(UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR | \
			 UFFDIO_REGISTER_MODE_WP)
#define UFFD_MSGS	16		/* fault messages taken per read */
#define UFFD_SPIN_NS	20000		/* a service thread polls this long before sleeping */
#define UFFD_THREADS_DEFAULT 4

/* A fault-service thread. */
struct uffd_worker {
	struct emm *mm;
	pthread_t thread;
	_Atomic uint64_t serving;	/* odd while it serves a message */
};

struct uffd {
	int fd;
	int backend;			/* EMM_BACKEND_UFFD or EMM_BACKEND_UFFD_SIGBUS */
	pid_t pid;			/* of the process that opened it: a child gets no service */
	int stopfd;			/* eventfd: wakes sleeping service threads to exit */
	_Atomic bool stop;
	unsigned nthreads;
	struct uffd_worker *workers;
};

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
 * A userfaultfd for backend (EMM_BACKEND_UFFD or _UFFD_SIGBUS), handshaken,
 * or -errno: -EPERM (or -EACCES) where the system does not allow it,
 * -EOPNOTSUPP where the kernel lacks what emm needs.
 */
static int uffd_open_fd(int backend)
{
	bool sigbus = backend == EMM_BACKEND_UFFD_SIGBUS;
	uint64_t want = UFFD_NEEDED | (sigbus ? UFFD_FEATURE_SIGBUS : UFFD_FEATURE_THREAD_ID);
	uint64_t have;
	struct uffdio_api api = { .api = UFFD_API, .features = want };
	int fd, err = uffd_features(sigbus, &have);

	if (err == -ENOSYS || err == -EINVAL)
		return -EOPNOTSUPP;
	if (err)
		return err;
	if ((have & want) != want)
		return -EOPNOTSUPP;
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

/* Async-signal-safe. Is this instance served by a userfaultfd? */
static inline struct uffd *uffd_of(const struct rsv *r)
{
	return r->mm->uffd;
}

/*
 * What a service thread mapped while serving one message: the threads
 * waiting there are woken once emm is done with the fault (its counters,
 * LRU and PTE locks), not as soon as the page is mapped. Only service
 * threads wake; on the others these stay empty.
 */
static __thread uintptr_t wake_lo __attribute__((tls_model("initial-exec")));
static __thread uintptr_t wake_hi __attribute__((tls_model("initial-exec")));

/* Async-signal-safe. [s, e) was mapped: wake its waiters later. */
static void wake_later(uintptr_t s, uintptr_t e)
{
	if (!wake_hi || s < wake_lo)
		wake_lo = s;
	if (e > wake_hi)
		wake_hi = e;
}

/* Wake the threads waiting on [s, e) and on what was mapped since the last wake. */
static void uffd_wake(struct uffd *u, uintptr_t s, uintptr_t e)
{
	struct uffdio_range rg;

	wake_later(s, e);
	rg.start = wake_lo;
	rg.len = wake_hi - wake_lo;
	ioctl(u->fd, UFFDIO_WAKE, &rg);
	wake_lo = wake_hi = 0;
}

/* Async-signal-safe. Write-protect [s, e) (wp) or give write access back. */
static int uffd_wp(struct uffd *u, uintptr_t s, uintptr_t e, bool wp)
{
	struct uffdio_writeprotect w = {
		.range = { .start = s, .len = e - s },
		/* Taking write access wakes nobody (the kernel refuses DONTWAKE then). */
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
	};

	if (!wp)
		wake_later(s, e);
	while (ioctl(u->fd, UFFDIO_WRITEPROTECT, &w) < 0)
		if (errno != EAGAIN)
			return -errno;
	return 0;
}

/*
 * Async-signal-safe. Map [s, e) of the app view over the pages physmem
 * holds, without write access if wp, in as few calls as it takes. A page
 * the kernel already maps (EEXIST) is given the write access asked for.
 */
static int uffd_continue(struct uffd *u, uintptr_t s, uintptr_t e, bool wp)
{
	while (s < e) {
		struct uffdio_continue c = {
			.range = { .start = s, .len = e - s },
			.mode = (wp ? UFFDIO_CONTINUE_MODE_WP : 0) | UFFDIO_CONTINUE_MODE_DONTWAKE,
		};
		int err;

		wake_later(s, e);
		if (ioctl(u->fd, UFFDIO_CONTINUE, &c) == 0)
			return 0;
		err = errno;
		s += c.mapped > 0 ? (uintptr_t)c.mapped : 0;
		if (err == EEXIST) {
			uffd_wp(u, s, s + PAGE_SIZE, wp);
			s += PAGE_SIZE;
		} else if (err != EAGAIN) {
			return -err;
		}
	}
	return 0;
}

/*
 * Async-signal-safe. Give [s, e) of the app view the protection prot (the
 * PTE locks of the range held): EMM_PROT_NONE zaps the kernel's page table
 * entries (the data stays in physmem; the next touch is a minor fault);
 * otherwise pages not mapped are mapped, over runs, and write access is
 * taken or given where it changes. The kernel VMA's protection (the emm
 * VMA's) caps what the page gets.
 */
int uffd_protect(struct rsv *r, uintptr_t s, uintptr_t e, int prot)
{
	struct uffd *u = uffd_of(r);
	bool wp = !(prot & EMM_PROT_WRITE);
	uintptr_t run = s;
	int run_kind = -1, err = 0;

	if (prot == EMM_PROT_NONE) {
		if (madvise((void *)s, e - s, MADV_DONTNEED) < 0)
			return -errno;
		app_set_prot(r, s, e, prot);
		return 0;
	}
	/* Never-touched anonymous pages are holes in physmem: give them zeroed
	 * pages there first, as UFFDIO_CONTINUE maps only what physmem holds. */
	if (fallocate(r->mm->memfd, 0, (off_t)(r->pgoff + (s - r->start)), (off_t)(e - s)) < 0)
		return -errno;
	/* Runs of one kind: 0 unmapped, 1 mapped with other write access, 2 as wanted. */
	for (uintptr_t a = s; a <= e && !err; a += PAGE_SIZE) {
		int old = a < e ? pte_prot(atomic_load_explicit(pte_of(r, a), memory_order_relaxed)) : 0;
		int kind = a == e ? -2 : old == EMM_PROT_NONE ? 0 :
			   !(old & EMM_PROT_WRITE) != wp ? 1 : 2;

		if (kind == run_kind)
			continue;
		if (run_kind == 0)
			err = uffd_continue(u, run, a, wp);
		else if (run_kind == 1)
			err = uffd_wp(u, run, a, wp);
		run = a;
		run_kind = kind;
	}
	if (err && wp) {
		/* Where the range is not registered for write-protection (a
		 * huge extent), no access is what keeps a write from going unseen. */
		if (madvise((void *)s, e - s, MADV_DONTNEED) < 0)
			return -errno;
		prot = EMM_PROT_NONE;
		err = 0;
	}
	if (!err)
		app_set_prot(r, s, e, prot);
	return err;
}

/* Async-signal-safe. Does a page mapped with prot allow the access? */
static bool uffd_allows(int prot, int access)
{
	return (access & EMM_PROT_WRITE) ? (prot & EMM_PROT_WRITE) != 0 : prot != EMM_PROT_NONE;
}

/*
 * Async-signal-safe. A fault on a page emm maps already: another thread's
 * fault mapped it meanwhile, or the kernel took the mapping away on its own
 * (its reclaim, a migration). Map it again. false: the page is not mapped
 * for this access, and handle_mm_fault must see it.
 */
static bool uffd_remap(struct rsv *r, uintptr_t addr, int access)
{
	_Atomic uint64_t *p = pte_of(r, addr);
	uint64_t v = atomic_load_explicit(p, memory_order_relaxed);
	bool mapped;

	if (pte_state(v) != PTE_RESIDENT || !uffd_allows(pte_prot(v), access))
		return false;
	v = pte_lock(p);
	mapped = pte_state(v) == PTE_RESIDENT && uffd_allows(pte_prot(v), access);
	if (mapped)
		uffd_continue(uffd_of(r), addr, addr + PAGE_SIZE, !(pte_prot(v) & EMM_PROT_WRITE));
	pte_unlock(p, v);
	return mapped;
}

/*
 * Async-signal-safe. Serve one fault at addr in r (inside an srcu read
 * section, no lock held). FAULT_DONE also when there is nothing to do here:
 * no VMA, or one that forbids the access (emm_unmap or emm_protect is
 * changing it); the retried access then meets the kernel VMA's protection.
 */
int uffd_fault(struct rsv *r, uintptr_t addr, int access)
{
	const struct emm_vma *vma = find_vma(r, addr);

	addr = ALIGN_DOWN(addr, PAGE_SIZE);
	if (!vma || vma_access_error(vma, access) || uffd_remap(r, addr, access))
		return FAULT_DONE;
	return handle_mm_fault(r, addr, access, vma);
}

/* Async-signal-safe. Is this SIGBUS one for emm to serve in the faulting
 * thread (EMM_BACKEND_UFFD_SIGBUS, a fault the userfaultfd turned into
 * SIGBUS, in the process that opened the instance)? */
bool uffd_sigbus_ours(const struct rsv *r, const siginfo_t *si)
{
	struct uffd *u = uffd_of(r);

	return u && u->backend == EMM_BACKEND_UFFD_SIGBUS && si->si_code == BUS_ADRERR &&
	       getpid() == u->pid;
}

/* Async-signal-safe. Must a SIGSEGV at r be left alone to chain? A forked
 * child of a userfaultfd instance has no app view (emm(7), fork). */
bool uffd_foreign(const struct rsv *r)
{
	struct uffd *u = uffd_of(r);

	return u && getpid() != u->pid;
}

/* A fault emm could not serve (its data unreadable): SIGBUS to the thread
 * that made it, marked as emm's, at the address. Only the kernel may send
 * a fault's si_code (BUS_ADRERR) to another thread: this one is SI_QUEUE. */
static void uffd_sigbus(struct uffd *u, pid_t tid, uintptr_t addr)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_signo = SIGBUS;
	si.si_code = SI_QUEUE;
	si.si_errno = EMM_SIGBUS_MARK;
	si.si_addr = (void *)addr;
	syscall(SYS_rt_tgsigqueueinfo, u->pid, tid, SIGBUS, &si);
}

/* The CPU thread tid last ran on (it sleeps in its fault now): field 39 of
 * its stat. Only asked on NUMA machines, where LOCAL means its node. */
static int thread_cpu(pid_t tid)
{
	char path[48], buf[512], *p;
	ssize_t n;
	int fd, i;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strrchr(buf, ')');
	for (i = 3; p && i <= 39; i++)
		p = strchr(p + 1, ' ');
	return p ? atoi(p + 1) : -1;
}

/* A service thread serves one message: a page fault of a thread of this
 * process, in user or kernel mode, which sleeps until woken. */
static void uffd_serve(struct emm *mm, const struct uffd_msg *m, _Atomic uint64_t *serving)
{
	struct uffd *u = mm->uffd;
	uintptr_t addr = (uintptr_t)m->arg.pagefault.address;
	int access = (m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) ? EMM_PROT_WRITE
									  : EMM_PROT_READ;
	int idx, ret = FAULT_DONE;
	struct rsv *r;

	if (m->event != UFFD_EVENT_PAGEFAULT)
		return;
	atomic_fetch_add_explicit(serving, 1, memory_order_relaxed);
	if (mm->lru->nnodes > 1)
		numa_set_fault_cpu(thread_cpu((pid_t)m->arg.pagefault.feat.ptid));
	idx = srcu_read_lock();
	r = rsv_lookup(addr);
	if (r && r->mm == mm)
		ret = uffd_fault(r, addr, access);
	srcu_read_unlock(idx);
	if (ret == FAULT_SIGBUS)
		uffd_sigbus(u, (pid_t)m->arg.pagefault.feat.ptid, addr);
	addr = ALIGN_DOWN(addr, PAGE_SIZE);
	uffd_wake(u, addr, addr + PAGE_SIZE);
	/* Release: the fault's counters are written before it reads as served. */
	atomic_fetch_add_explicit(serving, 1, memory_order_release);
}

/*
 * Wait until every message a service thread was serving has been served.
 * A faulting thread may resume a little before that (unregistering a range
 * for a huge page wakes it): emm_stats waits here, so that what a thread
 * reads counts the faults it has taken. Waits for one message per thread.
 */
void uffd_quiesce(struct emm *mm)
{
	struct uffd *u = mm->uffd;

	for (unsigned i = 0; u && i < u->nthreads; i++) {
		/* Acquire: pairs with the release at the end of uffd_serve. */
		_Atomic uint64_t *serving = &u->workers[i].serving;
		uint64_t s = atomic_load_explicit(serving, memory_order_acquire);

		while ((s & 1) && atomic_load_explicit(serving, memory_order_acquire) == s)
			sched_yield();
	}
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sleep until the userfaultfd has messages or the instance closes. */
static void uffd_sleep(struct uffd *u)
{
	struct pollfd pfd[2] = { { .fd = u->fd, .events = POLLIN },
				 { .fd = u->stopfd, .events = POLLIN } };

	poll(pfd, 2, -1);
}

/*
 * A fault-service thread: takes every pending message in one read, serves
 * them, and polls a little while before it sleeps, since waking a sleeping
 * thread costs more than the fault itself.
 */
static void *uffd_thread(void *arg)
{
	struct uffd_worker *w = arg;
	struct emm *mm = w->mm;
	struct uffd *u = mm->uffd;
	struct uffd_msg msg[UFFD_MSGS];
	uint64_t idle_since = 0;
	sigset_t old;

	sig_block(&old);
	while (!atomic_load_explicit(&u->stop, memory_order_relaxed)) {
		ssize_t n = read(u->fd, msg, sizeof(msg));

		if (n > 0) {
			for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++)
				uffd_serve(mm, &msg[i], &w->serving);
			idle_since = 0;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			break;
		if (!idle_since)
			idle_since = now_ns();
		else if (now_ns() - idle_since > UFFD_SPIN_NS) {
			uffd_sleep(u);
			idle_since = 0;
		}
	}
	return NULL;
}

static unsigned uffd_nthreads(const struct emm *mm)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (mm->cfg.uffd_threads)
		return mm->cfg.uffd_threads;
	return (unsigned)MIN(MAX(cpus, 1), UFFD_THREADS_DEFAULT);
}

static int uffd_start_threads(struct emm *mm)
{
	struct uffd *u = mm->uffd;
	unsigned n = uffd_nthreads(mm);

	u->stopfd = eventfd(0, EFD_CLOEXEC);
	u->workers = calloc(n, sizeof(*u->workers));
	if (u->stopfd < 0 || !u->workers)
		return -ENOMEM;
	for (; u->nthreads < n; u->nthreads++) {
		struct uffd_worker *w = &u->workers[u->nthreads];
		int err;

		w->mm = mm;
		err = pthread_create(&w->thread, NULL, uffd_thread, w);

		if (err)
			return -err;
	}
	return 0;
}

/* Stop the service threads, close the userfaultfd. */
void uffd_close(struct emm *mm)
{
	struct uffd *u = mm->uffd;
	uint64_t one = 1;

	if (!u)
		return;
	atomic_store_explicit(&u->stop, true, memory_order_relaxed);
	if (u->stopfd >= 0 && write(u->stopfd, &one, sizeof(one)) < 0)
		emm_warn("cannot wake the fault-service threads");
	for (unsigned i = 0; i < u->nthreads; i++)
		pthread_join(u->workers[i].thread, NULL);
	free(u->workers);
	if (u->stopfd >= 0)
		close(u->stopfd);
	close(u->fd);
	free(u);
	mm->uffd = NULL;
}

/* Open backend (EMM_BACKEND_UFFD or _UFFD_SIGBUS) for mm. */
static int uffd_open_one(struct emm *mm, int backend)
{
	struct uffd *u;
	int fd = uffd_open_fd(backend), err = 0;

	if (fd < 0)
		return fd;
	u = calloc(1, sizeof(*u));
	if (!u) {
		close(fd);
		return -ENOMEM;
	}
	u->fd = fd;
	u->backend = backend;
	u->pid = getpid();
	u->stopfd = -1;
	mm->uffd = u;
	if (backend == EMM_BACKEND_UFFD)
		err = uffd_start_threads(mm);
	if (err)
		uffd_close(mm);
	return err;
}

static const char *backend_name(int backend)
{
	static const char *const names[] = { "auto", "signal", "uffd", "uffd-sigbus" };

	return names[backend];
}

static const char *uffd_why(int err)
{
	return err == -EOPNOTSUPP ? "the kernel lacks a userfaultfd feature emm needs"
	       : err == -EPERM || err == -EACCES ? "not allowed (privilege, /dev/userfaultfd, vm.unprivileged_userfaultfd, seccomp)"
	       : strerror(-err);
}

/*
 * Settle mm->cfg.backend: what the caller asked for, or for AUTO the first
 * of UFFD, UFFD_SIGBUS, SIGNAL that this process may have. An explicit
 * request the system refuses fails (-EOPNOTSUPP, -EPERM).
 */
int uffd_open(struct emm *mm)
{
	static const int order[] = { EMM_BACKEND_UFFD, EMM_BACKEND_UFFD_SIGBUS };
	int want = mm->cfg.backend, err;

	if (want == EMM_BACKEND_SIGNAL)
		return 0;
	if (want != EMM_BACKEND_AUTO) {
		err = uffd_open_one(mm, want);
		if (err)
			emm_log(mm, "backend %s: %s", backend_name(want), uffd_why(err));
		return err;
	}
	for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
		err = uffd_open_one(mm, order[i]);
		if (!err) {
			mm->cfg.backend = order[i];
			return 0;
		}
		emm_log(mm, "backend auto: not %s: %s", backend_name(order[i]), uffd_why(err));
	}
	mm->cfg.backend = EMM_BACKEND_SIGNAL;
	return 0;
}

/* The app view of a new reservation: registered, and kept from children. */
int uffd_rsv_init(struct rsv *r)
{
	struct uffd *u = uffd_of(r);
	struct uffdio_register reg = {
		.range = { .start = r->start, .len = r->len }, .mode = UFFD_REG_MODE,
	};

	if (!u)
		return 0;
	/* A child has no fault service: it must not map the memfd over holes. */
	if (madvise((void *)r->start, r->len, MADV_DONTFORK) < 0 ||
	    madvise(r->alias, r->len, MADV_DONTFORK) < 0)
		return -errno;
	if (ioctl(u->fd, UFFDIO_REGISTER, &reg) < 0)
		return errno == EINVAL ? -EOPNOTSUPP : -errno;
	return 0;
}

/* Async-signal-safe. (Re-)register [s, e) of the app view in mode. */
static int uffd_register(struct uffd *u, uintptr_t s, uintptr_t e, uint64_t mode)
{
	struct uffdio_register reg = { .range = { .start = s, .len = e - s }, .mode = mode };

	return ioctl(u->fd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

/*
 * Async-signal-safe. MADV_COLLAPSE refuses a range registered for
 * write-protection: while the extent at a is huge it is registered without
 * it (it is mapped whole, so nothing faults in between), at the cost of up
 * to two kernel VMAs. All its PTE locks are held.
 */
int uffd_huge_begin(struct rsv *r, uintptr_t a)
{
	struct uffd *u = uffd_of(r);
	struct uffdio_range rg = { .start = a, .len = PMD_SIZE };

	if (!u)
		return 0;
	if (ioctl(u->fd, UFFDIO_UNREGISTER, &rg) < 0)
		return -errno;
	if (uffd_register(u, a, a + PMD_SIZE, UFFD_REG_MODE & ~UFFDIO_REGISTER_MODE_WP) < 0)
		return uffd_register(u, a, a + PMD_SIZE, UFFD_REG_MODE) ? -EIO : -EAGAIN;
	atomic_fetch_add_explicit(&r->kvmas, 2, memory_order_relaxed);
	count_events(r->mm, kernel_vmas, 2);
	kvma_global_add(2);
	return 0;
}

/* Async-signal-safe. The extent at a is 512 pages again (or never became
 * huge): write-protection comes back. All its PTE locks are held. */
void uffd_huge_end(struct rsv *r, uintptr_t a)
{
	struct uffd *u = uffd_of(r);

	if (!u || uffd_register(u, a, a + PMD_SIZE, UFFD_REG_MODE))
		return;
	atomic_fetch_sub_explicit(&r->kvmas, 2, memory_order_relaxed);
	count_events(r->mm, kernel_vmas, -2);
	kvma_global_add(-2);
}

/* Kernel VMAs the app view of r spans: one per run of equal protection,
 * the gaps between emm VMAs having none. mm->lock held. */
static long uffd_count_kvmas(struct rsv *r)
{
	struct vma_table *t = atomic_load_explicit(&r->vmas, memory_order_relaxed);
	uintptr_t at = r->start;
	int last = -1;
	long n = 0;

	for (size_t i = 0; t && i < t->nr; i++) {
		int p = prot_to_sys(target_prot(&t->v[i]));

		if (t->v[i].start > at) {
			n += last != PROT_NONE;
			last = PROT_NONE;
		}
		n += p != last;
		last = p;
		at = t->v[i].end;
	}
	if (at < r->start + r->len)
		n += last != PROT_NONE;
	return n;
}

/* The kernel protection of one piece of [s, e): the VMA's, none in a gap. */
static int vma_sync_one(struct rsv *r, const struct emm_vma *v, void *arg)
{
	uintptr_t *at = arg;

	if (v->start > *at && mprotect((void *)*at, v->start - *at, PROT_NONE) < 0)
		return -errno;
	*at = v->end;
	return mprotect((void *)v->start, v->end - v->start,
			prot_to_sys(target_prot(v))) < 0 ? -errno : 0;
}

/*
 * The emm VMAs of [s, e) changed (emm_map, emm_protect, emm_unmap): on the
 * uffd backends the kernel VMA carries each one's protection, so accesses
 * a VMA forbids arrive as SIGSEGV and reach its trap callback. mm->lock
 * held; a no-op on the signal backend, whose pages carry it.
 */
int backend_vma_sync(struct rsv *r, uintptr_t s, uintptr_t e)
{
	uintptr_t at = s;
	long n, delta;
	int err;

	if (!uffd_of(r))
		return 0;
	err = walk_vmas(r, s, e, vma_sync_one, &at);
	if (!err && at < e && mprotect((void *)at, e - at, PROT_NONE) < 0)
		err = -errno;
	n = uffd_count_kvmas(r);
	delta = n - atomic_exchange_explicit(&r->kvmas, n, memory_order_relaxed);
	count_events(r->mm, kernel_vmas, delta);
	kvma_global_add(delta);
	return err;
}

EMM_API int emm_backend(struct emm *mm)
{
	return mm ? mm->cfg.backend : -EINVAL;
}

const char *backend_name_of(const struct emm *mm)
{
	return backend_name(mm->cfg.backend);
}
