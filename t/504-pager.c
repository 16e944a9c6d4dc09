/* SPDX-License-Identifier: MIT */
/* PAGER VMAs under a 16 MiB budget: 4096 random page reads of 256 MiB verified, fills never on a
 * faulting thread and one per page however many threads fault on it, writeback under pressure,
 * on emm_sync and on error. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LIMIT (16 * MIB)
#define READ_LEN (256 * MIB)
#define READERS 2
#define READS_PER_THREAD 2048	/* each a fill of one window and an eviction: ~1 ms */
#define SEQ_LEN (32 * MIB)
#define RACE_LEN (16 * MIB)
#define RACE_THREADS 4
#define RACE_ROUNDS 8
#define SLOW_FILL_US 20000	/* the racing threads all arrive while it runs */
#define WB_LEN (64 * MIB)	/* four times the budget */
#define ERR_LEN MIB
#define WORDS_PER_PAGE (PAGE / 8)
#define MAX_TIDS 16

/* Base offsets in the pager's space: every VMA its own part. */
#define READ_BASE 0
#define RACE_BASE (1ULL << 30)
#define WB_BASE (2ULL << 30)
#define ERR_BASE (3ULL << 30)

/* One VMA's pager: what it filled and was given back, where it ran. */
struct space {
	uint64_t base, pages;
	_Atomic uint32_t *fills;	/* fills that covered each page */
	unsigned char *store;		/* pages written back (writeback pagers) */
	_Atomic unsigned char *stored;
	_Atomic uint64_t wb_calls, wb_pages, wb_bad, wb_failed;
	_Atomic uint64_t slow;		/* a fill covering this offset sleeps first */
	_Atomic int fail_wb;
};

/* Threads that fault on pager pages, and threads the callbacks ran on. */
static _Atomic int faulting[MAX_TIDS], callback[MAX_TIDS];
static _Atomic int on_faulting_thread, callbacks_seen;

static uint64_t fill_word(uint64_t off)
{
	uint64_t x = off ^ 0x5eed0504;

	return tap_rand(&x);
}

/* What the test writes at word 0 of the page at off. */
static uint64_t write_word(uint64_t off)
{
	return ~fill_word(off);
}

static void add_tid(_Atomic int *set, int tid)
{
	for (int i = 0; i < MAX_TIDS; i++) {
		int none = 0;

		if (atomic_load(&set[i]) == tid ||
		    atomic_compare_exchange_strong(&set[i], &none, tid))
			return;
	}
}

static int has_tid(_Atomic int *set, int tid)
{
	for (int i = 0; i < MAX_TIDS; i++)
		if (atomic_load(&set[i]) == tid)
			return 1;
	return 0;
}

static int count_tids(_Atomic int *set)
{
	int n = 0;

	while (n < MAX_TIDS && atomic_load(&set[n]))
		n++;
	return n;
}

static void seen_callback(void)
{
	int tid = gettid();

	atomic_fetch_add(&callbacks_seen, 1);
	if (has_tid(faulting, tid))
		atomic_fetch_add(&on_faulting_thread, 1);
	add_tid(callback, tid);
}

static int fill(void *arg, uint64_t offset, void *buf, size_t len)
{
	struct space *sp = arg;
	uint64_t slow = atomic_load(&sp->slow);

	seen_callback();
	if (slow >= offset && slow < offset + len)
		usleep(SLOW_FILL_US);
	for (size_t done = 0; done < len; done += PAGE) {
		uint64_t pg = (offset + done - sp->base) / PAGE;
		uint64_t *w = (uint64_t *)((char *)buf + done);

		if (pg >= sp->pages)
			return -EINVAL;
		atomic_fetch_add(&sp->fills[pg], 1);
		if (sp->stored && atomic_load(&sp->stored[pg])) {
			memcpy(w, sp->store + pg * PAGE, PAGE);
			continue;
		}
		for (size_t i = 0; i < WORDS_PER_PAGE; i++)
			w[i] = fill_word(offset + done + i * 8);
	}
	return 0;
}

/* A page written back must hold the test's write at word 0 and the fill
 * everywhere else. */
static int page_as_written(const uint64_t *w, uint64_t off)
{
	if (w[0] != write_word(off))
		return 0;
	for (size_t i = 1; i < WORDS_PER_PAGE; i++)
		if (w[i] != fill_word(off + i * 8))
			return 0;
	return 1;
}

