/* SPDX-License-Identifier: MIT */
/* A fault the uffd backend cannot serve: EFAULT for a system call, SIGBUS as the kernel would raise it otherwise. */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "pte.h"
#include "uffd.h"
#include "uffd_fail.h"
#include "util.h"

#define UFFD_FAIL_WAIT_MS 20		/* longest a page stays poisoned for a system call */
#define UFFD_MASK_READS	20		/* reads of a fault signal's mask that say blocked */
#define UFFD_MASK_READ_US 50		/* apart */

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
 * In *blocked, the signals thread tid blocks while it sleeps in its fault
 * at pc; false when it leaves that sleep meanwhile. A fault signal that
 * reads as blocked may be the mask of a handler the thread runs for a
 * moment (a signal took it out of its sleep; ThreadSanitizer's wrapper
 * blocks them all): only a mask that stays so while the thread sleeps on
 * the same instruction, over UFFD_MASK_READS reads, is the fault's.
 */
static bool blocked_in_fault(pid_t tid, uintptr_t pc, uint64_t *blocked)
{
	uint64_t fault_sigs = (1ull << (SIGSEGV - 1)) | (1ull << (SIGBUS - 1));

	*blocked = uffd_thread_blocked(tid);
	for (int i = 0; i < UFFD_MASK_READS && (*blocked & fault_sigs); i++) {
		char buf[256] = "";
		int nr;
		uintptr_t now;

		usleep(UFFD_MASK_READ_US);
		nr = uffd_thread_syscall(tid, buf, sizeof(buf));
		if (uffd_thread_fault_pc(buf, nr, &now) == 0 || (pc && now != pc))
			return false;
		*blocked = uffd_thread_blocked(tid);
	}
	return true;
}

/*
 * On a service thread, a fault of thread tid that emm could not serve (its
 * data unreadable), for the userfaultfd fd: in a system call, EFAULT; asleep
 * in a fault in user mode, the SIGBUS the kernel would raise, to the handler
 * installed for it now, or the process dies of it (backend_sigbus_send).
 * Running, or asleep elsewhere than in a userfaultfd fault, the thread is
 * not in this fault: the message is one it left (a signal took it out, or
 * a wake for an earlier fault of the page made it retry, which sent this
 * one), or it has not gone to sleep yet. The wake that follows makes it
 * fault again if it still makes the access, and that fault is served; a
 * SIGBUS or an EFAULT now would come where no access failed.
 */
void uffd_fail(int fd, struct rsv *r, pid_t tid, uintptr_t addr, int access)
{
	char buf[256] = "";
	int nr;
	uint64_t blocked;
	uintptr_t pc;

	if (uffd_thread_in_fault(tid) == 0)
		return;
	nr = uffd_thread_syscall(tid, buf, sizeof(buf));
	if (nr >= 0)
		fail_syscall(fd, r, tid, ALIGN_DOWN(addr, PAGE_SIZE));
	else if (uffd_thread_fault_pc(buf, nr, &pc) != 0 && blocked_in_fault(tid, pc, &blocked))
		backend_sigbus_send(tid, blocked, addr, access, pc, r);
}
