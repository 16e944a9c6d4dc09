/* SPDX-License-Identifier: MIT */
/* Failing swap writes and a full swap lose nothing: errors and OOM are counted, then recover. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "emm.h"
#include "internal.h"
#include "swap.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LIMIT (16 * MIB)

static pid_t main_tid;

/* What the OOM callback saw. */
static _Atomic uint64_t oom_calls, oom_on_main, oom_max_excess;

static void on_oom(struct emm *mm, uint64_t excess, void *arg)
{
	uint64_t m = atomic_load(&oom_max_excess);

	(void)mm;
	(void)arg;
	atomic_fetch_add(&oom_calls, 1);
	if (gettid() == main_tid)
		atomic_fetch_add(&oom_on_main, 1);
	while (excess > m && !atomic_compare_exchange_weak(&oom_max_excess, &m, excess))
		;
}

static uint64_t pattern(uint64_t word, uint64_t gen)
{
	uint64_t s = word ^ gen << 44 ^ 0x5eed0205;

	return tap_rand(&s);
}

static void fill(uint64_t *mem, size_t len, uint64_t gen)
{
	for (uint64_t w = 0; w < len / 8; w++)
		mem[w] = pattern(w, gen);
}

/* The pages that do not read what gen wrote. */
static size_t bad_pages(const uint64_t *mem, size_t len, uint64_t gen)
{
	size_t bad = 0;

	for (uint64_t w = 0; w < len / 8; w++) {
		if (mem[w] == pattern(w, gen))
			continue;
		if (bad++ < 5)
			diag("offset 0x%" PRIx64 ": got 0x%016" PRIx64, w * 8, mem[w]);
		w |= PAGE / 8 - 1;	/* one report per page */
	}
	return bad;
}

static struct emm *open_mapped(uint64_t swap_size, size_t len, uint64_t **mem, const char *what)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = swap_size, .oom = on_oom);
	struct emm *mm;
	void *r;

	if (!is_int(emm_open(&o, &mm), 0, "emm_open: 16 MiB budget, %s", what))
		bail("cannot open an instance");
	if (emm_reserve(mm, len, &r) || emm_map(mm, r, len, NULL))
		bail("cannot map %zu bytes", len);
	*mem = r;
	return mm;
}

/* Every third page write fails with EIO while 128 MiB go through 16 MiB. */
static void test_write_errors(void)
{
	const size_t len = 128 * MIB;
	uint64_t *mem, e0;
	struct emm *mm = open_mapped(512 * MIB, len, &mem, "512 MiB of swap");

	swap_inject(mm->swap, 3, 0);
	fill(mem, len, 1);
	is_int(bad_pages(mem, len, 1), 0, "every third swap write failing: all 128 MiB read right");
	e0 = stats(mm).io_errors;
	diag("io_errors %" PRIu64 ", swapouts %" PRIu64, e0, stats(mm).swapouts);
	ok(e0 > 0, "the failed writes are counted in io_errors");
	swap_inject(mm->swap, 0, 0);
	is_int(bad_pages(mem, len, 1), 0, "writes work again: all 128 MiB still read right");
	e0 = stats(mm).io_errors;
	fill(mem, len, 2);
	is_int(bad_pages(mem, len, 2), 0, "another full pass writes and reads 128 MiB right");
	is_int(stats(mm).io_errors, e0, "and io_errors stopped growing");
	is_int(emm_close(mm), 0, "emm_close");
}

/* Out of swap: the pages stay resident over the budget, and the program is told. */
static void check_oom(struct emm *mm, const uint64_t *mem, size_t len, const char *how)
{
	struct emm_stats st = stats(mm);

	diag("%s: resident %" PRIu64 " KiB, oom_events %" PRIu64 ", callback %" PRIu64
	     " times (%" PRIu64 " on the test's thread), largest excess %" PRIu64 " KiB", how,
	     st.resident_bytes >> 10, st.oom_events, atomic_load(&oom_calls),
	     atomic_load(&oom_on_main), atomic_load(&oom_max_excess) >> 10);
	is_int(bad_pages(mem, len, 3), 0, "%s: all 64 MiB read right", how);
	ok(st.resident_bytes > LIMIT, "%s: the budget is exceeded rather than data dropped", how);
	ok(st.oom_events > 0, "%s: oom_events counts it", how);
	ok(atomic_load(&oom_calls) > 0 && atomic_load(&oom_max_excess) > 0,
	   "%s: the oom callback was called with excess > 0", how);
	is_int(atomic_load(&oom_on_main), 0, "%s: never on the test's own thread", how);
}

static void reset_oom(void)
{
	atomic_store(&oom_calls, 0);
	atomic_store(&oom_on_main, 0);
	atomic_store(&oom_max_excess, 0);
}

static void test_swap_small(void)
{
	const size_t len = 64 * MIB;
	uint64_t *mem;
	struct emm *mm = open_mapped(8 * MIB, len, &mem, "8 MiB of swap");

	reset_oom();
	fill(mem, len, 3);
	check_oom(mm, mem, len, "8 MiB of swap");
	is_int(emm_close(mm), 0, "emm_close");
}

static void test_swap_injected_full(void)
{
	const size_t len = 64 * MIB;
	uint64_t *mem;
	struct emm *mm = open_mapped(512 * MIB, len, &mem, "512 MiB of swap");

	reset_oom();
	swap_inject(mm->swap, 0, 1);
	fill(mem, len, 3);
	check_oom(mm, mem, len, "swap injected full");
	swap_inject(mm->swap, 0, 0);
	is_int(emm_set_limit(mm, LIMIT), 0, "swap back: emm_set_limit reclaims now");
	ok(stats(mm).resident_bytes <= LIMIT, "and resident is within the budget again (%" PRIu64
	   " KiB)", stats(mm).resident_bytes >> 10);
	is_int(bad_pages(mem, len, 3), 0, "all 64 MiB still read right");
	is_int(emm_close(mm), 0, "emm_close");
}

int main(void)
{
	main_tid = gettid();
	plan(24);
	test_write_errors();
	test_swap_small();
	test_swap_injected_full();
	return done_testing();
}
