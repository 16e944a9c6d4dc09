/* SPDX-License-Identifier: MIT */
/* The swap file's io_uring rings: a free one for a batch of runs, its
 * submission and reaping, and the poll of a thread waiting for a small read. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "swap_dev.h"
#include "util.h"

/* Async-signal-safe. A free ring, or NULL: never waits. */
struct swap_ring *ring_get(struct swap_dev *sd)
{
	int k;

	if (!sd->nrings || !atomic_load_explicit(&sd->use_uring, memory_order_relaxed))
		return NULL;
	k = flag_pick(sd, &sd->ring[0].busy, sizeof(sd->ring[0]), sd->nrings);
	return k < 0 ? NULL : &sd->ring[k];
}

void ring_put(struct swap_ring *r)
{
	/* Release: our updates of the ring's head and tail go to its next user. */
	atomic_flag_clear_explicit(&r->busy, memory_order_release);
}

/* Async-signal-safe. The bytes of run's iovecs if they are one stretch of
 * the bounce buffers (registered with the ring: buffer 0), else 0. */
static size_t bounce_stretch(const struct swap_dev *sd, const struct swap_run *run)
{
	const char *s = run->iov[0].iov_base, *e = s;

	for (unsigned k = 0; k < run->niov; k++) {
		if (run->iov[k].iov_base != e)
			return 0;
		e += run->iov[k].iov_len;
	}
	if (s < sd->bounce_mem || e > sd->bounce_mem + SWAP_BOUNCE_MEM)
		return 0;
	return (size_t)(e - s);
}

static void ring_prep(struct swap_dev *sd, struct swap_ring *r, bool write,
		      struct swap_run *runs, unsigned nruns)
{
	for (unsigned i = 0; i < nruns; i++) {
		/* The ring has SWAP_BATCH entries and is empty: an SQE is always there. */
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
		bool fixed = r->fixed && runs[i].fd < 0;
		int fd = runs[i].fd >= 0 ? runs[i].fd : fixed ? 0 : sd->fd;
		size_t len = r->bufs && runs[i].niov ? bounce_stretch(sd, &runs[i]) : 0;

		/* A registered buffer: no pinning of its pages per request. */
		if (len && write)
			io_uring_prep_write_fixed(sqe, fd, runs[i].iov[0].iov_base, (unsigned)len,
						  runs[i].off, 0);
		else if (len)
			io_uring_prep_read_fixed(sqe, fd, runs[i].iov[0].iov_base, (unsigned)len,
						 runs[i].off, 0);
		else if (write)
			io_uring_prep_writev(sqe, fd, runs[i].iov, runs[i].niov, runs[i].off);
		else
			io_uring_prep_readv(sqe, fd, runs[i].iov, runs[i].niov, runs[i].off);
		if (fixed)
			sqe->flags |= IOSQE_FIXED_FILE;
		io_uring_sqe_set_data64(sqe, i);
	}
}

