/* SPDX-License-Identifier: MIT */
/* A swapped page's slot as emm has it, and that slot's bytes in the swap file damaged around the page cache. */
#ifndef EMM_T_SWAP_SLOT_H
#define EMM_T_SWAP_SLOT_H

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "physmem.h"
#include "pte.h"
#include "tap.h"

#define SLOT_FN static __attribute__((unused))

/* The slot the swapped page at a lives in, or 0. */
SLOT_FN uint32_t swapped_slot(const void *a)
{
	int idx = 0;
	struct rsv *r = rsv_enter((uintptr_t)a, &idx);
	uint64_t pte;

	if (!r)
		return 0;
	pte = atomic_load(pte_of(r, (uintptr_t)a));
	rsv_leave(r, idx);
	return pte_state(pte) == PTE_SWAPPED ? pte_val(pte) : 0;
}

/*
 * Flip bytes of slot in the swap file at path through a descriptor of our
 * own; before gets the slot's 4096 bytes as they were. O_DIRECT goes
 * around the page cache both ways, so what emm reads (itself with
 * O_DIRECT, or buffered after dropping its cache) is what we wrote.
 * 0, or -1 on error.
 */
SLOT_FN int corrupt_slot(const char *path, uint32_t slot, uint64_t *before)
{
	int fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC), direct = fd >= 0, ret = -1;
	off_t off = (off_t)slot * 4096;
	uint64_t *buf = NULL;

	if (fd < 0)
		fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 || posix_memalign((void **)&buf, 4096, 4096))
		goto out;
	if (pread(fd, buf, 4096, off) != 4096)
		goto out;
	memcpy(before, buf, 4096);
	buf[0] ^= 0xff;
	buf[4096 / 8 / 2] ^= 1ULL << 40;
	if (pwrite(fd, buf, 4096, off) != 4096 || fdatasync(fd) < 0)
		goto out;
	if (!direct)
		posix_fadvise(fd, off, 4096, POSIX_FADV_DONTNEED);
	diag("slot %u corrupted through %s I/O", slot, direct ? "O_DIRECT" : "buffered");
	ret = 0;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return ret;
}

#endif /* EMM_T_SWAP_SLOT_H */
