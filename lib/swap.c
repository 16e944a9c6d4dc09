/* SPDX-License-Identifier: MIT */
/* The swap device: a file of page slots, per-CPU cluster allocation, swap_map, CRC32C, batched I/O. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"
#include "swap.h"

#define SWAP_CLUSTER	256		/* slots a CPU takes at a time, as the kernel's SWAPFILE_CLUSTER */
#define SWAP_BATCH	64		/* pages per round of I/O: bounds the stack a fault may use */
#define SWAP_RINGS	4		/* io_uring instances shared by all callers */
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
};

struct swap_stat {
	_Atomic uint64_t reads, writes, read_errors, write_errors, csum_errors;
	_Atomic uint64_t uring_reqs, sync_reqs;
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
	_Atomic uint64_t used;
	_Atomic uint64_t cluster_hint;	/* where the next cluster search starts */
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
};

/* One vectored request: consecutive slots, their iovecs, what became of it. */
struct swap_run {
	uint64_t off;
	struct iovec *iov;
	unsigned niov;
	size_t done;
	int err;
};

#define stat_add(sd, field, n)	\
	atomic_fetch_add_explicit(&(sd)->st.field, (n), memory_order_relaxed)

/* ---- allocation ---- */

/* Async-signal-safe: sched_getcpu reads the rseq area or the vDSO. */
static unsigned cpu_index(const struct swap_dev *sd)
{
	int cpu = sched_getcpu();

	return cpu < 0 ? 0 : (unsigned)cpu % sd->ncpus;
}

/* Slots of cluster c that are never handed out: slot 0, the padding at the end. */
static uint32_t cluster_reserved(const struct swap_dev *sd, uint64_t c)
{
	uint32_t r = c == 0;

	if (c == sd->nclusters - 1)
		r += sd->nclusters * SWAP_CLUSTER - sd->nslots;
	return r;
}

/* Async-signal-safe. Own cluster c if it is empty (or, with partial, not full). */
static bool cluster_claim(struct swap_dev *sd, uint64_t c, bool partial)
{
	uint32_t v = atomic_load_explicit(&sd->cluster[c], memory_order_relaxed);

	if (v & CLUSTER_OWNED)
		return false;
	if (partial ? v >= SWAP_CLUSTER : v != cluster_reserved(sd, c))
		return false;
	return atomic_compare_exchange_strong_explicit(&sd->cluster[c], &v, v | CLUSTER_OWNED,
						       memory_order_relaxed, memory_order_relaxed);
}

static void cluster_release(struct swap_dev *sd, uint64_t c)
{
	atomic_fetch_and_explicit(&sd->cluster[c], ~CLUSTER_OWNED, memory_order_relaxed);
}

/* Async-signal-safe. An empty cluster, else one with free slots; -1 if none. */
static int64_t cluster_find(struct swap_dev *sd)
{
	uint64_t start = atomic_load_explicit(&sd->cluster_hint, memory_order_relaxed);

	for (int partial = 0; partial < 2; partial++)
		for (uint64_t i = 0; i < sd->nclusters; i++) {
			uint64_t c = (start + i) % sd->nclusters;

			if (cluster_claim(sd, c, partial)) {
				atomic_store_explicit(&sd->cluster_hint, c + 1, memory_order_relaxed);
				return (int64_t)c;
			}
		}
	return -1;
}

/*
 * Async-signal-safe. Give this CPU a fresh cluster in place of the exhausted
 * cursor cur. The thread whose CAS replaces the cursor releases the old
 * cluster; a loser gives back the one it found. With no cluster left the
 * cursor is emptied, so the old one becomes available to others.
 */
static bool cursor_refill(struct swap_dev *sd, struct swap_cpu *pc, uint64_t cur)
{
	int64_t c = cluster_find(sd);
	uint64_t next = c < 0 ? 0 : (uint64_t)(c + 1) << 32;

	if (atomic_compare_exchange_strong_explicit(&pc->cursor, &cur, next,
						    memory_order_relaxed, memory_order_relaxed)) {
		if (cur >> 32)
			cluster_release(sd, (cur >> 32) - 1);
	} else if (c >= 0) {
		cluster_release(sd, (uint64_t)c);
	}
	return c >= 0;
}