static void ring_complete(struct swap_run *runs, struct io_uring_cqe *cqe)
{
	struct swap_run *run = &runs[cqe->user_data];

	/* EAGAIN and EINTR leave the run to the caller's plain calls (run_sync,
	 * swap_read_file), like a short transfer. */
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
 * Reads a thread waits for whole: a major fault's page and its cluster,
 * not a readahead window, which no one waits for yet.
 */
#define SPIN_MAX_PAGES	16

/* Async-signal-safe. Must the ring be entered for completions to post?
 * With COOP_TASKRUN they wait for us in the kernel, and TASKRUN_FLAG says
 * when there are some; without it, every time. */
static bool ring_owes_work(const struct io_uring *ring)
{
	if (!(ring->flags & IORING_SETUP_COOP_TASKRUN))
		return false;
	if (!(ring->flags & IORING_SETUP_TASKRUN_FLAG))
		return true;
	return IO_URING_READ_ONCE(*ring->sq.kflags) & IORING_SQ_TASKRUN;
}

/*
 * Async-signal-safe. Why: a thread that sleeps for its read pays the
 * wake-up on top of the device's latency, and on a virtual machine that is
 * the halted vCPU's wake-up: a random swap-in measured here took 25 us more
 * than the device's own read, the kernel's 6.5. So a thread waiting for a
 * small read may poll the ring (poll_pick says whether, and ring_rw lets
 * only a reader that waits alone poll, so one thread at most does; the
 * poll also runs the completions it is owed) for up to spin_ns, and
 * sleeps only after that. The poll reads the ring's memory and
 * enters the kernel only when the ring says work waits there for us
 * (ring_owes_work): random single-page swap-ins on a 2-vCPU VM made 0.08
 * io_uring_enter calls per polled read so, 77 entering at every turn.
 * True with *cqe set if one came.
 */
static bool ring_spin(struct swap_dev *sd, struct swap_ring *r, struct io_uring_cqe **cqe)
{
	uint32_t limit = atomic_load_explicit(&sd->spin_ns, memory_order_relaxed);
	uint64_t t0 = now_ns();

	if (!limit)
		return false;
	do {
		if (io_uring_cq_ready(&r->ring) && io_uring_peek_cqe(&r->ring, cqe) == 0 && *cqe) {
			stat_add(sd, spun, 1);
			return true;
		}
		if (ring_owes_work(&r->ring))
			io_uring_get_events(&r->ring);
	} while (now_ns() - t0 < limit);
	return false;
}

/*
 * Async-signal-safe. Poll for this small read, or sleep? Whichever has
 * been faster here: a machine whose device is emulated on the host's CPUs
 * may answer later when the guest polls (measured on one 2-vCPU VM: 4 KiB
 * random reads took 54 us polled against 41 slept, where the VM before
 * took 25 us more slept). The reads go in epochs of POLL_EPOCH, all of an
 * epoch one way: the best, but one epoch in POLL_PROBE the other, to keep
 * its time current. Not one read in so many, as before: how long a read
 * takes depends on how the reads before it waited. Measured on a 2-vCPU VM
 * (uffd-sigbus, random swap-ins of 1 GiB under 256 MiB): while most reads
 * slept, they took 50-52 us on average and the polled ones among them
 * 64-82; while most polled, 66-69 us, and the slept ones among them
 * 105-149 (a CPU that rarely idles is slow to wake: the host's and the
 * guest's halt polling both learn from how it idled). Single probes so
 * made each way look best while it was the way most reads went, and the
 * reads swung between the two, half of them polled.
 */
#define POLL_EPOCH	128
#define POLL_PROBE	16
#define POLL_SETTLE	16	/* first reads of an epoch, not counted: the change of way */

static bool poll_pick(struct swap_dev *sd, unsigned *n)
{
	uint32_t slept = atomic_load_explicit(&sd->wait_ns[0], memory_order_relaxed);
	uint32_t polled = atomic_load_explicit(&sd->wait_ns[1], memory_order_relaxed);
	unsigned epoch;
	bool best;

	*n = atomic_fetch_add_explicit(&sd->waits, 1, memory_order_relaxed);
	epoch = *n / POLL_EPOCH;
	if (!polled || !slept)
		return !polled;
	best = polled < slept;
	return epoch % POLL_PROBE == POLL_PROBE - 1 ? !best : best;
}

/* Async-signal-safe. Count a small read's time, from its submission to its
 * completion, in the epoch of read n (a read is at most four times its
 * way's average, so one stall of the device does not decide); its last
 * read folds the epoch's average into its way's, at 1/4 weight. Racing
 * updates may lose one, which does not matter. */
static void poll_learn(struct swap_dev *sd, unsigned n, bool polled, uint64_t ns)
{
	_Atomic uint32_t *avg = &sd->wait_ns[polled];
	uint32_t old = atomic_load_explicit(avg, memory_order_relaxed);
	uint64_t sum;
	uint32_t cnt, v;

	if (n % POLL_EPOCH < POLL_SETTLE)
		return;
	if (old && ns > 4 * (uint64_t)old)
		ns = 4 * (uint64_t)old;
	atomic_fetch_add_explicit(&sd->epoch_ns, ns, memory_order_relaxed);
	atomic_fetch_add_explicit(&sd->epoch_n, 1, memory_order_relaxed);
	if (n % POLL_EPOCH != POLL_EPOCH - 1)
		return;
	sum = atomic_exchange_explicit(&sd->epoch_ns, 0, memory_order_relaxed);
	cnt = atomic_exchange_explicit(&sd->epoch_n, 0, memory_order_relaxed);
	if (!cnt)
		return;
	sum /= cnt;
	v = sum > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)sum;
	v = old ? (uint32_t)(((uint64_t)old * 3 + v) / 4) : v;
	atomic_store_explicit(avg, v ? v : 1, memory_order_relaxed);
}

static size_t runs_pages(const struct swap_run *runs, unsigned nruns)
{
	size_t bytes = 0;

	for (unsigned i = 0; i < nruns; i++)
		for (unsigned j = 0; j < runs[i].niov; j++)
			bytes += runs[i].iov[j].iov_len;
	return bytes >> PAGE_SHIFT;
}

/* Async-signal-safe. Submit the prepared runs and reap every completion,
 * polling for them if spin. False if the ring broke. */
static bool ring_submit_reap(struct swap_dev *sd, struct swap_ring *r, unsigned nruns,
			     struct swap_run *runs, bool spin)
{
	unsigned reaped = 0, inflight = 0, idle = 0;
	struct io_uring_cqe *cqe;
	int ret;

