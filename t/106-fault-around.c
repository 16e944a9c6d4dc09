/* SPDX-License-Identifier: MIT */
/* Fault-around: a sequential first touch costs one fault per fault_around pages. */
#include <stdint.h>
#include <stdlib.h>

#include "emm.h"
#include "tap.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LEN (16 * MIB)
#define PAGES (LEN / PAGE)
#define SLACK 4		/* a VMA need not start on a fault_around boundary */

/* Opens with o, writes one byte per page in order, returns the stats. */
static int touch_all(const struct emm_opts *o, struct emm_stats *st, const char *what)
{
	struct emm *mm;
	char *base;
	void *r;
	int err;

	if ((err = emm_open(o, &mm))) {
		ok(0, "%s: emm_open: %d", what, err);
		return err;
	}
	err = emm_reserve(mm, LEN + 2 * MIB, &r) ?: emm_map(mm, r, LEN, NULL);
	if (!err) {
		base = r;
		for (size_t pg = 0; pg < PAGES; pg++)
			base[pg * PAGE + pg % PAGE] = 1;
		err = emm_stats(mm, st);
	}
	emm_close(mm);
	ok(!err, "%s: open, map 16 MiB, touch each page in order, read stats", what);
	if (!err)
		diag("%s: faults %" PRIu64 ", faults_zero %" PRIu64 ", resident %" PRIu64,
		     what, st->faults, st->faults_zero, st->resident_bytes);
	return err;
}

static void test_default(void)
{
	EMM_OPTS(emm_stats, st);

	if (touch_all(NULL, &st, "default")) {
		skip(3, "no stats");
		return;
	}
	ok(st.faults <= PAGES / 16 + SLACK, "default fault_around 16: faults %" PRIu64 " <= %lu",
	   st.faults, PAGES / 16 + SLACK);
	ok(st.faults_zero <= PAGES / 16 + SLACK, "and faults_zero %" PRIu64 " <= %lu",
	   st.faults_zero, PAGES / 16 + SLACK);
	is_int(st.resident_bytes, LEN, "every page resident");
}

static void test_one(void)
{
	EMM_OPTS(emm_opts, o, .fault_around = 1);
	EMM_OPTS(emm_stats, st);

	if (touch_all(&o, &st, "fault_around 1")) {
		skip(2, "no stats");
		return;
	}
	is_int(st.faults, PAGES, "fault_around 1: one fault per page");
	is_int(st.faults_zero, PAGES, "fault_around 1: each a zero fault");
}

static void test_env(void)
{
	EMM_OPTS(emm_opts, o, .fault_around = 64);
	EMM_OPTS(emm_stats, st);

	setenv("EMM_FAULT_AROUND", "1", 1);
	if (touch_all(NULL, &st, "EMM_FAULT_AROUND=1"))
		skip(1, "no stats");
	else
		is_int(st.faults, PAGES, "EMM_FAULT_AROUND=1: one fault per page");
	if (touch_all(&o, &st, "fault_around 64 with EMM_FAULT_AROUND=1"))
		skip(1, "no stats");
	else
		ok(st.faults <= PAGES / 64 + SLACK, "fault_around 64 from opts beats the "
		   "environment: faults %" PRIu64 " <= %lu", st.faults, PAGES / 64 + SLACK);
	unsetenv("EMM_FAULT_AROUND");
}

int main(void)
{
	plan(4 + 3 + 4);
	unsetenv("EMM_FAULT_AROUND");
	test_default();
	test_one();
	test_env();
	return done_testing();
}