/* Async-signal-safe. Up to n candidate slots from the CPU's cluster: *first.. */
static unsigned cursor_take(struct swap_dev *sd, struct swap_cpu *pc, unsigned n, uint64_t *first)
{
	uint64_t cur = atomic_load_explicit(&pc->cursor, memory_order_relaxed);
	unsigned refills = 0;

	for (;;) {
		uint64_t c = cur >> 32, off = (uint32_t)cur;

		if (c == 0 || off >= SWAP_CLUSTER) {
			if (refills++ == SWAP_REFILLS || !cursor_refill(sd, pc, cur))
				return 0;
			cur = atomic_load_explicit(&pc->cursor, memory_order_relaxed);
			continue;
		}
		unsigned k = MIN(n, SWAP_CLUSTER - off);

		if (atomic_compare_exchange_weak_explicit(&pc->cursor, &cur, cur + k,
							  memory_order_relaxed, memory_order_relaxed)) {
			*first = (c - 1) * SWAP_CLUSTER + off;
			return k;
		}
	}
}

/*
 * Async-signal-safe. The swap_map CAS from 0 is what gives a slot away;
 * cursors and cluster counts only steer the search, so a slot another CPU
 * took first is simply skipped. Acquire pairs with the release in swap_free:
 * the previous owner is done with the slot's CRC before we touch it.
 */
static bool slot_get(struct swap_dev *sd, uint64_t s)
{
	uint8_t free_slot = 0;

	if (!atomic_compare_exchange_strong_explicit(&sd->swap_map[s], &free_slot, 1,
						     memory_order_acquire, memory_order_relaxed))
		return false;
	atomic_fetch_add_explicit(&sd->cluster[s / SWAP_CLUSTER], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&sd->used, 1, memory_order_relaxed);
	return true;
}

/* Async-signal-safe. Any free slot, scanning clusters that have one; 0 if none. */
static uint32_t slot_steal(struct swap_dev *sd)
{
	uint64_t start = atomic_load_explicit(&sd->steal_hint, memory_order_relaxed);

	for (uint64_t i = 0; i < sd->nclusters; i++) {
		uint64_t c = (start + i) % sd->nclusters;
		uint32_t v = atomic_load_explicit(&sd->cluster[c], memory_order_relaxed);

		if ((v & ~CLUSTER_OWNED) >= SWAP_CLUSTER)
			continue;
		for (uint64_t s = c * SWAP_CLUSTER; s < (c + 1) * SWAP_CLUSTER; s++)
			if (slot_get(sd, s)) {
				atomic_store_explicit(&sd->steal_hint, c, memory_order_relaxed);
				return (uint32_t)s;
			}
	}
	return 0;
}

/* Async-signal-safe: clock_gettime reads the vDSO. */
static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * Async-signal-safe. A write found the disk full. Until space returns the
 * device says it is full, so reclaim and faults stop writing pages that
 * cannot be written (each failed batch cost a scan and a round of I/O).
 */
static void nospace_mark(struct swap_dev *sd)
{
	atomic_store_explicit(&sd->nospace_until, now_ns() + NOSPACE_RECHECK_NS,
			      memory_order_relaxed);
}

/* Async-signal-safe. Is the disk still full? One caller at a time looks at
 * the file system (fstatvfs, a plain system call), at most every 100 ms. */
static bool nospace(struct swap_dev *sd)
{
	int64_t until = atomic_load_explicit(&sd->nospace_until, memory_order_relaxed), now;
	struct statvfs v;

	if (!until)
		return false;
	now = now_ns();
	if (now < until || !atomic_compare_exchange_strong_explicit(&sd->nospace_until, &until,
			now + NOSPACE_RECHECK_NS, memory_order_relaxed, memory_order_relaxed))
		return true;
	if (fstatvfs(sd->fd, &v) < 0 || (uint64_t)v.f_bavail * v.f_frsize < NOSPACE_RESUME)
		return true;
	atomic_store_explicit(&sd->nospace_until, 0, memory_order_relaxed);
	return false;
}

static bool swap_full(struct swap_dev *sd)
{
	return atomic_load_explicit(&sd->inject_full, memory_order_relaxed) ||
	       atomic_load_explicit(&sd->used, memory_order_relaxed) >= sd->nslots - 1 ||
	       nospace(sd);
}

/* Async-signal-safe. Would an allocation find no slot (or the disk is
 * full, or the test hook says so)? */
bool swap_is_full(struct swap_dev *sd)
{
	return swap_full(sd);
}

/* Async-signal-safe, lock-free. */
unsigned swap_alloc_batch(struct swap_dev *sd, uint32_t *slots, unsigned n)
{
	struct swap_cpu *pc;
	unsigned got = 0;
	uint64_t first;

	if (!sd || !slots || !n || swap_full(sd))
		return 0;
	pc = &sd->cpu[cpu_index(sd)];
	while (got < n) {
		unsigned k = cursor_take(sd, pc, n - got, &first);

		if (!k)
			break;
		for (uint64_t s = first; s < first + k; s++)
			if (slot_get(sd, s))
				slots[got++] = (uint32_t)s;
	}
	while (got < n && (slots[got] = slot_steal(sd)))
		got++;
	return got;
}

