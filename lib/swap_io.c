/* SPDX-License-Identifier: MIT */
/* Swap I/O: batches of pages to and from their slots, through the rings of
 * swap_ring.c or pwritev/preadv, O_DIRECT where the file system allows,
 * with checksums. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "swap_bounce.h"
#include "swap_dev.h"
#include "util.h"

static size_t run_len(const struct swap_run *run)
{
	return (size_t)run->niov * PAGE_SIZE;
}

static int run_fd(const struct swap_dev *sd, const struct swap_run *run)
{
	return run->fd >= 0 ? run->fd : sd->fd;
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
		r = write ? pwritev(run_fd(sd, run), iov, (int)(run->niov - skip),
				    (off_t)(run->off + run->done))
			  : preadv(run_fd(sd, run), iov, (int)(run->niov - skip),
				   (off_t)(run->off + run->done));
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

static void batch_add(struct swap_batch *b, struct swap_io *io, unsigned i, void *buf)
{
	struct swap_run *last = b->nruns ? &b->runs[b->nruns - 1] : NULL;
	uint64_t off = (uint64_t)io[i].slot << PAGE_SHIFT;

	if (!last || last->off + run_len(last) != off) {
		last = &b->runs[b->nruns++];
		*last = (struct swap_run){ .off = off, .iov = &b->iov[b->niov], .fd = -1 };
	}
	b->iov[b->niov] = (struct iovec){ .iov_base = buf, .iov_len = PAGE_SIZE };
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
	if (!slot_valid(sd, io->slot) || !slot_count(sd, io->slot))
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
 * Async-signal-safe. A write found the disk full. Until space returns the
 * device says it is full (swapfile.c, nospace), so reclaim and faults stop
 * writing pages that cannot be written: each failed batch cost a scan and
 * a round of I/O.
 */
static void nospace_mark(struct swap_dev *sd)
{
	atomic_store_explicit(&sd->nospace_until, (int64_t)now_ns() + NOSPACE_RECHECK_NS,
			      memory_order_relaxed);
}

/* Async-signal-safe. */
bool swap_page_is_zero(const void *p)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < PAGE_SIZE / sizeof(*w); i++)
		if (w[i])
			return false;
	return true;
}

/* Async-signal-safe. For assertions: a clean page is its slot's copy. */
bool swap_slot_holds(const struct swap_dev *sd, uint32_t slot, const void *page)
{
	return slot_valid(sd, slot) &&
	       (atomic_load_explicit(&sd->swap_map[slot], memory_order_acquire) & SWAP_HAS_DATA) &&
	       crc32c(0, page, PAGE_SIZE) == sd->crc[slot];
}

/* Async-signal-safe. Checks and the injection hook, for a write batch. */
static void write_check(struct swap_dev *sd, struct swap_io *io, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		io[i].zero = false;
		io[i].err = io_check(sd, &io[i]);
		if (io[i].err)
			continue;
		/* The old contents are gone whatever happens to this write. */
		atomic_fetch_and_explicit(&sd->swap_map[io[i].slot], (uint8_t)~SWAP_HAS_DATA,
					  memory_order_relaxed);
		if (inject_fail(sd))
			io[i].err = -EIO;
	}
}

