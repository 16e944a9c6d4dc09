/* SPDX-License-Identifier: MIT */
/*
 * Threads that write pages swapped back in clean, while EMM_ADV_PAGEOUT
 * keeps taking them again: no write is lost. On uffd a clean page is
 * mapped write-protected and a write to it is let through, seen later as
 * a cleared uffd-wp bit. When two threads faulted on one page, the second
 * fault remapped the page the first had just been given, and protected it
 * again: a write the first thread made in between left no trace, and the
 * page went out as clean, its swap copy without the write (V8's heap under
 * the preload: a stale pointer, SIGSEGV). Each thread owns one word in
 * every page, counts its own writes, and checks that the word holds its
 * count each time it comes back, and once more at the end.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE		4096UL
#define PAGES		16		/* paged out again and again */
#define THREADS		4
#define RUN_MS		1500

struct shared {
	uint64_t *p;
	atomic_bool stop;
	atomic_long lost;
};

struct worker {
	struct shared *sh;
	unsigned id;
	uint64_t writes;
	uint64_t count[PAGES];
};

/* The threads go over the same pages in the same order, so that they
 * fault on one page together; each reads its word before it writes it,
 * so that a page comes back clean (write-protected) first. */
static void *work(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load_explicit(&w->sh->stop, memory_order_relaxed)) {
		for (unsigned pg = 0; pg < PAGES; pg++) {
			volatile uint64_t *word = w->sh->p + pg * (PAGE / 8) + w->id;

			if (*word != w->count[pg])
				atomic_fetch_add(&w->sh->lost, 1);
			*word = ++w->count[pg];
			w->writes++;
		}
	}
	return NULL;
}

/* In a child: prints lost writes, writes, swap-ins; exits 0. */
static void child(int backend)
{
	EMM_OPTS(emm_opts, o, .backend = backend, .swap_size = 64UL << 20);
	EMM_OPTS(emm_stats, st);
	static struct worker w[THREADS];
	struct shared sh = { 0 };
	pthread_t t[THREADS];
	uint64_t writes = 0;
	struct emm *mm;
	long t0;

	if (emm_open(&o, &mm) || emm_reserve(mm, PAGES * PAGE, (void **)&sh.p) ||
	    emm_map(mm, sh.p, PAGES * PAGE, NULL))
		_exit(2);
	for (unsigned i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .sh = &sh, .id = i };
		if (pthread_create(&t[i], NULL, work, &w[i]))
			_exit(3);
	}
	/* Out to swap again and again: each page comes back by a fault. */
	t0 = now_ms();
	while (now_ms() - t0 < RUN_MS)
		if (emm_advise(mm, sh.p, PAGES * PAGE, EMM_ADV_PAGEOUT) < 0)
			_exit(4);
	atomic_store(&sh.stop, true);
	for (unsigned i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		writes += w[i].writes;
	}
	/* Once more, all quiet: every word as its thread left it. */
	for (unsigned i = 0; i < THREADS; i++)
		for (unsigned pg = 0; pg < PAGES; pg++)
			if (sh.p[pg * (PAGE / 8) + i] != w[i].count[pg])
				atomic_fetch_add(&sh.lost, 1);
	emm_stats(mm, &st);
	dprintf(1, "%ld %llu %llu\n", atomic_load(&sh.lost), (unsigned long long)writes,
		(unsigned long long)st.swapins);
	emm_close(mm);
	_exit(0);
}

static void run(int backend, const char *name)
{
	EMM_OPTS(emm_opts, o, .backend = backend);
	unsigned long long writes = 0, swapins = 0;
	char out[96];
	long lost = -1;
	struct emm *mm;
	int st;

	if (!(mm = open_or_skip(&o, name, 1)))
		return;
	emm_close(mm);
	st = in_child(child, backend, out, sizeof(out));
	if (sscanf(out, "%ld %llu %llu", &lost, &writes, &swapins) != 3 || !WIFEXITED(st) ||
	    WEXITSTATUS(st)) {
		ok(0, "%s: the writers ran (status %#x, \"%s\")", name, st, out);
		return;
	}
	ok(lost == 0 && swapins > 0, "%s: %d threads, %llu writes to pages swapped in %llu "
	   "times: %ld lost", name, THREADS, writes, swapins, lost);
}

int main(void)
{
	plan(3);
	each_backend(run);
	return done_testing();
}
