/* SPDX-License-Identifier: MIT */
/* Refault distance: a page read back from swap soon after its eviction goes onto the active list and outlives a stream; one evicted long ago, or under EMM_WORKINGSET=0, goes onto the inactive list, where it is evicted at its first turn unless touched again (EMM_COLD_REFAULT). */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LIMIT (32 * MIB)
#define LEN (128 * MIB)
#define HOT (8 * MIB)		/* made active: the list a refault is measured against */
#define SMALL (64 * PAGE)	/* evicted and read back */
#define FAR (16 * MIB)		/* evictions that put SMALL's far behind */
#define STREAM (48 * MIB)	/* touched once: pressure on the inactive list */
#define AT_SMALL (16 * MIB)
#define AT_FAR (32 * MIB)
#define AT_STREAM (64 * MIB)

static void advise(struct emm *mm, char *mem, size_t off, size_t len, int advice)
{
	if (emm_advise(mm, mem + off, len, advice))
		bail("emm_advise(%d)", advice);
}

/* An instance with HOT pages on its active list: written, made cold,
 * touched again (the second touch activates). No readahead, so that each
 * swap-in is the page faulted. */
static struct emm *open_hot(const char *workingset, char **mem)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 256 * MIB);
	struct emm *mm;

	setenv("EMM_WORKINGSET", workingset, 1);
	if (emm_open(&o, &mm) || emm_reserve(mm, LEN, (void **)mem) ||
	    emm_map(mm, *mem, LEN, NULL) || emm_advise(mm, *mem, LEN, EMM_ADV_RANDOM))
		bail("setting up an instance (EMM_WORKINGSET=%s)", workingset);
	unsetenv("EMM_WORKINGSET");
	stamp_pages(*mem, 0, HOT, 1);
	advise(mm, *mem, 0, HOT, EMM_ADV_COLD);
	if (bad_stamps(*mem, 0, HOT, 1))
		bail("the hot pages lost their data");
	return mm;
}

/*
 * SMALL pages written, paged out, read back at once: a refault distance of
 * SMALL pages, within half the active list. A STREAM touched once after
 * them presses on the inactive list; reading SMALL again then shows where
 * it was: major faults if it had to go.
 */
static void short_distance(const char *workingset, bool on)
{
	struct emm_stats a, b, c;
	char *mem;
	struct emm *mm = open_hot(workingset, &mem);

	stamp_pages(mem, AT_SMALL, SMALL, 2);
	advise(mm, mem, AT_SMALL, SMALL, EMM_ADV_PAGEOUT);
	a = stats(mm);
	is_int(bad_stamps(mem, AT_SMALL, SMALL, 2), 0, "EMM_WORKINGSET=%s: paged out and read back intact",
	       workingset);
	b = stats(mm);
	is_int(b.swapins - a.swapins, SMALL / PAGE, "  each page read back from swap");
	is_int(b.workingset_refault - a.workingset_refault, on ? SMALL / PAGE : 0,
	       on ? "  each one's refault distance checked" : "  no refault distance checked");
	is_int(b.workingset_activate - a.workingset_activate, on ? SMALL / PAGE : 0,
	       on ? "  each one close enough for the active list (%zu pages evicted in between)"
		  : "  none put on the active list (%zu pages evicted in between)",
	       SMALL / PAGE);
	stamp_pages(mem, AT_STREAM, STREAM, 3);
	c = stats(mm);
	diag("stream of %lu MiB: swapouts %" PRIu64 ", pgsteal %" PRIu64, STREAM / MIB,
	     c.swapouts - b.swapouts, c.pgsteal - b.pgsteal);
	ok(c.pgsteal - b.pgsteal >= (STREAM - LIMIT + HOT) / PAGE / 2,
	   "  the stream pressed: %" PRIu64 " pages evicted", c.pgsteal - b.pgsteal);
	is_int(bad_stamps(mem, AT_SMALL, SMALL, 2), 0, "  read intact after the stream");
	/* Nearly none: reclaim and the reclaim thread race with the stream,
	 * and under a sanitizer the thread may deactivate a few of them from
	 * the active list (4 of 64 seen once, under ASan); without refault
	 * distance at least half go. */
	if (on)
		ok(stats(mm).faults_major - c.faults_major <= SMALL / PAGE / 8,
		   "  at most 1/8 major faults (%" PRIu64 "): the active list kept them through the stream",
		   stats(mm).faults_major - c.faults_major);
	else
		ok(stats(mm).faults_major - c.faults_major >= SMALL / PAGE / 2,
		   "  major faults (%" PRIu64 "): from the inactive list the stream pushed them out",
		   stats(mm).faults_major - c.faults_major);
	emm_close(mm);
}

