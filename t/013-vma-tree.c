/* SPDX-License-Identifier: MIT */
/* The VMA tree against a model: random maps, protects and unmaps, then every page's VMA and the merged count. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "emm.h"
#include "internal.h"
#include "physmem.h"
#include "srcu.h"
#include "tap.h"
#include "vma.h"

#define PAGE	4096UL
#define NPAGES	4096		/* enough for a tree of several levels */
#define OPS	20000

static unsigned char model[NPAGES];	/* 0: no VMA, else its EMM_PROT_* + 1 */
static uint64_t seed = 0x5eed0013;

static unsigned rnd(unsigned n)
{
	seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
	return (unsigned)(seed >> 33) % n;
}

/* VMAs the model holds once equal neighbours merge. */
static uint64_t model_vmas(void)
{
	uint64_t n = 0;

	for (size_t i = 0; i < NPAGES; i++)
		n += model[i] && (i == 0 || model[i - 1] != model[i]);
	return n;
}

static bool all(size_t a, size_t n, bool mapped)
{
	for (size_t i = a; i < a + n; i++)
		if (!!model[i] != mapped)
			return false;
	return true;
}

/* One random operation; returns false when emm disagrees with the model. */
static bool step(struct emm *mm, char *base)
{
	size_t a = rnd(NPAGES), n = 1 + rnd(rnd(8) ? 4 : 64);
	int prot = rnd(2) ? EMM_PROT_READ : EMM_PROT_READ | EMM_PROT_WRITE, want, got;
	EMM_OPTS(emm_map_opts, o, .prot = prot);

	n = MIN(n, NPAGES - a);
	switch (rnd(3)) {
	case 0:
		want = all(a, n, false) ? 0 : -EEXIST;
		got = emm_map(mm, base + a * PAGE, n * PAGE, &o);
		break;
	case 1:
		want = all(a, n, true) ? 0 : -ENOMEM;
		got = emm_protect(mm, base + a * PAGE, n * PAGE, prot);
		break;
	default:
		want = 0;
		got = emm_unmap(mm, base + a * PAGE, n * PAGE);
		prot = -1;
		break;
	}
	if (got != want) {
		diag("op at page %zu, %zu pages: %d, the model says %d", a, n, got, want);
		return false;
	}
	if (!got)
		memset(model + a, prot + 1, n);
	return true;
}

/* Every page's VMA, as find_vma sees it, against the model. */
static size_t check_pages(char *base)
{
	int idx = 0;
	struct rsv *r = rsv_enter((uintptr_t)base, &idx);
	size_t bad = 0;

	for (size_t i = 0; r && i < NPAGES; i++) {
		const struct emm_vma *v = find_vma(r, (uintptr_t)base + i * PAGE);
		int have = v ? v->prot + 1 : 0;

		bad += have != model[i];
	}
	if (r)
		rsv_leave(r, idx);
	return r ? bad : NPAGES;
}

int main(void)
{
	EMM_OPTS(emm_opts, oo, .mem_limit = 64UL << 20);
	EMM_OPTS(emm_stats, st);
	struct emm *mm;
	void *base;
	unsigned agree = 0, counted = 0;

	plan(4);
	if (emm_open(&oo, &mm) || emm_reserve(mm, NPAGES * PAGE, &base))
		bail("emm_open or emm_reserve failed");
	for (unsigned i = 0; i < OPS; i++) {
		agree += step(mm, base);
		if (i % 64 == 0) {
			emm_stats(mm, &st);
			counted += st.vmas == model_vmas();
		}
	}
	is_int(agree, OPS, "%u random maps, protects and unmaps: each result as the model says", OPS);
	is_int(counted, (OPS + 63) / 64, "the VMA count matches the merged model at every check");
	is_int(check_pages(base), 0, "every page's VMA and protection match the model");
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
