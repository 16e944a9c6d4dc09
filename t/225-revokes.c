/* SPDX-License-Identifier: MIT */
/* revokes counts the ranges of mapped pages whose access emm took away: one for a page, one for a run of neighbours, none where nothing was mapped; on the userfaultfd backends two runs around a page already revoked go in one range, on signal in two. */
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "emm.h"
#include "pte-peek.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define PAGES 64
#define PER_BACKEND 6

/* Revokes made by EMM_ADV_COLD over pages [first, first + n) of p. */
static uint64_t cold(struct emm *mm, char *p, unsigned first, unsigned n)
{
	uint64_t before = stats(mm).revokes;

	if (emm_advise(mm, p + first * PAGE, n * PAGE, EMM_ADV_COLD))
		bail("emm_advise(EMM_ADV_COLD)");
	return stats(mm).revokes - before;
}

static void run(int backend, const char *name)
{
	/* A budget far above the region: no reclaim of its own meanwhile. */
	EMM_OPTS(emm_opts, o, .mem_limit = 64UL << 20, .backend = backend);
	struct emm *mm = open_or_skip(&o, name, PER_BACKEND);
	bool uffd = backend != EMM_BACKEND_SIGNAL;
	char *p;

	if (!mm)
		return;
	if (emm_reserve(mm, PAGES * PAGE, (void **)&p) || emm_map(mm, p, PAGES * PAGE, NULL))
		bail("%s: setting up", name);
	for (unsigned i = 0; i < PAGES; i++)
		memset(p + i * PAGE, (int)i + 1, PAGE);
	is_int(cold(mm, p, 10, 1), 1, "%s: one page revoked: one revoke", name);
	ok(pte_prot(pte_word(p + 10 * PAGE)) == EMM_PROT_NONE, "%s: the page is revoked", name);
	is_int(cold(mm, p, 20, 4), 1, "%s: four neighbours: one revoke", name);
	is_int(cold(mm, p, 10, 1), 0, "%s: the page again, not mapped: no revoke", name);
	/* Pages 40, 41 and 43, 44 mapped, 42 not: the kernel may zap across it. */
	cold(mm, p, 42, 1);
	is_int(cold(mm, p, 40, 5), uffd ? 1 : 2, "%s: two runs around a revoked page: %s", name,
	       uffd ? "one range (process_madvise)" : "two mprotect calls");
	for (unsigned i = 0; i < PAGES; i++)
		if (p[i * PAGE] != (char)(i + 1) || p[i * PAGE + PAGE - 1] != (char)(i + 1))
			bail("%s: page %u read back wrong", name, i);
	ok(true, "%s: every page read back right", name);
	emm_close(mm);
}

int main(void)
{
	plan(3 * PER_BACKEND);
	each_backend(run);
	return 0;
}