/* Async-signal-safe, lock-free. */
uint32_t swap_alloc(struct swap_dev *sd)
{
	uint32_t slot;

	return swap_alloc_batch(sd, &slot, 1) ? slot : 0;
}

static bool slot_valid(const struct swap_dev *sd, uint32_t slot)
{
	return sd && slot != 0 && slot < sd->nslots;
}

/* Async-signal-safe. */
int swap_dup(struct swap_dev *sd, uint32_t slot)
{
	uint8_t v;

	if (!slot_valid(sd, slot))
		return -EINVAL;
	v = atomic_load_explicit(&sd->swap_map[slot], memory_order_relaxed);
	do {
		if ((v & SWAP_MAP_COUNT) == 0)
			return -EINVAL;
		if ((v & SWAP_MAP_COUNT) >= SWAP_MAP_MAX)
			return -EOVERFLOW;
	} while (!atomic_compare_exchange_weak_explicit(&sd->swap_map[slot], &v, v + 1,
							memory_order_relaxed, memory_order_relaxed));
	return 0;
}

/*
 * Async-signal-safe. Freeing clears SWAP_HAS_DATA: a new owner must write
 * first. Release: our use of the slot's CRC is over before slot_get hands
 * the slot to someone else.
 */
void swap_free(struct swap_dev *sd, uint32_t slot)
{
	uint8_t v, nv;

	if (!slot_valid(sd, slot))
		return;
	v = atomic_load_explicit(&sd->swap_map[slot], memory_order_relaxed);
	do {
		if ((v & SWAP_MAP_COUNT) == 0 || (v & SWAP_MAP_COUNT) == SWAP_MAP_BAD)
			return;
		nv = (v & SWAP_MAP_COUNT) == 1 ? 0 : v - 1;
	} while (!atomic_compare_exchange_weak_explicit(&sd->swap_map[slot], &v, nv,
							memory_order_release, memory_order_relaxed));
	if (nv == 0) {
		atomic_fetch_sub_explicit(&sd->cluster[slot / SWAP_CLUSTER], 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&sd->used, 1, memory_order_relaxed);
	}
}

unsigned swap_count(const struct swap_dev *sd, uint32_t slot)
{
	unsigned v;

	if (!slot_valid(sd, slot))
		return 0;
	v = atomic_load_explicit(&sd->swap_map[slot], memory_order_relaxed) & SWAP_MAP_COUNT;
	return v == SWAP_MAP_BAD ? 0 : v;
}

uint64_t swap_slots_total(const struct swap_dev *sd)
{
	return sd ? sd->nslots - 1 : 0;
}

uint64_t swap_slots_used(const struct swap_dev *sd)
{
	return sd ? atomic_load_explicit(&sd->used, memory_order_relaxed) : 0;
}

/* ---- I/O ---- */

/* Async-signal-safe. A free ring, tried from this CPU's, or NULL: never waits. */
static struct swap_ring *ring_get(struct swap_dev *sd)
{
	unsigned start;

	if (!sd->nrings || !atomic_load_explicit(&sd->use_uring, memory_order_relaxed))
		return NULL;
	start = cpu_index(sd);
	for (unsigned i = 0; i < sd->nrings; i++) {
		struct swap_ring *r = &sd->ring[(start + i) % sd->nrings];

		/* Acquire: see the ring as its last user left it. */
		if (!atomic_flag_test_and_set_explicit(&r->busy, memory_order_acquire))
			return r;
	}
	return NULL;
}

static void ring_put(struct swap_ring *r)
{
	/* Release: our updates of the ring's head and tail go to its next user. */
	atomic_flag_clear_explicit(&r->busy, memory_order_release);
}

static size_t run_len(const struct swap_run *run)
{
	return (size_t)run->niov * PAGE_SIZE;
}

/*
 * Async-signal-safe. Finish a run with pwritev/preadv from run->done on:
 * a short transfer is continued, and fails only if the next call does.
 */
static void run_sync(struct swap_dev *sd, bool write, struct swap_run *run)
{
	while (!run->err && run->done < run_len(run)) {
		unsigned skip = run->done / PAGE_SIZE;
		size_t part = run->done % PAGE_SIZE;
		struct iovec *iov = run->iov + skip, saved = *iov;
		ssize_t r;

		iov->iov_base = (char *)iov->iov_base + part;
		iov->iov_len -= part;
		r = write ? pwritev(sd->fd, iov, (int)(run->niov - skip), (off_t)(run->off + run->done))
			  : preadv(sd->fd, iov, (int)(run->niov - skip), (off_t)(run->off + run->done));
		*iov = saved;
		stat_add(sd, sync_reqs, 1);
		if (r < 0 && errno != EINTR)
			run->err = -errno;
		else if (r == 0)
			run->err = -EIO;	/* end of file: the file was cut under us */
		else if (r > 0)
			run->done += (size_t)r;
	}
}