/* SMALL paged out, then FAR pages evicted after it: a distance beyond
 * half the active list, so it comes back to the inactive list. */
static void long_distance(void)
{
	struct emm_stats a, b;
	char *mem;
	struct emm *mm = open_hot("1", &mem);

	stamp_pages(mem, AT_SMALL, SMALL, 2);
	advise(mm, mem, AT_SMALL, SMALL, EMM_ADV_PAGEOUT);
	stamp_pages(mem, AT_FAR, FAR, 4);
	advise(mm, mem, AT_FAR, FAR, EMM_ADV_PAGEOUT);
	a = stats(mm);
	is_int(bad_stamps(mem, AT_SMALL, SMALL, 2), 0, "far: read back intact");
	b = stats(mm);
	is_int(b.workingset_refault - a.workingset_refault, SMALL / PAGE,
	       "  each one's refault distance checked");
	is_int(b.workingset_activate - a.workingset_activate, 0,
	       "  none close enough for the active list (%lu pages evicted in between, "
	       "the active list %lu)", (SMALL + FAR) / PAGE, HOT / PAGE);
	emm_close(mm);
}

/*
 * SMALL paged out, FAR after it, SMALL read back: with no active list,
 * beyond its refault distance, so each page is mapped and marked cold,
 * alone on the inactive list. Reclaiming half of it takes, at the first
 * turn, pages that go without being revoked first to see whether they are
 * in use (EMM_COLD_REFAULT=1): the other half stays mapped, and reading
 * SMALL again takes no minor fault. Under EMM_COLD_REFAULT=0 each page is
 * revoked at its first turn and evicted at its second: pages revoked but
 * still resident show as minor faults.
 */
static void cold_refault(const char *cold, bool on)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 256 * MIB);
	struct emm_stats a, b, c;
	struct emm *mm;
	char *mem;
	long got;

	setenv("EMM_COLD_REFAULT", cold, 1);
	if (emm_open(&o, &mm) || emm_reserve(mm, LEN, (void **)&mem) ||
	    emm_map(mm, mem, LEN, NULL) || emm_advise(mm, mem, LEN, EMM_ADV_RANDOM))
		bail("setting up an instance (EMM_COLD_REFAULT=%s)", cold);
	unsetenv("EMM_COLD_REFAULT");
	stamp_pages(mem, AT_SMALL, SMALL, 2);
	advise(mm, mem, AT_SMALL, SMALL, EMM_ADV_PAGEOUT);
	stamp_pages(mem, AT_FAR, FAR, 4);
	advise(mm, mem, AT_FAR, FAR, EMM_ADV_PAGEOUT);
	is_int(bad_stamps(mem, AT_SMALL, SMALL, 2), 0, "EMM_COLD_REFAULT=%s: read back intact", cold);
	a = stats(mm);
	is_int(a.workingset_activate, 0, "  none onto the active list");
	got = emm_reclaim(mm, SMALL / 2);
	b = stats(mm);
	ok(got >= (long)(SMALL / 2), "  emm_reclaim freed %ld of the %lu bytes asked", got, SMALL / 2);
	diag("pgscan %" PRIu64 ", pgsteal %" PRIu64, b.pgscan - a.pgscan, b.pgsteal - a.pgsteal);
	is_int(bad_stamps(mem, AT_SMALL, SMALL, 2), 0, "  read again intact");
	c = stats(mm);
	ok(c.faults_major - b.faults_major >= SMALL / PAGE / 2, "  %" PRIu64 " major faults: the pages reclaimed",
	   c.faults_major - b.faults_major);
	/* Cold mapped pages next to those revoked may be revoked with them,
	 * sampled ahead of their turn (revoke_around, on the userfaultfd
	 * backends): those fault again, by design, and no others. */
	if (on)
		is_int(c.faults_minor - b.faults_minor, b.revoke_around - a.revoke_around,
		       "  no minor fault but the pages revoked around (%" PRIu64 "): none was revoked "
		       "at its first turn and left", b.revoke_around - a.revoke_around);
	else
		ok(c.faults_minor - b.faults_minor >= SMALL / PAGE / 4,
		   "  %" PRIu64 " minor faults: pages revoked at their first turn, evicted at the second",
		   c.faults_minor - b.faults_minor);
	emm_close(mm);
}

int main(void)
{
	plan(29);
	short_distance("1", true);
	short_distance("0", false);
	long_distance();
	cold_refault("1", true);
	cold_refault("0", false);
	return done_testing();
}
