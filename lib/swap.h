/* SPDX-License-Identifier: MIT */
/* The swap device: a file of page slots, their allocator, checksums and batched I/O. */
#ifndef EMM_SWAP_H
#define EMM_SWAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * A swap device is a file divided into 4096-byte slots. Slot 0 is never
 * handed out, so 0 can mean "no slot" in a PTE. Every call below except
 * swap_open and swap_close is async-signal-safe and never blocks on another
 * caller: no malloc, no stdio, no mutex, only atomics and system calls. They
 * are called from the fault handler and from the reclaim thread at once.
 * They may change errno; a signal handler that calls them saves it.
 */
struct swap_dev;

/* One page of a batch: the slot, a page-aligned 4096-byte buffer, the result. */
struct swap_io {
	uint32_t slot;
	void *page;
	int err;		/* 0 or -errno, set by swap_writepages/swap_readpages */
	unsigned flags;		/* SWAP_IO_* */
	uint64_t home;		/* SWAP_IO_HOME: the page's offset in the home file */
	bool zero;		/* SWAP_IO_SKIP_ZERO: the page was all zeros, not written */
	uint32_t crc;		/* swap_write_stretch's: the checksum of the page written */
};

/*
 * The page is also at io.home in the file given to swap_set_home: its data
 * may move through a bounce buffer (pread/pwrite of that file) instead of
 * the CPU reading page, whose mapping may be cold. Reads fill the home
 * file; page is then left untouched.
 */
#define SWAP_IO_HOME		0x1u
/* Write: a page of zeros is not written; io.zero says so, io.err is 0. */
#define SWAP_IO_SKIP_ZERO	0x2u

/*
 * path NULL: an unlinked file in $TMPDIR, else /var/tmp. A path: a file
 * this process owns, created with mode 0600 (see swap.c for what happens
 * to an existing one). size is rounded down to pages, and must give at least
 * two. Returns 0 or -errno; nothing is left behind on failure.
 */
int  swap_open(const char *path, uint64_t size, struct swap_dev **out);
void swap_close(struct swap_dev *sd);
/* The default size of a swap file at path (NULL: the temporary directory):
 * the free space of its file system less margin (0: 5% of the file system,
 * at most 1 GiB), at least two pages and at most the most slots a device
 * can have. */
uint64_t swap_room(const char *path, uint64_t margin);

uint64_t swap_slots_total(const struct swap_dev *sd);	/* usable slots: pages - 1 */
uint64_t swap_slots_used(const struct swap_dev *sd);
bool swap_is_full(struct swap_dev *sd);	/* no slot left, the disk full, or the hook says so */

/* A free slot with a use count of 1; 0 when the device is full. */
uint32_t swap_alloc(struct swap_dev *sd);
/* Up to n slots, consecutive where possible; returns how many were given. */
unsigned swap_alloc_batch(struct swap_dev *sd, uint32_t *slots, unsigned n);
/* One more user of an allocated slot (swap_duplicate): 0, -EINVAL, -EOVERFLOW. */
int  swap_dup(struct swap_dev *sd, uint32_t slot);
/* Drop one use; the last one frees the slot and forgets its contents. */
void swap_free(struct swap_dev *sd, uint32_t slot);
/* The use count of a slot, 0 when free or out of range. */
unsigned swap_count(const struct swap_dev *sd, uint32_t slot);

/*
 * Batched I/O on allocated slots. Runs of consecutive slots become one
 * vectored request. Each io[i].err gets 0 or -errno: -EINVAL for a slot not
 * allocated or a page not aligned, -EIO (or the system call's errno) for a
 * failed or short transfer, and on read -ENODATA for a slot never written
 * successfully and -EBADMSG for a checksum mismatch (the buffer then holds
 * the bad bytes and must not be used). Returns how many pages succeeded.
 * A failed write leaves the slot without valid contents.
 */
int  swap_writepages(struct swap_dev *sd, struct swap_io *io, unsigned n);
/* swap_writepages of n pages whose buffers are one stretch of memory in
 * order (io[i].page == io[0].page + i * 4096), a mapping that is warm (a
 * huge page's): written from there, no bounce copy, each run of
 * consecutive slots one request and all of them in flight at once. */
