/* SPDX-License-Identifier: MIT */
/* The options table: defaults, EMM_* environment variables, caller's options. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal.h"
#include "options.h"
#include "util.h"
#include "stats_shm.h"

enum opt_type { OPT_SIZE, OPT_UINT, OPT_ENUM, OPT_FLAG, OPT_STRING };

struct option {
	const char *name;		/* EMM_<name> */
	enum opt_type type;
	size_t off;			/* in struct emm_config */
	const char *const *words;	/* OPT_ENUM: value i is words[i] */
	unsigned bit;			/* OPT_FLAG */
	uint64_t max;			/* OPT_UINT: largest value */
};

static const char *const backend_words[] = { "auto", "signal", "uffd", "uffd-sigbus", NULL };
static const char *const thp_words[] = { "madvise", "always", "never", NULL };

#define CFG(f) offsetof(struct emm_config, f)
static const struct option options[] = {
	{ "MEM_LIMIT", OPT_SIZE, CFG(mem_limit), NULL, 0, 0 },
	{ "SWAP_PATH", OPT_STRING, CFG(swap_path), NULL, 0, 0 },
	{ "SWAP_SIZE", OPT_SIZE, CFG(swap_size), NULL, 0, 0 },
	{ "SWAP_MARGIN", OPT_SIZE, CFG(swap_margin), NULL, 0, 0 },
	{ "BACKEND", OPT_ENUM, CFG(backend), backend_words, 0, 0 },
	{ "THP", OPT_ENUM, CFG(thp), thp_words, 0, 0 },
	{ "SHOW_STATS", OPT_FLAG, CFG(flags), NULL, EMM_OPEN_SHOW_STATS, 0 },
	{ "VERBOSE", OPT_FLAG, CFG(flags), NULL, EMM_OPEN_VERBOSE, 0 },
	{ "NO_PAGEVEC", OPT_FLAG, CFG(flags), NULL, EMM_OPEN_NO_PAGEVEC, 0 },
	{ "NO_FORK_COPY", OPT_FLAG, CFG(flags), NULL, EMM_OPEN_NO_FORK_COPY, 0 },
	{ "FAULT_AROUND", OPT_UINT, CFG(fault_around), NULL, 0, 512 },
	{ "MAX_KERNEL_VMAS", OPT_UINT, CFG(max_kernel_vmas), NULL, 0, 1u << 30 },
	{ "WMARK_MIN", OPT_SIZE, CFG(wmark_min), NULL, 0, 0 },
	{ "WMARK_LOW", OPT_SIZE, CFG(wmark_low), NULL, 0, 0 },
	{ "WMARK_HIGH", OPT_SIZE, CFG(wmark_high), NULL, 0, 0 },
	{ "THP_MAX_PTES_NONE", OPT_UINT, CFG(thp_max_ptes_none), NULL, 0, 511 },
	{ "THP_SCAN_MS", OPT_UINT, CFG(thp_scan_ms), NULL, 0, 600000 },
	{ "STATS_SHM", OPT_FLAG, CFG(flags), NULL, CFG_STATS_SHM, 0 },
	{ "UFFD_THREADS", OPT_UINT, CFG(uffd_threads), NULL, 0, UFFD_THREADS_MAX },
	{ "INACTIVE_RATIO", OPT_UINT, CFG(inactive_ratio), NULL, 0, INACTIVE_RATIO_MAX },
	{ "UFFD_WP_ASYNC", OPT_FLAG, CFG(flags), NULL, CFG_WP_ASYNC, 0 },
	{ "WORKINGSET", OPT_FLAG, CFG(flags), NULL, CFG_WORKINGSET, 0 },
	{ "READAHEAD_ASYNC", OPT_FLAG, CFG(flags), NULL, CFG_RA_ASYNC, 0 },
	{ "COLD_REFAULT", OPT_FLAG, CFG(flags), NULL, CFG_COLD_REFAULT, 0 },
	{ "SWAP_SPIN", OPT_FLAG, CFG(flags), NULL, CFG_SWAP_SPIN, 0 },
};

/*
 * The size rule of every options and stats struct (API.md): its first field
 * is size_t sz, and any sz from there up to known_sz (the library's size)
 * is accepted; past known_sz, the caller's bytes must be zero.
 */
static int opts_check(const void *opts, size_t known_sz)
{
	const unsigned char *p = opts;
	size_t sz = *(const size_t *)opts;

	if (sz < sizeof(size_t))
		return -EINVAL;
	for (size_t i = known_sz; i < sz; i++)
		if (p[i])
			return -EINVAL;
	return 0;
}

/* Options in: what the caller's sz covers over defs (the library's struct
 * with every field at its default), into out. 0 or -EINVAL. */
int opts_get(void *out, const void *defs, const void *opts, size_t known_sz)
{
	int err = opts_check(opts, known_sz);

	if (err)
		return err;
	memcpy(out, defs, known_sz);
	memcpy(out, opts, MIN(*(const size_t *)opts, known_sz));
	*(size_t *)out = known_sz;
	return 0;
}

