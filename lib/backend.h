/* SPDX-License-Identifier: MIT */
/*
 * The fault-backend contract: how the app view of a reservation is created,
 * how access to its pages is granted and revoked, and how faults reach the
 * core. One implementation per file, lib/backend-<name>.c; nothing outside
 * those files changes the app view's protection (DESIGN.md, "Fault backends").
 *
 * The core owns the PTE words: state, frame, and the app-view protection
 * bits (PTE_MAP_*). A backend owns the kernel side of the app view: its
 * mapping, its protections, its fault delivery. After a successful grant or
 * revoke, the PTEs of the range carry the new protection (backend_set_pte_prot):
 * the core reads them to decide what a fault means.
 *
 * A backend keeps its per-instance state in mm->backend_data and its
 * per-reservation state in r->backend_data.
 *
 * Return convention: 0 or -errno, as everywhere in emm.
 */
#ifndef EMM_BACKEND_H
#define EMM_BACKEND_H

#include <sys/uio.h>

#include "debug.h"
#include "internal.h"
#include "pte.h"

/* si_errno of a SIGBUS emm makes up for a fault it could not serve. */
#define EMM_SIGBUS_MARK	EIO

/* Flags of grant and revoke. */
#define BACKEND_FORCE	0x1u	/* go ahead even past the kernel-VMA budget */
#define BACKEND_REMAP	0x2u	/* grant: the PTEs say mapped, the kernel faulted anyway */
#define BACKEND_HOLES	0x4u	/* grant: never-touched pages, with nothing in physmem yet */
#define BACKEND_ZERO	0x8u	/* grant: with BACKEND_HOLES, every page of the range is one */

/*
 * Ranges to revoke in one call (backend_revoke_many): the caller's arrays
 * of n, in address order, all of one instance, every range's PTE locks
 * held. Reclaim keeps them in its batch work space: nothing is allocated.
 */
struct revoke_vec {
	unsigned n;
	const struct iovec *iov;	/* iov_base: the range's start; iov_len: its bytes */
	struct rsv *const *rsv;		/* the reservation of each range */
};

struct backend_ops {
	const char *name;		/* "signal", "uffd", ... (EMM_VERBOSE logs it) */
	int id;				/* EMM_BACKEND_*, what emm_backend() reports */
	/*
	 * The signal a missing page raises in the faulting thread: SIGSEGV
	 * (signal backend), SIGBUS (userfaultfd with UFFD_FEATURE_SIGBUS), or
	 * 0 when faults are served by service threads. The process-wide
	 * handler of backend-signal.c serves this signal and SIGSEGV (an
	 * access a VMA's protection forbids, under any backend) through
	 * do_user_fault, and chains every other.
	 */
	int fault_signal;

	/*
	 * Not async-signal-safe; no emm lock held. Make the backend ready for
	 * mm (install a handler, open a userfaultfd, start service threads).
	 * -EOPNOTSUPP when this machine or process cannot have it: with
	 * EMM_BACKEND_AUTO the next backend is tried.
	 */
	int (*open)(struct emm *mm);
	/* Not async-signal-safe; no emm lock held; every reservation of mm is
	 * gone. Undo open. */
	void (*close)(struct emm *mm);

	/*
	 * Not async-signal-safe; mm->lock held. Map the app view of r: r->len
	 * bytes of mm->memfd from r->pgoff, PMD-aligned, no page accessible
	 * yet; set r->start and account the kernel VMAs it costs. -errno when
	 * it cannot.
	 */
	int (*view_create)(struct rsv *r);
	/* Not async-signal-safe; mm->lock held; no fault can be running in r
	 * (rsv_unregister took it out of the registry and waited for the
	 * registry's and the instance's readers). Unmap the app view. */
	void (*view_destroy)(struct rsv *r);

