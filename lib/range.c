/* SPDX-License-Identifier: MIT */
/* Checking an API call's range and running an operation on it under mm->lock. */
#include <errno.h>

#include "internal.h"

/* -EINVAL unless mm is set and [addr, addr + len) is a non-empty page range. */
int check_range(const struct emm *mm, const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;

	if (!mm || !len || !IS_ALIGNED(a, PAGE_SIZE) || !IS_ALIGNED(len, PAGE_SIZE) ||
	    a + len < a)
		return -EINVAL;
	return 0;
}

/* Find the reservation holding all of [addr, addr + len), with no holes
 * unless holes_ok, and run fn on the range with signals blocked and
 * mm->lock held. */
int with_range_holes(struct emm *mm, void *addr, size_t len, bool holes_ok, range_fn fn,
		     void *arg)
{
	uintptr_t s = (uintptr_t)addr;
	struct rsv *r;
	sigset_t old;
	int err = check_range(mm, addr, len);

	if (err)
		return err;
	sig_block(&old);
	pthread_mutex_lock(&mm->lock);
	err = rsv_find_range(mm, s, len, &r);
	if (!err && !holes_ok && !range_covered(r, s, s + len))
		err = -ENOMEM;
	if (!err && fn)
		err = fn(r, s, s + len, arg);
	pthread_mutex_unlock(&mm->lock);
	sig_restore(&old);
	return err;
}

int with_range(struct emm *mm, void *addr, size_t len, range_fn fn, void *arg)
{
	return with_range_holes(mm, addr, len, false, fn, arg);
}