static void ring_prep(struct swap_dev *sd, struct swap_ring *r, bool write,
		      struct swap_run *runs, unsigned nruns)
{
	int fd = r->fixed ? 0 : sd->fd;

	for (unsigned i = 0; i < nruns; i++) {
		/* The ring has SWAP_BATCH entries and is empty: an SQE is always there. */
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

		if (write)
			io_uring_prep_writev(sqe, fd, runs[i].iov, runs[i].niov, runs[i].off);
		else
			io_uring_prep_readv(sqe, fd, runs[i].iov, runs[i].niov, runs[i].off);
		if (r->fixed)
			sqe->flags |= IOSQE_FIXED_FILE;
		io_uring_sqe_set_data64(sqe, i);
	}
}

static void ring_complete(struct swap_run *runs, struct io_uring_cqe *cqe)
{
	struct swap_run *run = &runs[cqe->user_data];

	/* EAGAIN and EINTR leave the run to run_sync, like a short transfer. */
	if (cqe->res >= 0)
		run->done += (size_t)cqe->res;
	else if (cqe->res != -EAGAIN && cqe->res != -EINTR)
		run->err = cqe->res;
}

static bool transient(int err)
{
	return err == -EINTR || err == -EAGAIN || err == -EBUSY || err == -ETIME;
}

/*
 * Async-signal-safe. Submit all runs on ring r and reap every completion
 * before returning, so the ring is empty for its next user. Returns false
 * if the ring broke (an SQE may be stuck in it): the caller then never gives
 * it back, and the runs it could not finish are left to run_sync.
 */
static bool ring_rw(struct swap_dev *sd, struct swap_ring *r, bool write,
		    struct swap_run *runs, unsigned nruns)
{
	unsigned reaped = 0, inflight = 0, idle = 0;
	struct io_uring_cqe *cqe;
	int ret;

	ring_prep(sd, r, write, runs, nruns);
	while (reaped < nruns) {
		if (io_uring_sq_ready(&r->ring)) {
			ret = io_uring_submit(&r->ring);
			if (ret > 0)
				inflight += (unsigned)ret;
			else if (!inflight && ((ret < 0 && !transient(ret)) || ++idle > 100))
				return false;
		}
		if (!inflight)
			continue;
		ret = io_uring_wait_cqe(&r->ring, &cqe);
		if (ret < 0 && !transient(ret))
			return false;
		if (ret < 0)
			continue;
		ring_complete(runs, cqe);
		io_uring_cqe_seen(&r->ring, cqe);
		reaped++;
		inflight--;
	}
	stat_add(sd, uring_reqs, nruns);
	return true;
}

/*
 * Async-signal-safe. Without O_DIRECT the data went through the page cache:
 * push it to the file and drop it there, so the budget is real memory.
 */
static void run_uncache(struct swap_dev *sd, bool write, struct swap_run *run)
{
	if (sd->direct || !run->done)
		return;
	if (write && sync_file_range(sd->fd, (off_t)run->off, (off_t)run->done,
				     SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
				     SYNC_FILE_RANGE_WAIT_AFTER) < 0) {
		run->err = -errno;
		run->done = 0;
	}
	posix_fadvise(sd->fd, (off_t)run->off, (off_t)run_len(run), POSIX_FADV_DONTNEED);
}

/* Async-signal-safe. Do the runs through a free ring, else with plain calls. */
static void runs_do(struct swap_dev *sd, bool write, struct swap_run *runs, unsigned nruns)
{
	struct swap_ring *r;

	if (!nruns)
		return;
	r = ring_get(sd);
	if (r && ring_rw(sd, r, write, runs, nruns))
		ring_put(r);
	for (unsigned i = 0; i < nruns; i++) {
		run_sync(sd, write, &runs[i]);
		run_uncache(sd, write, &runs[i]);
	}
}

/*
 * A batch being built: io[] entries that passed their checks, grouped into
 * runs of consecutive slots. pos[k] is the io index of iov[k].
 */
struct swap_batch {
	struct swap_run runs[SWAP_BATCH];
	struct iovec iov[SWAP_BATCH];
	unsigned pos[SWAP_BATCH];
	uint32_t crc[SWAP_BATCH];
	unsigned nruns, niov;
};

