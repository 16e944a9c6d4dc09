/* SPDX-License-Identifier: MIT */
/*
 * The userfaultfd backends: the app view is a shared mapping of physmem
 * registered with a userfaultfd (missing, minor and write-protect faults);
 * a grant maps physmem's pages with UFFDIO_CONTINUE, a revoke zaps the
 * kernel's page table entries. Faults are served by fault-service threads
 * (uffd: the faulting thread sleeps, in user or kernel mode; uffd_service.c)
 * or in the faulting thread, which gets SIGBUS (uffd-sigbus).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "physmem.h"
#include "util.h"
#include "pte.h"
#include "uffd.h"
#include "uffd_service.h"
#include "uffd_wp.h"
#include "uffd_zap.h"

struct uffd {
	int fd;
	struct uffd_service *svc;	/* uffd's fault-service threads; uffd-sigbus: NULL */
	bool zap;			/* revoke_many: process_madvise(2) takes MADV_DONTNEED */
	int zap_fd;			/* ... through this pidfd (zap_open) */
	int pagemap_fd;			/* /proc/self/pagemap with UFFD_WP_ASYNC, else -1 */
	struct zap_pace pace;		/* ... and whether it widens */
};

/* Per reservation: its extents registered without write-protection. */
struct uffd_rsv {
	_Atomic long huge;
};

/* Async-signal-safe. The instance's userfaultfd state. */
static inline struct uffd *uffd_of(const struct rsv *r)
{
	return r->mm->backend_data;
}

/* Async-signal-safe; PTE locks of [s, e) held. backend_ops.harvest:
 * uffd_wp.c reads the pagemap. */
static void uffd_harvest(struct rsv *r, uintptr_t s, uintptr_t e)
{
	struct uffd *u = uffd_of(r);

	wp_harvest(r, u->fd, u->pagemap_fd, s, e);
}

/* Async-signal-safe. PTE locks of [s, e) held on entry and exit. The kernel's
 * page table entries go; physmem keeps the data: a next touch is a minor fault. */
static int uffd_revoke(struct rsv *r, uintptr_t s, uintptr_t e, unsigned flags)
{
	(void)flags;
	if (madvise((void *)s, e - s, MADV_DONTNEED) < 0)
		return -errno;
	uffd_harvest(r, s, e);
	backend_set_pte_prot(r, s, e, EMM_PROT_NONE);
	return 0;
}

/* Async-signal-safe. backend_ops.revoke_many: uffd_zap.c, where
 * process_madvise(2) takes MADV_DONTNEED. */
static unsigned uffd_revoke_many(struct emm *mm, const struct revoke_vec *v)
{
	struct uffd *u = mm->backend_data;

	return u->zap ? zap_revoke_many(mm, v, u->zap_fd, u->fd, u->pagemap_fd, &u->pace) : 0;
}

/*
 * Async-signal-safe; the PTE lock at a held. uffd_continue found the page
 * mapped already and is about to write-protect it. A write to it since
 * the last harvest would leave no trace once it is protected: two threads
 * fault on one page, the first is served and writes, and the second's
 * fault, served next, remaps the page (BACKEND_REMAP: harvest, then
 * protect) with the write falling in between. So the page counts as
 * written, as the harvest would count it, and is protected again. Four
 * threads writing 16 pages paged out over and over (t/229) lost 21 to 38
 * writes a run on uffd without this; Node.js under 48 MiB met the case
 * 1,000 to 2,000 times a run, and in 1 run of 4 to 10 V8 followed a stale
 * pointer and died of SIGSEGV. Where writes are let through (pagemap) and
 * the page is still write-protected, nothing wrote it since it was
 * protected, and nothing is done: it stays clean, and a write after this
 * look clears the bit a later harvest reads. Counted written, a read-only
 * page two faults met at once cost a write to swap or its file for nothing
 * (t/215 met one in 8 runs of 40 beside a second program).
 */
static bool continue_exists(void *arg, uintptr_t a)
{
	_Atomic uint64_t *p = pte_of(arg, a);
	int fd = uffd_of(arg)->pagemap_fd;

	if (fd >= 0 && wp_still(fd, a))
		return false;
	pte_set_locked(p, pte_locked_val(p) | PTE_DIRTY);
	return true;
}

/* Async-signal-safe. Map the runs of [s, e) emm has not mapped (all of it:
 * remap), and change write access where it differs from prot (wp: without it). */
