/* SPDX-License-Identifier: MIT */
/* API-sequence fuzzer: random calls over random ranges, checked against a shadow model of every page. */
#include <signal.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "emm.h"
#include "probe.h"
#include "tap.h"
#include "util.h"

/*
 * One reservation of RPAGES pages under a budget of a quarter of it. Each
 * operation is a call (map, unmap, protect, advise, pin, unpin, prefault,
 * sync, set_limit, reclaim) over a range that may be unaligned, empty,
 * overlapping, or reach outside the reservation, or a checked read or
 * write of one page. The model knows, for each page, its VMA's protection
 * and policy and the generation last written there; every call must return
 * what the model says (or an error its man page lists, where the model
 * cannot tell which), every access must complete or fault as the model
 * says, and every byte read must be what the model says was written.
 *
 * FUZZ_SEED picks the sequence; FUZZ_SECONDS runs for that long instead of
 * the short run of make check. Built with -DFUZZ_LIBFUZZER, the same
 * operations are driven by libFuzzer's input instead of the generator.
 */

#define PAGE		4096UL
#define RPAGES		1024		/* 4 MiB: two huge extents */
#define WORDS		(PAGE / 8)
#define MAX_FAILS	20

struct page_model {
	unsigned char mapped, prot, guard;
	uint32_t gen;			/* 0: reads as zeros */
};

static struct emm *mm;
static char *base;
static struct page_model model[RPAGES];
static uint32_t next_gen = 1;
static unsigned long ops, fails, reads, writes, faults_seen;

/* Where the randomness comes from: the generator, or libFuzzer's bytes. */
static uint64_t seed;
static const uint8_t *in_data;
static size_t in_left;
static int from_input;

static uint64_t rnd(void)
{
	uint64_t v = 0;

	if (!from_input)
		return tap_rand(&seed);
	for (int i = 0; i < 8 && in_left; i++, in_left--)
		v = v << 8 | *in_data++;
	return v;
}

static unsigned below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static TAP_PRINTF(1, 2) void fail(const char *fmt, ...)
{
	va_list ap;

	fails++;
	if (fails > MAX_FAILS)
		return;
	va_start(ap, fmt);
	fputs("# op ", stderr);
	fprintf(stderr, "%lu: ", ops);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	tap_flush();
#ifdef FUZZ_LIBFUZZER
	abort();
#endif
}

static uint64_t word_at(size_t pg, uint32_t gen, size_t i)
{
	return gen ? ((uint64_t)gen << 32 | pg << 12 | i) * 0x9e3779b97f4a7c15ULL | 1 : 0;
}

/* A range to operate on: mostly whole pages inside the reservation,
 * sometimes past its ends, unaligned or empty. */
struct range { long first; long npages; uintptr_t addr; size_t len; bool aligned; };

static struct range pick_range(void)
{
	struct range g;
	unsigned k = below(64);

	g.first = (long)below(RPAGES + 16) - 8;
	g.npages = k < 40 ? 1 + below(8) : k < 60 ? 1 + below(64) : 1 + below(RPAGES);
	g.addr = (uintptr_t)base + (uintptr_t)(g.first * (long)PAGE);
	g.len = (size_t)g.npages * PAGE;
	g.aligned = true;
	switch (below(48)) {
	case 0: g.addr += 1 + below(PAGE - 1); g.aligned = false; break;
	case 1: g.len += 1 + below(PAGE - 1); g.aligned = false; break;
	case 2: g.len = 0; g.aligned = false; break;
	}
	return g;
}

static bool inside(const struct range *g)
{
	return g->first >= 0 && g->first + g->npages <= RPAGES;
}

/* Is every page of the range (inside the reservation) mapped? */
static bool covered(const struct range *g)
{
	for (long p = g->first; p < g->first + g->npages; p++)
		if (!model[p].mapped)
			return false;
	return true;
}

static bool any_mapped(const struct range *g)
{
	for (long p = g->first; p < g->first + g->npages; p++)
		if (model[p].mapped)
			return true;
	return false;
}

/* What most range calls return before they look at VMAs. */
static int range_errno(const struct range *g, bool need_cover)
{
	if (!g->aligned)
		return -EINVAL;
	if (!inside(g) || (need_cover && !covered(g)))
		return -ENOMEM;
	return 0;
}

static void expect(const char *what, const struct range *g, int got, int want)
{
	if (got != want)
		fail("%s(page %ld, %ld pages%s) = %d, model says %d", what, g->first, g->npages,
		     g->aligned ? "" : ", unaligned", got, want);
}

/* An access that faulted is fine when the model expects it: a read or
 * write of a page with no VMA goes on to the handler installed before
 * emm; one its VMA forbids reaches the VMA's trap. */