static void batch_add(struct swap_batch *b, struct swap_io *io, unsigned i)
{
	struct swap_run *last = b->nruns ? &b->runs[b->nruns - 1] : NULL;
	uint64_t off = (uint64_t)io[i].slot << PAGE_SHIFT;

	if (!last || last->off + run_len(last) != off) {
		last = &b->runs[b->nruns++];
		*last = (struct swap_run){ .off = off, .iov = &b->iov[b->niov] };
	}
	b->iov[b->niov] = (struct iovec){ .iov_base = io[i].page, .iov_len = PAGE_SIZE };
	b->pos[b->niov++] = i;
	last->niov++;
}

/* Give each page of the batch the result of its run. */
static void batch_results(struct swap_batch *b, struct swap_io *io)
{
	for (unsigned r = 0; r < b->nruns; r++) {
		struct swap_run *run = &b->runs[r];
		unsigned first = (unsigned)(run->iov - b->iov);

		for (unsigned j = 0; j < run->niov; j++)
			if ((j + 1) * PAGE_SIZE > run->done)
				io[b->pos[first + j]].err = run->err ? run->err : -EIO;
	}
}

/* Async-signal-safe. 0 if the page may go to or come from its slot. */
static int io_check(const struct swap_dev *sd, const struct swap_io *io)
{
	if (!slot_valid(sd, io->slot) || !swap_count(sd, io->slot))
		return -EINVAL;
	if (!io->page || !IS_ALIGNED(io->page, PAGE_SIZE))
		return -EINVAL;
	return 0;
}

/* Async-signal-safe. The k-th write of the injection hook fails. */
static bool inject_fail(struct swap_dev *sd)
{
	unsigned k = atomic_load_explicit(&sd->inject_k, memory_order_relaxed);

	return k && (atomic_fetch_add_explicit(&sd->inject_count, 1, memory_order_relaxed) + 1) % k == 0;
}

/*
 * Async-signal-safe. Mark a written slot valid unless it was freed meanwhile.
 * Release: a reader that sees SWAP_HAS_DATA (acquire) sees the new CRC.
 */
static void slot_set_data(struct swap_dev *sd, uint32_t slot, uint32_t crc)
{
	uint8_t v = atomic_load_explicit(&sd->swap_map[slot], memory_order_relaxed);

	sd->crc[slot] = crc;
	do {
		if ((v & SWAP_MAP_COUNT) == 0)
			return;
	} while (!atomic_compare_exchange_weak_explicit(&sd->swap_map[slot], &v, v | SWAP_HAS_DATA,
							memory_order_release, memory_order_relaxed));
}

static unsigned write_chunk(struct swap_dev *sd, struct swap_io *io, unsigned n)
{
	struct swap_batch b;
	unsigned ok = 0;

	b.nruns = b.niov = 0;
	for (unsigned i = 0; i < n; i++) {
		io[i].err = io_check(sd, &io[i]);
		if (io[i].err)
			continue;
		/* The old contents are gone whatever happens to this write. */
		atomic_fetch_and_explicit(&sd->swap_map[io[i].slot], (uint8_t)~SWAP_HAS_DATA,
					  memory_order_relaxed);
		if (inject_fail(sd)) {
			io[i].err = -EIO;
			continue;
		}
		b.crc[b.niov] = crc32c(0, io[i].page, PAGE_SIZE);
		batch_add(&b, io, i);
	}
	runs_do(sd, true, b.runs, b.nruns);
	batch_results(&b, io);
	for (unsigned k = 0; k < b.niov; k++)
		if (!io[b.pos[k]].err)
			slot_set_data(sd, io[b.pos[k]].slot, b.crc[k]);
		else if (io[b.pos[k]].err == -ENOSPC || io[b.pos[k]].err == -EDQUOT)
			nospace_mark(sd);
	for (unsigned i = 0; i < n; i++)
		ok += !io[i].err;
	stat_add(sd, writes, ok);
	stat_add(sd, write_errors, n - ok);
	return ok;
}

/* Async-signal-safe. Acquire: pairs with slot_set_data, so the CRC read is the new one. */
static int read_check(const struct swap_dev *sd, const struct swap_io *io, uint32_t *crc)
{
	int err = io_check(sd, io);

	if (err)
		return err;
	if (!(atomic_load_explicit(&sd->swap_map[io->slot], memory_order_acquire) & SWAP_HAS_DATA))
		return -ENODATA;
	*crc = sd->crc[io->slot];
	return 0;
}