	/*
	 * Async-signal-safe; may run in a signal handler or a service thread.
	 * The PTE locks of [s, e) are held (on entry and on exit), the pages
	 * are resident and their data is in physmem, except never-touched
	 * anonymous pages, which may still be holes there (they read as
	 * zeros): BACKEND_HOLES says the range may have some, and a backend
	 * that maps only what physmem holds must give them a zeroed page
	 * first; BACKEND_ZERO says all of it is such pages. Give the app view
	 * access prot (EMM_PROT_*, never EMM_PROT_NONE) to the whole range in
	 * one step: one call per cluster, not per page. A prot without EMM_PROT_WRITE over pages that
	 * had it takes write access away (dirty tracking); where the backend
	 * cannot (a huge extent on userfaultfd has no write-protection) it
	 * maps with write and marks the pages PTE_DIRTY, as harvest would,
	 * so that no write goes unseen. -EAGAIN: the change
	 * would take emm past its kernel-VMA budget and BACKEND_FORCE is not
	 * set (the caller coalesces); -ENOMEM: the kernel refused. On failure
	 * nothing changed.
	 */
	int (*grant)(struct rsv *r, uintptr_t s, uintptr_t e, int prot, unsigned flags);
	/*
	 * Async-signal-safe; may run in a signal handler or a service thread.
	 * The PTE locks of [s, e) are held (on entry and on exit). Take all access away from the
	 * range while physmem keeps the data: the next touch faults, and finds
	 * the page resident (a minor fault). flags as for grant. A backend
	 * with harvest harvests the range as it revokes it.
	 */
	int (*revoke)(struct rsv *r, uintptr_t s, uintptr_t e, unsigned flags);
	/*
	 * Optional (NULL: the caller revokes range by range). Async-signal-safe;
	 * may run in a signal handler or a service thread; allocates nothing.
	 * Every range's PTE locks are held (on entry and on exit). revoke, with
	 * BACKEND_FORCE, for all of v's ranges at once: one system call and,
	 * where the kernel can, one TLB flush for them all. Returns how many
	 * of the first ranges were revoked (their PTEs say so); the others may
	 * have lost some access or none, and the caller revokes them one by
	 * one (a page whose revoke fails stays mapped, as with revoke).
	 */
	unsigned (*revoke_many)(struct emm *mm, const struct revoke_vec *v);
	/*
	 * Async-signal-safe; PTE locks of [s, e) held. The range was just
	 * granted prot: let the kernel fill its page tables now rather than one
	 * trap per page. A hint: it may do nothing.
	 */
	void (*populate)(struct rsv *r, uintptr_t s, uintptr_t e, int prot);
	/*
	 * Not async-signal-safe; mm->lock held, signals blocked. The VMAs of
	 * [s, e) now have protection prot (EMM_PROT_NONE for a guard VMA, or
	 * when the range was unmapped). A backend that keeps resident pages
	 * mapped by default (uffd) applies it to the whole range here; one that
	 * grants page by page (signal) has nothing to do: the core grants the
	 * resident pages again through grant and revoke.
	 */
	int (*vma_protect)(struct rsv *r, uintptr_t s, uintptr_t e, int prot);

