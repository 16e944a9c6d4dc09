/* SPDX-License-Identifier: MIT */
/* Range reclaim (EMM_ADV_PAGEOUT, EMM_ADV_COLD) or a range drop (EMM_ADV_DONTNEED) that meets an extent collapsed again after it split the range splits it again: no page of it goes by itself while it is one unit, and its data reads back right; a grant without write of a collapsed extent maps it, and a write to it is seen. */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "backend.h"
#include "emm.h"
#include "internal.h"
#include "memory.h"
#include "pte-peek.h"
#include "tap.h"
#include "thp.h"
#include "util.h"
#include "vmscan.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define EXT (2 * MIB)

enum { OP_COLD, OP_PAGEOUT, OP_ZAP };

static struct emm *mm;

static uint64_t value(const uint64_t *p)
{
	uint64_t s = (uint64_t)(uintptr_t)p ^ 0x0308030803080308ULL;

	return tap_rand(&s) | 1;
}

/*
 * What emm_advise does after its own split, as if the promotion scanner
 * had collapsed the extent in between: range reclaim (or, zap: the drop of
 * EMM_ADV_DONTNEED) over [from, EXT) of the collapsed extent at p, under
 * the locks emm_advise holds. Pages freed (zap: 0).
 */
static long after_split(char *p, size_t from, int op)
{
	int idx = 0;
	struct rsv *r = rsv_enter((uintptr_t)p, &idx);
	uintptr_t s = (uintptr_t)p + from, e = (uintptr_t)p + EXT;
	sigset_t all, old;
	long freed = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_mutex_lock(&mm->lock);
	if (op == OP_ZAP)
		zap_range(r, s, e, true);
	else
		freed = reclaim_range(r, s, e, op == OP_PAGEOUT);
	pthread_mutex_unlock(&mm->lock);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	rsv_leave(r, idx);
	return freed;
}

/* Words of [from, EXT) of p that are not zero. */
static size_t nonzero_words(const char *p, size_t from)
{
	size_t n = 0;

	for (size_t i = from; i < EXT; i += sizeof(uint64_t))
		n += *(const uint64_t *)(p + i) != 0;
	return n;
}

/* Collapse the extent at p by touching it (a first touch of an empty
 * extent maps it whole, unless a neighbour's lock is busy at that moment:
 * then again) and fill it with its values. On uffd the touching thread may
 * run again before the service thread has finished the collapse (taking
 * the extent out of the registration wakes it): emm_stats waits for the
 * service threads, so the look after it sees the fault's outcome. */
static bool collapse(char *p)
{
	EMM_OPTS(emm_stats, st);

	for (int i = 0; i < 20 && !extent_collapsed(p); i++) {
		if (i)
			usleep(10000);
		emm_advise(mm, p, EXT, EMM_ADV_DONTNEED);
		p[4000] = 1;
		emm_stats(mm, &st);
	}
	fill_words(p, EXT, value);
	return extent_collapsed(p);
}

/*
 * The backend asked to map the collapsed extent at p without write (as a
 * minor fault on a clean extent does): on userfaultfd, where a huge extent
 * has no write-protection, it must still map it, not revoke it (the access
 * would fault again without end), and a write must not go unseen.
 */
static void grant_read_only(char *p)
{
	int idx = 0, err;
	struct rsv *r = rsv_enter((uintptr_t)p, &idx);
	uintptr_t a = (uintptr_t)p;

	lock_range(r, a, a + EXT);
	for (uintptr_t q = a; q < a + EXT; q += PAGE)	/* clean, as if written back */
		pte_set_locked(pte_of(r, q), pte_locked_val(pte_of(r, q)) & ~PTE_DIRTY);
	err = backend_revoke(r, a, a + EXT, BACKEND_FORCE);
	if (!err)
		err = backend_grant(r, a, a + EXT, EMM_PROT_READ, BACKEND_FORCE);
	unlock_untouched(r, a, a + EXT);
	rsv_leave(r, idx);
	is_int(err, 0, "a grant without write of a collapsed extent succeeds");
	ok(kernel_mapped(p) && kernel_mapped(p + EXT - PAGE), "and maps it");
	p[EXT - PAGE] ^= 1;	/* a fault loop here ends in alarm(2) */
	ok(*(uint64_t *)(p + EXT - PAGE) == (value((uint64_t *)(p + EXT - PAGE)) ^ 1),
	   "a write to it then is made");
	p[EXT - PAGE] ^= 1;
	is_int(emm_advise(mm, p, EXT, EMM_ADV_PAGEOUT) >= 0 && count_bad_words(p, EXT, value) == 0,
	       1, "and not lost: paged out and read back right");
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 64 * MIB, .thp_scan_ms = 600000);
	EMM_OPTS(emm_map_opts, mo, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .flags = EMM_MAP_HUGEPAGE);
	static const struct { size_t from; int op; const char *what; } cases[] = {
		{ 0, OP_PAGEOUT, "EMM_ADV_PAGEOUT from the head" },
		{ 17 * PAGE, OP_PAGEOUT, "EMM_ADV_PAGEOUT from inside" },
		{ 0, OP_COLD, "EMM_ADV_COLD from the head" },
		{ 17 * PAGE, OP_COLD, "EMM_ADV_COLD from inside" },
	};
	const char *why;
	void *r;
	char *p;

	if (!thp_can_collapse(&why))
		skip_all(why);
	plan(4 * ARRAY_SIZE(cases) + 4 + 5);
	alarm(120);
	if (emm_open(&o, &mm) || emm_reserve(mm, EXT, &r) || emm_map(mm, r, EXT, &mo))
		bail("cannot open, reserve and map");
	p = r;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		long freed;

		ok(collapse(p), "%s: the extent is collapsed", cases[i].what);
		freed = after_split(p, cases[i].from, cases[i].op);
		ok(!extent_collapsed(p), "%s: it is split first", cases[i].what);
		is_int(gone_while_collapsed(p) + (cases[i].op == OP_PAGEOUT && freed <= 0), 0,
		       "%s: no page went while it was one unit (%ld freed)", cases[i].what,
		       freed);
		is_int(count_bad_words(p, EXT, value), 0, "%s: it reads back right",
		       cases[i].what);
	}
	/* EMM_ADV_DONTNEED of its tail: the head's pages keep their data. */
	ok(collapse(p), "EMM_ADV_DONTNEED from inside: the extent is collapsed");
	after_split(p, 17 * PAGE, OP_ZAP);
	ok(!extent_collapsed(p), "EMM_ADV_DONTNEED from inside: it is split first");
	is_int(count_bad_words(p, 17 * PAGE, value), 0,
	       "EMM_ADV_DONTNEED from inside: the pages before read back right");
	is_int(nonzero_words(p, 17 * PAGE), 0, "EMM_ADV_DONTNEED from inside: the rest reads zero");
	ok(collapse(p), "the extent is collapsed again");
	grant_read_only(p);
	emm_close(mm);
	return done_testing();
}
