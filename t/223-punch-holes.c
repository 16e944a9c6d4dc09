/* SPDX-License-Identifier: MIT */
/* Page-out frees scattered pages with few hole punches, each crossing the pages between them that hold no memory (never touched, or swapped), never a resident page between them (a pinned one keeps its data), and never a page a fault fills meanwhile: every word reads back right, with a thread faulting those pages in during page-outs. */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define PAGES 2048		/* the region: 8 MiB */
#define SWAPPED 1024		/* [SWAPPED, PAGES) is written and paged out first */
#define PINNED 514		/* written and pinned, between two scattered pages */
#define STRIDE 4		/* every STRIDE-th page is resident when paged out */
#define RACE_MS 400
#define PER_BACKEND 5

static _Atomic unsigned long punches;	/* hole punches the library made */

/* emm's own calls to fallocate(2) land here: the program's definition
 * comes before the C library's. Punches counted, then done. */
int fallocate(int fd, int mode, off_t off, off_t len)
{
	if (mode & FALLOC_FL_PUNCH_HOLE)
		atomic_fetch_add_explicit(&punches, 1, memory_order_relaxed);
	return (int)syscall(SYS_fallocate, fd, mode, off, len);
}

static bool scattered(size_t i)
{
	return i % STRIDE == 0;
}

/* What page i holds: word_value where it was written, else zeros. */
static size_t bad_pages(const char *p)
{
	size_t bad = 0;

	for (size_t i = 0; i < PAGES; i++) {
		const uint64_t *w = (const uint64_t *)(p + i * PAGE);
		bool written = scattered(i) || i >= SWAPPED || i == PINNED;

		for (size_t k = 0; k < PAGE / 8; k++)
			if (w[k] != (written ? word_value(w + k) : 0)) {
				if (bad++ < 5)
					diag("page %zu word %zu: 0x%" PRIx64, i, k, w[k]);
				break;
			}
	}
	return bad;
}

static void test_scattered(struct emm *mm, char *p, const char *name)
{
	unsigned long before, made;
	size_t victims = 0;

	fill_words(p + SWAPPED * PAGE, (PAGES - SWAPPED) * PAGE, word_value);
	if (emm_advise(mm, p + SWAPPED * PAGE, (PAGES - SWAPPED) * PAGE, EMM_ADV_PAGEOUT) < 0)
		bail("%s: EMM_ADV_PAGEOUT", name);
	for (size_t i = 0; i < PAGES; i += STRIDE, victims++)
		if (i < SWAPPED)
			fill_words(p + i * PAGE, PAGE, word_value);
		else
			(void)*(volatile uint64_t *)(p + i * PAGE);	/* swapped in, clean */
	fill_words(p + PINNED * PAGE, PAGE, word_value);
	if (emm_pin(mm, p + PINNED * PAGE, PAGE))
		bail("%s: emm_pin", name);
	before = atomic_load(&punches);
	ok(emm_advise(mm, p, PAGES * PAGE, EMM_ADV_PAGEOUT) >= 0, "%s: EMM_ADV_PAGEOUT of 8 MiB",
	   name);
	made = atomic_load(&punches) - before;
	ok(made > 0 && made <= victims / 8, "%s: %zu scattered pages freed in %lu punches", name,
	   victims, made);
	is_int(stats(mm).resident_bytes, PAGE, "%s: the pinned page alone stays resident", name);
	is_int(bad_pages(p), 0, "%s: every page reads back: written ones, zeros between", name);
	emm_unpin(mm, p + PINNED * PAGE, PAGE);
}

struct race {
	char *p;
	_Atomic bool stop;
	size_t bad, filled;
	uint64_t round;		/* the filler's last round, */
	size_t at;		/* and how far it got */
};

static bool filled(size_t i)
{
	return i < SWAPPED && !scattered(i) && i != PINNED;
}

/* What the filler writes at w in round r (0: nothing yet). */
static uint64_t fill_value(const uint64_t *w, uint64_t r)
{
	return r ? word_value(w) + r : 0;
}

/* Page i's word after the filler stopped in round r at page at. */
static uint64_t filled_value(const uint64_t *w, size_t i, uint64_t r, size_t at)
{
	return fill_value(w, i < at ? r : r - 1);
}

/* Round after round, fill the pages between the scattered ones one by
 * one, each checked again later, while the other thread pages the region
 * out. */
static void *filler(void *arg)
{
	struct race *rc = arg;

	for (rc->round = 1; !atomic_load(&rc->stop); rc->round++)
		for (rc->at = 0; rc->at < SWAPPED && !atomic_load(&rc->stop); rc->at++) {
			uint64_t *w = (uint64_t *)(rc->p + rc->at * PAGE);

			if (!filled(rc->at))
				continue;
			*w = fill_value(w, rc->round);
			rc->filled++;
			for (size_t j = rc->at % 37; j < SWAPPED; j += 37) {
				const uint64_t *v = (const uint64_t *)(rc->p + j * PAGE);

				if (filled(j) && *v != filled_value(v, j, rc->round, rc->at + 1) &&
				    rc->bad++ < 5)
					diag("page %zu: 0x%" PRIx64 " after page %zu was filled", j,
					     *v, rc->at);
			}
		}
	return NULL;
}

static void test_race(struct emm *mm, char *p, const char *name)
{
	struct race rc = { .p = p };
	struct timespec t0, t;
	pthread_t th;
	size_t bad = 0;

	if (pthread_create(&th, NULL, filler, &rc))
		bail("pthread_create");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		for (size_t i = 0; i < SWAPPED; i += STRIDE)
			(void)*(volatile uint64_t *)(p + i * PAGE);
		emm_advise(mm, p, SWAPPED * PAGE, EMM_ADV_PAGEOUT);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < RACE_MS);
	atomic_store(&rc.stop, true);
	pthread_join(th, NULL);
	rc.round--;	/* counted on once more as the filler left */
	for (size_t i = 0; i < PAGES; i++) {
		const uint64_t *w = (const uint64_t *)(p + i * PAGE);
		uint64_t want = filled(i) ? filled_value(w, i, rc.round, rc.at) : word_value(w);

		if (*w != want && bad++ < 5)
			diag("page %zu: 0x%" PRIx64 ", not 0x%" PRIx64, i, *w, want);
	}
	is_int(rc.bad + bad, 0, "%s: every page reads back, %zu filled during page-outs", name,
	       rc.filled);
}

static void run(int backend, const char *name)
{
	/* One page a first touch: the pages between stay holes. */
	EMM_OPTS(emm_opts, o, .mem_limit = 64 * MIB, .swap_size = 64 * MIB, .backend = backend,
		 .fault_around = 1);
	struct emm *mm = open_or_skip(&o, name, PER_BACKEND);
	char *p;

	if (!mm)
		return;
	if (emm_reserve(mm, PAGES * PAGE, (void **)&p) || emm_map(mm, p, PAGES * PAGE, NULL) ||
	    emm_advise(mm, p, PAGES * PAGE, EMM_ADV_RANDOM))	/* nor read around */
		bail("%s: setting up", name);
	test_scattered(mm, p, name);
	test_race(mm, p, name);
	emm_close(mm);
}

int main(void)
{
	plan(3 * PER_BACKEND);
	each_backend(run);
	return 0;
}