static int expected_access(size_t pg, int write)
{
	const struct page_model *m = &model[pg];

	if (!m->mapped)
		return CHAIN;
	if (m->guard || m->prot == EMM_PROT_NONE)
		return TRAP;
	if (write && !(m->prot & EMM_PROT_WRITE))
		return TRAP;
	return NONE;
}

static void check_page(size_t pg)
{
	const uint64_t *w = (const uint64_t *)(base + pg * PAGE);
	uint32_t gen = model[pg].gen;

	for (size_t i = 0; i < WORDS; i++)
		if (w[i] != word_at(pg, gen, i)) {
			fail("page %zu word %zu: 0x%" PRIx64 ", model says 0x%" PRIx64
			     " (generation %u)", pg, i, w[i], word_at(pg, gen, i), gen);
			return;
		}
}

static void op_access(int write)
{
	size_t pg = below(RPAGES);
	char *p = base + pg * PAGE + below(WORDS) * 8;
	int want = expected_access(pg, write), got;
	uint32_t gen = next_gen;

	got = access_once(p, 8, write, word_at(pg, gen, (size_t)(p - base - pg * PAGE) / 8));
	if (got != want) {
		fail("%s of page %zu: %d, model says %d (prot %d%s%s)", write ? "write" : "read",
		     pg, got, want, model[pg].prot, model[pg].mapped ? "" : ", unmapped",
		     model[pg].guard ? ", guard" : "");
		return;
	}
	if (got != NONE) {
		faults_seen++;
		return;
	}
	if (write) {
		uint64_t *w = (uint64_t *)(base + pg * PAGE);

		for (size_t i = 0; i < WORDS; i++)
			w[i] = word_at(pg, gen, i);
		model[pg].gen = next_gen++;
		writes++;
	} else {
		check_page(pg);
		reads++;
	}
}

static int random_prot(void)
{
	return below(32) ? (int)below(8) : 8 << below(3);	/* now and then a bad bit */
}

static void op_map(void)
{
	struct range g = pick_range();
	int prot = random_prot(), guard = below(8) == 0, want, got;
	EMM_OPTS(emm_map_opts, o, .prot = prot, .trap = trap,
		 .policy = guard ? EMM_POLICY_GUARD : EMM_POLICY_ANON);

	want = range_errno(&g, false);
	if (!g.aligned || (prot & ~7))
		want = -EINVAL;
	else if (!want && any_mapped(&g))
		want = -EEXIST;
	got = emm_map(mm, (void *)g.addr, g.len, &o);
	expect("emm_map", &g, got, want);
	if (got || want)
		return;
	for (long p = g.first; p < g.first + g.npages; p++)
		model[p] = (struct page_model){ 1, (unsigned char)prot, (unsigned char)guard, 0 };
}

static void op_unmap(void)
{
	struct range g = pick_range();
	int want = range_errno(&g, false), got = emm_unmap(mm, (void *)g.addr, g.len);

	expect("emm_unmap", &g, got, want);
	if (got || want)
		return;
	for (long p = g.first; p < g.first + g.npages; p++)
		model[p] = (struct page_model){ 0 };
}

static void op_protect(void)
{
	struct range g = pick_range();
	int prot = random_prot(), want = range_errno(&g, true), got;

	if (!g.aligned || (prot & ~7))
		want = -EINVAL;
	got = emm_protect(mm, (void *)g.addr, g.len, prot);
	expect("emm_protect", &g, got, want);
	if (got || want)
		return;
	for (long p = g.first; p < g.first + g.npages; p++)
		model[p].prot = (unsigned char)prot;
}

static void op_advise(void)
{
	static const int advice[] = {
		EMM_ADV_NORMAL, EMM_ADV_RANDOM, EMM_ADV_SEQUENTIAL, EMM_ADV_WILLNEED,
		EMM_ADV_DONTNEED, EMM_ADV_COLD, EMM_ADV_PAGEOUT, EMM_ADV_HUGEPAGE,
		EMM_ADV_NOHUGEPAGE, 1000,
	};
	struct range g = pick_range();
	int a = advice[below(sizeof(advice) / sizeof(advice[0]))], want = range_errno(&g, true), got;

	if (a == 1000 && g.aligned)
		want = -EINVAL;
	got = emm_advise(mm, (void *)g.addr, g.len, a);
	if (a == 1000 && got == -EINVAL)
		return;		/* which of the two errors comes first is not said */
	expect("emm_advise", &g, got, want);
	if (!got && a == EMM_ADV_DONTNEED)
		for (long p = g.first; p < g.first + g.npages; p++)
			model[p].gen = 0;
}