	while (reaped < nruns) {
		if (io_uring_sq_ready(&r->ring)) {
			/* Submit and wait for the first completion in one system
			 * call: a lone swap-in (a random major fault) makes one;
			 * one that polls submits alone. */
			ret = spin ? io_uring_submit(&r->ring) : io_uring_submit_and_wait(&r->ring, 1);
			if (ret > 0)
				inflight += (unsigned)ret;
			else if (!inflight && ((ret < 0 && !transient(ret)) || ++idle > 100))
				return false;
		}
		if (!inflight)
			continue;
		ret = spin && ring_spin(sd, r, &cqe) ? 0 : io_uring_wait_cqe(&r->ring, &cqe);
		if (ret < 0 && !transient(ret))
			return false;
		if (ret < 0)
			continue;
		ring_complete(runs, cqe);
		io_uring_cqe_seen(&r->ring, cqe);
		reaped++;
		inflight--;
	}
	return true;
}

/*
 * Async-signal-safe. Is a CPU left over for a poll? Not while as many
 * faults are being served as the process has CPUs: the others' work (a
 * fill, a revoke, the thread woken to run on) needs the CPU the poll would
 * spin on. Measured on a 2-vCPU VM, four threads reading 1 GiB under 256
 * MiB at random on uffd: polling took 17% of the CPU of the run (clock
 * reads in ring_spin, perf), and the run used 1.27x the kernel's swap's
 * CPU per fault; with this, four service threads polled for 25 and 31 K
 * reads of the run's 459 K, against 34 and 38 K without (the rate within
 * the runs' spread). One thread alone still polls.
 */
static bool cpu_spare(const struct swap_dev *sd)
{
	return !sd->faulting ||
	       atomic_load_explicit(sd->faulting, memory_order_relaxed) < sd->cpus;
}

/*
 * Async-signal-safe. Submit all runs on ring r and reap every completion
 * before returning, so the ring is empty for its next user. Returns false
 * if the ring broke (an SQE may be stuck in it): the caller then never gives
 * it back, and the runs it could not finish are left to run_sync.
 */
bool ring_rw(struct swap_dev *sd, struct swap_ring *r, bool write,
		    struct swap_run *runs, unsigned nruns)
{
	bool small = !write && runs_pages(runs, nruns) <= SPIN_MAX_PAGES &&
		     atomic_load_explicit(&sd->spin_ns, memory_order_relaxed);
	/* Others waiting too, or no CPU to spare: the CPUs have their faults
	 * to serve, and the time of a read that waits in line says nothing
	 * of the poll. */
	bool alone = small && !atomic_fetch_add_explicit(&sd->waiters, 1, memory_order_relaxed) &&
		     cpu_spare(sd);
	unsigned n = 0;
	bool spin = alone && poll_pick(sd, &n);
	uint64_t t0 = alone ? now_ns() : 0;
	bool ok;

	ring_prep(sd, r, write, runs, nruns);
	ok = ring_submit_reap(sd, r, nruns, runs, spin);
	if (small)
		atomic_fetch_sub_explicit(&sd->waiters, 1, memory_order_relaxed);
	if (ok && alone)
		poll_learn(sd, n, spin, now_ns() - t0);
	if (ok)
		stat_add(sd, uring_reqs, nruns);
	return ok;
}

void swap_set_spin(struct swap_dev *sd, uint32_t ns)
{
	if (sd)
		atomic_store_explicit(&sd->spin_ns, ns, memory_order_relaxed);
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

/*
 * A few rings, not one per thread: a caller that finds them all busy uses
 * pwritev/preadv instead of waiting. Without io_uring (old kernel, seccomp,
 * io_uring_disabled) there are none, and every request is synchronous.
 */
void rings_init(struct swap_dev *sd)
{
	for (unsigned i = 0; i < SWAP_RINGS; i++) {
		struct swap_ring *r = &sd->ring[i];
		struct io_uring_params p = { .flags = IORING_SETUP_SUBMIT_ALL |
						      IORING_SETUP_COOP_TASKRUN |
						      IORING_SETUP_TASKRUN_FLAG };
		int ret = io_uring_queue_init_params(SWAP_BATCH, &r->ring, &p);

		if (ret == -EINVAL) {	/* a kernel before 5.19 */
			memset(&p, 0, sizeof(p));
			ret = io_uring_queue_init_params(SWAP_BATCH, &r->ring, &p);
		}
		if (ret < 0)
			break;
		r->fixed = io_uring_register_files(&r->ring, &sd->fd, 1) == 0;
		/* Pinned once here, not by every request (pages the memlock
		 * limit does not cover leave the ring with plain vectors). */
		if (sd->bounce_mem)
			r->bufs = io_uring_register_buffers(&r->ring, &(struct iovec){
				.iov_base = sd->bounce_mem,
				.iov_len = SWAP_BOUNCE_MEM }, 1) == 0;
		sd->nrings++;
	}
}

/* The rings tear down (asynchronously: one may hold the file a little longer). */
void rings_exit(struct swap_dev *sd)
{
	for (unsigned i = 0; i < sd->nrings; i++)
		io_uring_queue_exit(&sd->ring[i].ring);
}

void swap_set_busy(struct swap_dev *sd, const _Atomic unsigned *faulting, unsigned cpus)
{
	if (!sd)
		return;
	sd->faulting = faulting;
	sd->cpus = cpus ? cpus : 1;
}