/* Statistics out: the library's stats (known_sz bytes) into the caller's
 * struct, never past its sz, which stays as it was. 0 or -EINVAL. */
int stats_put(void *st, const void *stats, size_t known_sz)
{
	size_t sz = *(const size_t *)st;
	int err = opts_check(st, known_sz);

	if (err)
		return err;
	memcpy(st, stats, MIN(sz, known_sz));
	*(size_t *)st = sz;
	return 0;
}

/* Sizes take K, M, G or T (powers of 1024), with an optional "B" or "iB". */
int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (shift && (!strcasecmp(end, "iB") || !strcasecmp(end, "B")))
		end += strlen(end);
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_word(const char *s, const char *const *words)
{
	for (int i = 0; words[i]; i++)
		if (!strcasecmp(s, words[i]))
			return i;
	return -1;
}

static int parse_bool(const char *s)
{
	if (!strcmp(s, "1") || !strcasecmp(s, "yes") || !strcasecmp(s, "true") ||
	    !strcasecmp(s, "on"))
		return 1;
	if (!strcmp(s, "0") || !strcasecmp(s, "no") || !strcasecmp(s, "false") ||
	    !strcasecmp(s, "off"))
		return 0;
	return -1;
}

/* Apply one environment value; a bad one warns and leaves the default. */
static void option_from_env(struct emm_config *cfg, const struct option *o, const char *v)
{
	char *field = (char *)cfg + o->off;
	uint64_t n;
	int i;

	switch (o->type) {
	case OPT_SIZE:
		if (parse_size(v, &n) == 0) {
			*(uint64_t *)field = n;
			return;
		}
		break;
	case OPT_UINT:
		if (parse_size(v, &n) == 0 && n <= o->max) {
			*(unsigned *)field = (unsigned)n;
			return;
		}
		break;
	case OPT_ENUM:
		if ((i = parse_word(v, o->words)) >= 0) {
			*(int *)field = i;
			return;
		}
		break;
	case OPT_FLAG:
		if ((i = parse_bool(v)) >= 0) {
			*(unsigned *)field = i ? (*(unsigned *)field | o->bit)
					       : (*(unsigned *)field & ~o->bit);
			return;
		}
		break;
	case OPT_STRING:
		if (*v) {
			free(*(char **)field);
			*(char **)field = strdup(v);
			return;
		}
		break;
	}
	emm_warn("ignoring EMM_%s=%s: not a valid value", o->name, v);
}

static void config_env(struct emm_config *cfg)
{
	char name[64];

	for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
		const char *v;

		strcpy(name, "EMM_");
		strcat(name, options[i].name);
		v = getenv(name);
		if (v)
			option_from_env(cfg, &options[i], v);
	}
}

static int config_caller(struct emm_config *cfg, const struct emm_opts *o)
{
	if (o->backend < EMM_BACKEND_AUTO || o->backend > EMM_BACKEND_UFFD_SIGBUS ||
	    o->thp < EMM_THP_MADVISE || o->thp > EMM_THP_NEVER ||
	    (o->flags & ~(EMM_OPEN_SHOW_STATS | EMM_OPEN_VERBOSE | EMM_OPEN_NO_PAGEVEC |
			  EMM_OPEN_NO_FORK_COPY)) ||
	    o->fault_around > 512 || o->thp_max_ptes_none < -1 || o->thp_max_ptes_none > 511 ||
	    o->thp_scan_ms > 600000 || o->uffd_threads > UFFD_THREADS_MAX ||
	    o->inactive_ratio > INACTIVE_RATIO_MAX)
		return -EINVAL;
	if (o->mem_limit)
		cfg->mem_limit = o->mem_limit;
	if (o->swap_path) {
		free(cfg->swap_path);
		if (!(cfg->swap_path = strdup(o->swap_path)))
			return -ENOMEM;
	}
	if (o->swap_size)
		cfg->swap_size = o->swap_size;
	if (o->swap_margin)
		cfg->swap_margin = o->swap_margin;
	if (o->backend)
		cfg->backend = o->backend;
	if (o->thp)
		cfg->thp = o->thp;
	cfg->flags |= o->flags;
	if (o->fault_around)
		cfg->fault_around = o->fault_around;
	if (o->max_kernel_vmas)
		cfg->max_kernel_vmas = o->max_kernel_vmas;
	if (o->wmark_min)
		cfg->wmark_min = o->wmark_min;
	if (o->wmark_low)
		cfg->wmark_low = o->wmark_low;
	if (o->wmark_high)
		cfg->wmark_high = o->wmark_high;
	cfg->oom = o->oom;
	cfg->oom_arg = o->oom_arg;
	if (o->thp_max_ptes_none)
		cfg->thp_max_ptes_none = o->thp_max_ptes_none < 0 ? 0 : o->thp_max_ptes_none;
	else if (!cfg->thp_max_ptes_set)
		cfg->thp_max_ptes_none = 64;
	if (o->thp_scan_ms)
		cfg->thp_scan_ms = o->thp_scan_ms;
	if (o->uffd_threads)
		cfg->uffd_threads = o->uffd_threads;
	if (o->inactive_ratio)
		cfg->inactive_ratio = o->inactive_ratio;
	return 0;
}