static int grant_runs(struct rsv *r, uintptr_t s, uintptr_t e, bool wp, bool remap)
{
	struct uffd *u = uffd_of(r);
	uintptr_t run = s;
	int run_kind = -1, err = 0;

	/* Kinds: 0 not mapped, 1 mapped with the other write access, 2 as wanted.
	 * A huge extent is registered without write-protection (huge_begin):
	 * write access to it needs no call (UFFDIO_WRITEPROTECT fails there
	 * with ENOENT); the kernel serves a write to its read-only mapping
	 * itself, as the kernel VMA now allows. */
	for (uintptr_t a = s; a <= e && !err; a += PAGE_SIZE) {
		int old = a < e ? pte_prot(atomic_load_explicit(pte_of(r, a), memory_order_relaxed)) : 0;
		int kind = a == e ? -2 : old == EMM_PROT_NONE || remap ? 0 :
			   !(old & EMM_PROT_WRITE) != wp ? 1 : 2;

		if (kind == run_kind)
			continue;
		if (run_kind == 0) {
			err = uffd_continue(u->fd, run, a, wp, continue_exists, r);
			/* A page physmem does not hold (a never-touched one the
			 * caller did not say of): give it a zeroed one. */
			if (err == -EFAULT && !physmem_fill(r, run, a - run))
				err = uffd_continue(u->fd, run, a, wp, continue_exists, r);
		}
		else if (run_kind == 1 && (wp || !extent_huge(r, run)))
			err = uffd_wp(u->fd, run, a, wp);
		run = a;
		run_kind = kind;
	}
	return err;
}

/*
 * Async-signal-safe; PTE locks of [s, e) held. A huge extent is registered
 * without write-protection (uffd_huge_begin): a grant without write there
 * maps it with write, and its pages count as written (PTE_DIRTY; a swap
 * slot they keep is stale, and the core frees it), so no write goes
 * unseen. Revoking instead would fault again at once, without end.
 */
static int grant_huge_dirty(struct rsv *r, uintptr_t s, uintptr_t e, int prot, unsigned flags)
{
	int err = grant_runs(r, s, e, false, flags & BACKEND_REMAP);

	if (err)
		return err;
	for (uintptr_t a = s; a < e; a += PAGE_SIZE)
		pte_set_locked(pte_of(r, a), pte_locked_val(pte_of(r, a)) | PTE_DIRTY);
	backend_set_pte_prot(r, s, e, prot);
	return 0;
}

/*
 * Async-signal-safe; PTE locks of [s, e) held on entry and exit; may run in
 * a service thread or a signal handler. The kernel VMA's protection (the
 * emm VMA's, set by vma_protect) caps what the pages get; no kernel VMA is
 * created per run, so the budget of BACKEND_FORCE does not apply.
 */
static int uffd_grant(struct rsv *r, uintptr_t s, uintptr_t e, int prot, unsigned flags)
{
	bool wp = !(prot & EMM_PROT_WRITE);
	int err;

	/* Holes only, to map writable: fill and map them in one call. If a
	 * page was there after all, the way below maps the rest. */
	if ((flags & BACKEND_ZERO) && !wp && !(flags & BACKEND_REMAP) &&
	    !uffd_zero_fill(uffd_of(r)->fd, s, e)) {
		backend_set_pte_prot(r, s, e, prot);
		return 0;
	}
	/* A never-touched anonymous page is a hole in physmem: give it a
	 * zeroed page there first, as UFFDIO_CONTINUE maps only what is.
	 * Pages read in or resident are there already: no system call. */
	if ((flags & BACKEND_HOLES) && (err = physmem_fill(r, s, e - s)))
		return err;
	/* The kernel drops page table entries on its own too: splitting a
	 * huge page's PMD, its reclaim. Then the PTEs are wrong: remap, once
	 * what was written there is known (remapping write-protects again). */
	if (flags & BACKEND_REMAP)
		uffd_harvest(r, s, e);
	/* A huge extent cannot be write-protected (registered without): even
	 * mapped without write now, a write the kernel VMA allows later would
	 * go unseen. */
	if (wp && extent_huge(r, s))
		return grant_huge_dirty(r, s, e, prot | EMM_PROT_WRITE, flags);
	err = grant_runs(r, s, e, wp, flags & BACKEND_REMAP);
	if (err && wp) {
		/* No write-protection to be had: no access is what keeps a
		 * write from going unseen (the next touch is a minor fault). */
		return uffd_revoke(r, s, e, flags);
	}
	if (!err)
		backend_set_pte_prot(r, s, e, prot);
	return err;
}