	/* Optional (NULL: nothing to do). */
	/*
	 * Async-signal-safe; all PTE locks of the extent at a held, the extent
	 * resident and granted whole. It is about to be collapsed
	 * (MADV_COLLAPSE): make the app view collapsible there. -errno: do not
	 * collapse it.
	 */
	int (*huge_begin)(struct rsv *r, uintptr_t a);
	/* Async-signal-safe; all PTE locks of the extent held. The extent at a
	 * is 512 pages again, or its collapse failed: undo huge_begin. */
	void (*huge_end)(struct rsv *r, uintptr_t a);
	/*
	 * Optional (NULL: the backend cannot). Async-signal-safe; all PTE
	 * locks of the extent at a held, its pages resident and holes in
	 * physmem; on userfaultfd the PTE lock of the page after it too (where
	 * the reservation has one), which a touch the kernel serves cannot
	 * harm (fault.c, thp_fresh_next). Run make, which fills the extent
	 * with one huge page of zeros through the alias view, where the kernel
	 * lets it fill holes. 0, or -errno with the registration as it was.
	 */
	int (*huge_fresh)(struct rsv *r, uintptr_t a, int (*make)(struct rsv *r, uintptr_t a));
	/*
	 * Async-signal-safe; PTE locks of [s, e) held. A backend that lets a
	 * write to a page granted without write access through, with no fault
	 * (mm->wp_async), learns it after the fact, as an MMU's dirty bit
	 * tells: here it marks such pages PTE_DIRTY, their protection
	 * unchanged, and counts the anonymous ones in r->clean_writes. Their
	 * frame may keep its swap slot, stale: the core frees it. revoke,
	 * revoke_many and a BACKEND_REMAP grant do the same for their ranges.
	 */
	void (*harvest)(struct rsv *r, uintptr_t s, uintptr_t e);
	/* Not async-signal-safe; no lock held. Wait until the faults being
	 * served when called are done (emm_stats: a thread that resumed from a
	 * fault finds it counted). */
	void (*quiesce)(struct emm *mm);
	/*
	 * Async-signal-safe; may run in a signal handler or a service thread.
	 * The PTE locks of [s, e) are held; the pages are resident, not
	 * mapped, and physmem holds nothing for them yet. Put the e - s bytes
	 * at src there and grant prot, in one step. Returns how many bytes
	 * from s it placed and mapped (their PTEs say so); the caller puts the
	 * rest into physmem itself. A swap-in saves a write into physmem and
	 * the grant's own walk of the range.
	 */
	size_t (*place)(struct rsv *r, uintptr_t s, uintptr_t e, const void *src, int prot);
};

/*
 * The backends emm knows, in the order EMM_BACKEND_AUTO tries them. Each
 * lib/backend-<name>.c defines its ops; lib/backend.c lists them.
 */
extern const struct backend_ops backend_signal_ops;
extern const struct backend_ops backend_uffd_ops;
extern const struct backend_ops backend_uffd_sigbus_ops;

/* backend.c: pick the backend of mm->cfg.backend and open it (mm->backend),
 * or close it. Not async-signal-safe; no emm lock held. */
int backend_open(struct emm *mm);
void backend_close(struct emm *mm);

/* The core's calls into the backend of a reservation's instance. */
static inline int backend_grant(struct rsv *r, uintptr_t s, uintptr_t e, int prot,
				unsigned flags)
{
	DEBUG_RANGE_LOCKED(r, s, e);
	return r->mm->backend->grant(r, s, e, prot, flags);
}

/* Async-signal-safe. Each range revoked is a call of its own into the
 * kernel, and a TLB flush of its own: counted (revokes). */
static inline int backend_revoke(struct rsv *r, uintptr_t s, uintptr_t e, unsigned flags)
{
	int err;

	DEBUG_RANGE_LOCKED(r, s, e);
	err = r->mm->backend->revoke(r, s, e, flags);
	if (!err)
		count_event(r->mm, revokes);
	return err;
}

/* Async-signal-safe. The first ranges of v revoked in one call, by a
 * backend that can: how many (backend_ops.revoke_many). A single range
 * goes through revoke, cheaper than a vector of one. */
static inline unsigned backend_revoke_many(struct emm *mm, const struct revoke_vec *v)
{
	if (v->n < 2 || !mm->backend->revoke_many)
		return 0;
	for (unsigned i = 0; i < v->n; i++)
		DEBUG_RANGE_LOCKED(v->rsv[i], (uintptr_t)v->iov[i].iov_base,
				   (uintptr_t)v->iov[i].iov_base + v->iov[i].iov_len);
	return mm->backend->revoke_many(mm, v);
}

/* grant, or revoke when prot is EMM_PROT_NONE: for callers that carry a
 * protection computed from a VMA (a guard VMA's is EMM_PROT_NONE). */
static inline int backend_set_prot(struct rsv *r, uintptr_t s, uintptr_t e, int prot,
				   unsigned flags)
{
	return prot == EMM_PROT_NONE ? backend_revoke(r, s, e, flags)
				     : backend_grant(r, s, e, prot, flags);
}

static inline void backend_populate(struct rsv *r, uintptr_t s, uintptr_t e, int prot)
{
	DEBUG_RANGE_LOCKED(r, s, e);
	r->mm->backend->populate(r, s, e, prot);
}