static uint64_t half_of_ram(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);

	return pages > 0 ? (uint64_t)pages * PAGE_SIZE / 2 : 1ULL << 30;
}

/* The limit and watermarks came from the environment and do not fit
 * together: warn, and keep the defaults, as for any bad value. */
static int config_env_fallback(struct emm_config *cfg)
{
	emm_warn("ignoring EMM_MEM_LIMIT and EMM_WMARK_*: need a limit of 1M or more and "
		 "min < low < high <= limit/2");
	cfg->wmark_min_set = cfg->wmark_low_set = cfg->wmark_high_set = false;
	return config_limit(cfg, half_of_ram(), false);
}

/* Defaults, then the environment, then what the caller set. */
int config_load(struct emm_config *cfg, const struct emm_opts *opts)
{
	static const struct emm_opts zero = { .sz = sizeof(zero) };
	struct emm_opts o = zero;
	int err;

	if (opts && (err = opts_get(&o, &zero, opts, sizeof(o))))
		return err;
	memset(cfg, 0, sizeof(*cfg));
	/* on unless EMM_STATS_SHM=0, EMM_UFFD_WP_ASYNC=0, EMM_WORKINGSET=0,
	 * EMM_READAHEAD_ASYNC=0, EMM_COLD_REFAULT=0, EMM_SWAP_SPIN=0 */
	cfg->flags = CFG_STATS_SHM | CFG_WP_ASYNC | CFG_WORKINGSET | CFG_RA_ASYNC | CFG_COLD_REFAULT |
		     CFG_SWAP_SPIN;
	cfg->thp_max_ptes_none = -1;	/* marks "not set by the environment" */
	config_env(cfg);
	cfg->thp_max_ptes_set = cfg->thp_max_ptes_none >= 0;
	err = config_caller(cfg, &o);
	if (err) {
		config_free(cfg);
		return err;
	}
	cfg->wmark_min_set = cfg->wmark_min != 0;
	cfg->wmark_low_set = cfg->wmark_low != 0;
	cfg->wmark_high_set = cfg->wmark_high != 0;
	if (!cfg->mem_limit)
		cfg->mem_limit = half_of_ram();
	if (!cfg->fault_around)
		cfg->fault_around = 16;
	if (!cfg->thp_scan_ms)
		cfg->thp_scan_ms = 100;
	if (!cfg->inactive_ratio)
		cfg->inactive_ratio = INACTIVE_RATIO_DEFAULT;
	/* The window is an aligned group: a power of two. */
	while (cfg->fault_around & (cfg->fault_around - 1))
		cfg->fault_around &= cfg->fault_around - 1;
	err = config_limit(cfg, cfg->mem_limit, o.wmark_min || o.wmark_low || o.wmark_high);
	if (err && !(o.mem_limit || o.wmark_min || o.wmark_low || o.wmark_high))
		err = config_env_fallback(cfg);
	if (err)
		config_free(cfg);
	return err;
}

/* Watermark defaults: fractions of the limit, at least a few batches. */
static uint64_t wmark_default(uint64_t limit, unsigned shift, unsigned min_pages)
{
	return ALIGN_UP(MAX(limit >> shift, (uint64_t)min_pages * PAGE_SIZE), PAGE_SIZE);
}

/*
 * A new limit: watermarks the caller did not set follow it. -EINVAL when
 * the limit is below 1 MiB or the watermarks are not min < low < high <
 * limit / 2.
 */
int config_limit(struct emm_config *cfg, uint64_t limit, bool strict)
{
	uint64_t min, low, high;

	limit = ALIGN_UP(limit, PAGE_SIZE);
	if (limit < (1ULL << 20))
		return -EINVAL;
	min = cfg->wmark_min_set ? ALIGN_DOWN(cfg->wmark_min, PAGE_SIZE) : wmark_default(limit, 8, 32);
	low = cfg->wmark_low_set ? ALIGN_DOWN(cfg->wmark_low, PAGE_SIZE)
				 : MAX(wmark_default(limit, 6, 64), 2 * min);
	high = cfg->wmark_high_set ? ALIGN_DOWN(cfg->wmark_high, PAGE_SIZE)
				   : MAX(wmark_default(limit, 5, 128), 2 * low);
	if (!(min < low && low < high && high <= limit / 2)) {
		if (strict || cfg->wmark_min_set || cfg->wmark_low_set || cfg->wmark_high_set)
			return -EINVAL;
		min = limit / 16, low = limit / 8, high = limit / 4;
	}
	cfg->mem_limit = limit;
	cfg->wmark_min = ALIGN_DOWN(min, PAGE_SIZE);
	cfg->wmark_low = ALIGN_DOWN(low, PAGE_SIZE);
	cfg->wmark_high = ALIGN_DOWN(high, PAGE_SIZE);
	return 0;
}

void config_free(struct emm_config *cfg)
{
	free(cfg->swap_path);
	cfg->swap_path = NULL;
}
