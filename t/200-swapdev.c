/* SPDX-License-Identifier: MIT */
/* The swap device: opening, slot allocation, batched I/O, checksums, injected errors, CRC32C. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/magic.h>

#include "swap.h"
#include "swap_dev.h"
#include "tap.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define NPAGES 2048		/* pages of the shared buffer */

static char dir[256];		/* a private directory for the files of this test */
static uint8_t *buf;		/* NPAGES pages of a MAP_SHARED memfd mapping */
static uint64_t seed = 0x5eed0200;

static void *shared_pages(size_t n)
{
	int fd = memfd_create("swapdev-test", MFD_CLOEXEC);
	void *p;

	if (fd < 0 || ftruncate(fd, (off_t)(n * PAGE)) < 0)
		bail("memfd: %s", strerror(errno));
	p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		bail("mmap: %s", strerror(errno));
	close(fd);
	return p;
}

static uint8_t *page(unsigned i)
{
	return buf + (size_t)i * PAGE;
}

/* Page contents that name the slot and a generation. */
static void fill(void *p, uint32_t slot, uint64_t gen)
{
	uint64_t s = (uint64_t)slot << 32 ^ gen, *w = p;

	for (size_t i = 0; i < PAGE / 8; i++)
		w[i] = tap_rand(&s);
}

static bool check(const void *p, uint32_t slot, uint64_t gen)
{
	uint64_t s = (uint64_t)slot << 32 ^ gen;
	const uint64_t *w = p;

	for (size_t i = 0; i < PAGE / 8; i++)
		if (w[i] != tap_rand(&s))
			return false;
	return true;
}