static unsigned write_chunk(struct swap_dev *sd, struct swap_io *io, unsigned n,
			    const struct swap_place *pl)
{
	struct swap_bounce *bb = bounce_get(sd, io, n);
	unsigned pos[SWAP_BATCH], ok = 0, zero = 0, nb;
	struct swap_batch b;

	(void)pl;
	b.nruns = b.niov = 0;
	write_check(sd, io, n);
	/* Copy the pages in through the kernel: the CPU then reads warm bounce
	 * pages, not a cold mapping of each page, for the zero check and the CRC. */
	nb = bounced_ok(io, n, bb, pos);
	home_rw(sd, false, io, pos, nb, bb, NULL);
	for (unsigned i = 0; i < n; i++) {
		char *buf = io_buf(io, i, bb);

		if (io[i].err)
			continue;
		if ((io[i].flags & SWAP_IO_SKIP_ZERO) && swap_page_is_zero(buf)) {
			io[i].zero = true;
			continue;
		}
		b.crc[b.niov] = crc32c(0, buf, PAGE_SIZE);
		batch_add(&b, io, i, buf);
	}
	runs_do(sd, true, b.runs, b.nruns);
	bounce_put(bb);
	batch_results(&b, io);
	for (unsigned k = 0; k < b.niov; k++)
		if (!io[b.pos[k]].err)
			slot_set_data(sd, io[b.pos[k]].slot, b.crc[k]);
		else if (io[b.pos[k]].err == -ENOSPC || io[b.pos[k]].err == -EDQUOT)
			nospace_mark(sd);
	for (unsigned i = 0; i < n; i++) {
		ok += !io[i].err;
		zero += io[i].zero;
	}
	stat_add(sd, writes, ok - zero);
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

static unsigned read_chunk(struct swap_dev *sd, struct swap_io *io, unsigned n,
			   const struct swap_place *pl)
{
	struct swap_bounce *bb = bounce_get(sd, io, n);
	unsigned pos[SWAP_BATCH], ok = 0, bad = 0, nb;
	struct swap_batch b;

	b.nruns = b.niov = 0;
	for (unsigned i = 0; i < n; i++) {
		io[i].err = read_check(sd, &io[i], &b.crc[b.niov]);
		if (!io[i].err)
			batch_add(&b, io, i, io_buf(io, i, bb));
	}
	runs_do(sd, false, b.runs, b.nruns);
	batch_results(&b, io);
	for (unsigned k = 0; k < b.niov; k++) {
		struct swap_io *p = &io[b.pos[k]];

		if (!p->err && crc32c(0, b.iov[k].iov_base, PAGE_SIZE) != b.crc[k]) {
			p->err = -EBADMSG;
			bad++;
		}
	}
	/* Checked: now into physmem, copied by the kernel. */
	nb = bounced_ok(io, n, bb, pos);
	home_rw(sd, true, io, pos, nb, bb, pl);
	bounce_put(bb);
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
		     unsigned (*chunk)(struct swap_dev *, struct swap_io *, unsigned,
				       const struct swap_place *),
		     const struct swap_place *pl)
{
	unsigned ok = 0;

	if (!sd || !io)
		return -EINVAL;
	for (unsigned i = 0; i < n; i += SWAP_BATCH)
		ok += chunk(sd, io + i, MIN(n - i, SWAP_BATCH), pl);
	return (int)MIN(ok, (unsigned)INT32_MAX);
}

/* Async-signal-safe, never waits for another caller, only for a fork
 * (the gate: a forked child may be reading the slots). */
int swap_writepages(struct swap_dev *sd, struct swap_io *io, unsigned n)
{
	int ret;

	fork_gate_enter();
	ret = in_chunks(sd, io, n, write_chunk, NULL);
	fork_gate_leave();
	return ret;
}

/* Runs of a stretch in flight at once (swap_write_stretch): the 512
 * slots of a huge extent come in one or a few. */
#define STRETCH_RUNS	16

/* Async-signal-safe. Write the runs, each one iovec of pages, through a
 * free ring, and finish what it left with pwrite. */
static void stretch_do(struct swap_dev *sd, struct swap_run *runs, unsigned nr)
{
	struct swap_ring *r = nr ? ring_get(sd) : NULL;

	if (r && ring_rw(sd, r, true, runs, nr))
		ring_put(r);
	for (unsigned k = 0; k < nr; k++) {
		struct swap_run *run = &runs[k];

		while (!run->err && run->done < run->iov[0].iov_len) {
			ssize_t w = pwrite(sd->fd, (char *)run->iov[0].iov_base + run->done,
					   run->iov[0].iov_len - run->done, (off_t)(run->off + run->done));

			stat_add(sd, sync_reqs, 1);
			if (w < 0 && errno != EINTR)
				run->err = -errno;
			else if (w == 0)
				run->err = -EIO;
			else if (w > 0)
				run->done += (size_t)w;
		}
	}
}

/* Async-signal-safe. The pages of run k (io[first..]) get its result: the
 * ones written their checksum, the others its error. */
static void stretch_results(struct swap_dev *sd, struct swap_io *io, unsigned first,
			    const struct swap_run *run)
{
	unsigned pages = (unsigned)(run->iov[0].iov_len / PAGE_SIZE);

	for (unsigned j = 0; j < pages; j++) {
		struct swap_io *p = &io[first + j];

		if ((j + 1) * PAGE_SIZE <= run->done) {
			slot_set_data(sd, p->slot, p->crc);
			continue;
		}
		p->err = run->err ? run->err : -EIO;
		if (p->err == -ENOSPC || p->err == -EDQUOT)
			nospace_mark(sd);
	}
}

/* Async-signal-safe. From page i on, up to STRETCH_RUNS runs of pages
 * neighbours both in memory and in their slots, each one iovec, checksummed
 * (pages of zeros marked and left out); first[k]: run k's first page.
 * Returns the page after the last one taken. */
static unsigned stretch_runs(struct swap_io *io, unsigned i, unsigned n, struct swap_run *runs,
			     struct iovec *iov, unsigned *first, unsigned *nr)
{
	unsigned last = 0;

	for (; i < n; i++) {
		if (io[i].err)
			continue;
		if ((io[i].flags & SWAP_IO_SKIP_ZERO) && swap_page_is_zero(io[i].page)) {
			io[i].zero = true;
			continue;
		}
		if (*nr && last + 1 == i && io[i].slot == io[last].slot + 1 &&
		    (char *)io[i].page == (char *)io[last].page + PAGE_SIZE) {
			iov[*nr - 1].iov_len += PAGE_SIZE;
		} else {
			if (*nr == STRETCH_RUNS)
				break;
			iov[*nr] = (struct iovec){ .iov_base = io[i].page, .iov_len = PAGE_SIZE };
			runs[*nr] = (struct swap_run){ .off = (uint64_t)io[i].slot << PAGE_SHIFT,
						       .iov = &iov[*nr], .niov = 1, .fd = -1 };
			first[(*nr)++] = i;
		}
		io[i].crc = crc32c(0, io[i].page, PAGE_SIZE);
		last = i;
	}
	return i;
}

/*
 * Async-signal-safe. swap_writepages for pages that are one stretch of
 * memory, mapped warm (a huge extent's, through the alias view): the zero
 * check and the checksum read them where they are, and each run of
 * consecutive slots is one request, all in flight together. Why: through
 * the bounce buffers a huge extent went as eight requests of 256 KiB, one
 * after the other, each after its copy. The first write of 4 GiB of
 * EMM_MAP_HUGEPAGE memory under a 1 GiB budget (2-vCPU VM) reached the
 * device in requests of 240 to 250 KiB on average, now 1.2 to 1.6 MiB;
 * ten alternating pairs, medians: 717 MiB/s against 648 on signal, 680
 * against 557 on uffd-sigbus, with 2.0 s of CPU against 2.6 and 2.2
 * against 2.9. Without O_DIRECT the pages go through the page cache, and
 * the bounce path drops them there.
 */
int swap_write_stretch(struct swap_dev *sd, struct swap_io *io, unsigned n)
{
	unsigned ok = 0, zero = 0;

	if (!sd || !io)
		return -EINVAL;
	if (!sd->direct || !n)
		return swap_writepages(sd, io, n);
	fork_gate_enter();
	write_check(sd, io, n);
	for (unsigned i = 0; i < n;) {
		struct swap_run runs[STRETCH_RUNS];
		struct iovec iov[STRETCH_RUNS];
		unsigned first[STRETCH_RUNS], nr = 0;

		i = stretch_runs(io, i, n, runs, iov, first, &nr);
		stretch_do(sd, runs, nr);
		for (unsigned k = 0; k < nr; k++)
			stretch_results(sd, io, first[k], &runs[k]);
	}
	for (unsigned i = 0; i < n; i++) {
		ok += !io[i].err;
		zero += io[i].zero;
	}
	stat_add(sd, writes, ok - zero);
	stat_add(sd, write_errors, n - ok);
	fork_gate_leave();
	return (int)ok;
}

/*
 * Read n slots from slot on, consecutive in the file, into buf with pread
 * (no ring and no bounce buffer: a forked child, fork.c, shares its
 * parent's), and check each page against its checksum. 0, or -errno of the
 * first failure: -EINVAL (a slot not in use), -ENODATA (never written),
 * -EIO (short), -EBADMSG (a checksum that does not match).
 */
int swap_read_sync(const struct swap_dev *sd, uint32_t slot, unsigned n, void *buf)
{
	size_t len = (size_t)n * PAGE_SIZE;
	uint32_t crc;
	ssize_t got;

	for (unsigned i = 0; i < n; i++) {
		struct swap_io io = { .slot = slot + i, .page = (char *)buf + i * PAGE_SIZE };
		int err = read_check(sd, &io, &crc);

		if (err)
			return err;
	}
	got = pread_full(sd->fd, buf, len, (off_t)((uint64_t)slot << PAGE_SHIFT));
	if (got != (ssize_t)len)
		return got < 0 ? (int)got : -EIO;
	for (unsigned i = 0; i < n; i++)
		if (crc32c(0, (char *)buf + i * PAGE_SIZE, PAGE_SIZE) != sd->crc[slot + i])
			return -EBADMSG;
	return 0;
}

/* Async-signal-safe, never waits for another caller. */
int swap_readpages(struct swap_dev *sd, struct swap_io *io, unsigned n)
{
	return in_chunks(sd, io, n, read_chunk, NULL);
}

/* Async-signal-safe, never waits for another caller. */
int swap_readpages_place(struct swap_dev *sd, struct swap_io *io, unsigned n,
			 const struct swap_place *pl)
{
	return in_chunks(sd, io, n, read_chunk, pl);
}

/*
 * Async-signal-safe. Read len bytes at off of another file (a FILE VMA's)
 * into buf on a free swap ring, so that a small read is polled for as a
 * swap-in is (swap_ring.c, ring_spin), else with pread; up to the end of
 * the file. The bytes read, or -errno.
 */
ssize_t swap_read_file(struct swap_dev *sd, int fd, void *buf, size_t len, uint64_t off)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct swap_run run = { .off = off, .iov = &iov, .niov = 1, .fd = fd };
	struct swap_ring *r;
	ssize_t more;

	if (fd < 0)
		return -EBADF;	/* -1 would be the swap file's run */
	r = sd ? ring_get(sd) : NULL;
	if (r && ring_rw(sd, r, false, &run, 1))
		ring_put(r);
	if (run.err)
		return run.err;
	if (run.done >= len)
		return (ssize_t)len;
	/* Short: the end of the file, or a transfer the ring left over. */
	more = pread_full(fd, (char *)buf + run.done, len - run.done, (off_t)(off + run.done));
	return more < 0 ? more : (ssize_t)run.done + more;
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
		.spun = atomic_load_explicit(&s->spun, memory_order_relaxed),
		.sync_reqs = atomic_load_explicit(&s->sync_reqs, memory_order_relaxed),
		.bounced = atomic_load_explicit(&s->bounced, memory_order_relaxed),
		.placed = atomic_load_explicit(&s->placed, memory_order_relaxed),
	};
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
int setup_direct(struct swap_dev *sd)
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
