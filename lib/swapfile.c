/* SPDX-License-Identifier: MIT */
/* The swap device: a file of page slots, per-CPU cluster allocation, swap_map;
 * opening and closing it. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <liburing.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "swap_dev.h"
#include "util.h"

/* ---- allocation ---- */

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

/* Async-signal-safe (fstatfs, not fstatvfs, which may read the mount
 * table). Has the swap file's file system this much free? */
static bool disk_has(const struct swap_dev *sd, uint64_t bytes)
{
	struct statfs fs;

	return fstatfs(sd->fd, &fs) == 0 &&
	       (uint64_t)fs.f_bavail * (uint64_t)(fs.f_frsize ? fs.f_frsize : fs.f_bsize) >= bytes;
}

/*
 * Async-signal-safe. Give the file blocks up past cluster c before its
 * slots are first written, SWAP_PREALLOC at a time (fallocate(2) without
 * FALLOC_FL_KEEP_SIZE makes unwritten extents: no data is written). ext4
 * writes into a hole under its inode lock taken exclusive, and into an
 * extent it has under the lock shared, as an overwrite; with holes, the
 * reads and writes io_uring tries without waiting found the lock taken
 * and went to its worker threads. Measured on a 2-vCPU VM, 4 GiB first
 * touched under a 1 GiB budget, then read in order, uffd-sigbus, seven
 * alternating pairs: writeback 211 to 261 K pages/s against 202 to 266 K
 * with holes (faster in five pairs), the read 144 to 176 K against 129 to
 * 172 K (faster in all seven); the whole file given blocks at open did no
 * better. The disk space is still taken as the file is used, at most
 * SWAP_PREALLOC ahead. With less free space than twice what it would take,
 * a step is left out: fallocate on a disk that fills takes what is left
 * before it fails, and the program's other files need it more. A failure
 * (a file system without fallocate, a disk filled by others meanwhile)
 * ends it; the blocks a failed call took stay the file's, for its writes.
 * Either way, writes find holes, as before.
 */
static void cluster_prealloc(struct swap_dev *sd, uint64_t c)
{
	uint64_t size = sd->nslots << PAGE_SHIFT;
	uint64_t end = MIN((c + 1) * SWAP_CLUSTER << PAGE_SHIFT, size);
	uint64_t from = atomic_load_explicit(&sd->prealloc_end, memory_order_relaxed);

	while (end > from) {
		uint64_t to = MIN(ALIGN_UP(end, SWAP_PREALLOC), size);

		if (!atomic_compare_exchange_weak_explicit(&sd->prealloc_end, &from, to,
							   memory_order_relaxed,
							   memory_order_relaxed))
			continue;
		if (!disk_has(sd, 2 * (to - from)))
			return;
		if (fallocate(sd->fd, 0, (off_t)from, (off_t)(to - from)) < 0)
			atomic_store_explicit(&sd->prealloc_end, UINT64_MAX, memory_order_relaxed);
		return;
	}
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
		if (c >= 0)
			cluster_prealloc(sd, (uint64_t)c);
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

/* Async-signal-safe. Is the disk still full (see swap_nospace_mark)? One
 * caller at a time looks at the file system (disk_has), at most every
 * 100 ms. */
static bool nospace(struct swap_dev *sd)
{
	int64_t until = atomic_load_explicit(&sd->nospace_until, memory_order_relaxed), now;

	if (!until)
		return false;
	now = (int64_t)now_ns();
	if (now < until || !atomic_compare_exchange_strong_explicit(&sd->nospace_until, &until,
			now + NOSPACE_RECHECK_NS, memory_order_relaxed, memory_order_relaxed))
		return true;
	if (!disk_has(sd, NOSPACE_RESUME))
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
	return slot_count(sd, slot);
}

uint64_t swap_slots_total(const struct swap_dev *sd)
{
	return sd ? sd->nslots - 1 : 0;
}

uint64_t swap_slots_used(const struct swap_dev *sd)
{
	return sd ? atomic_load_explicit(&sd->used, memory_order_relaxed) : 0;
}

/* ---- test hooks ---- */

void swap_inject(struct swap_dev *sd, unsigned fail_every_k_writes, int full)
{
	if (!sd)
		return;
	atomic_store_explicit(&sd->inject_count, 0, memory_order_relaxed);
	atomic_store_explicit(&sd->inject_k, fail_every_k_writes, memory_order_relaxed);
	atomic_store_explicit(&sd->inject_full, full != 0, memory_order_relaxed);
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
	atomic_init(&sd->use_bounce, true);
	sd->home_fd = -1;
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
 * Sparse: disk space is taken as slots are used (cluster_prealloc), so a
 * large swap size costs nothing until then. A full disk then shows as a
 * failed write: the page stays resident and dirty, counted in io_errors.
 * On tmpfs blocks are memory: none are given ahead there.
 */
static int size_file(struct swap_dev *sd, uint64_t bytes)
{
	struct statfs fs;

	if (fstatfs(sd->fd, &fs) == 0 && fs.f_type == TMPFS_MAGIC)
		atomic_store_explicit(&sd->prealloc_end, UINT64_MAX, memory_order_relaxed);
	return ftruncate(sd->fd, (off_t)bytes) < 0 ? -errno : 0;
}

/*
 * A ring tears down asynchronously and may hold the file a little longer
 * than we do, so the lock of a named file is dropped explicitly: the next
 * user must not find it busy.
 */
static void dev_free(struct swap_dev *sd)
{
	rings_exit(sd);
	bounce_exit(sd);
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
		err = size_file(sd, npages << PAGE_SHIFT);
	if (!err)
		err = setup_direct(sd);
	if (err) {
		if (created)
			unlink(path);
		dev_free(sd);
		return err;
	}
	bounce_init(sd);
	rings_init(sd);	/* after: they register the bounce buffers */
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
 * Space taken by others later shows as failed writes (see swap_nospace_mark).
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