/* emm_pin and emm_prefault: EACCES where a VMA cannot be mapped. */
static void op_pin(void)
{
	struct range g = pick_range();
	int kind = (int)below(4), want = range_errno(&g, true), got;
	bool denied = false;

	for (long p = g.first; !want && p < g.first + g.npages; p++)
		denied |= model[p].guard || model[p].prot == EMM_PROT_NONE ||
			  (kind == 3 && !(model[p].prot & EMM_PROT_WRITE));
	switch (kind) {
	case 0: got = emm_pin(mm, (void *)g.addr, g.len); break;
	case 1: got = emm_unpin(mm, (void *)g.addr, g.len); denied = false; break;
	case 2: got = emm_prefault(mm, (void *)g.addr, g.len, 0); break;
	default: got = emm_prefault(mm, (void *)g.addr, g.len, 1); break;
	}
	if (denied)
		want = -EACCES;
	expect(kind == 0 ? "emm_pin" : kind == 1 ? "emm_unpin" : "emm_prefault", &g, got, want);
	/* A prefaulted readable page must now read without a fault. */
	if (!got && kind >= 2)
		for (long p = g.first; p < g.first + g.npages; p++)
			check_page((size_t)p);
}

static void op_sync(void)
{
	struct range g = pick_range();

	expect("emm_sync", &g, emm_sync(mm, (void *)g.addr, g.len), range_errno(&g, true));
}

static void op_budget(void)
{
	if (below(2)) {
		uint64_t bytes = below(8) ? (1 + below(4)) << 20 : below(1 << 20);
		int want = ((bytes + PAGE - 1) & ~(PAGE - 1)) < (1 << 20) ? -EINVAL : 0, got = emm_set_limit(mm, bytes);

		if (got != want)
			fail("emm_set_limit(%" PRIu64 ") = %d, model says %d", bytes, got, want);
	} else {
		uint64_t bytes = below(2 * RPAGES) * PAGE + (below(4) ? 0 : below(PAGE));
		long got = emm_reclaim(mm, bytes);

		if (got < 0 || (uint64_t)got > bytes + PAGE - 1 || got % (long)PAGE)
			fail("emm_reclaim(%" PRIu64 ") = %ld", bytes, got);
	}
}

/* Every page the model says is readable holds what the model says. */
static void verify_all(void)
{
	for (size_t pg = 0; pg < RPAGES; pg++)
		if (expected_access(pg, 0) == NONE)
			check_page(pg);
}

static void one_op(void)
{
	unsigned k = below(100);

	ops++;
	if (k < 30)
		op_access(0);
	else if (k < 55)
		op_access(1);
	else if (k < 67)
		op_map();
	else if (k < 71)
		op_unmap();
	else if (k < 79)
		op_protect();
	else if (k < 89)
		op_advise();
	else if (k < 95)
		op_pin();
	else if (k < 97)
		op_sync();
	else
		op_budget();
}

static void fuzz_open(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = RPAGES * PAGE / 4, .swap_size = 4 * RPAGES * PAGE);

	probe_install();
	if (emm_open(&o, &mm) || emm_reserve(mm, RPAGES * PAGE, (void **)&base))
		bail("emm_open/emm_reserve failed");
}

/* Back to an empty reservation and the first budget. */
static void fuzz_reset(void)
{
	if (emm_unmap(mm, base, RPAGES * PAGE) || emm_set_limit(mm, RPAGES * PAGE / 4))
		fail("reset failed");
	memset(model, 0, sizeof(model));
}

#ifdef FUZZ_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!mm)
		fuzz_open();
	from_input = 1;
	in_data = data;
	in_left = size;
	while (in_left)
		one_op();
	verify_all();
	fuzz_reset();
	return 0;
}
#else
static unsigned long env_ul(const char *name, unsigned long dflt)
{
	const char *s = getenv(name);

	return s && *s ? strtoul(s, NULL, 0) : dflt;
}

int main(void)
{
	unsigned long secs = env_ul("FUZZ_SECONDS", 0);
	unsigned long max_ops = secs ? ~0UL : 40000;
	long end;

	seed = env_ul("FUZZ_SEED", 0x5eed0600);
	if (!secs)
		secs = 30;	/* a bound for slow (sanitizer) builds */
	plan(5);
	diag("seed 0x%" PRIx64 " (FUZZ_SEED), %lu s at most", seed, secs);
	fuzz_open();
	end = now_ms() + (long)secs * 1000;
	while (ops < max_ops && fails <= MAX_FAILS && now_ms() < end) {
		for (int i = 0; i < 100; i++)
			one_op();
		if (ops % 5000 == 0)
			verify_all();
		if (ops % 100000 == 0)
			fuzz_reset();
	}
	verify_all();
	diag("%lu operations: %lu checked reads, %lu writes, %lu expected faults",
	     ops, reads, writes, faults_seen);
	is_int(fails, 0, "every call returned what the model says, every byte matched");
	ok(reads > 0 && writes > 0, "reads and writes were checked");
	ok(faults_seen > 0, "accesses the model forbids faulted");
	is_int(emm_release(mm, base), 0, "emm_release");
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
#endif
