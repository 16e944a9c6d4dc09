/* SPDX-License-Identifier: MIT */
/* Instances and reservations: emm_open, emm_close, emm_reserve, emm_release. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

static int open_physmem(void)
{
	int fd = memfd_create("emm-physmem", MFD_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static void print_to_stderr(const char *line, void *arg)
{
	(void)arg;
	write_all(STDERR_FILENO, line, strlen(line));
	write_all(STDERR_FILENO, "\n", 1);
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
	err = config_load(&mm->cfg, opts);
	if (!err && mm->cfg.backend == EMM_BACKEND_UFFD)
		err = -EOPNOTSUPP;
	if (!err)
		err = mm->memfd = open_physmem();
	if (err >= 0)
		err = signal_backend_get();
	if (err < 0) {
		if (mm->memfd >= 0)
			close(mm->memfd);
		config_free(&mm->cfg);
		free(mm);
		return err;
	}
	pthread_mutex_init(&mm->lock, NULL);
	emm_log(mm, "open: limit %llu bytes, fault-around %u pages, signal backend",
		(unsigned long long)mm->cfg.mem_limit, mm->cfg.fault_around);
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
	*pp = r->next;
	sig_block(&old);
	rsv_destroy(r);
	sig_restore(&old);
}

EMM_API int emm_close(struct emm *mm)
{
	if (!mm)
		return -EINVAL;
	if (mm->cfg.flags & EMM_OPEN_SHOW_STATS)
		emm_stats_print(mm, print_to_stderr, NULL);
	pthread_mutex_lock(&mm->lock);
	while (mm->rsvs)
		release_one(mm, mm->rsvs);
	pthread_mutex_unlock(&mm->lock);
	signal_backend_put();
	close(mm->memfd);
	pthread_mutex_destroy(&mm->lock);
	config_free(&mm->cfg);
	free(mm);
	return 0;
}

EMM_API int emm_reserve(struct emm *mm, size_t len, void **addrp)
{
	struct rsv *r;
	int err;

	if (!mm || !addrp || !len || !IS_ALIGNED(len, PAGE_SIZE) || len > (1ULL << 56))
		return -EINVAL;
	pthread_mutex_lock(&mm->lock);
	err = rsv_create(mm, len, &r);
	if (!err) {
		r->next = mm->rsvs;
		mm->rsvs = r;
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
	pthread_mutex_lock(&mm->lock);
	for (r = mm->rsvs; r && r->start != (uintptr_t)addr; r = r->next)
		;
	if (r)
		release_one(mm, r);
	pthread_mutex_unlock(&mm->lock);
	return r ? 0 : -EINVAL;
}