static int writeback(void *arg, uint64_t offset, const void *buf, size_t len)
{
	struct space *sp = arg;

	seen_callback();
	if (atomic_load(&sp->fail_wb)) {
		atomic_fetch_add(&sp->wb_failed, 1);
		return -EIO;
	}
	atomic_fetch_add(&sp->wb_calls, 1);
	for (size_t done = 0; done < len; done += PAGE) {
		uint64_t pg = (offset + done - sp->base) / PAGE;
		const uint64_t *w = (const uint64_t *)((const char *)buf + done);

		if (pg >= sp->pages)
			return -EINVAL;
		if (!page_as_written(w, offset + done))
			atomic_fetch_add(&sp->wb_bad, 1);
		memcpy(sp->store + pg * PAGE, w, PAGE);
		atomic_store(&sp->stored[pg], 1);
		atomic_fetch_add(&sp->wb_pages, 1);
	}
	return 0;
}

static const struct emm_pager_ops fill_only = { .fill = fill };
static const struct emm_pager_ops fill_and_writeback = { .fill = fill, .writeback = writeback };

static struct space *new_space(uint64_t base, uint64_t len, int with_store)
{
	struct space *sp = calloc(1, sizeof(*sp));

	if (!sp || !(sp->fills = calloc(len / PAGE, sizeof(*sp->fills))))
		bail("out of memory");
	sp->base = base;
	sp->pages = len / PAGE;
	atomic_init(&sp->slow, UINT64_MAX);
	if (with_store && (!(sp->store = malloc(len)) ||
			   !(sp->stored = calloc(len / PAGE, sizeof(*sp->stored)))))
		bail("out of memory");
	return sp;
}

static void free_space(struct space *sp)
{
	free(sp->fills);
	free(sp->store);
	free((void *)sp->stored);
	free(sp);
}

static int map_pager(struct emm *mm, void *addr, size_t len, int prot,
		     const struct emm_pager_ops *ops, struct space *sp)
{
	EMM_OPTS(emm_map_opts, o, .prot = prot, .policy = EMM_POLICY_PAGER, .pager = ops,
		 .pager_arg = sp, .offset = sp ? sp->base : 0);

	return emm_map(mm, addr, len, &o);
}

/* Does the page at p (pager offset off) hold what fill computes? */
static int page_filled(const uint64_t *p, uint64_t off)
{
	for (size_t i = 0; i < WORDS_PER_PAGE; i++)
		if (p[i] != fill_word(off + i * 8))
			return 0;
	return 1;
}

static void test_rows(struct emm *mm, char *at)
{
	static const struct emm_pager_ops no_fill = { .writeback = writeback };
	struct space *sp = new_space(0, PAGE, 0);
	EMM_OPTS(emm_map_opts, o, .prot = EMM_PROT_READ, .policy = EMM_POLICY_PAGER,
		 .pager = &fill_only, .offset = 100);

	is_int(map_pager(mm, at, PAGE, EMM_PROT_READ, NULL, sp), -EINVAL, "PAGER without ops: -EINVAL");
	is_int(map_pager(mm, at, PAGE, EMM_PROT_READ, &no_fill, sp), -EINVAL,
	       "PAGER without fill: -EINVAL");
	is_int(emm_map(mm, at, PAGE, &o), -EINVAL, "PAGER with offset 100: -EINVAL");
	free_space(sp);
}

struct reader {
	struct emm *mm;
	const char *mem;
	uint64_t seed;
	size_t bad;
};

static void *random_reader(void *arg)
{
	struct reader *rd = arg;

	add_tid(faulting, gettid());
	for (int i = 0; i < READS_PER_THREAD; i++) {
		uint64_t pg = tap_rand(&rd->seed) % (READ_LEN / PAGE);

		if (!page_filled((const uint64_t *)(rd->mem + pg * PAGE), READ_BASE + pg * PAGE) &&
		    rd->bad++ < 5)
			diag("page %" PRIu64 " is not what fill made", pg);
	}
	return NULL;
}

