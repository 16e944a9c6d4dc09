/* SPDX-License-Identifier: MIT */
/* The swap device's insides, shared by swapfile.c (slots) and swap_io.c (I/O). */
#ifndef EMM_SWAP_DEV_H
#define EMM_SWAP_DEV_H

#include <liburing.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/uio.h>
#include <time.h>

#include "internal.h"
#include "swap.h"

#define SWAP_CLUSTER	256		/* slots a CPU takes at a time, as the kernel's SWAPFILE_CLUSTER */
#define SWAP_BATCH	64		/* pages per round of I/O: bounds the stack a fault may use */
#define SWAP_RINGS	4		/* io_uring instances shared by all callers */
/*
 * Bounce buffers of SWAP_BATCH pages, shared by all callers (4 MiB, warm).
 * A caller that finds none free reads or writes the pages where they are,
 * through cold mappings. Six readahead threads and four reclaim threads
 * may each hold one through their I/O: with four buffers, a sequential
 * read of 4 GiB under 1 GiB (uffd-sigbus, 2-vCPU VM) spent 18.5% of its
 * CPU samples in the CRC and 11% in write_chunk's zero check, most on cold
 * pages (5% and 0.2% with sixteen), and ran at 487 to 689 MiB/s against
 * 610 to 817 with sixteen (six of seven alternating pairs faster).
 */
#define SWAP_BOUNCES	16
#define SWAP_BOUNCE_MEM	((size_t)SWAP_BOUNCES * SWAP_BATCH * PAGE_SIZE)	/* their one mapping */
#define SWAP_PREALLOC	(64ULL << 20)	/* blocks given to the file ahead of its writes, at a time */
#define SWAP_REFILLS	8		/* clusters one allocation may walk before it scans */
#define NOSPACE_RECHECK_NS (100 * 1000000L)	/* a full disk is looked at this often */
#define NOSPACE_RESUME	(1ULL << 20)	/* free bytes on it that end the back-off */
#define SWAP_MAX_PAGES	((1ULL << 32) - SWAP_CLUSTER)	/* slots are 32-bit */

/* swap_map entry: a use count, and a bit saying the slot holds a checked page. */
#define SWAP_MAP_COUNT	0x7f
#define SWAP_MAP_MAX	0x7e
#define SWAP_MAP_BAD	0x7f		/* slot 0 and the padding after the last slot */
#define SWAP_HAS_DATA	0x80

#define CLUSTER_OWNED	(1u << 31)	/* a CPU's cursor walks this cluster */

/* A CPU's allocation cursor: (cluster + 1) << 32 | next offset, 0 for none. */
struct swap_cpu {
	_Atomic uint64_t cursor;
} __attribute__((aligned(64)));

struct swap_ring {
	struct io_uring ring;
	atomic_flag busy;		/* taken with a trylock; never released once dead */
	bool fixed;			/* the swap file is registered as file 0 */
	bool bufs;			/* the bounce buffers are registered as buffer 0 */
};

struct swap_stat {
	_Atomic uint64_t reads, writes, read_errors, write_errors, csum_errors;
	_Atomic uint64_t uring_reqs, sync_reqs, bounced, placed, spun;
};

/* SWAP_BATCH pages for SWAP_IO_HOME transfers, taken with a trylock. */
struct swap_bounce {
	atomic_flag busy;
	char *buf;
};

struct swap_dev {
	int fd;
	bool direct;
	bool named;			/* truncated at close: its contents die with us */
	unsigned nrings;
	unsigned ncpus;
	uint64_t nslots;		/* pages of the file, slot 0 included */
	uint64_t nclusters;
	size_t map_len;			/* the one mapping holding all of this */
	_Atomic bool use_uring;
	_Atomic bool use_bounce;
	_Atomic uint32_t spin_ns;	/* swap_set_spin; 0: a waiting reader sleeps at once */
	_Atomic uint32_t wait_ns[2];	/* a small read's time by epoch: [0] slept, [1] polled */
	_Atomic uint32_t waits;		/* small reads so far (poll_pick) */
	_Atomic uint32_t epoch_n;	/* reads counted in this epoch (poll_learn) */
	_Atomic uint64_t epoch_ns;	/* and their time */
	_Atomic unsigned waiters;	/* threads waiting for a small read now */
	const _Atomic unsigned *faulting; /* swap_set_busy: faults being served now, or NULL */
	unsigned cpus;			/* swap_set_busy: CPUs this process may run on */
	int home_fd;			/* swap_set_home, -1 for none */
	char *bounce_mem;		/* SWAP_BOUNCES buffers, one mapping */
	_Atomic uint64_t used;
	_Atomic uint64_t cluster_hint;	/* where the next cluster search starts */
	_Atomic uint64_t prealloc_end;	/* bytes given blocks ahead of writes; UINT64_MAX: none */
	_Atomic uint64_t steal_hint;
	_Atomic unsigned inject_k;
	_Atomic bool inject_full;
	_Atomic int64_t nospace_until;	/* full disk: next look for space (ns); 0: not full */
	_Atomic uint64_t inject_count;
	struct swap_stat st;
	struct swap_cpu *cpu;
	_Atomic uint32_t *cluster;	/* used slots per cluster, | CLUSTER_OWNED */
	uint32_t *crc;			/* valid where swap_map has SWAP_HAS_DATA */
	_Atomic uint8_t *swap_map;
	struct swap_ring ring[SWAP_RINGS];
	struct swap_bounce bounce[SWAP_BOUNCES];
};

