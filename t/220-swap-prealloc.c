/* SPDX-License-Identifier: MIT */
/* The swap file takes its blocks 64 MiB ahead of the slots first written, where the disk has room for it; on a nearly full disk it takes only what it writes. */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "swap.h"
#include "tap.h"

#define PAGE	4096UL
#define MIB	(1UL << 20)
#define NPAGES	16

static char dir[256];

static uint64_t file_bytes(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : UINT64_MAX;
}

static uint64_t free_bytes(const char *at)
{
	struct statfs fs;

	return statfs(at, &fs) == 0 ? (uint64_t)fs.f_bavail * (uint64_t)fs.f_bsize : 0;
}

/* An ext4 file system of size_mib at mnt, made in an image file under dir
 * and mounted in this process's own mount namespace; NULL, else why not. */
static const char *small_ext4(const char *mnt, unsigned size_mib)
{
	char cmd[1024];

	if (mkdir(mnt, 0700) < 0)
		return "mkdir failed";
	snprintf(cmd, sizeof(cmd),
		 "mkfs.ext4 -q -F -O ^has_journal %s/img%u %uM >/dev/null 2>&1 && "
		 "mount -o loop %s/img%u %s >/dev/null 2>&1",
		 dir, size_mib, size_mib, dir, size_mib, mnt);
	if (system(cmd) != 0) {
		rmdir(mnt);
		return "cannot make and mount a small ext4 file system (needs root, mkfs.ext4, loop devices)";
	}
	return NULL;
}

/* Write NPAGES pages into a fresh swap file of size bytes at path: the
 * blocks the file then has. */
static uint64_t blocks_after_writes(const char *path, uint64_t size, unsigned *good)
{
	static uint8_t buf[NPAGES * PAGE] __attribute__((aligned(4096)));
	struct swap_io io[NPAGES];
	uint32_t slots[NPAGES];
	struct swap_dev *sd;
	uint64_t b;

	if (swap_open(path, size, &sd) < 0)
		bail("swap_open %s", path);
	if (swap_alloc_batch(sd, slots, NPAGES) != NPAGES)
		bail("swap_alloc_batch");
	for (unsigned i = 0; i < NPAGES; i++) {
		memset(buf + i * PAGE, 'a' + (int)i, PAGE);
		io[i] = (struct swap_io){ .slot = slots[i], .page = buf + i * PAGE };
	}
	*good = (unsigned)swap_writepages(sd, io, NPAGES);
	memset(buf, 0, sizeof(buf));
	*good = *good == NPAGES && swap_readpages(sd, io, NPAGES) == NPAGES &&
		buf[0] == 'a' && buf[(NPAGES - 1) * PAGE] == 'a' + NPAGES - 1;
	b = file_bytes(path);
	swap_close(sd);
	unlink(path);
	return b;
}

int main(void)
{
	const char *base = getenv("TMPDIR"), *why;
	char big[300], small[300], path[400];
	unsigned good;
	uint64_t b;

	if (geteuid() != 0)
		skip_all("mounting a small ext4 file system needs root");
	snprintf(dir, sizeof(dir), "%s/emm-prealloc-XXXXXX", base && *base ? base : "/var/tmp");
	if (!mkdtemp(dir))
		skip_all("cannot make a directory");
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		rmdir(dir);
		skip_all("no mount namespace of its own (needs root)");
	}
	snprintf(big, sizeof(big), "%s/big", dir);
	snprintf(small, sizeof(small), "%s/small", dir);
	why = small_ext4(big, 400);
	if (!why)
		why = small_ext4(small, 100);
	if (why) {
		umount2(big, MNT_DETACH);
		rmdir(big);
		snprintf(path, sizeof(path), "rm -f %s/img*", dir);
		if (system(path) != 0)
			diag("cannot remove the images");
		rmdir(dir);
		skip_all(why);
	}
	plan(4);
	diag("free: %llu MiB and %llu MiB", (unsigned long long)free_bytes(big) / MIB,
	     (unsigned long long)free_bytes(small) / MIB);

	snprintf(path, sizeof(path), "%s/swap", big);
	b = blocks_after_writes(path, 256 * MIB, &good);
	ok(good, "a 256 MiB swap file on ext4 with room: the pages written read back");
	ok(b >= 64 * MIB && b <= 65 * MIB,
	   "its first writes give it 64 MiB of blocks (%llu KiB)", (unsigned long long)b >> 10);

	snprintf(path, sizeof(path), "%s/swap", small);
	b = blocks_after_writes(path, 256 * MIB, &good);
	ok(good, "on ext4 with less than 128 MiB free: the pages written read back");
	ok(b < MIB, "it takes only the blocks written (%llu KiB)", (unsigned long long)b >> 10);

	umount2(big, MNT_DETACH);
	umount2(small, MNT_DETACH);
	rmdir(big);
	rmdir(small);
	snprintf(path, sizeof(path), "rm -f %s/img*", dir);
	if (system(path) != 0)
		diag("cannot remove the images");
	rmdir(dir);
	return done_testing();
}
