/* SPDX-License-Identifier: MIT */
/* The userfaultfd primitives (uffd.c), for lib/backend-uffd.c. */
#ifndef EMM_UFFD_H
#define EMM_UFFD_H

#include <linux/userfaultfd.h>
#include <sys/uio.h>

#include "internal.h"

/* Debian 12's headers are Linux 6.1's: what came later is probed at run time. */
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON		(1 << 14)
#endif
#ifndef UFFDIO_POISON
struct uffdio_poison {
	struct uffdio_range range;
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON			_IOWR(UFFDIO, 0x08, struct uffdio_poison)
#endif
#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP		((__u64)1 << 1)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED	(1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC		(1 << 15)
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW		_IO(0xAA, 0x00)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY		1
#endif

/* process_madvise(2) (5.10) taking any advice from a process for itself
 * (6.13) through PIDFD_SELF (6.14): zapping many ranges in one call. */
#ifndef SYS_process_madvise
#define SYS_process_madvise		440
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open			434
#endif
#define PIDFD_SELF_GROUP		(-10001)	/* PIDFD_SELF_THREAD_GROUP, linux/fcntl.h */
#define ZAP_IOV_MAX			1024		/* UIO_MAXIOV */

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
/*
 * Write-protection the kernel resolves itself (6.7): a write to a page
 * mapped without write access goes through with no message, and clears
 * the page's uffd-wp bit, which /proc/self/pagemap shows (bit 57), also
 * as a marker once the page is zapped unwritten. emm reads that bit
 * instead of taking a write fault.
 */
#define UFFD_WP_ASYNC	(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED)
#define PM_UFFD_WP	(1ULL << 57)		/* a pagemap entry's uffd-wp bit */
int uffd_open_fd(bool sigbus, bool *wp_async);
void uffd_wake_later(uintptr_t s, uintptr_t e);
void uffd_wake(int fd, uintptr_t s, uintptr_t e);
int uffd_wp(int fd, uintptr_t s, uintptr_t e, bool wp);
int uffd_continue(int fd, uintptr_t s, uintptr_t e, bool wp,
		  bool (*exists)(void *arg, uintptr_t a), void *arg);
size_t uffd_copy(int fd, uintptr_t s, uintptr_t e, const void *src, bool wp);
int uffd_zero_fill(int fd, uintptr_t s, uintptr_t e);
int uffd_register(int fd, uintptr_t s, uintptr_t e, uint64_t mode);
int uffd_poison(int fd, uintptr_t s, uintptr_t e);
int uffd_thread_cpu(pid_t tid);
int zap_open(int *pidfd, const char **how);
ssize_t zap_many(int pidfd, const struct iovec *iov, unsigned n);
int uffd_thread_syscall(pid_t tid, char *buf, size_t cap);
int uffd_thread_fault_pc(const char *buf, int syscall_nr, uintptr_t *pc);
int uffd_thread_in_fault(pid_t tid);
uint64_t uffd_thread_blocked(pid_t tid);

#endif /* EMM_UFFD_H */
