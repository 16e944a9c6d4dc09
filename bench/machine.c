/* SPDX-License-Identifier: MIT */
/* What the machine itself charges for what a pager does: mapping a page,
 * making a huge page, delivering a fault as a signal, revoking a range. */
#include "bench.h"
#include "machine.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY	1
#endif
#ifndef UFFD_FEATURE_MINOR_SHMEM
#define UFFD_FEATURE_MINOR_SHMEM	(1 << 10)
#endif
#ifndef UFFDIO_REGISTER_MODE_MINOR
#define UFFDIO_REGISTER_MODE_MINOR	((__u64)1 << 2)
#endif

/*
 * What a page newly mapped costs at its first access, in ns: a memfd's
 * pages made resident and mapped (MADV_POPULATE_WRITE or _READ), then each
 * read once, through a writable mapping or a read-only one; with huge,
 * every 2 MiB of it made one huge page (MADV_COLLAPSE) and mapped by one
 * PMD. Next to nothing on bare metal or with nested paging; on a VM that
 * shadows the guest's page tables, microseconds, the same for the
 * kernel's swap, and on some several times more for a writable page than
 * for a read-only one, but not for a page mapped by a PMD. A thread that
 * touches every page a pager maps for it cannot go faster than one page
 * per this, whatever the pager does: a written page is mapped writable, a
 * page only read need not be. 0 when it cannot be measured (no huge page
 * to be had).
 */
#define MAP_COST_PAGES	8192

static bool collapse_all(char *p, size_t len)
{
	for (size_t o = 0; o < len; o += PMD_SIZE)
		if (madvise(p + o, PMD_SIZE, MADV_COLLAPSE) < 0)
			return false;
	return true;
}

static double map_cost_ns(bool writable, bool huge)
{
	size_t len = MAP_COST_PAGES * PAGE_SIZE;
	int fd = memfd_create("emm-bench-map-cost", MFD_CLOEXEC);
	int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
	char *raw = MAP_FAILED, *p = MAP_FAILED;
	uint64_t t0, ns = 0;

	/* An aligned window of a larger reservation, so each extent can be one PMD. */
	if (fd >= 0 && ftruncate(fd, (off_t)len) == 0 && fallocate(fd, 0, 0, (off_t)len) == 0)
		raw = mmap(NULL, len + PMD_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw != MAP_FAILED)
		p = mmap((char *)(((uintptr_t)raw + PMD_SIZE - 1) & ~(PMD_SIZE - 1)), len, prot,
			 MAP_SHARED | MAP_FIXED, fd, 0);
	if (p != MAP_FAILED && huge && !collapse_all(p, len))
		p = MAP_FAILED;
	/* Collapsed, the extents are mapped whole already: map them afresh. */
	if (p != MAP_FAILED && huge)
		p = mmap(p, len, prot, MAP_SHARED | MAP_FIXED, fd, 0);
	if (p != MAP_FAILED &&
	    madvise(p, len, writable ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) == 0) {
		volatile char *v = p;

		t0 = bench_now_ns();
		for (size_t i = 0; i < MAP_COST_PAGES; i++)
			(void)v[i * PAGE_SIZE];
		ns = bench_now_ns() - t0;
	}
	if (raw != MAP_FAILED)
		munmap(raw, len + PMD_SIZE);
	if (fd >= 0)
		close(fd);
	return (double)ns / MAP_COST_PAGES;
}

/*
 * The median of three measurements; 0 if one failed. Not the cheapest:
 * on a VM that shadows page tables the cost is bimodal (1.64 to 1.71 us a
 * page read-only, but one run in four 0.055, measured), and a stream pays
 * what it usually costs.
 */
double bench_map_cost(bool writable, bool huge)
{
	double v[3];

	for (int i = 0; i < 3; i++)
		if ((v[i] = map_cost_ns(writable, huge)) <= 0)
			return 0;
	double lo = v[0] < v[1] ? v[0] : v[1], hi = v[0] < v[1] ? v[1] : v[0];

	return v[2] < lo ? lo : v[2] > hi ? hi : v[2];
}

