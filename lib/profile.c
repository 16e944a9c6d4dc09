/* SPDX-License-Identifier: MIT */
/* The fault profile: EMM_PROFILE samples faults, records their backtraces in a fixed table, reports the top sites. */
#define UNW_LOCAL_ONLY
#include <errno.h>
#include <inttypes.h>
#include <libunwind.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "profile.h"
#include "pte.h"
#include "util.h"
#include "vma.h"

#define PROF_DEPTH	16		/* frames kept per sample */
#define PROF_NAME	56		/* bytes of a frame's symbol */
#define PROF_STACKS	1024		/* distinct backtraces kept */
#define PROF_PROBES	32		/* slots an insertion looks at */
#define PROF_TOP	10		/* sites the report shows */
#define PROF_CALLERS	4		/* callers shown per site */
#define PROF_REGIONS	64		/* sites per VMA, without a backtrace */
#define PROF_REGION_MIN	(64u << 10)	/* the smallest region a site covers */

enum { PROF_MAJOR, PROF_ALL };
enum { SLOT_EMPTY, SLOT_FILLING, SLOT_READY };

/* One distinct backtrace: frame 0 is the faulting instruction. */
struct prof_stack {
	_Atomic uint32_t state;		/* SLOT_*; READY is published with release */
	uint32_t depth;
	uint64_t hash;
	_Atomic uint64_t count;
	uintptr_t ip[PROF_DEPTH];
	uintptr_t off[PROF_DEPTH];	/* from the symbol's start */
	char name[PROF_DEPTH][PROF_NAME];	/* "" when libunwind knows none */
};

struct profile {
	int mode;
	_Atomic bool regions;		/* sites are regions of VMAs, not code */
	unsigned rate;			/* one fault in rate is sampled */
	char *file;			/* EMM_PROFILE_FILE, or NULL */
	_Atomic uint64_t seen;		/* faults of the sampled kind */
	_Atomic uint64_t samples, lost;	/* recorded; not recorded: table full */
	bool reported;			/* printed at exit already */
	struct emm *mm;
	struct profile *next;		/* instances profiled, for the exit report */
	struct prof_stack stack[PROF_STACKS];
};

static pthread_mutex_t profiles_lock = PTHREAD_MUTEX_INITIALIZER;
static struct profile *profiles;
static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;

/* Async-signal-safe. A cursor at the frame the signal interrupted. */
static int unwind_init(unw_cursor_t *cursor, unw_context_t *ctx, void *uc)
{
#if defined(__x86_64__)
	(void)ctx;
	return unw_init_local2(cursor, (unw_context_t *)uc, UNW_INIT_SIGNAL_FRAME);
#else
	/* Unwind the handler's own frames up to the signal frame. */
	(void)uc;
	if (unw_getcontext(ctx) < 0 || unw_init_local(cursor, ctx) < 0)
		return -1;
	while (unw_is_signal_frame(cursor) <= 0)
		if (unw_step(cursor) <= 0)
			return -1;
	return unw_step(cursor) > 0 ? 0 : -1;
#endif
}

/* Async-signal-safe. The interrupted thread's return addresses. */
static unsigned collect(void *uc, uintptr_t *ip)
{
	unw_cursor_t cursor;
	unw_context_t ctx;
	unsigned n = 0;

	if (unwind_init(&cursor, &ctx, uc) < 0)
		return 0;
	do {
		unw_word_t w = 0;

		unw_get_reg(&cursor, UNW_REG_IP, &w);
		ip[n++] = (uintptr_t)w;
	} while (n < PROF_DEPTH && unw_step(&cursor) > 0);
	return n;
}

/* Async-signal-safe. Symbol names of a new backtrace: a second unwind of
 * the signal's context uc, only the first time a backtrace is seen. */
static void name_frames(struct prof_stack *s, const void *uc)
{
	unw_cursor_t cursor;
	unw_context_t ctx;

	if (unwind_init(&cursor, &ctx, (void *)uc) < 0)
		return;
	for (unsigned i = 0; i < s->depth; i++) {
		unw_word_t off = 0;

		if (unw_get_proc_name(&cursor, s->name[i], PROF_NAME, &off) == 0)
			s->off[i] = (uintptr_t)off;
		else
			s->name[i][0] = '\0';
		if (unw_step(&cursor) <= 0)
			break;
	}
}

