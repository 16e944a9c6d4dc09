/* SPDX-License-Identifier: MIT */
/* What the kernel and emm each say of one page: the pagemap's present bit, emm's PTE word; and of an extent: whether emm has it collapsed. */
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

/* The reservation of a, entered (rsv_leave it with idx), or a bail. */
PEEK_FN struct rsv *peek_rsv(const void *a, int *idx)
{
	struct rsv *r = rsv_enter((uintptr_t)a, idx);

	if (!r)
		bail("no reservation at %p", a);
	return r;
}

/* The PTE word emm keeps for the page at a, without its lock bits. */
PEEK_FN uint64_t pte_word(const void *a)
{
	int idx = 0;
	struct rsv *r = peek_rsv(a, &idx);
	uint64_t v = atomic_load(pte_of(r, (uintptr_t)a)) & ~(PTE_LOCKED | PTE_WAITERS);

	rsv_leave(r, idx);
	return v;
}

/* Is the extent at p (2 MiB-aligned) collapsed, as emm has it? */
PEEK_FN bool extent_collapsed(const void *p)
{
	int idx = 0;
	struct rsv *r = peek_rsv(p, &idx);
	bool h = extent_huge(r, (uintptr_t)p);

	rsv_leave(r, idx);
	return h;
}

/* Pages of the extent at p that are not resident while emm still has it
 * collapsed: pages gone by themselves, the extent's unit broken. */
PEEK_FN size_t gone_while_collapsed(const void *p)
{
	size_t n = 0;

	if (!extent_collapsed(p))
		return 0;
	for (size_t i = 0; i < 512; i++)
		n += pte_state(pte_word((const char *)p + i * 4096)) != PTE_RESIDENT;
	return n;
}

#endif /* EMM_T_PTE_PEEK_H */
