/* SPDX-License-Identifier: MIT */
/* The swap bounce buffers: warm copies of the pages a swap batch moves
 * (swap_bounce.h). */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "swap_bounce.h"
#include "util.h"

_Static_assert(SWAP_BOUNCE_BYTES == SWAP_BATCH * PAGE_SIZE, "swap.h's bounce size");

/* Async-signal-safe. A free bounce buffer, or NULL: never waits. */
static struct swap_bounce *bounce_take(struct swap_dev *sd)
{
	int k;

	if (!sd->bounce_mem || !atomic_load_explicit(&sd->use_bounce, memory_order_relaxed))
		return NULL;
	k = flag_pick(sd, &sd->bounce[0].busy, sizeof(sd->bounce[0]), SWAP_BOUNCES);
	return k < 0 ? NULL : &sd->bounce[k];
}

/* Async-signal-safe. A free bounce buffer when some page of the batch
 * has a home to move through it, else NULL: never waits. */
struct swap_bounce *bounce_get(struct swap_dev *sd, const struct swap_io *io, unsigned n)
{
	bool any = false;

	if (sd->home_fd < 0)
		return NULL;
	for (unsigned i = 0; i < n && !any; i++)
		any = io[i].flags & SWAP_IO_HOME;
	return any ? bounce_take(sd) : NULL;
}

void *swap_bounce_take(struct swap_dev *sd)
{
	struct swap_bounce *b = sd ? bounce_take(sd) : NULL;

	return b ? b->buf : NULL;
}

void swap_bounce_give(struct swap_dev *sd, void *buf)
{
	size_t k = (size_t)((char *)buf - sd->bounce_mem) / SWAP_BOUNCE_BYTES;

	bounce_put(&sd->bounce[k]);
}

void bounce_put(struct swap_bounce *b)
{
	/* Release: our use of the buffer is over before its next user's. */
	if (b)
		atomic_flag_clear_explicit(&b->busy, memory_order_release);
}

/* Async-signal-safe. Where page i of a batch is read or written: its
 * bounce page when it has a home and there is a bounce buffer. */
char *io_buf(const struct swap_io *io, unsigned i, struct swap_bounce *bb)
{
	if (bb && (io[i].flags & SWAP_IO_HOME))
		return bb->buf + (size_t)i * PAGE_SIZE;
	return io[i].page;
}

/*
 * Async-signal-safe. Copy the pages io[pos[k]], k < n, between their bounce
 * pages and the home file (to_home: into it), a run of neighbours in both
 * per call; into it, pl's hook places what it can of each run first. A
 * page the copy did not reach gets the error.
 */
void home_rw(struct swap_dev *sd, bool to_home, struct swap_io *io, unsigned *pos,
		    unsigned n, struct swap_bounce *bb, const struct swap_place *pl)
{
	for (unsigned k = 0, j; k < n; k = j) {
		char *buf = io_buf(io, pos[k], bb);
		uint64_t off = io[pos[k]].home;
		size_t len, done = 0;
		int err = 0;

		for (j = k + 1; j < n && pos[j] == pos[k] + (j - k) &&
				io[pos[j]].home == off + (uint64_t)(j - k) * PAGE_SIZE; j++)
			;
		len = (size_t)(j - k) * PAGE_SIZE;
		if (to_home && pl) {
			done = (size_t)pl->place(pl->arg, &io[pos[k]], j - k, buf) * PAGE_SIZE;
			stat_add(sd, placed, done / PAGE_SIZE);
		}
		while (done < len && !err) {
			ssize_t r = to_home ? pwrite(sd->home_fd, buf + done, len - done, (off_t)(off + done))
					    : pread(sd->home_fd, buf + done, len - done, (off_t)(off + done));

			if (r > 0)
				done += (size_t)r;
			else if (r == 0 || errno != EINTR)
				err = r < 0 ? -errno : -EIO;
		}
		for (unsigned m = k; m < j; m++)
			if ((m - k + 1) * PAGE_SIZE > done)
				io[pos[m]].err = err ? err : -EIO;
		stat_add(sd, bounced, j - k);
	}
}

/* Async-signal-safe. The bounced pages of io[0..n) without an error, in
 * pos; how many. */
unsigned bounced_ok(const struct swap_io *io, unsigned n, struct swap_bounce *bb,
			   unsigned *pos)
{
	unsigned k = 0;

	for (unsigned i = 0; bb && i < n; i++)
		if (!io[i].err && (io[i].flags & SWAP_IO_HOME))
			pos[k++] = i;
	return k;
}

void swap_set_home(struct swap_dev *sd, int fd)
{
	if (sd)
		sd->home_fd = fd;
}

void swap_set_bounce(struct swap_dev *sd, bool on)
{
	if (sd)
		atomic_store_explicit(&sd->use_bounce, on, memory_order_relaxed);
}

/*
 * The bounce buffers: one mapping, its page tables filled now, so that
 * the CPU finds them warm (on a virtual machine with shadow page tables, a
 * cold page costs a trap to the hypervisor, several times a 4 KiB copy).
 * Without them, pages are read and written where they are.
 */
void bounce_init(struct swap_dev *sd)
{
	size_t one = (size_t)SWAP_BATCH * PAGE_SIZE;
	char *p = mmap(NULL, SWAP_BOUNCE_MEM, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	for (unsigned i = 0; i < SWAP_BOUNCES; i++)
		atomic_flag_clear(&sd->bounce[i].busy);
	if (p == MAP_FAILED)
		return;
	madvise(p, SWAP_BOUNCE_MEM, MADV_POPULATE_WRITE);
	/* A child made by fork(2) never uses them (fork.c reads with pread);
	 * pinned by the rings (rings_init), they would be copied for it. */
	madvise(p, SWAP_BOUNCE_MEM, MADV_DONTFORK);
	sd->bounce_mem = p;
	for (unsigned i = 0; i < SWAP_BOUNCES; i++)
		sd->bounce[i].buf = p + i * one;
}

void bounce_exit(struct swap_dev *sd)
{
	if (sd->bounce_mem)
		munmap(sd->bounce_mem, SWAP_BOUNCE_MEM);
}