/* One vectored request: consecutive slots, their iovecs, what became of
 * it; or a read of another file (fd, swap_read_file). */
struct swap_run {
	uint64_t off;
	struct iovec *iov;
	unsigned niov;
	size_t done;
	int err;
	int fd;				/* -1: the swap file */
};

#define stat_add(sd, field, n)	\
	atomic_fetch_add_explicit(&(sd)->st.field, (n), memory_order_relaxed)

/* Async-signal-safe: sched_getcpu reads the rseq area or the vDSO. */
static inline unsigned cpu_index(const struct swap_dev *sd)
{
	int cpu = sched_getcpu();

	return cpu < 0 ? 0 : (unsigned)cpu % sd->ncpus;
}

/* Async-signal-safe. */
static inline bool slot_valid(const struct swap_dev *sd, uint32_t slot)
{
	return sd && slot != 0 && slot < sd->nslots;
}

/* Async-signal-safe. The use count of a slot, 0 when free or out of range. */
static inline unsigned slot_count(const struct swap_dev *sd, uint32_t slot)
{
	unsigned v;

	if (!slot_valid(sd, slot))
		return 0;
	v = atomic_load_explicit(&sd->swap_map[slot], memory_order_relaxed) & SWAP_MAP_COUNT;
	return v == SWAP_MAP_BAD ? 0 : v;
}

/*
 * Async-signal-safe. Mark a written slot valid unless it was freed meanwhile.
 * Release: a reader that sees SWAP_HAS_DATA (acquire) sees the new CRC.
 */
static inline void slot_set_data(struct swap_dev *sd, uint32_t slot, uint32_t crc)
{
	uint8_t v = atomic_load_explicit(&sd->swap_map[slot], memory_order_relaxed);

	sd->crc[slot] = crc;
	do {
		if ((v & SWAP_MAP_COUNT) == 0)
			return;
	} while (!atomic_compare_exchange_weak_explicit(&sd->swap_map[slot], &v, v | SWAP_HAS_DATA,
							memory_order_release, memory_order_relaxed));
}

/* swap_io.c: what opening and closing the device asks of the I/O side. */
int setup_direct(struct swap_dev *sd);
void rings_init(struct swap_dev *sd);
void rings_exit(struct swap_dev *sd);
/* swap_ring.c, async-signal-safe: a free ring or NULL, never waiting; give
 * it back; do the runs on it, every completion reaped (false: the ring
 * broke and is not to be given back; what it did not finish is left to
 * the caller). */
struct swap_ring *ring_get(struct swap_dev *sd);
void ring_put(struct swap_ring *r);
bool ring_rw(struct swap_dev *sd, struct swap_ring *r, bool write, struct swap_run *runs,
	     unsigned nruns);
void bounce_init(struct swap_dev *sd);
void bounce_exit(struct swap_dev *sd);

/* Async-signal-safe. Take the first free of n flags (stride bytes apart),
 * starting from this CPU's; -1 if all are busy: never waits. */
static inline int flag_pick(struct swap_dev *sd, atomic_flag *first, size_t stride, unsigned n)
{
	unsigned start = cpu_index(sd);

	for (unsigned i = 0; i < n; i++) {
		unsigned k = (start + i) % n;
		atomic_flag *f = (atomic_flag *)((char *)first + k * stride);

		/* Acquire: see the ring or buffer as its last user left it. */
		if (!atomic_flag_test_and_set_explicit(f, memory_order_acquire))
			return (int)k;
	}
	return -1;
}


#endif /* EMM_SWAP_DEV_H */
