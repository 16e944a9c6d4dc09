/* SPDX-License-Identifier: MIT */
/* A first-touch stream maps windows ahead that grow with room to spare, and stay one fault-around group past half the budget. */
#include <inttypes.h>
#include <stdint.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define MIB (1UL << 20)
#define PAGE 4096UL
#define GROUP 16		/* the default fault_around, in pages */
#define LIMIT (32 * MIB)
#define FILL (24 * MIB)		/* touched first: three quarters of the budget */
#define STREAM (4 * MIB)	/* then touched in order, one write a page */

/* Zero faults taken by a write to each page of [a, a + STREAM), in order. */
static uint64_t stream_faults(struct emm *mm, char *a)
{
	uint64_t before = stats(mm).faults_zero;

	for (size_t off = 0; off < STREAM; off += PAGE)
		a[off] = 1;
	return stats(mm).faults_zero - before;
}

static void run(const char *what, size_t fill)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 4 * LIMIT);
	size_t len = FILL + STREAM;
	struct emm *mm;
	uint64_t n;
	char *a;

	if (emm_open(&o, &mm) || emm_reserve(mm, len, (void **)&a) || emm_map(mm, a, len, NULL))
		bail("%s: setting up", what);
	/* The fill is not a stream: one page in each group, backwards. */
	for (size_t off = fill; off > 0; off -= GROUP * PAGE)
		for (size_t p = 0; p < GROUP * PAGE; p += PAGE)
			a[off - GROUP * PAGE + p] = 1;
	reclaim_settle(mm);
	n = stream_faults(mm, a + FILL);
	if (fill)
		ok(n >= STREAM / PAGE / GROUP, "%s: %" PRIu64 " faults for %lu pages: "
		   "none mapped more than a group (at least %lu)", what, n, STREAM / PAGE,
		   STREAM / PAGE / GROUP);
	else
		ok(n < STREAM / PAGE / GROUP / 2, "%s: %" PRIu64 " faults for %lu pages: "
		   "windows grown past a group (fewer than %lu)", what, n, STREAM / PAGE,
		   STREAM / PAGE / GROUP / 2);
	emm_close(mm);
}

int main(void)
{
	plan(2);
	run("room to spare", 0);
	run("past half the budget", FILL);
	return done_testing();
}
