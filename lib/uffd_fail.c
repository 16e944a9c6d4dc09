/* SPDX-License-Identifier: MIT */
/* A fault the uffd backend cannot serve: EFAULT for a system call, SIGBUS as the kernel would raise it otherwise. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "pte.h"
#include "uffd.h"
#include "uffd_fail.h"
#include "util.h"

#define UFFD_FAIL_WAIT_MS 20		/* longest a page stays poisoned for a system call */

/*
 * A system call's access to a page emm could not serve fails with EFAULT,
 * as under the kernel's swap: the page is poisoned, which fails the access
 * the woken thread makes again, until that thread has left the system
 * call (or UFFD_FAIL_WAIT_MS passed); then the poison is zapped. The PTE
 * lock, held all along, keeps emm from mapping the page meanwhile; another
 * thread's access in that window gets the kernel's own SIGBUS.
 */
static void fail_syscall(int fd, struct rsv *r, pid_t tid, uintptr_t page)
{
	_Atomic uint64_t *p = pte_of(r, page);
	uint64_t v = pte_lock(p);
	char was[256], now[256];
	uint64_t t0 = now_ns();

	if (pte_prot(v) == EMM_PROT_NONE && uffd_thread_syscall(tid, was, sizeof(was)) >= 0 &&
	    uffd_poison(fd, page, page + PAGE_SIZE) == 0) {
		while (uffd_thread_syscall(tid, now, sizeof(now)) >= 0 && !strcmp(was, now) &&
		       now_ns() - t0 < UFFD_FAIL_WAIT_MS * 1000000ull)
			usleep(50);
		madvise((void *)page, PAGE_SIZE, MADV_DONTNEED);
	}
	pte_unlock(p, v);
}

/*
 * On a service thread, a fault of thread tid that emm could not serve (its
 * data unreadable), for the userfaultfd fd: in a system call, EFAULT; else
 * the SIGBUS the kernel would raise, to the handler installed for it now,
 * or the process dies of it (backend_sigbus_send).
 */
void uffd_fail(int fd, struct rsv *r, pid_t tid, uintptr_t addr, int access)
{
	char buf[256];

	if (uffd_thread_syscall(tid, buf, sizeof(buf)) >= 0)
		fail_syscall(fd, r, tid, ALIGN_DOWN(addr, PAGE_SIZE));
	else
		backend_sigbus_send(tid, uffd_thread_blocked(tid), addr, access, r);
}