/*
 * Async-signal-safe; PTE locks of [s, e) held, the pages holes in physmem.
 * A swap-in's checked bytes: UFFDIO_COPY fills and maps them in one call,
 * where a write into physmem and UFFDIO_CONTINUE walk them twice (and the
 * write takes the memfd's inode lock, which reclaim's hole punching holds).
 * Where the range is not registered for write-protection (a huge extent)
 * a clean page cannot be mapped without write this way: nothing is done.
 */
static size_t uffd_place(struct rsv *r, uintptr_t s, uintptr_t e, const void *src, int prot)
{
	size_t done = uffd_copy(uffd_of(r)->fd, s, e, src, !(prot & EMM_PROT_WRITE));

	if (done)
		backend_set_pte_prot(r, s, s + done, prot);
	return done;
}

/* Async-signal-safe. UFFDIO_CONTINUE has filled the page tables already; and
 * a service thread must never fault on the app view itself. */
static void uffd_populate(struct rsv *r, uintptr_t s, uintptr_t e, int prot)
{
	(void)r, (void)s, (void)e, (void)prot;
}

/* Stop the service threads, close the userfaultfd. */
static void uffd_free(struct uffd *u)
{
	uffd_service_stop(u->svc);
	if (u->fd >= 0)
		close(u->fd);
	if (u->zap && u->zap_fd >= 0)
		close(u->zap_fd);
	if (u->pagemap_fd >= 0)
		close(u->pagemap_fd);
	free(u);
}

/* Every message a service thread was serving has been served
 * (uffd_service.c). */
static void uffd_quiesce(struct emm *mm)
{
	uffd_service_quiesce(((struct uffd *)mm->backend_data)->svc);
}

static void uffd_close(struct emm *mm)
{
	uffd_free(mm->backend_data);
	mm->backend_data = NULL;
	backend_signal_put();
}

static const char *uffd_why(int err)
{
	return err == -EOPNOTSUPP ? "the kernel lacks a userfaultfd feature emm needs (Linux 6.6)"
	       : err == -EPERM || err == -EACCES ?
	       "not allowed (privilege, /dev/userfaultfd, vm.unprivileged_userfaultfd, seccomp)"
	       : strerror(-err);
}

/* Revoke in batches where process_madvise(2) allows it; EMM_VERBOSE
 * says which way it is. */
static void uffd_zap_probe(struct emm *mm, struct uffd *u)
{
	const char *how = "";
	int err = zap_open(&u->zap_fd, &how);

	u->zap = !err;
	if (u->zap)
		emm_log(mm, "revoke: a batch per process_madvise(2) call, through %s", how);
	else
		emm_log(mm, "revoke: madvise(2) run by run (process_madvise: %s)", strerror(-err));
}

/*
 * The userfaultfd, with asynchronous write-protection where the kernel has
 * it, emm's options allow it, and the pagemap that tells what was written
 * can be read: a write to a clean page then costs the kernel's own fault,
 * not a message served by emm (on a 2-vCPU VM, 21 us against a 43 to 65 us
 * round trip through a service thread; SQLite under a 48 MiB budget ran 3
 * to 15% faster, Lua at 64 MiB about 4% slower: see uffd_wp.c).
 */
static int uffd_open_wp(struct emm *mm, struct uffd *u, bool sigbus)
{
	bool async = mm->cfg.flags & CFG_WP_ASYNC;
	int fd;

	u->pagemap_fd = async ? open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) : -1;
	async = u->pagemap_fd >= 0;
	fd = uffd_open_fd(sigbus, &async);
	if (!async && u->pagemap_fd >= 0) {
		close(u->pagemap_fd);
		u->pagemap_fd = -1;
	}
	mm->wp_async = async;
	if (fd >= 0)
		emm_log(mm, "write-protection: %s",
			async ? "asynchronous (dirty pages read from the pagemap)"
			      : "a fault per first write to a clean page");
	return fd;
}

/*
 * Open the userfaultfd of backend (EMM_BACKEND_UFFD or _UFFD_SIGBUS), its
 * service threads, and the process-wide handler (VMA-level protection
 * faults still arrive as SIGSEGV; uffd-sigbus's faults as SIGBUS). Every
 * reason it cannot be had is -EOPNOTSUPP, so AUTO tries the next backend;
 * EMM_VERBOSE says which reason it was.
 */
