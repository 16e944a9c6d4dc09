/* SPDX-License-Identifier: MIT */
/* A first touch of an empty extent makes its huge page fresh, with no copy: the data of every thread writing it then, and of the page after it, whatever its state, stays. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"
#include "util.h"
#include "thp.h"

#define PAGE	4096UL
#define MIB	(1UL << 20)
#define EXT	(2 * MIB)
#define REGION	(64 * MIB)
#define THREADS	4
#define ROUNDS	10

static struct emm *mm;

static char *map_huge(size_t len)
{
	EMM_OPTS(emm_map_opts, o, .prot = EMM_PROT_READ | EMM_PROT_WRITE, .flags = EMM_MAP_HUGEPAGE);
	void *p;

	if (emm_reserve(mm, len + EXT, &p) || emm_map(mm, p, len, &o))
		bail("cannot reserve and map %zu bytes", len);
	return p;
}

/* Written in order, a word a page: each extent made huge at its first touch. */
static void in_order(void)
{
	char *p = map_huge(16 * EXT);
	struct emm_stats s0 = stats(mm), s1;

	fill_words(p, 16 * EXT, word_value);
	s1 = stats(mm);
	is_int(s1.thp_collapse - s0.thp_collapse, 16, "in order: 16 extents huge at their first touch");
	is_int(s1.thp_collapse_failed - s0.thp_collapse_failed, 0, "in order: no collapse failed");
	is_int(thp_pmd_mapped(p, 16 * EXT), 16 * EXT, "in order: all of it PMD-mapped");
	is_int(count_bad_words(p, 16 * EXT, word_value), 0, "in order: every word reads back");
	emm_release(mm, p);
}

struct writer {
	char *p;
	unsigned id;
	pthread_barrier_t *go;
};

/* Every THREADS-th page from the writer's own, all of each page. */
static void *write_share(void *arg)
{
	struct writer *w = arg;

	pthread_barrier_wait(w->go);
	for (size_t pg = w->id; pg < REGION / PAGE; pg += THREADS)
		fill_words(w->p + pg * PAGE, PAGE, word_value);
	return NULL;
}

/* Threads writing the same extents at once, one of them making each huge. */
static void threads_at_once(void)
{
	size_t bad = 0;
	int64_t pmd = 0;

	for (int round = 0; round < ROUNDS; round++) {
		pthread_barrier_t go;
		pthread_t t[THREADS];
		struct writer w[THREADS];
		char *p = map_huge(REGION);

		pthread_barrier_init(&go, NULL, THREADS);
		for (unsigned i = 0; i < THREADS; i++) {
			w[i] = (struct writer){ p, i, &go };
			if (pthread_create(&t[i], NULL, write_share, &w[i]))
				bail("pthread_create");
		}
		for (unsigned i = 0; i < THREADS; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&go);
		bad += count_bad_words(p, REGION, word_value);
		pmd += thp_pmd_mapped(p, REGION);
		emm_release(mm, p);
	}
	diag("%d rounds of %d threads: %" PRId64 " MiB of %lu PMD-mapped", ROUNDS, THREADS,
	     pmd >> 20, ROUNDS * REGION >> 20);
	is_int(bad, 0, "%d threads writing the same extents at once: every word reads back", THREADS);
}

/*
 * The page after an extent made fresh: swapped out, a clean copy mapped
 * without write, never touched. Its data stays, and a write to it later is
 * not lost.
 */