/* Async-signal-safe. */
static uint64_t hash_ips(const uintptr_t *ip, unsigned n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (unsigned i = 0; i < n; i++)
		h = (h ^ ip[i]) * 0x100000001b3ull;
	/* The low bits pick the slot: mix every bit into them (splitmix64's
	 * finalizer), or addresses a multiple of the table's size apart would
	 * crowd the same few slots. */
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

/* Async-signal-safe. Count the backtrace in its slot, claiming an empty one
 * for a new backtrace, whose frames name() then names; a slot being filled
 * by another thread is passed by (the same backtrace may then get two
 * slots; the report adds them up). */
static void record(struct profile *p, const uintptr_t *ip, unsigned n,
		   void (*name)(struct prof_stack *s, const void *arg), const void *arg)
{
	uint64_t h = hash_ips(ip, n);

	for (unsigned i = 0; i < PROF_PROBES; i++) {
		struct prof_stack *s = &p->stack[(h + i) % PROF_STACKS];
		uint32_t st = atomic_load_explicit(&s->state, memory_order_acquire);

		if (st == SLOT_READY && s->hash == h && s->depth == n &&
		    !memcmp(s->ip, ip, n * sizeof(*ip))) {
			atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&p->samples, 1, memory_order_relaxed);
			return;
		}
		if (st != SLOT_EMPTY ||
		    !atomic_compare_exchange_strong_explicit(&s->state, &st, SLOT_FILLING,
							     memory_order_relaxed,
							     memory_order_relaxed))
			continue;
		s->hash = h;
		s->depth = n;
		memcpy(s->ip, ip, n * sizeof(*ip));
		name(s, arg);
		atomic_store_explicit(&s->count, 1, memory_order_relaxed);
		/* Release: a reader that sees READY sees the frames. */
		atomic_store_explicit(&s->state, SLOT_READY, memory_order_release);
		atomic_fetch_add_explicit(&p->samples, 1, memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&p->lost, 1, memory_order_relaxed);
}

/* Async-signal-safe. Will this fault read from the swap file, a file or a
 * pager? A look at the PTE before the fault path locks it. */
static bool fault_is_major(struct rsv *r, uintptr_t addr)
{
	const struct emm_vma *vma = find_vma(r, addr);
	uint64_t pte = atomic_load_explicit(pte_of(r, ALIGN_DOWN(addr, PAGE_SIZE)),
					    memory_order_relaxed);

	switch (pte_state(pte)) {
	case PTE_SWAPPED: return true;
	case PTE_NONE: return vma && (vma->policy == EMM_POLICY_FILE || vma->policy == EMM_POLICY_PAGER);
	default: return false;
	}
}

/* Async-signal-safe. "vma@0x<start>", without snprintf. */
static void vma_name(char *buf, uintptr_t start)
{
	static const char hex[] = "0123456789abcdef";
	char digits[2 * sizeof(start)];
	unsigned n = 0;

	do {
		digits[n++] = hex[start & 15];
		start >>= 4;
	} while (start);
	memcpy(buf, "vma@0x", 6);
	buf += 6;
	while (n)
		*buf++ = digits[--n];
	*buf = '\0';
}

/* Async-signal-safe. A region's one frame: named after its VMA, the
 * region's offset in it. */
static void name_region(struct prof_stack *s, const void *vma)
{
	uintptr_t start = ((const struct emm_vma *)vma)->start;

	s->off[0] = s->ip[0] - start;
	vma_name(s->name[0], start);
}

/* Async-signal-safe. The site of a fault where no backtrace can be had: the
 * region of its VMA, one of at most PROF_REGIONS, each a power of two of
 * at least PROF_REGION_MIN bytes, recorded as a backtrace of one frame,
 * the region's start. */
static void record_region(struct profile *p, struct rsv *r, uintptr_t addr)
{
	const struct emm_vma *vma = find_vma(r, addr);
	uintptr_t region = PROF_REGION_MIN, ip;

	if (!vma) {
		atomic_fetch_add_explicit(&p->lost, 1, memory_order_relaxed);
		return;
	}
	while (region * PROF_REGIONS < vma->end - vma->start)
		region <<= 1;
	ip = vma->start + ALIGN_DOWN(addr - vma->start, region);
	record(p, &ip, 1, name_region, vma);
}

/*
 * Async-signal-safe; profile_fault (profile.h) with profiling on: sample
 * the fault if it is of the kind and its turn. uc is the signal's context
 * in the faulting thread; NULL on a thread that serves another's fault
 * (the uffd backend), where the site is the VMA and offset. No allocation,
 * no lock.
 */
void profile_sample(struct rsv *r, uintptr_t addr, void *uc)
{
	struct profile *p = r->mm->profile;
	uintptr_t ip[PROF_DEPTH];
	unsigned n;

	if (p->mode == PROF_MAJOR && !fault_is_major(r, addr))
		return;
	if (atomic_fetch_add_explicit(&p->seen, 1, memory_order_relaxed) % p->rate)
		return;
	if (!uc) {
		atomic_store_explicit(&p->regions, true, memory_order_relaxed);
		record_region(p, r, addr);
		return;
	}
	n = collect(uc, ip);
	if (n)
		record(p, ip, n, name_frames, uc);
}

/* ---- reports: outside the fault path ---- */

/* "major", "all", "major:100", "all:10": the kind and one-in-rate. */
static int parse_spec(const char *s, int *mode, unsigned *rate)
{
	size_t len = strcspn(s, ":");
	char *end;
	unsigned long r = 1;

	if (len == 5 && !strncasecmp(s, "major", 5))
		*mode = PROF_MAJOR;
	else if (len == 3 && !strncasecmp(s, "all", 3))
		*mode = PROF_ALL;
	else
		return -EINVAL;
	if (s[len]) {
		errno = 0;
		r = strtoul(s + len + 1, &end, 10);
		if (errno || *end || r == 0 || r > UINT32_MAX)
			return -EINVAL;
	}
	*rate = (unsigned)r;
	return 0;
}

/* A frame as the report names it: symbol+0xoff, or the bare address. */
static void frame_name(const struct prof_stack *s, unsigned i, bool off, char *buf, size_t len)
{
	if (!s->name[i][0])
		snprintf(buf, len, "0x%" PRIxPTR, s->ip[i]);
	else if (off)
		snprintf(buf, len, "%s+0x%" PRIxPTR, s->name[i], s->off[i]);
	else
		snprintf(buf, len, "%s", s->name[i]);
}

struct site {
	const struct prof_stack *top;	/* its most sampled backtrace */
	uint64_t count;
};

static int site_cmp(const void *a, const void *b)
{
	const struct site *x = a, *y = b;

	return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

/* Sum the backtraces by faulting instruction; sites sorted by count. */
static size_t gather_sites(const struct profile *p, struct site *sites)
{
	size_t n = 0;

	for (size_t i = 0; i < PROF_STACKS; i++) {
		const struct prof_stack *s = &p->stack[i];
		uint64_t c;
		size_t j;

		if (atomic_load_explicit(&s->state, memory_order_acquire) != SLOT_READY)
			continue;
		c = atomic_load_explicit(&s->count, memory_order_relaxed);
		for (j = 0; j < n && sites[j].top->ip[0] != s->ip[0]; j++)
			;
		if (j == n)
			sites[n++] = (struct site){ s, 0 };
		sites[j].count += c;
		if (c > atomic_load_explicit(&sites[j].top->count, memory_order_relaxed))
			sites[j].top = s;
	}
	qsort(sites, n, sizeof(*sites), site_cmp);
	return n;
}

static void print_site(const struct site *st, uint64_t total,
		       void (*out)(const char *line, void *arg), void *arg)
{
	char line[640], frame[PROF_NAME + 24];
	size_t len;

	frame_name(st->top, 0, true, frame, sizeof(frame));
	len = (size_t)snprintf(line, sizeof(line), "emm:   %8" PRIu64 " %5.1f%%  %s", st->count,
			       100.0 * (double)st->count / (double)(total ? total : 1), frame);
	for (unsigned i = 1; i < st->top->depth && i <= PROF_CALLERS && len < sizeof(line); i++) {
		frame_name(st->top, i, true, frame, sizeof(frame));
		len += (size_t)snprintf(line + len, sizeof(line) - len, " <- %s", frame);
	}
	out(line, arg);
}

static void report(const struct profile *p, void (*out)(const char *line, void *arg), void *arg)
{
	struct site *sites = malloc(PROF_STACKS * sizeof(*sites));
	uint64_t samples = atomic_load(&p->samples);
	char line[256];
	size_t n;

	snprintf(line, sizeof(line), "emm: fault profile: %s faults, 1 in %u sampled: %" PRIu64
		 " samples, %" PRIu64 " not recorded (table full)",
		 p->mode == PROF_MAJOR ? "major" : "all", p->rate, samples, atomic_load(&p->lost));
	out(line, arg);
	if (!sites)
		return;
	n = gather_sites(p, sites);
	if (n && atomic_load_explicit(&p->regions, memory_order_relaxed))
		out("emm:    samples      %  site (vma@start+offset: the faulting code is not "
		    "seen on this backend's service threads)", arg);
	else if (n)
		out("emm:    samples      %  site (the faulting instruction) <- its callers", arg);
	for (size_t i = 0; i < n && i < PROF_TOP; i++)
		print_site(&sites[i], samples, out, arg);
	free(sites);
}

/* Collapsed stacks, root first, as flame-graph tools read them. */
static void write_collapsed(const struct profile *p, FILE *f)
{
	char frame[PROF_NAME + 24];

	for (size_t i = 0; i < PROF_STACKS; i++) {
		const struct prof_stack *s = &p->stack[i];

		if (atomic_load_explicit(&s->state, memory_order_acquire) != SLOT_READY)
			continue;
		for (unsigned j = s->depth; j-- > 0;) {
			frame_name(s, j, false, frame, sizeof(frame));
			fprintf(f, "%s%s", frame, j ? ";" : "");
		}
		fprintf(f, " %" PRIu64 "\n", atomic_load_explicit(&s->count, memory_order_relaxed));
	}
}

static void to_stderr(const char *line, void *arg)
{
	(void)arg;
	fprintf(stderr, "%s\n", line);
}

/* The report on stderr, and the collapsed stacks appended to the file. */
static void final_report(struct profile *p)
{
	FILE *f;

	report(p, to_stderr, NULL);
	if (!p->file)
		return;
	f = fopen(p->file, "a");
	if (!f) {
		emm_warn("cannot write the fault profile to %s: %s", p->file, strerror(errno));
		return;
	}
	write_collapsed(p, f);
	fclose(f);
}

/* A program that exits without emm_close still gets its profiles. */
static void report_at_exit(void)
{
	pthread_mutex_lock(&profiles_lock);
	for (struct profile *p = profiles; p; p = p->next) {
		final_report(p);
		p->reported = true;
	}
	pthread_mutex_unlock(&profiles_lock);
}

static void register_atexit(void)
{
	atexit(report_at_exit);
}

int profile_open(struct emm *mm)
{
	const char *spec = getenv("EMM_PROFILE"), *file = getenv("EMM_PROFILE_FILE");
	struct profile *p;
	unsigned rate;
	int mode;

	if (!spec || !*spec)
		return 0;
	if (parse_spec(spec, &mode, &rate) < 0) {
		emm_warn("ignoring EMM_PROFILE=%s: not a valid value", spec);
		return 0;
	}
	p = calloc(1, sizeof(*p));
	if (!p || (file && *file && !(p->file = strdup(file)))) {
		free(p);
		return -ENOMEM;
	}
	p->mode = mode;
	p->rate = rate;

	p->mm = mm;
	pthread_once(&atexit_once, register_atexit);
	pthread_mutex_lock(&profiles_lock);
	p->next = profiles;
	profiles = p;
	pthread_mutex_unlock(&profiles_lock);
	mm->profile = p;
	return 0;
}

/* At emm_close: the report (unless exit already printed it), then free. */
void profile_close(struct emm *mm)
{
	struct profile *p = mm->profile, **pp;

	if (!p)
		return;
	pthread_mutex_lock(&profiles_lock);
	for (pp = &profiles; *pp != p; pp = &(*pp)->next)
		;
	*pp = p->next;
	pthread_mutex_unlock(&profiles_lock);
	if (!p->reported)
		final_report(p);
	mm->profile = NULL;
	free(p->file);
	free(p);
}

EMM_API int emm_profile_dump(struct emm *mm, void (*out)(const char *line, void *arg), void *arg)
{
	if (!mm)
		return -EINVAL;
	if (!mm->profile)
		return -ENODATA;
	report(mm->profile, out ? out : to_stderr, arg);
	return 0;
}