static int uffd_open_as(struct emm *mm, int backend, const char *name)
{
	struct uffd *u = calloc(1, sizeof(*u));
	int err = u ? 0 : -ENOMEM;

	if (!err) {
		u->fd = uffd_open_wp(mm, u, backend == EMM_BACKEND_UFFD_SIGBUS);
		err = u->fd < 0 ? u->fd : 0;
	}
	if (!err && backend == EMM_BACKEND_UFFD)
		err = uffd_service_start(mm, u->fd, &u->svc);
	if (!err)
		err = backend_signal_get();
	if (!err)
		uffd_zap_probe(mm, u);
	if (err && u)
		uffd_free(u);
	if (err) {
		emm_log(mm, "backend %s not used: %s", name, uffd_why(err));
		return err == -ENOMEM ? err : -EOPNOTSUPP;
	}
	mm->backend_data = u;
	return 0;
}

static int uffd_open(struct emm *mm)
{
	return uffd_open_as(mm, EMM_BACKEND_UFFD, "uffd");
}

static int uffd_sigbus_open(struct emm *mm)
{
	return uffd_open_as(mm, EMM_BACKEND_UFFD_SIGBUS, "uffd-sigbus");
}

/*
 * mm->lock held. The app view starts PROT_NONE (no VMA yet) and
 * registered. Neither view is inherited by a child: with no one to serve
 * its faults, it would fill physmem's holes behind emm's back.
 */
static int uffd_view_create(struct rsv *r)
{
	int err = physmem_map_app_view(r);

	if (err)
		return err;
	r->backend_data = calloc(1, sizeof(struct uffd_rsv));
	if (!r->backend_data)
		return -ENOMEM;
	if (madvise((void *)r->start, r->len, MADV_DONTFORK) < 0 ||
	    madvise(r->alias, r->len, MADV_DONTFORK) < 0)
		return -errno;
	return uffd_register(uffd_of(r)->fd, r->start, r->start + r->len, UFFD_REG_MODE);
}

/* mm->lock held; no fault can be running in r. Unmapping unregisters. */
static void uffd_view_destroy(struct rsv *r)
{
	free(r->backend_data);
	r->backend_data = NULL;
	if (!r->start)
		return;
	munmap((void *)r->start, r->len);
	kvma_add(r, -atomic_load_explicit(&r->kvmas, memory_order_relaxed));
}

/* Kernel VMAs the app view of r spans: one per run of equal protection
 * (the layout's count, see vma.c), the gaps between emm VMAs having none;
 * a huge extent adds up to two (huge_begin). mm->lock held. */
static long uffd_count_kvmas(struct rsv *r)
{
	return r->kvma_need + 2 * atomic_load_explicit(&((struct uffd_rsv *)r->backend_data)->huge,
						     memory_order_relaxed);
}

/*
 * mm->lock held, signals blocked. The kernel VMA carries each emm VMA's
 * protection, so an access a VMA forbids arrives as SIGSEGV and reaches
 * its trap callback; resident pages stay mapped under it.
 */
static int uffd_vma_protect(struct rsv *r, uintptr_t s, uintptr_t e, int prot)
{
	if (mprotect((void *)s, e - s, prot_to_sys(prot)) < 0)
		return -errno;
	kvma_add(r, uffd_count_kvmas(r) - atomic_load_explicit(&r->kvmas,
								      memory_order_relaxed));
	return 0;
}

/* Async-signal-safe. Register [s, e) with mode again after a moment out:
 * it must not stay out, where its faults would not reach emm (a refusal is
 * a passing shortage of kernel VMAs). */
static int uffd_reregister(struct uffd *u, uintptr_t s, uintptr_t e, uint64_t mode)
{
	for (int i = 0; i < 100; i++) {
		struct timespec ts = { 0, 1000000 };

		if (!uffd_register(u->fd, s, e, mode))
			return 0;
		nanosleep(&ts, NULL);
	}
	return -EIO;
}

/*
 * Async-signal-safe. MADV_COLLAPSE refuses a range registered for
 * write-protection: while the extent at a is huge it is registered without
 * it (it is mapped whole, so nothing faults in between; unregistering wakes
 * its waiters, who find it mapped), at the cost of up to two kernel VMAs.
 */
