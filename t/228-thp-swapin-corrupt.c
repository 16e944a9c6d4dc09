/* SPDX-License-Identifier: MIT */
/* Huge swap-in windows read straight into their huge page: a slot corrupted on disk in one
 * of them gives SIGBUS on that page alone, never wrong data; every other page reads right,
 * the windows around it huge, on signal (the backend that reads windows whole). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emm.h"
#include "sigbus-guard.h"
#include "swap-slot.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define EXTENT (2 * MIB)
#define LIMIT (96 * MIB)	/* the least whose readahead windows are 2 MiB (t/306) */
#define LEN (256 * MIB)
#define PAGES (LEN / PAGE)
#define EXTENT_PAGES (EXTENT / PAGE)
#define WORDS_PER_PAGE (PAGE / 8)
#define NVICTIMS 3

/* Pages whose slots are corrupted: inside extents met along the stream. */
static const size_t victims[NVICTIMS] = { 40 * EXTENT_PAGES + 7, 41 * EXTENT_PAGES + 300,
					  90 * EXTENT_PAGES + 511 };
static uint64_t *mem;
static char dir[256], swap_file[300];

static uint64_t value(size_t pg, size_t i)
{
	return (uint64_t)pg << 32 | i | 0x8000000000000000ULL;
}

/* Does page pg read whole and right? 1 yes, 0 wrong data, -1 SIGBUS. */
static int guarded_check(size_t pg)
{
	const volatile uint64_t *p = mem + pg * WORDS_PER_PAGE;
	sigjmp_buf env;
	int good = 1;

	if (sigsetjmp(env, 1)) {
		bus_env = NULL;
		return -1;
	}
	bus_env = &env;
	for (size_t i = 0; i < WORDS_PER_PAGE; i++)
		good &= p[i] == value(pg, i);
	bus_env = NULL;
	return good;
}

static bool is_victim(size_t pg)
{
	for (int v = 0; v < NVICTIMS; v++)
		if (victims[v] == pg)
			return true;
	return false;
}

/* Damage the slot of swapped page pg on disk: 1 if it held the page's
 * bytes before, 0 if not (or not swapped), -1 on error. */
static int corrupt_page(size_t pg)
{
	static uint64_t before[WORDS_PER_PAGE];
	uint32_t slot = swapped_slot(mem + pg * WORDS_PER_PAGE);

	if (!slot)
		return 0;
	if (corrupt_slot(swap_file, slot, before) < 0)
		return -1;
	for (size_t i = 0; i < WORDS_PER_PAGE; i++)
		if (before[i] != value(pg, i))
			return 0;
	return 1;
}

int main(void)
{
	EMM_OPTS(emm_map_opts, m, .prot = EMM_PROT_READ | EMM_PROT_WRITE, .flags = EMM_MAP_HUGEPAGE);
	const char *tmp = getenv("TMPDIR");
	size_t wrong = 0, bus_other = 0, bus_victim = 0;
	int held = 0, again = 0;
	struct emm_stats a, b;
	struct emm *mm;
	void *p;

	if (sigbus_guard_install() < 0)
		bail("sigaction: %s", strerror(errno));
	snprintf(dir, sizeof(dir), "%s/emm-thpcorrupt-XXXXXX", tmp && *tmp ? tmp : "/var/tmp");
	if (!mkdtemp(dir))
		bail("mkdtemp %s: %s", dir, strerror(errno));
	snprintf(swap_file, sizeof(swap_file), "%s/swap", dir);
	plan(10);
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = LEN + 64 * MIB,
		 .swap_path = swap_file, .backend = EMM_BACKEND_SIGNAL);
	if (emm_open(&o, &mm))
		bail("cannot open an instance on signal with a named swap file");
	if (emm_reserve(mm, LEN, &p) || emm_map(mm, p, LEN, &m))
		bail("cannot map %lu MiB", LEN / MIB);
	mem = p;
	for (size_t pg = 0; pg < PAGES; pg++)
		for (size_t i = 0; i < WORDS_PER_PAGE; i++)
			mem[pg * WORDS_PER_PAGE + i] = value(pg, i);
	is_int(emm_advise(mm, mem, LEN, EMM_ADV_PAGEOUT), 0, "256 MiB of huge extents paged out");
	for (int v = 0; v < NVICTIMS; v++)
		held += corrupt_page(victims[v]) == 1;
	is_int(held, NVICTIMS, "three slots held their pages' bytes, and were corrupted on disk");

	a = stats(mm);
	for (size_t pg = 0; pg < PAGES; pg++) {
		int r = guarded_check(pg);

		if (r < 0 && is_victim(pg))
			bus_victim++;
		else if (r < 0)
			bus_other++;
		else if (!r || is_victim(pg))
			wrong++;
	}
	b = stats(mm);
	diag("%" PRIu64 " huge windows, %" PRIu64 " swap-ins, %" PRIu64 " I/O errors",
	     b.thp_collapse - a.thp_collapse, b.swapins - a.swapins, b.io_errors - a.io_errors);
	is_int((int)bus_victim, NVICTIMS, "each corrupted page gives SIGBUS when read");
	is_int((int)bus_other, 0, "no other page does");
	is_int((int)wrong, 0, "every other page reads whole and right, no corrupted one reads data");
	ok(b.thp_collapse - a.thp_collapse >= LEN / EXTENT / 2,
	   "the stream's windows were read as huge pages (%" PRIu64 " of %lu extents)",
	   b.thp_collapse - a.thp_collapse, LEN / EXTENT);
	ok(b.io_errors - a.io_errors >= NVICTIMS, "io_errors counts them (%" PRIu64 ")",
	   b.io_errors - a.io_errors);
	for (int v = 0; v < NVICTIMS; v++)
		again += guarded_check(victims[v]) < 0;
	is_int(again, NVICTIMS, "read again, each still gives SIGBUS, not data");
	is_int(emm_advise(mm, mem + victims[0] * WORDS_PER_PAGE, PAGE, EMM_ADV_DONTNEED), 0,
	       "EMM_ADV_DONTNEED of one of them");
	ok(mem[victims[0] * WORDS_PER_PAGE] == 0, "then it reads zero");
	emm_close(mm);
	unlink(swap_file);
	rmdir(dir);
	return done_testing();
}
