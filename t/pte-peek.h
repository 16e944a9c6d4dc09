/* SPDX-License-Identifier: MIT */
/* What the kernel and emm each say of one page: the pagemap's present bit, emm's PTE word. */
#ifndef EMM_T_PTE_PEEK_H
#define EMM_T_PTE_PEEK_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "physmem.h"
#include "pte.h"
#include "tap.h"

#define PEEK_FN static __attribute__((unused))

/* Does the kernel map the page at a in this process's page tables
 * (/proc/self/pagemap's present bit)? Opened at the first call. */
PEEK_FN bool kernel_mapped(const void *a)
{
	static int pagemap = -1;
	uint64_t e = 0;

	if (pagemap < 0 && (pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)) < 0)
		bail("open /proc/self/pagemap: %s", strerror(errno));
	if (pread(pagemap, &e, sizeof(e), (off_t)((uintptr_t)a / 4096 * sizeof(e))) != sizeof(e))
		bail("pread /proc/self/pagemap: %s", strerror(errno));
	return e >> 63;
}

/* The PTE word emm keeps for the page at a, without its lock bits. */
PEEK_FN uint64_t pte_word(const void *a)
{
	int idx = 0;
	struct rsv *r = rsv_enter((uintptr_t)a, &idx);
	uint64_t v;

	if (!r)
		bail("no reservation at %p", a);
	v = atomic_load(pte_of(r, (uintptr_t)a)) & ~(PTE_LOCKED | PTE_WAITERS);
	rsv_leave(r, idx);
	return v;
}

#endif /* EMM_T_PTE_PEEK_H */