/*
 * What a fresh 2 MiB page of a memfd costs, in ns: one page of an aligned
 * extent written, then MADV_COLLAPSE (the kernel takes a huge page, zeroes
 * it and copies the page in), as emm makes the physmem of a huge readahead
 * window or of a fresh huge first touch (emm-thp(7)). HUGE_COST_EXTENTS
 * extents are made from the free memory the kernel hands out (*first_ns),
 * then their holes punched and the same extents made again at once on the
 * same CPU (the return value): from the huge pages just freed, which the
 * kernel hands out first. On bare metal the two differ little; on a VM
 * whose host takes back the memory the guest leaves free (free page
 * reporting, a balloon), the first may cost many times the second, and so
 * does every huge page made after memory has been left free a while. 0
 * when it cannot be measured (no huge page to be had).
 */
#define HUGE_COST_EXTENTS	32

static uint64_t make_extents(char *p)
{
	uint64_t t0 = bench_now_ns();

	for (size_t i = 0; i < HUGE_COST_EXTENTS; i++) {
		p[i * PMD_SIZE] = 1;
		if (madvise(p + i * PMD_SIZE, PMD_SIZE, MADV_COLLAPSE) < 0)
			return 0;
	}
	return bench_now_ns() - t0;
}

static double huge_fresh_cost(double *first_ns)
{
	size_t len = HUGE_COST_EXTENTS * PMD_SIZE;
	int fd = memfd_create("emm-bench-huge-cost", MFD_CLOEXEC), cpu = sched_getcpu();
	char *raw = MAP_FAILED, *p = MAP_FAILED;
	uint64_t first = 0, again = 0;
	cpu_set_t old, one;

	*first_ns = 0;
	if (fd >= 0 && ftruncate(fd, (off_t)len) == 0)
		raw = mmap(NULL, len + PMD_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw != MAP_FAILED)
		p = mmap((char *)(((uintptr_t)raw + PMD_SIZE - 1) & ~(PMD_SIZE - 1)), len,
			 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	/* One CPU throughout: a huge page freed waits for the next on its CPU. */
	if (p != MAP_FAILED && cpu >= 0 && sched_getaffinity(0, sizeof(old), &old) == 0) {
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		if (sched_setaffinity(0, sizeof(one), &one) == 0) {
			first = make_extents(p);
			if (first &&
			    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)len) == 0)
				again = make_extents(p);
			sched_setaffinity(0, sizeof(old), &old);
		}
	}
	if (raw != MAP_FAILED)
		munmap(raw, len + PMD_SIZE);
	if (fd >= 0)
		close(fd);
	if (!first || !again)
		return 0;
	*first_ns = (double)first / HUGE_COST_EXTENTS;
	return (double)again / HUGE_COST_EXTENTS;
}

/* The bound line of that cost for mode, against the device's sequential
 * read (MiB/s; 0: not measured). */
void bench_huge_bound(const char *mode, double dev_mibs)
{
	double first = 0, again = huge_fresh_cost(&first);

	if (again <= 0)
		return;
	printf("bound: a fresh 2 MiB page, as emm makes one for a huge window (one page\n"
	       "  written, MADV_COLLAPSE), costs %.0f us here made where one was just freed,\n"
	       "  %.0f us from the free memory at hand (%d of them): one thread making\n"
	       "  them runs at most %.0f and %.0f MiB/s", again / 1000, first / 1000,
	       HUGE_COST_EXTENTS, 2e9 / again, 2e9 / first);
	if (dev_mibs > 0)
		printf(" (%.2fx and %.2fx the device's seq read)", 2e9 / again / dev_mibs,
		       2e9 / first / dev_mibs);
	printf("\n");
	printf("data: mode=%s pattern=huge-fresh-cost subject=machine value=%.0f unit=ns\n", mode,
	       again);
	printf("data: mode=%s pattern=huge-fresh-cost-first subject=machine value=%.0f unit=ns\n",
	       mode, first);
}

/*
 * What a fault costs that reaches its handler as a signal, in ns, beyond
 * what the handler does: pages of a memfd registered with userfaultfd
 * (UFFD_FEATURE_SIGBUS) read one by one, each handler filling its page
 * with UFFDIO_COPY, whose own time is taken out. The kernel serves its own
 * swap-ins without one; emm's uffd-sigbus and signal backends pay it on
 * every fault, uffd a thread's wake-up instead. 0 where userfaultfd is not
 * offered. Run after emm's instances are closed: its handler is put back.
 */
