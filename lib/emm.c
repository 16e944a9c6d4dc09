/* SPDX-License-Identifier: MIT */
/* Instances and reservations: emm_open, emm_close, emm_reserve(_ex), emm_release. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "filemap.h"
#include "fork.h"
#include "huge_memory.h"
#include "kswapd.h"
#include "lru.h"
#include "memory.h"
#include "options.h"
#include "pager.h"
#include "physmem.h"
#include "profile.h"
#include "readahead.h"
#include "stats_shm.h"
#include "swap.h"
#include "util.h"
#include "workingset.h"

static int open_physmem(struct emm *mm)
{
	int fd = memfd_create("emm-physmem", MFD_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) == 0)
		mm->ino_bias = st.st_ino;
	return fd;
}

static void print_to_stderr(const char *line, void *arg)
{
	(void)arg;
	write_all(STDERR_FILENO, line, strlen(line));
	write_all(STDERR_FILENO, "\n", 1);
}

/* Undo what emm_open got done, in reverse. */
static void teardown(struct emm *mm, bool backend)
{
	readahead_stop(mm);
	khugepaged_stop(mm);
	kswapd_stop(mm);
	pager_stop(mm);
	profile_close(mm);	/* no reservation left: no fault samples it */
	if (backend)
		backend_close(mm);
	if (mm->swap)
		swap_close(mm->swap);
	lru_destroy(mm);
	if (mm->memfd >= 0)
		close(mm->memfd);
	config_free(&mm->cfg);
	free(mm);
}

static int open_parts(struct emm *mm, const struct emm_opts *opts)
{
	int err = config_load(&mm->cfg, opts);

	if (!err)
		err = mm->memfd = open_physmem(mm);
	if (err >= 0)
		err = lru_init(mm);
	if (!err)
		workingset_init(mm);
	if (!err)
		err = swap_open(mm->cfg.swap_path, mm->cfg.swap_size ? mm->cfg.swap_size :
				swap_room(mm->cfg.swap_path, mm->cfg.swap_margin), &mm->swap);
	if (!err)
		swap_set_home(mm->swap, mm->memfd);
	if (!err)
		swap_set_spin(mm->swap, mm->cfg.flags & CFG_SWAP_SPIN ? SWAP_SPIN_NS : 0);
	if (!err)
		swap_set_busy(mm->swap, &mm->faulting, usable_cpus());
	if (!err)
		err = kswapd_start(mm);
	if (!err)
		err = khugepaged_start(mm);
	if (!err)
		err = readahead_start(mm);
	if (!err)
		err = profile_open(mm);
	return err;
}

EMM_API int emm_open(const struct emm_opts *opts, struct emm **mmp)
{
	struct emm *mm;
	int err;

	if (!mmp)
		return -EINVAL;
	mm = calloc(1, sizeof(*mm));
	if (!mm)
		return -ENOMEM;
	mm->memfd = -1;
	mm->pid = getpid();
	pthread_mutex_init(&mm->lock, NULL);
	kvma_limit_refresh();
	err = open_parts(mm, opts);
	if (!err)
		err = backend_open(mm);
	if (err < 0) {
		teardown(mm, false);
		return err;
	}
	emm_log(mm, "open: limit %llu bytes, fault-around %u pages, %s backend",
		(unsigned long long)mm->cfg.mem_limit, mm->cfg.fault_around, mm->backend->name);
	stats_shm_open(mm);
	fork_register(mm);
	*mmp = mm;
	return 0;
}

/* Take r off the instance's list and give everything it holds back. */
static void release_one(struct emm *mm, struct rsv *r)
{
	struct rsv **pp = &mm->rsvs;
	sigset_t old;

	while (*pp != r)
		pp = &(*pp)->next;
	/* Release: lock-free readers of the list see a whole reservation. */
	__atomic_store_n(pp, r->next, __ATOMIC_RELEASE);
	sig_block(&old);
	if (sync_range(r, r->start, r->start + r->len))
		emm_warn("writing back a FILE or PAGER range failed: data since the last emm_sync may be lost");
	rsv_unregister(r);
	zap_range(r, r->start, r->start + r->len, false);
	rsv_destroy(r);
	sig_restore(&old);
}

EMM_API int emm_close(struct emm *mm)
{
	if (!mm)
		return -EINVAL;
	if (mm_foreign(mm))
		return -ECHILD;
	if (mm->cfg.flags & EMM_OPEN_SHOW_STATS)
		emm_stats_print(mm, print_to_stderr, NULL);
	fork_unregister(mm);
	stats_shm_close(mm);
	/* A service thread may still be finishing a fault whose thread has
	 * already resumed: it charges the budget and wakes the reclaim thread,
	 * which must still be there. */
	backend_quiesce(mm);
	readahead_stop(mm);
	khugepaged_stop(mm);
	kswapd_stop(mm);
	pthread_mutex_lock(&mm->lock);
	while (mm->rsvs)
		release_one(mm, mm->rsvs);
	pthread_mutex_unlock(&mm->lock);
	pager_stop(mm);
	pthread_mutex_destroy(&mm->lock);
	teardown(mm, true);
	return 0;
}

EMM_API int emm_reserve(struct emm *mm, size_t len, void **addrp)
{
	return emm_reserve_ex(mm, len, NULL, addrp);
}

EMM_API int emm_reserve_ex(struct emm *mm, size_t len, const struct emm_reserve_opts *o,
			   void **addrp)
{
	size_t align = PMD_SIZE;
	struct rsv *r;
	int err;

	if (!mm || !addrp || !len || !IS_ALIGNED(len, PAGE_SIZE) || len > (1ULL << 56))
		return -EINVAL;
	if (mm_foreign(mm))
		return -ECHILD;
	if (o) {
		struct emm_reserve_opts def = { .sz = sizeof(def) }, got;

		err = opts_get(&got, &def, o, sizeof(got));
		if (err)
			return err;
		if (got.align)
			align = got.align;
	}
	/* An alignment beyond 2^56 could not be found in the address space. */
	if (align < PMD_SIZE || (align & (align - 1)) || align > (1ULL << 56))
		return -EINVAL;
	pthread_mutex_lock(&mm->lock);
	err = rsv_create(mm, len, align, &r);
	if (!err) {
		r->next = mm->rsvs;
		/* Release: as in release_one. */
		__atomic_store_n(&mm->rsvs, r, __ATOMIC_RELEASE);
		*addrp = (void *)r->start;
	}
	pthread_mutex_unlock(&mm->lock);
	return err;
}

EMM_API int emm_release(struct emm *mm, void *addr)
{
	struct rsv *r;

	if (!mm)
		return -EINVAL;
	if (mm_foreign(mm))
		return -ECHILD;
	pthread_mutex_lock(&mm->lock);
	for (r = mm->rsvs; r && r->start != (uintptr_t)addr; r = r->next)
		;
	if (r)
		release_one(mm, r);
	pthread_mutex_unlock(&mm->lock);
	return r ? 0 : -EINVAL;
}