static unsigned read_chunk(struct swap_dev *sd, struct swap_io *io, unsigned n)
{
	struct swap_batch b;
	unsigned ok = 0, bad = 0;

	b.nruns = b.niov = 0;
	for (unsigned i = 0; i < n; i++) {
		io[i].err = read_check(sd, &io[i], &b.crc[b.niov]);
		if (!io[i].err)
			batch_add(&b, io, i);
	}
	runs_do(sd, false, b.runs, b.nruns);
	batch_results(&b, io);
	for (unsigned k = 0; k < b.niov; k++) {
		struct swap_io *p = &io[b.pos[k]];

		if (!p->err && crc32c(0, p->page, PAGE_SIZE) != b.crc[k]) {
			p->err = -EBADMSG;
			bad++;
		}
	}
	for (unsigned i = 0; i < n; i++)
		ok += !io[i].err;
	stat_add(sd, reads, ok);
	stat_add(sd, read_errors, n - ok);
	stat_add(sd, csum_errors, bad);
	return ok;
}

/* Async-signal-safe. A batch of any size, SWAP_BATCH pages at a time
 * (what one chunk keeps on the stack). */
static int in_chunks(struct swap_dev *sd, struct swap_io *io, unsigned n,
		     unsigned (*chunk)(struct swap_dev *, struct swap_io *, unsigned))
{
	unsigned ok = 0;

	if (!sd || !io)
		return -EINVAL;
	for (unsigned i = 0; i < n; i += SWAP_BATCH)
		ok += chunk(sd, io + i, MIN(n - i, SWAP_BATCH));
	return (int)MIN(ok, (unsigned)INT32_MAX);
}

/* Async-signal-safe, never waits for another caller. */
int swap_writepages(struct swap_dev *sd, struct swap_io *io, unsigned n)
{
	return in_chunks(sd, io, n, write_chunk);
}

/* Async-signal-safe, never waits for another caller. */
int swap_readpages(struct swap_dev *sd, struct swap_io *io, unsigned n)
{
	return in_chunks(sd, io, n, read_chunk);
}

/* ---- hooks and counters ---- */

void swap_inject(struct swap_dev *sd, unsigned fail_every_k_writes, int full)
{
	if (!sd)
		return;
	atomic_store_explicit(&sd->inject_count, 0, memory_order_relaxed);
	atomic_store_explicit(&sd->inject_k, fail_every_k_writes, memory_order_relaxed);
	atomic_store_explicit(&sd->inject_full, full != 0, memory_order_relaxed);
}

void swap_set_uring(struct swap_dev *sd, bool on)
{
	if (sd)
		atomic_store_explicit(&sd->use_uring, on, memory_order_relaxed);
}

bool swap_has_uring(const struct swap_dev *sd)
{
	return sd && sd->nrings > 0;
}

bool swap_is_direct(const struct swap_dev *sd)
{
	return sd && sd->direct;
}

int swap_set_direct(struct swap_dev *sd, bool on)
{
	int fl;

	if (!sd)
		return -EINVAL;
	fl = fcntl(sd->fd, F_GETFL);
	if (fl < 0 || fcntl(sd->fd, F_SETFL, on ? fl | O_DIRECT : fl & ~O_DIRECT) < 0)
		return -errno;
	sd->direct = on;
	if (!on)
		posix_fadvise(sd->fd, 0, 0, POSIX_FADV_RANDOM);
	return 0;
}

void swap_get_counters(const struct swap_dev *sd, struct swap_counters *c)
{
	const struct swap_stat *s;

	if (!sd || !c)
		return;
	s = &sd->st;
	*c = (struct swap_counters){
		.reads = atomic_load_explicit(&s->reads, memory_order_relaxed),
		.writes = atomic_load_explicit(&s->writes, memory_order_relaxed),
		.read_errors = atomic_load_explicit(&s->read_errors, memory_order_relaxed),
		.write_errors = atomic_load_explicit(&s->write_errors, memory_order_relaxed),
		.csum_errors = atomic_load_explicit(&s->csum_errors, memory_order_relaxed),
		.uring_reqs = atomic_load_explicit(&s->uring_reqs, memory_order_relaxed),
		.sync_reqs = atomic_load_explicit(&s->sync_reqs, memory_order_relaxed),
	};
}

/* ---- open and close ---- */

static size_t align64(size_t x)
{
	return ALIGN_UP(x, 64);
}

