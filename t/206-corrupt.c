/* SPDX-License-Identifier: MIT */
/* A swap slot corrupted on disk: the thread that reads the page gets SIGBUS, never wrong data. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emm.h"
#include "sigbus-guard.h"
#include "swap-slot.h"
#include "tap.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LEN (4 * MIB)
#define PAGES (LEN / PAGE)
#define WORDS_PER_PAGE (PAGE / 8)
#define VICTIM 100		/* the page whose slot is corrupted */

static uint64_t *mem;
static char dir[256], swap_file[300];

static uint64_t value(size_t pg, size_t i)
{
	return (uint64_t)pg << 32 | i | 0x8000000000000000ULL;
}

/* Read word 0 of page pg; returns 0, or -1 if the read took SIGBUS. */
static int guarded_read(size_t pg, uint64_t *out)
{
	sigjmp_buf env;

	if (sigsetjmp(env, 1)) {
		bus_env = NULL;
		return -1;
	}
	bus_env = &env;
	*out = *(volatile uint64_t *)(mem + pg * WORDS_PER_PAGE);
	bus_env = NULL;
	return 0;
}

struct reader {
	pid_t tid;
	int got_bus;
	uint64_t val;
};

static void *read_victim(void *arg)
{
	struct reader *rd = arg;

	rd->tid = gettid();
	rd->got_bus = guarded_read(VICTIM, &rd->val) < 0;
	return NULL;
}

static void make_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/emm-corrupt-XXXXXX", tmp && *tmp ? tmp : "/var/tmp");
	if (!mkdtemp(dir))
		bail("mkdtemp %s: %s", dir, strerror(errno));
	snprintf(swap_file, sizeof(swap_file), "%s/swap", dir);
}

/* The slot the swapped page at pg lives in, or 0. */
static uint32_t slot_of(size_t pg)
{
	return swapped_slot(mem + pg * WORDS_PER_PAGE);
}

static int page_matches(const uint64_t *p, size_t pg)
{
	for (size_t i = 0; i < WORDS_PER_PAGE; i++)
		if (p[i] != value(pg, i))
			return 0;
	return 1;
}

/* Damage the slot on disk: 1 if it held the page's bytes before, 0 if
 * not, -1 on error. */
static int corrupt_victim(uint32_t slot, size_t pg)
{
	static uint64_t before[WORDS_PER_PAGE];

	return corrupt_slot(swap_file, slot, before) < 0 ? -1 : page_matches(before, pg);
}

static void test_victim(struct emm *mm)
{
	struct reader rd = { 0 };
	pthread_t t;
	EMM_OPTS(emm_stats, st);

	pthread_create(&t, NULL, read_victim, &rd);
	pthread_join(t, NULL);
	diag("SIGBUS %d time(s), at %p (page %p), on thread %d (reader %d, main %d)",
	     atomic_load(&bus_count), atomic_load(&bus_addr),
	     (void *)(mem + VICTIM * WORDS_PER_PAGE), (int)atomic_load(&bus_tid), (int)rd.tid,
	     (int)gettid());
	ok(rd.got_bus, "the reading thread got SIGBUS (it did not read 0x%" PRIx64 ")", rd.val);
	is_int(atomic_load(&bus_count), 1, "once");
	ok((uintptr_t)atomic_load(&bus_addr) / PAGE ==
	   (uintptr_t)(mem + VICTIM * WORDS_PER_PAGE) / PAGE, "at the corrupted page");
	is_int(atomic_load(&bus_tid), rd.tid, "on the reading thread");
	emm_stats(mm, &st);
	ok(st.io_errors >= 1, "io_errors counts it (%" PRIu64 ")", st.io_errors);
}

/* Every other page, read in order, guarded: right data, no SIGBUS. */
static void test_others(void)
{
	size_t bad = 0, bus = 0;
	int before = atomic_load(&bus_count);

	for (size_t pg = 0; pg < PAGES; pg++) {
		uint64_t v;

		if (pg == VICTIM)
			continue;
		if (guarded_read(pg, &v) < 0) {
			if (bus++ < 5)
				diag("page %zu: SIGBUS", pg);
			continue;
		}
		if (!page_matches(mem + pg * WORDS_PER_PAGE, pg) && bad++ < 5)
			diag("page %zu reads 0x%" PRIx64, pg, v);
	}
	is_int(bus, 0, "no other page read takes SIGBUS");
	is_int(atomic_load(&bus_count) - before, (long long)bus, "(the handler agrees)");
	is_int(bad, 0, "every other page reads right");
}

static void test_again(struct emm *mm)
{
	uint64_t v = 1;

	is_int(guarded_read(VICTIM, &v), -1, "the corrupted page gives SIGBUS again, not data");
	is_int(emm_advise(mm, mem + VICTIM * WORDS_PER_PAGE, PAGE, EMM_ADV_DONTNEED), 0,
	       "EMM_ADV_DONTNEED drops it");
	ok(guarded_read(VICTIM, &v) == 0 && v == 0, "then it reads zero");
}

int main(void)
{
	struct emm *mm;
	uint32_t slot;
	void *r;

	if (sigbus_guard_install() < 0)
		bail("sigaction: %s", strerror(errno));
	make_dir();
	plan(18);
	EMM_OPTS(emm_opts, o, .mem_limit = 16 * MIB, .swap_size = 64 * MIB, .swap_path = swap_file);
	if (!is_int(emm_open(&o, &mm), 0, "emm_open with a named swap file"))
		bail("cannot open an instance");
	is_int(emm_reserve(mm, LEN, &r), 0, "reserve 4 MiB");
	is_int(emm_map(mm, r, LEN, NULL), 0, "map it");
	mem = r;
	for (size_t pg = 0; pg < PAGES; pg++)
		for (size_t i = 0; i < WORDS_PER_PAGE; i++)
			mem[pg * WORDS_PER_PAGE + i] = value(pg, i);
	is_int(emm_advise(mm, r, LEN, EMM_ADV_PAGEOUT), 0, "EMM_ADV_PAGEOUT the whole range");
	slot = slot_of(VICTIM);
	ok(slot != 0, "page %d is swapped, in slot %u", VICTIM, slot);
	if (!slot)
		bail("page %d was not swapped out", VICTIM);
	is_int(corrupt_victim(slot, VICTIM), 1, "the swap file holds its bytes at slot * 4096");
	test_victim(mm);
	test_others();
	test_again(mm);
	is_int(emm_close(mm), 0, "emm_close");
	unlink(swap_file);
	rmdir(dir);
	return done_testing();
}