static int sig_uffd;
static const char *sig_src;
static uint64_t sig_copy_ns;

static void sig_fill(int sig, siginfo_t *si, void *uc)
{
	uint64_t t0 = bench_now_ns();
	struct uffdio_copy c = { .dst = (uintptr_t)si->si_addr & ~(uintptr_t)(PAGE_SIZE - 1),
				 .src = (uintptr_t)sig_src, .len = PAGE_SIZE };

	(void)sig, (void)uc;
	if (ioctl(sig_uffd, UFFDIO_COPY, &c))
		abort();	/* the access would fault forever */
	sig_copy_ns += bench_now_ns() - t0;
}

double bench_signal_cost(double *copy_ns)
{
	size_t len = MAP_COST_PAGES * PAGE_SIZE;
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_SIGBUS };
	struct sigaction sa = { .sa_sigaction = sig_fill, .sa_flags = SA_SIGINFO }, old;
	int fd = memfd_create("emm-bench-signal-cost", MFD_CLOEXEC);
	volatile char *p = MAP_FAILED;
	uint64_t ns = 0;

	sig_uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	sig_src = sig_uffd >= 0 ? aligned_alloc(PAGE_SIZE, PAGE_SIZE) : NULL;
	if (sig_src && fd >= 0 && ftruncate(fd, (off_t)len) == 0 && !ioctl(sig_uffd, UFFDIO_API, &api))
		p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (p != MAP_FAILED) {
		struct uffdio_register reg = { .range = { (uintptr_t)p, len },
					       .mode = UFFDIO_REGISTER_MODE_MISSING };

		if (!ioctl(sig_uffd, UFFDIO_REGISTER, &reg) && !sigaction(SIGBUS, &sa, &old)) {
			uint64_t t0 = bench_now_ns();

			sig_copy_ns = 0;
			for (size_t i = 0; i < MAP_COST_PAGES; i++)
				(void)p[i * PAGE_SIZE];
			ns = bench_now_ns() - t0 - sig_copy_ns;
			*copy_ns = (double)sig_copy_ns / MAP_COST_PAGES;
			sigaction(SIGBUS, &old, NULL);
		}
		munmap((void *)p, len);
	}
	if (fd >= 0)
		close(fd);
	if (sig_uffd >= 0)
		close(sig_uffd);
	free((void *)sig_src);
	return (double)ns / MAP_COST_PAGES;
}

/*
 * What revoking a range of pages costs, in ns a range: REVOKE_RANGES
 * one-page ranges given to one process_madvise(MADV_DONTNEED) call, as
 * emm's userfaultfd backends revoke, the pages of a memfd's shared view
 * mapped through UFFDIO_CONTINUE as those backends map them (uffd), or of
 * anonymous memory, written, as the kernel's swap has them. Zapping a
 * page of a shared mapping whose page table entry is dirty makes the
 * kernel flush the TLB before it lets go of the page table (the dirty bit
 * goes to the page), so once per range; and emm's pages are dirty there
 * (UFFDIO_CONTINUE maps them so, and a read fault of a shared writable
 * mapping maps a dirty page dirty). Anonymous pages share one flush a
 * call. A flush interrupts every other CPU that runs a thread of the
 * process (busy: one spins on another CPU meanwhile). 0 where it cannot
 * be measured (one CPU, no userfaultfd, no process_madvise).
 */
#define REVOKE_RANGES	64
#define REVOKE_ROUNDS	64

struct revoke_probe {
	char *view;		/* REVOKE_RANGES * 2 pages, every other one revoked */
	int uffd;		/* -1: the kernel maps the pages itself */
	int memfd;		/* uffd: the memory the view maps; else -1 */
	int pidfd;
	int cpu[2];		/* the revoking thread's CPU, the busy one's */
	bool busy;
	_Atomic bool stop;
	uint64_t ns;
};

/* Pin the calling thread to cpu. */
static int pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set);
}

static void *revoke_spin(void *arg)
{
	struct revoke_probe *rp = arg;

	pin(rp->cpu[1]);
	while (!atomic_load_explicit(&rp->stop, memory_order_relaxed))
		;
	return NULL;
}

