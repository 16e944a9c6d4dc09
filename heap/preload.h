/* SPDX-License-Identifier: MIT */
/* What the preload's files share. */
#ifndef EMM_PRELOAD_H
#define EMM_PRELOAD_H

#include "internal.h"

#define PRELOAD_API __attribute__((visibility("default")))

/* The instance behind the process's heap, or NULL while there is none. */
HEAP_INTERNAL struct emm *preload_mm(void);
/* Whether the calling thread's system calls on heap buffers need them
 * brought in first (preload-io.c). */
HEAP_INTERNAL bool preload_io_touch(void);
/* Whether emm's faults come as SIGSEGV and SIGBUS (not the uffd backend),
 * which no thread may then block (preload-signal.c). */
HEAP_INTERNAL bool preload_signal_faults(void);
/* Whether [p, p + n) lies on emm memory a system call must find resident:
 * the heap's or preload-mmap.c's, on a backend that does not wait for it,
 * not on emm's own threads (preload-io.c). */
HEAP_INTERNAL bool preload_io_wanted(uintptr_t p, size_t n);
/* Fault in each page of [p, p + len), for writing or for reading
 * (preload-io.c). */
HEAP_INTERNAL void preload_io_fault_in(const void *p, size_t len, bool for_write);
/* Unblock SIGSEGV and SIGBUS in the calling thread (preload-signal.c). */
HEAP_INTERNAL void preload_unblock_faults(void);

/* Whether the calling thread is one emm started (preload.c). */
HEAP_INTERNAL bool preload_emm_thread(void);
/* Whether p lies in the range private anonymous mappings come from
 * (preload-mmap.c); making that range, with EMM_PRELOAD_MMAP. */
HEAP_INTERNAL bool preload_mmap_owns(const void *p);
HEAP_INTERNAL int preload_mmap_init(struct emm *m, uintptr_t self_lo, uintptr_t self_hi,
				     uintptr_t mi_lo, uintptr_t mi_hi, uint64_t size);

/* With on, reads of the program's memory cgroup limit find the budget
 * where it is less (EMM_PRELOAD_CGROUP, preload-cgroup.c). */
HEAP_INTERNAL void preload_cgroup_init(bool on);
/* An open of path with flags, when it reads a memory cgroup's limit: a
 * file holding the budget, or the cgroup's limit where that is less (a
 * descriptor, or -1 with errno); else -2, for the C library's open. */
HEAP_INTERNAL int preload_cgroup_open(const char *path, int flags);

#endif