static unsigned count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	unsigned n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static void path_in_dir(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

/* ---- CRC32C ---- */

/* Each version the CPU runs, not only the quickest, against the tables:
 * every length around the points where a version changes its method. */
static void test_crc32c_variants(const uint8_t *b)
{
	uint32_t (*fn[8])(uint32_t, const void *, size_t);
	int n = crc32c_variants(fn, 8);

	ok(n >= 1 && fn[n - 1] == crc32c_generic, "%d crc32c versions, the tables' last", n);
	for (int i = 0; i < n - 1; i++) {
		unsigned bad = 0;

		for (size_t len = 0; len < 3000; len++)
			bad += fn[i](0x12345678u * (uint32_t)len, b + len % 61, len) !=
			       crc32c_generic(0x12345678u * (uint32_t)len, b + len % 61, len);
		for (size_t len = 4000; len < 70000 - 64; len += 4093)
			bad += fn[i](~0u, b + len % 64, len) != crc32c_generic(~0u, b + len % 64, len);
		bad += fn[i](0, b, 4096) != crc32c_generic(0, b, 4096);
		is_int(bad, 0, "crc32c version %d of %d agrees with the tables", i + 1, n);
	}
}

static void test_crc32c(void)
{
	uint8_t v[32], *b = malloc(70000);
	unsigned bad = 0;

	is_int(crc32c(0, "123456789", 9), 0xe3069283, "crc32c(\"123456789\")");
	is_int(crc32c_generic(0, "123456789", 9), 0xe3069283, "table-driven crc32c(\"123456789\")");
	is_int(crc32c(0, "", 0), 0, "crc32c of nothing");
	memset(v, 0, sizeof(v));
	is_int(crc32c(0, v, 32), 0x8a9136aa, "crc32c of 32 zero bytes (RFC 3720)");
	memset(v, 0xff, sizeof(v));
	is_int(crc32c(0, v, 32), 0x62a8ab43, "crc32c of 32 0xff bytes (RFC 3720)");
	for (int i = 0; i < 32; i++)
		v[i] = (uint8_t)i;
	is_int(crc32c(0, v, 32), 0x46dd794e, "crc32c of 0..31 (RFC 3720)");
	for (size_t i = 0; i < 70000; i++)
		b[i] = (uint8_t)tap_rand(&seed);
	for (int t = 0; t < 3000; t++) {
		size_t off = tap_rand(&seed) % 16, len = tap_rand(&seed) % (t < 2000 ? 5000 : 69000);
		size_t cut = len ? tap_rand(&seed) % len : 0;
		uint32_t c = crc32c(0, b + off, len);

		bad += c != crc32c_generic(0, b + off, len);
		bad += c != crc32c(crc32c(0, b + off, cut), b + off + cut, len - cut);
	}
	is_int(bad, 0, "crc32c agrees with the tables and chains, any length and alignment");
	test_crc32c_variants(b);
	free(b);
}

/* ---- opening ---- */

static void test_open_tmp(void)
{
	struct swap_dev *sd = NULL;
	char tmp[300];

	path_in_dir(tmp, sizeof(tmp), "tmp");
	mkdir(tmp, 0700);
	setenv("TMPDIR", tmp, 1);
	if (!is_int(swap_open(NULL, 16 * MIB, &sd), 0, "open an unlinked file in $TMPDIR"))
		bail("cannot open a swap file in %s", tmp);
	is_int(count_entries(tmp), 0, "it left no name in the directory");
	is_int(swap_slots_total(sd), 16 * MIB / PAGE - 1, "slots: pages less slot 0");
	is_int(swap_slots_used(sd), 0, "none used");
	diag("O_DIRECT %s, io_uring %s", swap_is_direct(sd) ? "yes" : "no",
	     swap_has_uring(sd) ? "yes" : "no");
	swap_close(sd);
	path_in_dir(tmp, sizeof(tmp), "no-such-dir");
	setenv("TMPDIR", tmp, 1);
	is_int(swap_open(NULL, 16 * MIB, &sd), -ENOENT, "a $TMPDIR that does not exist: -ENOENT");
	unsetenv("TMPDIR");
	is_int(swap_open(NULL, 0, &sd), -EINVAL, "size 0: -EINVAL");
	is_int(swap_open(NULL, 2 * PAGE - 1, &sd), -EINVAL, "less than two pages: -EINVAL");
	is_int(swap_open(NULL, 16 * MIB, NULL), -EINVAL, "no out pointer: -EINVAL");
	is_int(swap_open(NULL, 1ULL << 46, &sd), -EFBIG, "more slots than 32 bits hold: -EFBIG");
}

static void test_open_named(void)
{
	struct swap_dev *sd = NULL, *sd2 = NULL;
	char path[300], bad[300];
	struct stat st;

	path_in_dir(path, sizeof(path), "swapfile");
	if (!is_int(swap_open(path, 8 * MIB + 100, &sd), 0, "open a named file"))
		bail("cannot open %s", path);
	ok(stat(path, &st) == 0 && S_ISREG(st.st_mode), "it was created");
	is_int(st.st_mode & 0777, 0600, "with mode 0600");
	is_int(st.st_size, 8 * MIB, "its size is rounded down to pages");
	is_int(swap_open(path, 8 * MIB, &sd2), -EBUSY, "a second device on the same file: -EBUSY");
	swap_close(sd);
	ok(stat(path, &st) == 0 && st.st_size == 0, "closed: the file stays, emptied");
	if (is_int(swap_open(path, 4 * MIB, &sd), 0, "an existing file of ours is reused"))
		swap_close(sd);
	chmod(path, 0644);
	is_int(swap_open(path, 4 * MIB, &sd), -EPERM, "one others can read: -EPERM");
	ok(stat(path, &st) == 0, "and it is left alone");
	unlink(path);
	path_in_dir(bad, sizeof(bad), "no-such-dir/swapfile");
	is_int(swap_open(bad, 4 * MIB, &sd), -ENOENT, "a path in a missing directory: -ENOENT");
	is_int(swap_open(dir, 4 * MIB, &sd), -EISDIR, "a directory: -EISDIR");
	path_in_dir(bad, sizeof(bad), "link");
	if (symlink(path, bad) == 0) {
		is_int(swap_open(bad, 4 * MIB, &sd), -ELOOP, "a symlink is not followed: -ELOOP");
		ok(access(path, F_OK) != 0, "nothing was created through it");
		unlink(bad);
	}
	if (geteuid() != 0) {
		path_in_dir(bad, sizeof(bad), "ro");
		mkdir(bad, 0500);
		strcat(bad, "/swapfile");
		is_int(swap_open(bad, 4 * MIB, &sd), -EACCES, "a directory we cannot write: -EACCES");
		*strrchr(bad, '/') = '\0';
		rmdir(bad);
	} else {
		skip(1, "root writes anywhere: no -EACCES to see");
	}
}

/* More than the file system has free: the file is sparse, so it opens;
 * space is taken only as slots are written. */
static void test_open_nospace(void)
{
	struct swap_dev *sd = NULL;
	struct statvfs vfs;
	char path[300];
	uint64_t want;

	path_in_dir(path, sizeof(path), "huge");
	if (statvfs(dir, &vfs) < 0 || (want = (uint64_t)vfs.f_bavail * vfs.f_frsize + (1ULL << 30)) > (1ULL << 43)) {
		skip(2, "file system too large to exhaust");
		return;
	}
	is_int(swap_open(path, want, &sd), 0, "more than the free space: opens, sparse");
	if (sd) {
		struct stat st;

		ok(stat(path, &st) == 0 && (uint64_t)st.st_blocks * 512 < (64ULL << 20),
		   "and takes no disk space yet");
		swap_close(sd);
	} else {
		ok(0, "and takes no disk space yet");
	}
	unlink(path);
}

/* A file size limit makes fallocate fail with EFBIG (and SIGXFSZ, ignored). */
static void test_open_fsize(void)
{
	char path[300];
	int status;
	pid_t pid;

	path_in_dir(path, sizeof(path), "limited");
	tap_flush();
	pid = fork();
	if (pid == 0) {
		struct rlimit rl = { MIB, MIB };
		struct swap_dev *sd;

		signal(SIGXFSZ, SIG_IGN);
		setrlimit(RLIMIT_FSIZE, &rl);
		_exit(swap_open(path, 16 * MIB, &sd) == -EFBIG ? 0 : 1);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		skip(2, "no child");
		return;
	}
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "beyond RLIMIT_FSIZE: -EFBIG");
	ok(access(path, F_OK) != 0, "and no file is left behind");
}

/* ---- allocation ---- */