/* Everything the device needs, in one lazily backed mapping: nothing is allocated later. */
static int dev_alloc(uint64_t npages, struct swap_dev **out)
{
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	uint64_t ncl = (npages + SWAP_CLUSTER - 1) / SWAP_CLUSTER, nmap = ncl * SWAP_CLUSTER;
	unsigned ncpus = ncpu < 1 ? 1 : (unsigned)MIN(ncpu, 4096);
	size_t o_cpu = align64(sizeof(struct swap_dev));
	size_t o_cl = o_cpu + ncpus * sizeof(struct swap_cpu);
	size_t o_crc = align64(o_cl + ncl * sizeof(uint32_t));
	size_t o_map = align64(o_crc + nmap * sizeof(uint32_t));
	size_t len = ALIGN_UP(o_map + nmap, PAGE_SIZE);
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct swap_dev *sd = (struct swap_dev *)p;

	if (p == MAP_FAILED)
		return -ENOMEM;
	sd->fd = -1;
	sd->map_len = len;
	sd->ncpus = ncpus;
	sd->nslots = npages;
	sd->nclusters = ncl;
	sd->cpu = (struct swap_cpu *)(p + o_cpu);
	sd->cluster = (_Atomic uint32_t *)(p + o_cl);
	sd->crc = (uint32_t *)(p + o_crc);
	sd->swap_map = (_Atomic uint8_t *)(p + o_map);
	for (unsigned i = 0; i < SWAP_RINGS; i++)
		atomic_flag_clear(&sd->ring[i].busy);
	atomic_init(&sd->use_uring, true);
	*out = sd;
	return 0;
}

/* Slot 0 and the padding of the last cluster are never free. */
static void dev_reserve(struct swap_dev *sd)
{
	atomic_init(&sd->swap_map[0], SWAP_MAP_BAD);
	for (uint64_t s = sd->nslots; s < sd->nclusters * SWAP_CLUSTER; s++)
		atomic_init(&sd->swap_map[s], SWAP_MAP_BAD);
	atomic_init(&sd->cluster[0], cluster_reserved(sd, 0));
	atomic_init(&sd->cluster[sd->nclusters - 1], cluster_reserved(sd, sd->nclusters - 1));
}

/*
 * An unlinked file: nothing to clean up, whatever way the process ends.
 * /var/tmp rather than /tmp, which is often tmpfs: swap there would be
 * memory again.
 */
static int open_tmp(int *fdp)
{
	const char *dir = getenv("TMPDIR");
	char tmpl[4096];
	int fd;

	if (!dir || !*dir)
		dir = "/var/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return -errno;
	if (fd < 0) {	/* a file system or kernel without O_TMPFILE */
		if (snprintf(tmpl, sizeof(tmpl), "%s/emm-swap-XXXXXX", dir) >= (int)sizeof(tmpl))
			return -ENAMETOOLONG;
		fd = mkostemp(tmpl, O_CLOEXEC);
		if (fd < 0)
			return -errno;
		unlink(tmpl);
	}
	*fdp = fd;
	return 0;
}

/*
 * A named swap file holds nothing worth keeping: pages die with the process.
 * So a new file is created 0600, and an existing one is reused and
 * truncated, but only if it is a regular file of ours that nobody else can
 * read (the page contents of this process go there), reached without
 * following a symlink (which could point at someone's data), and not in use
 * by another emm (flock): two users of one swap file would destroy each
 * other's pages.
 */
static int named_check(int fd)
{
	struct stat st;

	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (st.st_uid != geteuid() || (st.st_mode & 077))
		return -EPERM;
	return 0;
}

static int open_named(const char *path, int *fdp, bool *created)
{
	const int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW;
	int fd, err;

	fd = open(path, flags | O_CREAT | O_EXCL, 0600);
	*created = fd >= 0;
	if (fd < 0 && errno == EEXIST)
		fd = open(path, flags);
	if (fd < 0)
		return -errno;
	err = named_check(fd);
	if (!err && !*created && ftruncate(fd, 0) < 0)
		err = -errno;
	if (err) {
		close(fd);
		if (*created)
			unlink(path);
		return err;
	}
	*fdp = fd;
	return 0;
}

/*
 * Reserve the blocks now, so a full disk shows at open and not as write
 * errors later. fallocate keeps going until the disk is full before it
 * fails, so first check the free space it would need.
 */
static int size_file(int fd, uint64_t bytes)
{
	/* Sparse: disk space is taken as slots are written, so a large swap
	 * size costs nothing until used. A full disk then shows as a failed
	 * write: the page stays resident and dirty, counted in io_errors. */
	return ftruncate(fd, (off_t)bytes) < 0 ? -errno : 0;
}