int  swap_write_stretch(struct swap_dev *sd, struct swap_io *io, unsigned n);
int  swap_read_sync(const struct swap_dev *sd, uint32_t slot, unsigned n, void *buf);
int  swap_readpages(struct swap_dev *sd, struct swap_io *io, unsigned n);
/* Another file's bytes through a swap ring (see swap_io.c). */
ssize_t swap_read_file(struct swap_dev *sd, int fd, void *buf, size_t len, uint64_t off);
/* Async-signal-safe. A free, warm bounce buffer of SWAP_BOUNCE_BYTES for
 * another file's small read whose bytes are then placed (filemap.c), or
 * NULL: none free (never waits) or bounces off. Given back with
 * swap_bounce_give. */
void *swap_bounce_take(struct swap_dev *sd);
void swap_bounce_give(struct swap_dev *sd, void *buf);
#define SWAP_BOUNCE_BYTES	(64u * 4096u)	/* SWAP_BATCH pages */

/*
 * Where checked SWAP_IO_HOME pages of a read go instead of a write into
 * the home file: place puts the n pages io[0..n), which are neighbours in
 * the home file, from buf (n pages, checked) where they belong, and returns
 * how many of the first it placed; the others are written to the home
 * file. Async-signal-safe, as the read that calls it. A caller that maps
 * what it reads saves the write and the mapping's own walk.
 */
struct swap_place {
	unsigned (*place)(void *arg, const struct swap_io *io, unsigned n, const void *buf);
	void *arg;
};
/* swap_readpages with pl's hook for the pages that move through a bounce
 * buffer (NULL: swap_readpages). */
int  swap_readpages_place(struct swap_dev *sd, struct swap_io *io, unsigned n,
			  const struct swap_place *pl);

/* Test hooks: every k-th page write fails with -EIO (0: off); full makes
 * allocation fail as if no slot were free. Resets the write count. */
void swap_inject(struct swap_dev *sd, unsigned fail_every_k_writes, int full);
/* The file SWAP_IO_HOME offsets refer to (the physmem memfd); -1: none. */
void swap_set_home(struct swap_dev *sd, int fd);
/* Test hook: move SWAP_IO_HOME pages through bounce buffers (the default)
 * or read and write the page buffers directly. */
void swap_set_bounce(struct swap_dev *sd, bool on);
/* A thread waiting for a small read polls its ring for up to ns before it
 * sleeps (swap_ring.c, ring_spin); 0: it sleeps at once. */
void swap_set_spin(struct swap_dev *sd, uint32_t ns);
/* *faulting counts the faults being served now, on cpus CPUs: a reader
 * polls only while fewer are (swap_ring.c, cpu_spare). */
void swap_set_busy(struct swap_dev *sd, const _Atomic unsigned *faulting, unsigned cpus);
/* Use io_uring when the device has rings (the default), or pwritev/preadv. */
void swap_set_uring(struct swap_dev *sd, bool on);
bool swap_has_uring(const struct swap_dev *sd);
/* Whether the file is open with O_DIRECT (else buffered, page cache dropped). */
bool swap_is_direct(const struct swap_dev *sd);
/* Test hook: switch O_DIRECT off (or back on) while no I/O runs. 0 or -errno. */
int  swap_set_direct(struct swap_dev *sd, bool on);

struct swap_counters {
	uint64_t reads, writes;		/* pages transferred successfully */
	uint64_t read_errors, write_errors;	/* pages failed, checksum errors included */
	uint64_t csum_errors;		/* reads that failed their checksum */
	uint64_t uring_reqs, sync_reqs;	/* vectored requests by io_uring / pwritev+preadv */
	uint64_t bounced;		/* pages moved through a bounce buffer */
	uint64_t placed;		/* pages a read's swap_place hook put in place */
	uint64_t spun;			/* completions a waiting reader polled for */
};
void swap_get_counters(const struct swap_dev *sd, struct swap_counters *c);

/* Is the 4096-byte page all zeros? */
bool swap_page_is_zero(const void *page);
/* Does slot hold a checked copy of the page (its checksum matches)? */
bool swap_slot_holds(const struct swap_dev *sd, uint32_t slot, const void *page);

/* CRC32C (Castagnoli). Start with 0; crc32c(crc32c(0, a), b) = crc32c(0, ab). */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
/* The table-driven version, whatever the CPU offers; for tests. */
uint32_t crc32c_generic(uint32_t crc, const void *buf, size_t len);
/* Every version this CPU can run (at most max into fns), the one crc32c()
 * uses first and the table-driven one last; returns how many. For tests. */
int crc32c_variants(uint32_t (**fns)(uint32_t crc, const void *buf, size_t len), int max);

#endif /* EMM_SWAP_H */