static void test_random_reads(struct emm *mm, char *mem)
{
	struct space *sp = new_space(READ_BASE, READ_LEN, 0);
	struct reader rd[READERS];
	pthread_t th[READERS];
	size_t bad = 0, seq_bad = 0;
	struct emm_stats st;

	add_tid(faulting, gettid());
	is_int(map_pager(mm, mem, READ_LEN, EMM_PROT_READ, &fill_only, sp), 0,
	       "map a 256 MiB read-only PAGER VMA");
	for (int i = 0; i < READERS; i++) {
		rd[i] = (struct reader){ mm, mem, 0x5eed0504 + (uint64_t)i, 0 };
		if (pthread_create(&th[i], NULL, random_reader, &rd[i]))
			bail("pthread_create");
	}
	for (int i = 0; i < READERS; i++) {
		pthread_join(th[i], NULL);
		bad += rd[i].bad;
	}
	is_int(bad, 0, "%d threads x %d random page reads: every page as fill made it", READERS,
	       READS_PER_THREAD);
	for (uint64_t pg = 0; pg < SEQ_LEN / PAGE; pg++)
		if (!page_filled((const uint64_t *)(mem + pg * PAGE), READ_BASE + pg * PAGE) &&
		    seq_bad++ < 5)
			diag("sequential: page %" PRIu64 " is not what fill made", pg);
	is_int(seq_bad, 0, "a sequential read of the first 32 MiB too");
	st = stats(mm);
	diag("faults %" PRIu64 " major %" PRIu64 " pgsteal %" PRIu64 " writebacks %" PRIu64
	     " resident %" PRIu64 " KiB", st.faults, st.faults_major, st.pgsteal, st.writebacks,
	     st.resident_bytes >> 10);
	ok(st.pgsteal > 0, "the reads went through the budget (pgsteal %" PRIu64 ")", st.pgsteal);
	is_int(st.writebacks, 0, "clean pager pages were dropped, not written back");
	diag("%d callbacks on %d pager threads", atomic_load(&callbacks_seen), count_tids(callback));
	is_int(atomic_load(&on_faulting_thread), 0, "no fill ran on a faulting thread");
	ok(count_tids(callback) >= 1 && !has_tid(callback, gettid()),
	   "they ran on %d other thread(s)", count_tids(callback));
	is_int(emm_unmap(mm, mem, READ_LEN), 0, "unmap it");
	free_space(sp);
}

struct racer {
	const uint64_t *word;
	uint64_t want;
	pthread_barrier_t *bar;
	int ok;
};

static void *race(void *arg)
{
	struct racer *rc = arg;

	add_tid(faulting, gettid());
	pthread_barrier_wait(rc->bar);
	rc->ok = *rc->word == rc->want;
	return NULL;
}

/* RACE_THREADS threads touch one fresh page at once, while its fill sleeps. */
static void test_one_fill(struct emm *mm, char *mem)
{
	struct space *sp = new_space(RACE_BASE, RACE_LEN, 0);
	unsigned more = 0, fewer = 0, wrong = 0;

	is_int(map_pager(mm, mem, RACE_LEN, EMM_PROT_READ, &fill_only, sp), 0,
	       "map a 16 MiB PAGER VMA");
	for (int round = 0; round < RACE_ROUNDS; round++) {
		uint64_t pg = (uint64_t)round * (RACE_LEN / RACE_ROUNDS / PAGE) + 5 + (uint64_t)round;
		struct racer rc[RACE_THREADS];
		pthread_t th[RACE_THREADS];
		pthread_barrier_t bar;

		atomic_store(&sp->slow, RACE_BASE + pg * PAGE);
		pthread_barrier_init(&bar, NULL, RACE_THREADS);
		for (int i = 0; i < RACE_THREADS; i++) {
			rc[i] = (struct racer){ (const uint64_t *)(mem + pg * PAGE) + 7,
						fill_word(RACE_BASE + pg * PAGE + 56), &bar, 0 };
			if (pthread_create(&th[i], NULL, race, &rc[i]))
				bail("pthread_create");
		}
		for (int i = 0; i < RACE_THREADS; i++) {
			pthread_join(th[i], NULL);
			wrong += !rc[i].ok;
		}
		pthread_barrier_destroy(&bar);
		if (atomic_load(&sp->fills[pg]) != 1)
			diag("round %d: page %" PRIu64 " filled %u times", round, pg,
			     atomic_load(&sp->fills[pg]));
		more += atomic_load(&sp->fills[pg]) > 1;
		fewer += atomic_load(&sp->fills[pg]) < 1;
	}
	is_int(more, 0, "%d rounds of %d threads faulting on one fresh page: never two fills",
	       RACE_ROUNDS, RACE_THREADS);
	is_int(fewer, 0, "and never none");
	is_int(wrong, 0, "every thread read the filled word");
	is_int(atomic_load(&on_faulting_thread), 0, "no fill ran on any of those threads");
	is_int(emm_unmap(mm, mem, RACE_LEN), 0, "unmap it");
	free_space(sp);
}