static int uffd_huge_begin(struct rsv *r, uintptr_t a)
{
	struct uffd *u = uffd_of(r);
	struct uffdio_range rg = { .start = a, .len = PMD_SIZE };

	if (ioctl(u->fd, UFFDIO_UNREGISTER, &rg) < 0)
		return -errno;
	if (uffd_register(u->fd, a, a + PMD_SIZE, UFFD_REG_MODE & ~UFFDIO_REGISTER_MODE_WP) < 0) {
		/* The extent must not stay unregistered: its faults would no
		 * longer reach emm, and an evicted page would read as zeros.
		 * The range is a kernel VMA of its own now, so registering it
		 * again needs no split. */
		return uffd_reregister(u, a, a + PMD_SIZE, UFFD_REG_MODE) ? -EIO : -EAGAIN;
	}
	atomic_fetch_add_explicit(&((struct uffd_rsv *)r->backend_data)->huge, 1,
				  memory_order_relaxed);
	kvma_add(r, 2);
	return 0;
}

/* Async-signal-safe. The extent at a is 512 pages again: write-protection
 * comes back. */
static void uffd_huge_end(struct rsv *r, uintptr_t a)
{
	struct uffd *u = uffd_of(r);

	if (uffd_register(u->fd, a, a + PMD_SIZE, UFFD_REG_MODE))
		return;
	atomic_fetch_sub_explicit(&((struct uffd_rsv *)r->backend_data)->huge, 1,
				  memory_order_relaxed);
	kvma_add(r, -2);
}

/*
 * Async-signal-safe. backend_ops.huge_fresh: MADV_COLLAPSE of 512 small
 * pages copies each (on a 2-vCPU VM 45.8% of a first touch's time), where
 * a fresh huge page made through the alias view copies none; but the
 * kernel refuses to fill holes of a range that a VMA maps registered for
 * missing faults, the page after it included (its check's end is
 * inclusive). So the extent and that page are out of the registration
 * while make runs. A touch by another thread meanwhile is served by the
 * kernel: in the extent with zeros or the huge page once made, which is
 * what emm maps there (make leaves what physmem holds when it fails, and
 * the grant that follows maps what is there); the page after it is one
 * such a touch cannot harm (fault.c, thp_fresh_next).
 */
static int uffd_huge_fresh(struct rsv *r, uintptr_t a, int (*make)(struct rsv *r, uintptr_t a))
{
	struct uffd *u = uffd_of(r);
	uintptr_t n = a + PMD_SIZE, e = MIN(n + PAGE_SIZE, r->start + r->len);
	uint64_t mode_n = UFFD_REG_MODE;
	int err, back;

	if (e > n && extent_huge(r, n))
		mode_n &= ~UFFDIO_REGISTER_MODE_WP;
	if (ioctl(u->fd, UFFDIO_UNREGISTER, &(struct uffdio_range){ a, e - a }) < 0)
		return -errno;
	err = make(r, a);
	back = uffd_reregister(u, a, n, UFFD_REG_MODE);
	if (e > n && uffd_reregister(u, n, e, mode_n))
		back = -EIO;
	return err ? err : back;
}

/* The two backends differ only in how a fault reaches emm. */
#define UFFD_OPS_SHARED \
	.close = uffd_close, \
	.view_create = uffd_view_create, \
	.view_destroy = uffd_view_destroy, \
	.grant = uffd_grant, \
	.revoke = uffd_revoke, \
	.revoke_many = uffd_revoke_many, \
	.populate = uffd_populate, \
	.vma_protect = uffd_vma_protect, \
	.huge_begin = uffd_huge_begin, \
	.huge_end = uffd_huge_end, \
	.harvest = uffd_harvest, \
	.quiesce = uffd_quiesce, \
	.place = uffd_place,

const struct backend_ops backend_uffd_ops = {
	.name = "uffd",
	.id = EMM_BACKEND_UFFD,
	.fault_signal = 0,
	.open = uffd_open,
	UFFD_OPS_SHARED
};

/* uffd-sigbus alone makes fresh huge extents: on uffd the unregistering
 * wakes the faulting thread, which runs on through the extent, filled page
 * by page by the kernel meanwhile (writing 8 extents on a 2-vCPU VM: 1 made
 * fresh, the others mapped the 4 KiB way after it). */
const struct backend_ops backend_uffd_sigbus_ops = {
	.name = "uffd-sigbus",
	.id = EMM_BACKEND_UFFD_SIGBUS,
	.fault_signal = SIGBUS,
	.open = uffd_sigbus_open,
	.huge_fresh = uffd_huge_fresh,
	UFFD_OPS_SHARED
};

EMM_API int emm_backend(struct emm *mm)
{
	return mm ? mm->backend->id : -EINVAL;
}