static void next_page(void)
{
	char *p = map_huge(3 * EXT);
	uint64_t *n = (uint64_t *)(p + EXT), *m = (uint64_t *)(p + 2 * EXT);
	struct emm_stats s0, s1;

	*n = 0x1111;
	*m = 0x2222;
	is_int(emm_advise(mm, n, PAGE, EMM_ADV_PAGEOUT), 0, "next page: paged out");
	is_int(emm_advise(mm, m, PAGE, EMM_ADV_PAGEOUT), 0, "next page: the one after the next extent paged out");
	(void)*(volatile uint64_t *)m;		/* back in, clean, mapped without write */
	fill_words(p, EXT, word_value);
	is_int(*n, 0x1111, "next page: a swapped page after the extent keeps its data");
	is_int(count_bad_words(p, EXT, word_value), 0, "next page: the extent reads back");
	fill_words(p + EXT + PAGE, EXT - PAGE, word_value);	/* the next extent, all but n */
	*m = 0x3333;
	is_int(emm_advise(mm, m, PAGE, EMM_ADV_PAGEOUT), 0, "next page: a clean copy written, paged out");
	is_int(*m, 0x3333, "next page: the write to a clean copy after the extent stays");

	{
		char *q = map_huge(2 * EXT);

		s0 = stats(mm);
		q[5] = 1;			/* the first extent; the next one never touched */
		is_int(*(volatile char *)(q + EXT), 0, "never touched: the page after the extent reads zero (a first touch: huge)");
		q[EXT + 3 * PAGE] = 1;
		s1 = stats(mm);
		is_int(s1.thp_collapse - s0.thp_collapse, 2,
		       "never touched: both extents huge at their first touch");
		emm_release(mm, q);
	}
	emm_release(mm, p);
}

/*
 * Extents the promotion scanner collapsed while their VMA was read-only,
 * then made writable: emm_protect succeeds (on userfaultfd it failed with
 * ENOENT, asking to write-protect a huge extent's pages, which cannot be),
 * and a write to a page that was a clean copy survives a pageout.
 */
static void readonly_collapsed(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 256 * MIB, .thp = EMM_THP_MADVISE, .thp_scan_ms = 1);
	EMM_OPTS(emm_map_opts, mo, .prot = EMM_PROT_READ | EMM_PROT_WRITE);
	struct emm *m2;
	uint64_t *w;
	char *p;
	long t0;

	if (emm_open(&o, &m2) || emm_reserve(m2, 3 * EXT, (void **)&p) || emm_map(m2, p, 2 * EXT, &mo))
		bail("emm_open/reserve/map");
	fill_words(p, 2 * EXT, word_value);
	is_int(emm_advise(m2, p + EXT, EXT, EMM_ADV_PAGEOUT), 0, "read-only: the second extent paged out");
	is_int(emm_protect(m2, p, 2 * EXT, EMM_PROT_READ), 0, "read-only: protect");
	is_int(count_bad_words(p, 2 * EXT, word_value), 0,
	       "read-only: read back (the second extent's pages clean copies)");
	is_int(emm_advise(m2, p, 2 * EXT, EMM_ADV_HUGEPAGE), 0, "read-only: advise HUGEPAGE");
	for (t0 = now_ms(); thp_pmd_mapped(p, 2 * EXT) < (int64_t)(2 * EXT) && now_ms() - t0 < 3000;)
		usleep(1000);
	diag("read-only: %" PRId64 " KiB PMD-mapped after %ld ms", thp_pmd_mapped(p, 2 * EXT) >> 10,
	     now_ms() - t0);
	is_int(emm_protect(m2, p, 2 * EXT, EMM_PROT_READ | EMM_PROT_WRITE), 0,
	       "read-only collapsed, made writable: protect succeeds");
	w = (uint64_t *)(p + EXT + 5 * PAGE);
	*w = 0x5309;
	is_int(emm_advise(m2, p, 2 * EXT, EMM_ADV_PAGEOUT), 0, "read-only: paged out again");
	is_int(*w, 0x5309, "read-only: the write to a page read back clean survives");
	*w = word_value(w);
	is_int(count_bad_words(p, 2 * EXT, word_value), 0, "read-only: the rest reads back");
	is_int(emm_close(m2), 0, "read-only: emm_close");
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 1024 * MIB, .thp = EMM_THP_MADVISE);

	if (emm_open(&o, &mm))
		bail("emm_open");
	plan(23);
	diag("backend %d", emm_backend(mm));
	in_order();
	threads_at_once();
	next_page();
	readonly_collapsed();
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