static inline int backend_vma_protect(struct rsv *r, uintptr_t s, uintptr_t e, int prot)
{
	DEBUG_NOT_IN_HANDLER();
	return r->mm->backend->vma_protect(r, s, e, prot);
}

/* Async-signal-safe. backend_ops.harvest, where the backend has one. */
static inline void backend_harvest(struct rsv *r, uintptr_t s, uintptr_t e)
{
	DEBUG_RANGE_LOCKED(r, s, e);
	if (r->mm->backend->harvest)
		r->mm->backend->harvest(r, s, e);
}

static inline int backend_huge_begin(struct rsv *r, uintptr_t a)
{
	return r->mm->backend->huge_begin ? r->mm->backend->huge_begin(r, a) : 0;
}

static inline void backend_huge_end(struct rsv *r, uintptr_t a)
{
	if (r->mm->backend->huge_end)
		r->mm->backend->huge_end(r, a);
}

static inline int backend_huge_fresh(struct rsv *r, uintptr_t a,
				     int (*make)(struct rsv *r, uintptr_t a))
{
	return r->mm->backend->huge_fresh(r, a, make);
}

/* Async-signal-safe. Does the backend fill and map pages in one step
 * (backend_ops.place), and does prot map? */
static inline bool backend_places(const struct rsv *r, int prot)
{
	return prot != EMM_PROT_NONE && r->mm->backend->place;
}

/* Async-signal-safe. backend_ops.place where backend_places: the bytes
 * placed; else 0. */
static inline size_t backend_place(struct rsv *r, uintptr_t s, uintptr_t e, const void *src,
				   int prot)
{
	DEBUG_RANGE_LOCKED(r, s, e);
	if (!backend_places(r, prot))
		return 0;
	return r->mm->backend->place(r, s, e, src, prot);
}

static inline void backend_quiesce(struct emm *mm)
{
	if (mm->backend->quiesce)
		mm->backend->quiesce(mm);
}

/*
 * What a backend may use of the core (declared in internal.h and the
 * subsystem headers):
 *
 * - rsv_enter(addr, &idx)/rsv_leave(r, idx) (physmem.h): the reservation
 *   holding addr, found lock-free, and its instance's read section around
 *   the fault, so the reservation and its VMA table stay valid; a fault
 *   delays writers of that instance only;
 * - do_user_fault(r, addr, access, &vma) (fault.h): find_vma, the access check and
 *   handle_mm_fault in one call. It returns FAULT_DONE (retry the access),
 *   FAULT_BAD_AREA (no VMA: chain or report), FAULT_ACCESS (the VMA forbids
 *   the access: its trap callback decides, else chain) or FAULT_SIGBUS (the
 *   fault could not be served: the faulting thread must get SIGBUS, as from
 *   the kernel). Any thread may call it: a signal handler or a service
 *   thread. It sleeps only on PTE locks (futex) and on I/O.
 * - report_bad_fault: the report printed when nobody takes a bad fault;
 * - backend_set_pte_prot: record a granted protection in the PTEs;
 * - backend_signal_get/put: the process-wide SIGSEGV/SIGBUS handler, for a
 *   backend whose VMA-level protection faults arrive as signals.
 */

/* Async-signal-safe. Store prot in the PTE words of [s, e) (their locks
 * held by the caller), keeping their other bits. */
void backend_set_pte_prot(struct rsv *r, uintptr_t s, uintptr_t e, int prot);

/* sighand.c: install the process-wide fault handler for the first user,
 * put back what it replaced after the last; make a handler the program
 * installs through libemm-preload.so the one emm chains to. Not
 * async-signal-safe. */
int backend_signal_get(void);
void backend_signal_put(void);
int backend_signal_interpose(int sig, const struct sigaction *act, struct sigaction *old);
void backend_sigbus_send(pid_t tid, uint64_t blocked, uintptr_t addr, int access, uintptr_t pc,
			 struct rsv *r);

#endif /* EMM_BACKEND_H */