static void pin_cpu(void)
{
	cpu_set_t set;
	int cpu = sched_getcpu();

	CPU_ZERO(&set);
	CPU_SET(cpu < 0 ? 0 : cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void unpin_cpu(void)
{
	cpu_set_t set;

	memset(&set, 0xff, sizeof(set));
	sched_setaffinity(0, sizeof(set), &set);
}

static void test_alloc(void)
{
	const uint64_t total = 4 * MIB / PAGE - 1;
	uint8_t *seen = calloc(total + 1, 1);
	struct swap_dev *sd;
	uint64_t got = 0, dup = 0, range = 0;
	uint32_t s;

	if (swap_open(NULL, 4 * MIB, &sd) < 0)
		bail("swap_open");
	while ((s = swap_alloc(sd))) {
		range += s == 0 || s > total;
		if (s <= total)
			dup += seen[s]++;
		got++;
	}
	is_int(got, total, "every slot can be allocated, then swap_alloc gives 0");
	ok(!dup && !range, "each once, none is slot 0 or past the end");
	is_int(swap_slots_used(sd), total, "all counted as used");
	is_int(swap_count(sd, 7), 1, "a slot has one user");
	is_int(swap_dup(sd, 7), 0, "swap_dup adds one");
	is_int(swap_count(sd, 7), 2, "two users");
	swap_free(sd, 7);
	is_int(swap_slots_used(sd), total, "freeing one of two users keeps the slot");
	for (s = 1; s <= total; s++)
		swap_free(sd, s);
	is_int(swap_slots_used(sd), 0, "all freed");
	is_int(swap_dup(sd, 7), -EINVAL, "swap_dup of a free slot: -EINVAL");
	swap_free(sd, 7);
	swap_free(sd, 0);
	swap_free(sd, (uint32_t)total + 1);
	is_int(swap_slots_used(sd), 0, "freeing free or bad slots changes nothing");
	swap_close(sd);
	free(seen);
}

static void test_alloc_batch(void)
{
	struct swap_dev *sd;
	uint32_t slots[32], prev = 0;
	unsigned contiguous = 0, follows = 0;

	if (swap_open(NULL, 16 * MIB, &sd) < 0)
		bail("swap_open");
	pin_cpu();
	for (int b = 0; b < 16; b++) {
		unsigned n = swap_alloc_batch(sd, slots, 32), run = 1;

		for (unsigned i = 1; i < n; i++)
			run += slots[i] == slots[i - 1] + 1;
		contiguous += n == 32 && run == 32;
		follows += b > 0 && slots[0] == prev + 1;
		prev = slots[31];
	}
	unpin_cpu();
	is_int(contiguous, 16, "batches of 32 are consecutive slots");
	ok(follows >= 14, "on one CPU each batch follows the last (%u of 15)", follows);
	is_int(swap_slots_used(sd), 16 * 32, "512 slots used");
	swap_close(sd);
}

static void test_full(void)
{
	struct swap_dev *sd;
	uint32_t slots[4];

	if (swap_open(NULL, 4 * MIB, &sd) < 0)
		bail("swap_open");
	swap_inject(sd, 0, 1);
	is_int(swap_alloc(sd), 0, "injected full: swap_alloc gives 0");
	is_int(swap_alloc_batch(sd, slots, 4), 0, "and swap_alloc_batch none");
	swap_inject(sd, 0, 0);
	ok(swap_alloc(sd) != 0, "cleared: slots again");
	swap_close(sd);
}

/* ---- I/O ---- */

static uint64_t file_bytes(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : UINT64_MAX;
}

/* Can the file system of dir give a file blocks ahead (not tmpfs, where
 * blocks are memory, and fallocate(2) works)? */
static bool can_prealloc(void)
{
	char probe[300];
	struct statfs fs;
	bool can;
	int fd;

	if (statfs(dir, &fs) < 0 || fs.f_type == TMPFS_MAGIC)
		return false;
	path_in_dir(probe, sizeof(probe), "probe");
	fd = open(probe, O_RDWR | O_CREAT | O_EXCL, 0600);
	can = fd >= 0 && fallocate(fd, 0, 0, PAGE) == 0;
	if (fd >= 0)
		close(fd);
	unlink(probe);
	return can;
}

static void make_io(struct swap_io *io, const uint32_t *slots, unsigned n, uint64_t gen);
static unsigned roundtrip(struct swap_dev *sd, struct swap_io *io, unsigned n, uint64_t gen);

/* The file takes its blocks as slots are first used, 64 MiB
 * (SWAP_PREALLOC) ahead, not all at open. */
static void test_prealloc(void)
{
	struct swap_dev *sd = NULL;
	struct swap_io io[16];
	uint32_t slots[16];
	char path[300];
	bool can = can_prealloc();
	uint64_t b;

	path_in_dir(path, sizeof(path), "prealloc");
	if (swap_open(path, 256 * MIB, &sd) < 0)
		bail("swap_open %s", path);
	ok(file_bytes(path) < MIB, "a 256 MiB swap file takes no blocks at open");
	if (swap_alloc_batch(sd, slots, 16) != 16)
		bail("swap_alloc_batch");
	make_io(io, slots, 16, 7);
	is_int(roundtrip(sd, io, 16, 7), 16, "16 pages written and read back");
	b = file_bytes(path);
	if (can)
		ok(b >= 64 * MIB && b <= 65 * MIB,
		   "the first slots written give it 64 MiB of blocks, not 256 (%llu KiB)",
		   (unsigned long long)b >> 10);
	else
		ok(b < MIB, "no blocks ahead on this file system (%llu KiB)",
		   (unsigned long long)b >> 10);
	swap_close(sd);
	unlink(path);
}

static void make_io(struct swap_io *io, const uint32_t *slots, unsigned n, uint64_t gen)
{
	for (unsigned i = 0; i < n; i++) {
		io[i] = (struct swap_io){ .slot = slots[i], .page = page(i) };
		fill(page(i), slots[i], gen);
	}
}

static unsigned verify(const struct swap_io *io, unsigned n, uint64_t gen)
{
	unsigned good = 0;

	for (unsigned i = 0; i < n; i++)
		good += !io[i].err && check(io[i].page, io[i].slot, gen);
	return good;
}

/* Write n pages, wipe the buffer, read them back: the pages read intact. */
static unsigned roundtrip(struct swap_dev *sd, struct swap_io *io, unsigned n, uint64_t gen)
{
	if (swap_writepages(sd, io, n) != (int)n)
		return 0;
	memset(buf, 0, (size_t)n * PAGE);
	if (swap_readpages(sd, io, n) != (int)n)
		return 0;
	return verify(io, n, gen);
}

static void shuffle(uint32_t *a, unsigned n)
{
	for (unsigned i = n - 1; i > 0; i--) {
		unsigned j = tap_rand(&seed) % (i + 1);
		uint32_t t = a[i];

		a[i] = a[j];
		a[j] = t;
	}
}

static void test_io(void)
{
	static uint32_t slots[NPAGES];
	static struct swap_io io[NPAGES];
	struct swap_counters c0, c1;
	struct swap_dev *sd;
	unsigned n;

	if (swap_open(NULL, 64 * MIB, &sd) < 0)
		bail("swap_open");
	n = swap_alloc_batch(sd, slots, NPAGES);
	is_int(n, NPAGES, "2048 slots in one batch");
	make_io(io, slots, n, 1);
	is_int(roundtrip(sd, io, n, 1), n, "2048 consecutive pages written and read back intact");
	shuffle(slots, n);
	make_io(io, slots, n, 2);
	is_int(roundtrip(sd, io, n, 2), n, "again in random order, overwriting");
	swap_get_counters(sd, &c0);
	swap_set_uring(sd, false);
	make_io(io, slots, 256, 3);
	is_int(roundtrip(sd, io, 256, 3), 256, "without io_uring: pwritev/preadv");
	swap_get_counters(sd, &c1);
	ok(c1.uring_reqs == c0.uring_reqs && c1.sync_reqs > c0.sync_reqs,
	   "and those went through the fallback");
	swap_set_uring(sd, true);
	if (swap_has_uring(sd))
		ok(c0.uring_reqs > 0, "with io_uring, requests went through it (%llu, %llu plain)",
		   (unsigned long long)c0.uring_reqs, (unsigned long long)c0.sync_reqs);
	else
		skip(1, "io_uring is not available here");
	if (swap_set_direct(sd, false) == 0) {
		make_io(io, slots, 300, 4);
		is_int(roundtrip(sd, io, 300, 4), 300, "buffered, without O_DIRECT");
		swap_set_direct(sd, true);
	} else {
		skip(1, "cannot switch O_DIRECT off");
	}

	uint32_t fresh = swap_alloc(sd);

	io[0] = (struct swap_io){ .slot = fresh, .page = page(0) };
	io[1] = (struct swap_io){ .slot = fresh, .page = page(1) + 8 };
	swap_free(sd, slots[0]);
	io[2] = (struct swap_io){ .slot = slots[0], .page = page(2) };
	io[3] = (struct swap_io){ .slot = 0, .page = page(3) };
	is_int(swap_readpages(sd, io, 4), 0, "bad reads fail");
	is_int(io[0].err, -ENODATA, "a slot never written: -ENODATA");
	is_int(io[1].err, -EINVAL, "an unaligned page: -EINVAL");
	is_int(io[2].err, -EINVAL, "a free slot: -EINVAL");
	is_int(io[3].err, -EINVAL, "slot 0: -EINVAL");
	is_int(swap_writepages(sd, io + 1, 3), 0, "and so do such writes");
	swap_close(sd);
}

/* Single pages read one by one, as random major faults read them: the
 * reader may poll the ring for each (swap_set_spin), or with 0 sleeps; and
 * sleeps while as many faults are being served as there are CPUs. */
static void test_spin(void)
{
	static uint32_t slots[64];
	static struct swap_io io[64];
	struct swap_counters c0, c1, c2;
	_Atomic unsigned busy = 2;
	struct swap_dev *sd;
	unsigned good = 0;
	uint32_t waits;

	if (swap_open(NULL, 16 * MIB, &sd) < 0)
		bail("swap_open");
	if (!swap_has_uring(sd)) {
		skip(6, "io_uring is not available here");
		swap_close(sd);
		return;
	}
	swap_alloc_batch(sd, slots, 64);
	make_io(io, slots, 64, 11);
	swap_writepages(sd, io, 64);
	memset(buf, 0, 64 * PAGE);
	swap_set_spin(sd, 200000);
	swap_get_counters(sd, &c0);
	for (unsigned i = 0; i < 32; i++)
		good += swap_readpages(sd, &io[i], 1) == 1;
	swap_get_counters(sd, &c1);
	/* The device may stall past 200 us for a whole round: two more
	 * rounds over the same pages before polling is said not to work. */
	for (unsigned round = 0; round < 2 && c1.spun == c0.spun; round++) {
		for (unsigned i = 0; i < 32; i++)
			swap_readpages(sd, &io[i], 1);
		swap_get_counters(sd, &c1);
	}
	swap_set_spin(sd, 0);
	for (unsigned i = 32; i < 64; i++)
		good += swap_readpages(sd, &io[i], 1) == 1;
	swap_get_counters(sd, &c2);
	is_int(good + verify(io, 64, 11), 128, "64 pages read one by one, intact, polled or not");
	/* Not all: the first read polls, the second sleeps, then the faster
	 * way here goes on, and one read in 64 the other; a read that takes
	 * longer than the 200 us is slept for. */
	ok(c1.spun - c0.spun > 0, "polling: %llu reads' completions came while polled (rounds of 32, 3 at most)",
	   (unsigned long long)(c1.spun - c0.spun));
	is_int(c2.spun - c1.spun, 0, "swap_set_spin(0): none polled");
	/* As many faults being served as CPUs: the reads sleep, without even
	 * asking poll_pick (which counts the reads it is asked about). */
	swap_set_spin(sd, 200000);
	swap_set_busy(sd, &busy, 2);
	waits = atomic_load(&sd->waits);
	for (unsigned i = 0; i < 32; i++)
		good += swap_readpages(sd, &io[i], 1) == 1;
	swap_get_counters(sd, &c1);
	ok(c1.spun == c2.spun && atomic_load(&sd->waits) == waits,
	   "swap_set_busy: 2 faults being served on 2 CPUs, none polled, poll_pick not asked");
	busy = 1;
	swap_readpages(sd, &io[0], 1);
	is_int(atomic_load(&sd->waits) - waits, 1, "with 1, poll_pick asked again");
	is_int(good + verify(io, 32, 11), 128, "and the 32 pages so read are intact");
	swap_close(sd);
}

/* Another file's bytes through the rings (a FILE VMA's fault): polled
 * when small, short at the end of the file, the same without rings. */
static void test_read_file(void)
{
	size_t len = 10 * PAGE + 100;
	struct swap_counters c0, c1;
	char path[300], *src = malloc(len);
	struct swap_dev *sd;
	int fd;

	if (swap_open(NULL, 4 * MIB, &sd) < 0 || !src)
		bail("swap_open");
	path_in_dir(path, sizeof(path), "file");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	for (size_t i = 0; i < len; i++)
		src[i] = (char)(i * 7 + i / PAGE);
	if (fd < 0 || pwrite(fd, src, len, 0) != (ssize_t)len)
		bail("writing %s", path);
	swap_set_spin(sd, 200000);
	for (int uring = 1; uring >= 0; uring--) {
		swap_set_uring(sd, uring);
		memset(buf, 0, 4 * PAGE);
		swap_get_counters(sd, &c0);
		is_int(swap_read_file(sd, fd, buf, 4 * PAGE, 2 * PAGE), 4 * PAGE,
		       "%s: 4 pages read", uring ? "ring" : "pread");
		swap_get_counters(sd, &c1);
		ok(!memcmp(buf, src + 2 * PAGE, 4 * PAGE), "the file's bytes");
		if (uring && swap_has_uring(sd))
			is_int(c1.uring_reqs - c0.uring_reqs, 1, "on a ring (%llu polled for)",
			       (unsigned long long)(c1.spun - c0.spun));
		else
			skip(1, uring ? "io_uring is not available here" : "no ring");
		is_int(swap_read_file(sd, fd, buf, 4 * PAGE, 9 * PAGE), PAGE + 100,
		       "to the end of the file");
		ok(!memcmp(buf, src + 9 * PAGE, PAGE + 100), "its last bytes");
		is_int(swap_read_file(sd, -1, buf, PAGE, 0), -EBADF, "a bad descriptor: -EBADF");
	}
	swap_set_uring(sd, true);
	close(fd);
	unlink(path);
	free(src);
	swap_close(sd);
}

/* Every k-th page write fails; those slots hold nothing valid afterwards. */
static void test_inject(void)
{
	struct swap_io io[30];
	uint32_t slots[30];
	struct swap_dev *sd;
	unsigned exact = 0, nodata = 0;

	if (swap_open(NULL, 4 * MIB, &sd) < 0 || swap_alloc_batch(sd, slots, 30) != 30)
		bail("swap_open");
	make_io(io, slots, 30, 5);
	is_int(swap_writepages(sd, io, 30), 30, "30 pages written");
	make_io(io, slots, 30, 6);
	swap_inject(sd, 3, 0);
	is_int(swap_writepages(sd, io, 30), 20, "every 3rd write failing: 20 of 30 succeed");
	for (unsigned i = 0; i < 30; i++)
		exact += io[i].err == (i % 3 == 2 ? -EIO : 0);
	is_int(exact, 30, "-EIO exactly on the 3rd, 6th, 9th...");
	swap_inject(sd, 0, 0);
	memset(buf, 0, 30 * PAGE);
	is_int(swap_readpages(sd, io, 30), 20, "reading back: the 20 written");
	for (unsigned i = 0; i < 30; i++)
		nodata += i % 3 == 2 ? io[i].err == -ENODATA : io[i].err == 0;
	is_int(nodata, 30, "a failed write leaves no valid page: -ENODATA, not the old data");
	is_int(verify(io, 30, 6) + 10, 30, "the others hold the new data");
	make_io(io, slots, 30, 7);
	is_int(roundtrip(sd, io, 30, 7), 30, "injection off: all written again");
	swap_close(sd);
}

static void test_corrupt(void)
{
	struct swap_counters c;
	struct swap_dev *sd;
	struct swap_io io[3];
	uint32_t slots[3];
	char path[300];
	int fd;

	path_in_dir(path, sizeof(path), "corrupt");
	if (swap_open(path, 4 * MIB, &sd) < 0 || swap_alloc_batch(sd, slots, 3) != 3)
		bail("swap_open %s", path);
	make_io(io, slots, 3, 8);
	is_int(swap_writepages(sd, io, 3), 3, "3 pages written to a named file");
	fd = open(path, O_RDWR);
	ok(fd >= 0 && pwrite(fd, "garbage", 7, ((off_t)slots[1] << 12) + 100) == 7,
	   "7 bytes of the middle slot overwritten in the file");
	close(fd);
	memset(buf, 0, 3 * PAGE);
	is_int(swap_readpages(sd, io, 3), 2, "reading: two of three");
	is_int(io[1].err, -EBADMSG, "the damaged one: -EBADMSG");
	ok(!io[0].err && !io[2].err && verify(io, 3, 8) == 2, "its neighbours are intact");
	swap_get_counters(sd, &c);
	is_int(c.csum_errors, 1, "one checksum error counted");
	make_io(io, slots, 3, 9);
	is_int(roundtrip(sd, io, 3, 9), 3, "rewritten, the slot reads well again");
	swap_close(sd);
	unlink(path);
}

/* ---- two threads at once ---- */

struct worker {
	struct swap_dev *sd;
	unsigned id, rounds, bad, ok;
	uint8_t *pages;		/* 64 pages: 32 to write, 32 to read into */
};

static void *work(void *arg)
{
	struct worker *w = arg;
	struct swap_io wio[32], rio[32];
	uint32_t slots[32];

	for (unsigned r = 0; r < w->rounds; r++) {
		unsigned n = swap_alloc_batch(w->sd, slots, 1 + r % 32);
		uint64_t gen = (uint64_t)w->id << 40 | r;

		for (unsigned i = 0; i < n; i++) {
			wio[i] = (struct swap_io){ .slot = slots[i], .page = w->pages + i * PAGE };
			rio[i] = (struct swap_io){ .slot = slots[i], .page = w->pages + (32 + i) * PAGE };
			fill(wio[i].page, slots[i], gen);
		}
		if (swap_writepages(w->sd, wio, n) != (int)n || swap_readpages(w->sd, rio, n) != (int)n)
			w->bad++;
		w->ok += verify(rio, n, gen);
		w->bad += n - verify(rio, n, gen);
		for (unsigned i = 0; i < n; i++)
			swap_free(w->sd, slots[i]);
	}
	return NULL;
}

static void test_threads(void)
{
	struct worker w[2];
	pthread_t th[2];
	struct swap_dev *sd;
	unsigned pages = 0;

	if (swap_open(NULL, 8 * MIB, &sd) < 0)
		bail("swap_open");
	for (unsigned i = 0; i < 2; i++) {
		w[i] = (struct worker){ .sd = sd, .id = i, .rounds = 2000, .pages = page(64 * i) };
		pthread_create(&th[i], NULL, work, &w[i]);
	}
	for (unsigned i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		pages += w[i].ok;
	}
	is_int(w[0].bad + w[1].bad, 0, "2 threads: alloc, write, read, free; every page intact");
	diag("%u pages went through", pages);
	is_int(swap_slots_used(sd), 0, "every slot came back");
	swap_close(sd);
}

/* A home file of n pages (a memfd, mapped at *home) and a swap device with
 * n slots allocated, which moves pages with a home through it. */
static int home_setup(unsigned n, uint32_t *slots, struct swap_dev **sd, uint8_t **home)
{
	int fd = memfd_create("swapdev-home", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)n * PAGE) < 0)
		bail("memfd: %s", strerror(errno));
	*home = mmap(NULL, (size_t)n * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (*home == MAP_FAILED || swap_open(NULL, 4 * MIB, sd) < 0 ||
	    swap_alloc_batch(*sd, slots, n) != n)
		bail("home file setup");
	swap_set_home(*sd, fd);
	return fd;
}

/*
 * Pages with a home in a memfd move through bounce buffers: written from
 * the home file, read back into it, with the page buffers never used;
 * zero pages are skipped on request. Off, the page buffers are used.
 */
static void test_bounce(void)
{
	enum { N = 200 };
	static struct swap_io io[N];
	static uint32_t slots[N];
	struct swap_counters c0, c1;
	unsigned zero = 0, good = 0, untouched = 0;
	struct swap_dev *sd;
	uint8_t *home;
	int fd = home_setup(N, slots, &sd, &home);

	memset(buf, 0xa5, (size_t)N * PAGE);
	for (unsigned i = 0; i < N; i++) {
		/* Every 7th page zero; the home pages in reverse order of the slots. */
		unsigned h = N - 1 - i;

		io[i] = (struct swap_io){ .slot = slots[i], .page = page(i), .home = (uint64_t)h * PAGE,
					  .flags = SWAP_IO_HOME | SWAP_IO_SKIP_ZERO };
		if (i % 7)
			fill(home + (size_t)h * PAGE, slots[i], 8);
	}
	swap_get_counters(sd, &c0);
	is_int(swap_writepages(sd, io, N), N, "200 pages written from their home file");
	for (unsigned i = 0; i < N; i++)
		zero += io[i].zero == !(i % 7);
	is_int(zero, N, "the zero pages, and only those, were skipped");
	memset(home, 0, (size_t)N * PAGE);
	for (unsigned i = 0; i < N; i++)
		io[i].flags = SWAP_IO_HOME;
	is_int(swap_readpages(sd, io, N), N - (N + 6) / 7, "read back but the zero ones (-ENODATA)");
	for (unsigned i = 0; i < N; i++) {
		good += (i % 7) ? !io[i].err && check(home + (size_t)(N - 1 - i) * PAGE, slots[i], 8)
				: io[i].err == -ENODATA;
		untouched += page(i)[0] == 0xa5 && page(i)[PAGE - 1] == 0xa5;
	}
	is_int(good, N, "into the home file, intact");
	is_int(untouched, N, "the page buffers were not used");
	swap_get_counters(sd, &c1);
	ok(c1.bounced - c0.bounced >= 2 * (N - (N + 6) / 7), "through bounce buffers (%llu pages)",
	   (unsigned long long)(c1.bounced - c0.bounced));
	swap_set_bounce(sd, false);
	for (unsigned i = 0; i < 64; i++)
		io[i] = (struct swap_io){ .slot = slots[i], .page = page(i), .home = 0,
					  .flags = SWAP_IO_HOME };
	make_io(io, slots, 64, 9);
	for (unsigned i = 0; i < 64; i++)
		io[i].flags = SWAP_IO_HOME;
	is_int(roundtrip(sd, io, 64, 9), 64, "bounce off: the page buffers are used");
	swap_close(sd);
	munmap(home, (size_t)N * PAGE);
	close(fd);
}

/* Requests a stretch should take: one per run of non-zero pages whose
 * slots are consecutive. */
static unsigned stretch_runs_of(const struct swap_io *io, unsigned n)
{
	unsigned runs = 0;

	for (unsigned i = 0; i < n; i++)
		runs += !io[i].zero && (!i || io[i - 1].zero || io[i].slot != io[i - 1].slot + 1);
	return runs;
}

/*
 * A stretch of memory (a huge extent's 512 pages) is written from where it
 * is: zero pages skipped, no bounce buffer, a request per run of
 * consecutive slots; every page reads back as written. A failed page
 * write fails that page alone. Without O_DIRECT it goes as
 * swap_writepages does, through the bounce buffers.
 */
static void test_stretch(void)
{
	enum { N = 512 };
	static struct swap_io io[N];
	static uint32_t slots[N];
	struct swap_counters c0, c1;
	unsigned zero = 0, good = 0, failed = 0, t;
	struct swap_dev *sd;
	uint8_t *home;
	int fd = home_setup(N, slots, &sd, &home);

	/* Two runs of slots out of order: the requests split there. */
	t = slots[100], slots[100] = slots[101], slots[101] = t;
	for (unsigned i = 0; i < N; i++) {
		io[i] = (struct swap_io){ .slot = slots[i], .page = home + (size_t)i * PAGE,
					  .home = (uint64_t)i * PAGE,
					  .flags = SWAP_IO_HOME | SWAP_IO_SKIP_ZERO };
		if (i % 97)
			fill(io[i].page, slots[i], 10);
		else
			memset(io[i].page, 0, PAGE);
	}
	swap_get_counters(sd, &c0);
	is_int(swap_write_stretch(sd, io, N), N, "a stretch of 512 pages written");
	swap_get_counters(sd, &c1);
	for (unsigned i = 0; i < N; i++)
		zero += io[i].zero == !(i % 97);
	is_int(zero, N, "the zero pages, and only those, were skipped");
	if (swap_is_direct(sd)) {
		is_int((int)(c1.bounced - c0.bounced), 0, "no page went through a bounce buffer");
		is_int((int)(c1.uring_reqs + c1.sync_reqs - c0.uring_reqs - c0.sync_reqs),
		       (int)stretch_runs_of(io, N), "one request per run of consecutive slots (%u)",
		       stretch_runs_of(io, N));
	} else {
		skip(2, "the file system takes no O_DIRECT");
	}
	for (unsigned i = 0; i < N; i++)
		io[i] = (struct swap_io){ .slot = slots[i], .page = page(i) };
	swap_readpages(sd, io, N);
	for (unsigned i = 0; i < N; i++)
		good += (i % 97) ? !io[i].err && check(page(i), slots[i], 10) : io[i].err == -ENODATA;
	is_int(good, N, "every page read back as written, the zero ones never written");

	swap_inject(sd, 50, 0);
	for (unsigned i = 0; i < N; i++) {
		io[i] = (struct swap_io){ .slot = slots[i], .page = home + (size_t)i * PAGE,
					  .home = (uint64_t)i * PAGE, .flags = SWAP_IO_HOME };
		fill(io[i].page, slots[i], 11);
	}
	is_int(swap_write_stretch(sd, io, N), N - N / 50, "every 50th page write failing: the others written");
	for (unsigned i = 0; i < N; i++)
		failed += io[i].err == -EIO && (i + 1) % 50 == 0;
	is_int(failed, N / 50, "each failed page has its -EIO");
	swap_inject(sd, 0, 0);
	for (unsigned i = 0; i < N; i++)
		io[i] = (struct swap_io){ .slot = slots[i], .page = page(i) };
	swap_readpages(sd, io, N);
	good = 0;
	for (unsigned i = 0; i < N; i++)
		good += (i + 1) % 50 ? !io[i].err && check(page(i), slots[i], 11) : io[i].err == -ENODATA;
	is_int(good, N, "the others read back, the failed ones hold nothing");

	/* Without O_DIRECT: through the bounce buffers, then out of the cache. */
	if (swap_set_direct(sd, false) < 0)
		bail("swap_set_direct");
	for (unsigned i = 0; i < N; i++) {
		io[i] = (struct swap_io){ .slot = slots[i], .page = home + (size_t)i * PAGE,
					  .home = (uint64_t)i * PAGE, .flags = SWAP_IO_HOME };
		fill(io[i].page, slots[i], 12);
	}
	swap_get_counters(sd, &c0);
	is_int(swap_write_stretch(sd, io, N), N, "buffered: the stretch written");
	swap_get_counters(sd, &c1);
	ok(c1.bounced - c0.bounced >= N, "through the bounce buffers (%llu pages)",
	   (unsigned long long)(c1.bounced - c0.bounced));
	for (unsigned i = 0; i < N; i++)
		io[i] = (struct swap_io){ .slot = slots[i], .page = page(i) };
	swap_readpages(sd, io, N);
	good = 0;
	for (unsigned i = 0; i < N; i++)
		good += !io[i].err && check(page(i), slots[i], 12);
	is_int(good, N, "and every page read back as written");
	swap_close(sd);
	munmap(home, (size_t)N * PAGE);
	close(fd);
}

/* The placement hook of test_place: of the runs starting at an even
 * multiple of 8 pages in the home file, takes all but the last page,
 * copying them to dst at their home; of the others, nothing. */
struct place_arg {
	uint8_t *dst;
	unsigned calls, pages, bad;
};

static unsigned place_half(void *arg, const struct swap_io *io, unsigned n, const void *b)
{
	struct place_arg *pa = arg;
	unsigned take = (io[0].home / PAGE / 8) % 2 ? 0 : n - 1;

	pa->calls++;
	for (unsigned i = 1; i < n; i++)
		pa->bad += io[i].home != io[0].home + (uint64_t)i * PAGE;
	memcpy(pa->dst + io[0].home, b, (size_t)take * PAGE);
	pa->pages += take;
	return take;
}

/*
 * A read's placement hook gets each run of checked pages that are
 * neighbours in the home file, with the bytes read; what it does not take
 * is written to the home file, and nothing is written twice.
 */
static void test_place(void)
{
	enum { N = 96 };
	static struct swap_io io[N];
	static uint32_t slots[N];
	static uint8_t placed[N * PAGE];
	struct place_arg pa = { .dst = placed };
	struct swap_place pl = { place_half, &pa };
	struct swap_counters c0, c1;
	unsigned good = 0, home_clean = 0;
	struct swap_dev *sd;
	uint8_t *home;
	int fd = home_setup(N, slots, &sd, &home);

	for (unsigned i = 0; i < N; i++) {
		/* Runs of 6 neighbours in the home file, 8 pages apart. */
		uint64_t h = (uint64_t)(i / 6) * 8 + i % 6;

		io[i] = (struct swap_io){ .slot = slots[i], .page = page(i), .home = h * PAGE,
					  .flags = SWAP_IO_HOME };
	}
	for (unsigned i = 0; i < N; i++)
		if (io[i].home < (uint64_t)N * PAGE)
			fill(home + io[i].home, slots[i], 8);
	is_int(swap_writepages(sd, io, N / 2), N / 2, "48 pages written from their home file");
	memset(home, 0, (size_t)N * PAGE);
	swap_get_counters(sd, &c0);
	is_int(swap_readpages_place(sd, io, N / 2, &pl), N / 2, "read back with a placement hook");
	swap_get_counters(sd, &c1);
	for (unsigned i = 0; i < N / 2; i++) {
		uint64_t h = io[i].home;
		bool took = (i / 6) % 2 == 0 && i % 6 != 5;	/* see place_half */

		good += check(took ? placed + h : home + h, slots[i], 8);
		home_clean += took ? !home[h] && !home[h + PAGE - 1] : !placed[h] && !placed[h + PAGE - 1];
	}
	is_int(pa.bad, 0, "each run is of neighbours in the home file");
	ok(pa.calls == N / 2 / 6, "one call per run (%u)", pa.calls);
	is_int(good, N / 2, "every page intact, in the hook's copy or in the home file");
	is_int(home_clean, N / 2, "and only there");
	is_int((int)pa.pages, 4 * 5, "the hook took 20 pages");
	is_int((int)(c1.placed - c0.placed), (int)pa.pages, "the counter says how many were placed");
	swap_close(sd);
	munmap(home, (size_t)N * PAGE);
	close(fd);
}

int main(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/emm-swapdev-XXXXXX", base && *base ? base : "/var/tmp");
	if (!mkdtemp(dir))
		skip_all("cannot make a directory for the swap files");
	buf = shared_pages(NPAGES);
	test_crc32c();
	test_open_tmp();
	test_open_named();
	test_open_nospace();
	test_open_fsize();
	test_alloc();
	test_alloc_batch();
	test_prealloc();
	test_full();
	test_io();
	test_spin();
	test_read_file();
	test_inject();
	test_bounce();
	test_stretch();
	test_place();
	test_corrupt();
	test_threads();
	{
		char tmp[300];

		path_in_dir(tmp, sizeof(tmp), "tmp");
		rmdir(tmp);
		rmdir(dir);
	}
	return done_testing();
}