/* Map the pages revoked, each as the probe's kind maps it; false on a failure. */
static bool revoke_map(const struct revoke_probe *rp)
{
	for (unsigned i = 0; i < REVOKE_RANGES; i++) {
		char *a = rp->view + (size_t)2 * i * PAGE_SIZE;
		struct uffdio_continue c = { .range = { (uintptr_t)a, PAGE_SIZE } };

		if (rp->uffd >= 0 && ioctl(rp->uffd, UFFDIO_CONTINUE, &c) < 0)
			return false;
		if (rp->uffd < 0)
			*(volatile char *)a = 1;
		else
			(void)*(volatile char *)a;
	}
	return true;
}

static void *revoke_run(void *arg)
{
	struct revoke_probe *rp = arg;
	struct iovec iov[REVOKE_RANGES];
	pthread_t spinner;
	bool spinning = false;
	uint64_t ns = 0;
	unsigned r;

	if (pin(rp->cpu[0]) < 0)
		return NULL;
	if (rp->busy)
		spinning = !pthread_create(&spinner, NULL, revoke_spin, rp);
	for (unsigned i = 0; i < REVOKE_RANGES; i++)
		iov[i] = (struct iovec){ rp->view + (size_t)2 * i * PAGE_SIZE, PAGE_SIZE };
	for (r = 0; r < REVOKE_ROUNDS && (spinning || !rp->busy); r++) {
		uint64_t t0;

		if (!revoke_map(rp))
			break;
		t0 = bench_now_ns();
		if (syscall(SYS_process_madvise, rp->pidfd, iov, REVOKE_RANGES, MADV_DONTNEED, 0) !=
		    REVOKE_RANGES * (long)PAGE_SIZE)
			break;
		ns += bench_now_ns() - t0;
	}
	rp->ns = r == REVOKE_ROUNDS ? ns / REVOKE_ROUNDS / REVOKE_RANGES : 0;
	atomic_store_explicit(&rp->stop, true, memory_order_relaxed);
	if (spinning)
		pthread_join(spinner, NULL);
	return NULL;
}

/* The first two CPUs this process may run on; false with fewer. */
static bool two_cpus(int cpu[2])
{
	cpu_set_t set;
	int n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return false;
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
		if (CPU_ISSET(c, &set))
			cpu[n++] = c;
	return n == 2;
}

/* uffd: a memfd's view registered for minor faults, its pages written
 * through a second view; else anonymous memory, written by revoke_map.
 * False on a failure. */
static bool revoke_setup(struct revoke_probe *rp, size_t len, bool uffd)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MINOR_SHMEM };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MINOR };
	char *alias;

	if (!uffd) {
		rp->view = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return rp->view != MAP_FAILED;
	}
	rp->memfd = memfd_create("emm-bench-revoke-cost", MFD_CLOEXEC);
	if (rp->memfd < 0 || ftruncate(rp->memfd, (off_t)len) < 0)
		return false;
	alias = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, rp->memfd, 0);
	if (alias == MAP_FAILED)
		return false;
	memset(alias, 1, len);
	munmap(alias, len);
	rp->view = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, rp->memfd, 0);
	if (rp->view == MAP_FAILED)
		return false;
	rp->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	reg.range = (struct uffdio_range){ (uintptr_t)rp->view, len };
	return rp->uffd >= 0 && !ioctl(rp->uffd, UFFDIO_API, &api) &&
	       !ioctl(rp->uffd, UFFDIO_REGISTER, &reg);
}

double bench_revoke_cost(bool uffd, bool busy)
{
	struct revoke_probe rp = { .uffd = -1, .memfd = -1, .busy = busy, .view = MAP_FAILED };
	size_t len = (size_t)2 * REVOKE_RANGES * PAGE_SIZE;
	pthread_t t;

	rp.pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	/* On threads of its own: the caller's affinity stays as it is. */
	if (rp.pidfd >= 0 && two_cpus(rp.cpu) && revoke_setup(&rp, len, uffd) &&
	    !pthread_create(&t, NULL, revoke_run, &rp))
		pthread_join(t, NULL);
	else
		rp.ns = 0;
	if (rp.view != MAP_FAILED)
		munmap(rp.view, len);
	if (rp.uffd >= 0)
		close(rp.uffd);
	if (rp.pidfd >= 0)
		close(rp.pidfd);
	if (rp.memfd >= 0)
		close(rp.memfd);
	return (double)rp.ns;
}
