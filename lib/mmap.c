/* SPDX-License-Identifier: MIT */
/* emm_map and emm_unmap: VMAs from the caller's options, and dropping ranges. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "filemap.h"
#include "huge_memory.h"
#include "lru.h"
#include "memory.h"
#include "emm_numa.h"
#include "options.h"
#include "pager.h"
#include "util.h"
#include "physmem.h"
#include "range.h"
#include "vma.h"

#define MAP_FLAGS_KNOWN (EMM_MAP_HUGEPAGE | EMM_MAP_NOHUGEPAGE | EMM_MAP_LOCKED)

/* The descriptor of a FILE VMA: readable, writable if the VMA is, not
 * append-only (writeback writes in place), a regular file or a device. */
static int check_file(const struct emm_map_opts *o)
{
	int fl = o->fd < 0 ? -1 : fcntl(o->fd, F_GETFL);
	struct stat st;

	if (fl < 0)
		return -EBADF;
	if ((fl & O_ACCMODE) == O_WRONLY || (fl & O_APPEND))
		return -EACCES;
	if ((o->prot & EMM_PROT_WRITE) && (fl & O_ACCMODE) != O_RDWR)
		return -EACCES;
	if (fstat(o->fd, &st) < 0)
		return -errno;
	return S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) ? 0 : -ENODEV;
}

/*
 * emm keeps its own descriptor, so the caller may close theirs; and, where
 * the file system allows, one opened O_DIRECT, so pages go straight between
 * the file and physmem: not held twice (in the page cache too, outside the
 * budget) nor copied twice.
 */
static int file_get(int fd, struct emm_file **fp)
{
	struct emm_file *f = calloc(1, sizeof(*f));
	char path[40];

	if (!f)
		return -ENOMEM;
	f->writable = (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR;
	f->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (f->fd < 0) {
		int err = -errno;

		free(f);
		return err;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", f->fd);
	f->dfd = open(path, (f->writable ? O_RDWR : O_RDONLY) | O_DIRECT | O_CLOEXEC);
	*fp = f;
	return 0;
}

static int check_policy(const struct emm_map_opts *o)
{
	switch (o->policy) {
	case EMM_POLICY_ANON:
	case EMM_POLICY_GUARD:
		return 0;
	case EMM_POLICY_FILE:
		if (!IS_ALIGNED(o->offset, PAGE_SIZE))
			return -EINVAL;
		return check_file(o);
	case EMM_POLICY_PAGER:
		if (!o->pager || !o->pager->fill || !IS_ALIGNED(o->offset, PAGE_SIZE))
			return -EINVAL;
		return 0;
	default:
		return -EINVAL;
	}
}

/* What a field the caller's struct does not reach gets: as with no struct. */
static const struct emm_map_opts map_defaults = {
	.sz = sizeof(map_defaults), .prot = EMM_PROT_READ | EMM_PROT_WRITE, .fd = -1,
};

static int vma_from_opts(struct emm_vma *v, uintptr_t addr, size_t len,
			 const struct emm_map_opts *opts)
{
	struct emm_map_opts ob, *o = &ob;
	int err;

	memset(v, 0, sizeof(*v));
	v->start = addr;
	v->end = addr + len;
	if (!opts) {
		v->prot = map_defaults.prot;
		return 0;
	}
	err = opts_get(o, &map_defaults, opts, sizeof(*o));
	if (err)
		return err;
	if ((o->prot & ~(EMM_PROT_READ | EMM_PROT_WRITE | EMM_PROT_EXEC)) ||
	    (o->flags & ~MAP_FLAGS_KNOWN) ||
	    (o->flags & EMM_MAP_HUGEPAGE && o->flags & EMM_MAP_NOHUGEPAGE))
		return -EINVAL;
	err = numa_check(o->numa_policy, o->numa_nodes);
	if (!err)
		err = check_policy(o);
	if (err)
		return err;
	v->prot = prot_implied(o->prot);
	v->policy = o->policy;
	v->flags = o->flags;
	v->trap = o->trap;
	v->trap_arg = o->trap_arg;
	v->offset = o->offset;
	v->pager = o->pager;
	v->pager_arg = o->pager_arg;
	v->numa_policy = o->numa_policy;
	v->numa_nodes = o->numa_nodes;
	return 0;
}

/* A thread that blocks the signal its faults raise (the backend's; none
 * on uffd, whose faults service threads serve) dies at its first fault in
 * emm memory, before emm's handler can run: say so while it can be said. */
static void warn_blocked_faults(const struct emm *mm)
{
	int sig = mm->backend->fault_signal;
	sigset_t cur;

	if (sig && pthread_sigmask(SIG_SETMASK, NULL, &cur) == 0 && sigismember(&cur, sig) == 1)
		emm_warn("emm_map from a thread that blocks %s: its first fault on a page emm "
			 "has not mapped will kill the process (see emm(7))",
			 sig == SIGSEGV ? "SIGSEGV" : "SIGBUS");
}

EMM_API int emm_map(struct emm *mm, void *addr, size_t len, const struct emm_map_opts *opts)
{
	struct emm_vma v;
	struct rsv *r;
	int err = check_range(mm, addr, len);

	if (!err)
		err = vma_from_opts(&v, (uintptr_t)addr, len, opts);
	if (err)
		return err;
	if (in_trap_callback())
		return -EDEADLK;
	warn_blocked_faults(mm);
	if (v.policy == EMM_POLICY_FILE && (err = file_get(opts->fd, &v.file)))
		return err;
	pthread_mutex_lock(&mm->lock);
	err = rsv_find_range(mm, v.start, len, &r);
	if (!err && v.policy == EMM_POLICY_PAGER)
		err = pager_start(mm);
	if (!err)
		err = vma_insert(r, &v);
	if (!err && (err = backend_vma_protect(r, v.start, v.end, target_prot(&v))))
		vma_remove(r, v.start, v.end);
	if (!err && (v.numa_policy != EMM_NUMA_LOCAL || mm->lru->nnodes > 1)) {
		/* The policy lives with physmem, so both views follow it. */
		err = numa_apply_fd(mm->memfd, r->pgoff + (v.start - r->start), len,
				    v.numa_policy, v.numa_nodes);
		if (err)
			vma_remove(r, v.start, v.end);
	}
	pthread_mutex_unlock(&mm->lock);
	if (err && v.file)
		file_put(v.file);
	if (!err && (v.flags & EMM_MAP_LOCKED)) {
		err = emm_pin(mm, addr, len);
		if (err)
			emm_unmap(mm, addr, len);
	}
	return err;
}

/* Nothing written is lost: FILE and PAGER pages go home first. */
static int unmap_range(struct rsv *r, uintptr_t s, uintptr_t e, void *arg)
{
	int err = sync_range(r, s, e);

	(void)arg;
	if (!err) {
		thp_split_range(r, s, e, false);
		err = vma_remove(r, s, e);
	}
	if (!err)
		err = backend_vma_protect(r, s, e, EMM_PROT_NONE);
	if (!err)
		zap_range(r, s, e, true);
	return err;
}

EMM_API int emm_unmap(struct emm *mm, void *addr, size_t len)
{
	if (in_trap_callback())
		return -EDEADLK;
	return with_range_holes(mm, addr, len, true, unmap_range, NULL);
}