/* Writes to a read-write PAGER VMA four times the budget. */
static void test_writeback(struct emm *mm, char *mem)
{
	struct space *sp = new_space(WB_BASE, WB_LEN, 1);
	uint64_t calls, pages, bad = 0;
	struct emm_stats st;

	is_int(map_pager(mm, mem, WB_LEN, EMM_PROT_READ | EMM_PROT_WRITE, &fill_and_writeback, sp), 0,
	       "map a 64 MiB read-write PAGER VMA with writeback");
	for (uint64_t pg = 0; pg < WB_LEN / PAGE; pg++)
		*(uint64_t *)(mem + pg * PAGE) = write_word(WB_BASE + pg * PAGE);
	calls = atomic_load(&sp->wb_calls);
	pages = atomic_load(&sp->wb_pages);
	diag("writing 64 MiB: %" PRIu64 " writeback calls for %" PRIu64 " pages", calls, pages);
	ok(pages > 0, "pressure sent dirty pages to writeback");
	is_int(atomic_load(&sp->wb_bad), 0, "each page given to writeback held the write and the fill");
	is_int(emm_sync(mm, mem, WB_LEN), 0, "emm_sync: 0");
	ok(atomic_load(&sp->wb_calls) > calls, "it called writeback (%" PRIu64 " more pages)",
	   atomic_load(&sp->wb_pages) - pages);
	is_int(atomic_load(&sp->wb_pages), WB_LEN / PAGE, "every page written went to writeback once");
	calls = atomic_load(&sp->wb_calls);
	is_int(emm_sync(mm, mem, WB_LEN), 0, "a second emm_sync: 0");
	is_int(atomic_load(&sp->wb_calls), calls, "and no writeback: nothing was dirty");
	for (uint64_t pg = 0; pg < WB_LEN / PAGE; pg++)
		if (!page_as_written((const uint64_t *)(mem + pg * PAGE), WB_BASE + pg * PAGE) &&
		    bad++ < 5)
			diag("page %" PRIu64 " reads back wrong", pg);
	is_int(bad, 0, "all 64 MiB read back (from memory or through fill) as written");
	st = stats(mm);
	ok(st.writebacks >= WB_LEN / PAGE, "stats.writebacks %" PRIu64, st.writebacks);
	is_int(atomic_load(&sp->wb_bad), 0, "writeback always saw the right bytes");
	is_int(atomic_load(&on_faulting_thread), 0, "no callback ran on the writing thread");
	is_int(emm_unmap(mm, mem, WB_LEN), 0, "unmap it");
	free_space(sp);
}

static void test_writeback_error(struct emm *mm, char *mem)
{
	struct space *sp = new_space(ERR_BASE, ERR_LEN, 1);
	uint64_t io0, io1, got = 0;

	is_int(map_pager(mm, mem, ERR_LEN, EMM_PROT_READ | EMM_PROT_WRITE, &fill_and_writeback, sp), 0,
	       "map a 1 MiB read-write PAGER VMA");
	atomic_store(&sp->fail_wb, 1);
	*(uint64_t *)(mem + 3 * PAGE) = write_word(ERR_BASE + 3 * PAGE);
	io0 = stats(mm).io_errors;
	is_int(emm_sync(mm, mem, ERR_LEN), -EIO, "writeback failing: emm_sync gives -EIO");
	io1 = stats(mm).io_errors;
	ok(io1 > io0 && atomic_load(&sp->wb_failed) > 0, "io_errors grew (%" PRIu64 " -> %" PRIu64
	   "), writeback was called", io0, io1);
	is_int(emm_sync(mm, mem, ERR_LEN), -EIO, "again: -EIO (the page stayed dirty)");
	atomic_store(&sp->fail_wb, 0);
	is_int(emm_sync(mm, mem, ERR_LEN), 0, "the error cleared: emm_sync gives 0");
	if (atomic_load(&sp->stored[3]))
		memcpy(&got, sp->store + 3 * PAGE, 8);
	ok(atomic_load(&sp->stored[3]) && got == write_word(ERR_BASE + 3 * PAGE),
	   "and the page reached writeback with the write");
	is_int(atomic_load(&sp->wb_bad), 0, "with the right bytes");
	is_int(emm_unmap(mm, mem, ERR_LEN), 0, "unmap it");
	free_space(sp);
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT);
	struct emm *mm;
	char *r;

	skip_all_tsan("it writes 256 MiB, whose shadow would take four times as much");
	plan(41);
	is_int(emm_open(&o, &mm), 0, "emm_open with a 16 MiB budget");
	is_int(emm_reserve(mm, READ_LEN, (void **)&r), 0, "reserve 256 MiB");
	test_rows(mm, r);
	test_random_reads(mm, r);
	test_one_fill(mm, r);
	test_writeback(mm, r);
	test_writeback_error(mm, r);
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