/* Write slot 0 (never used) once: 0, or the -errno of the write. */
static int probe_write(int fd)
{
	void *page = mmap(NULL, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ssize_t r;
	int err;

	if (page == MAP_FAILED)
		return -ENOMEM;
	r = pwrite(fd, page, PAGE_SIZE, 0);
	err = r == PAGE_SIZE ? 0 : r < 0 ? -errno : -EIO;
	munmap(page, PAGE_SIZE);
	return err;
}

/*
 * O_DIRECT keeps swapped pages out of the page cache. Some file systems
 * refuse it at fcntl time, others only at the first transfer (or need a
 * larger alignment than a page), so one page is written to find out.
 */
static int setup_direct(struct swap_dev *sd)
{
	int fl = fcntl(sd->fd, F_GETFL), err;

	if (fl < 0)
		return -errno;
	if (fcntl(sd->fd, F_SETFL, fl | O_DIRECT) == 0) {
		err = probe_write(sd->fd);
		if (err != -EINVAL) {
			sd->direct = !err;
			return err;
		}
		if (fcntl(sd->fd, F_SETFL, fl) < 0)
			return -errno;
	}
	/* Page cache readahead would only read pages we drop again. */
	posix_fadvise(sd->fd, 0, 0, POSIX_FADV_RANDOM);
	return 0;
}

/*
 * A few rings, not one per thread: a caller that finds them all busy uses
 * pwritev/preadv instead of waiting. Without io_uring (old kernel, seccomp,
 * io_uring_disabled) there are none, and every request is synchronous.
 */
static void rings_init(struct swap_dev *sd)
{
	for (unsigned i = 0; i < SWAP_RINGS; i++) {
		struct swap_ring *r = &sd->ring[i];
		struct io_uring_params p = { .flags = IORING_SETUP_SUBMIT_ALL |
						      IORING_SETUP_COOP_TASKRUN };
		int ret = io_uring_queue_init_params(SWAP_BATCH, &r->ring, &p);

		if (ret == -EINVAL) {	/* a kernel before 5.19 */
			memset(&p, 0, sizeof(p));
			ret = io_uring_queue_init_params(SWAP_BATCH, &r->ring, &p);
		}
		if (ret < 0)
			break;
		r->fixed = io_uring_register_files(&r->ring, &sd->fd, 1) == 0;
		sd->nrings++;
	}
}

/*
 * A ring tears down asynchronously and may hold the file a little longer
 * than we do, so the lock of a named file is dropped explicitly: the next
 * user must not find it busy.
 */
static void dev_free(struct swap_dev *sd)
{
	for (unsigned i = 0; i < sd->nrings; i++)
		io_uring_queue_exit(&sd->ring[i].ring);
	if (sd->fd >= 0 && sd->named) {
		/* Best effort: the pages are dead either way; this gives the space back. */
		if (ftruncate(sd->fd, 0) < 0)
			sd->named = false;
		flock(sd->fd, LOCK_UN);
	}
	if (sd->fd >= 0)
		close(sd->fd);
	munmap(sd, sd->map_len);
}

int swap_open(const char *path, uint64_t size, struct swap_dev **out)
{
	uint64_t npages = size >> PAGE_SHIFT;
	struct swap_dev *sd;
	bool created = false;
	int err;

	if (!out || npages < 2)
		return -EINVAL;
	if (npages > SWAP_MAX_PAGES)
		return -EFBIG;
	err = dev_alloc(npages, &sd);
	if (err)
		return err;
	dev_reserve(sd);
	err = path ? open_named(path, &sd->fd, &created) : open_tmp(&sd->fd);
	sd->named = path && !err;
	if (!err)
		err = size_file(sd->fd, npages << PAGE_SHIFT);
	if (!err)
		err = setup_direct(sd);
	if (err) {
		if (created)
			unlink(path);
		dev_free(sd);
		return err;
	}
	rings_init(sd);
	*out = sd;
	return 0;
}

/* The directory a swap file at path (NULL: an unlinked one) is made in. */
static void swap_dir(const char *path, char *dir, size_t cap)
{
	const char *tmp = getenv("TMPDIR");
	char *slash;

	if (!path) {
		snprintf(dir, cap, "%s", tmp && *tmp ? tmp : "/var/tmp");
		return;
	}
	snprintf(dir, cap, "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, cap, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
}

/*
 * The file is sparse, so a size as large as the free space costs nothing
 * until pages are written: the budget holds as long as the disk has room.
 * Space taken by others later shows as failed writes (see swap_nospace).
 */
uint64_t swap_room(const char *path, uint64_t margin)
{
	uint64_t avail, total, size;
	struct statvfs vfs;
	char dir[4096];

	swap_dir(path, dir, sizeof(dir));
	if (statvfs(dir, &vfs) < 0)
		return 2 * PAGE_SIZE;	/* swap_open then fails on the directory */
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	if (!margin)
		margin = MIN(total / 20, 1ULL << 30);
	size = avail > margin ? avail - margin : 0;
	return MIN(MAX(size, 2 * PAGE_SIZE), SWAP_MAX_PAGES << PAGE_SHIFT);
}

/* Not async-signal-safe; nobody may use the device any more. */
void swap_close(struct swap_dev *sd)
{
	if (sd)
		dev_free(sd);
}
