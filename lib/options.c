/* SPDX-License-Identifier: MIT */
/* The options table: defaults, EMM_* environment variables, caller's options. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal.h"

enum opt_type { OPT_SIZE, OPT_UINT, OPT_ENUM, OPT_FLAG, OPT_STRING };

struct option {
	const char *name;		/* EMM_<name> */
	enum opt_type type;
	size_t off;			/* in struct emm_config */
	const char *const *words;	/* OPT_ENUM: value i is words[i] */
	unsigned bit;			/* OPT_FLAG */
	uint64_t max;			/* OPT_UINT: largest value */
};

static const char *const backend_words[] = { "auto", "signal", "uffd", NULL };
static const char *const thp_words[] = { "madvise", "always", "never", NULL };

#define CFG(f) offsetof(struct emm_config, f)
static const struct option options[] = {
	{ "MEM_LIMIT", OPT_SIZE, CFG(mem_limit), NULL, 0, 0 },
	{ "SWAP_PATH", OPT_STRING, CFG(swap_path), NULL, 0, 0 },
	{ "SWAP_SIZE", OPT_SIZE, CFG(swap_size), NULL, 0, 0 },
	{ "BACKEND", OPT_ENUM, CFG(backend), backend_words, 0, 0 },
	{ "THP", OPT_ENUM, CFG(thp), thp_words, 0, 0 },
	{ "SHOW_STATS", OPT_FLAG, CFG(flags), NULL, EMM_OPEN_SHOW_STATS, 0 },
	{ "VERBOSE", OPT_FLAG, CFG(flags), NULL, EMM_OPEN_VERBOSE, 0 },
	{ "FAULT_AROUND", OPT_UINT, CFG(fault_around), NULL, 0, 512 },
	{ "MAX_KERNEL_VMAS", OPT_UINT, CFG(max_kernel_vmas), NULL, 0, 1u << 30 },
};

int opts_check(const void *opts, size_t opts_sz, size_t min_sz, size_t known_sz)
{
	const unsigned char *p = opts;

	if (opts_sz < min_sz)
		return -EINVAL;
	for (size_t i = known_sz; i < opts_sz; i++)
		if (p[i])
			return -EINVAL;
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
	if (o->backend < EMM_BACKEND_AUTO || o->backend > EMM_BACKEND_UFFD ||
	    o->thp < EMM_THP_MADVISE || o->thp > EMM_THP_NEVER ||
	    (o->flags & ~(EMM_OPEN_SHOW_STATS | EMM_OPEN_VERBOSE)) ||
	    o->fault_around > 512)
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
	if (o->backend)
		cfg->backend = o->backend;
	if (o->thp)
		cfg->thp = o->thp;
	cfg->flags |= o->flags;
	if (o->fault_around)
		cfg->fault_around = o->fault_around;
	if (o->max_kernel_vmas)
		cfg->max_kernel_vmas = o->max_kernel_vmas;
	return 0;
}

static uint64_t half_of_ram(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);

	return pages > 0 ? (uint64_t)pages * PAGE_SIZE / 2 : 1ULL << 30;
}

/* Defaults, then the environment, then what the caller set. */
int config_load(struct emm_config *cfg, const struct emm_opts *opts)
{
	struct emm_opts zero = { .sz = sizeof(zero) };
	size_t min_sz = offsetof(struct emm_opts, flags) + sizeof(opts->flags);
	struct emm_opts o = zero;
	int err;

	if (opts) {
		err = opts_check(opts, opts->sz, min_sz, sizeof(*opts));
		if (err)
			return err;
		memcpy(&o, opts, MIN(opts->sz, sizeof(o)));
	}
	memset(cfg, 0, sizeof(*cfg));
	config_env(cfg);
	err = config_caller(cfg, &o);
	if (err) {
		config_free(cfg);
		return err;
	}
	if (!cfg->mem_limit)
		cfg->mem_limit = half_of_ram();
	cfg->mem_limit = ALIGN_UP(cfg->mem_limit, PAGE_SIZE);
	if (!cfg->swap_size)
		cfg->swap_size = 4 * cfg->mem_limit;
	if (!cfg->fault_around)
		cfg->fault_around = 16;
	return 0;
}

void config_free(struct emm_config *cfg)
{
	free(cfg->swap_path);
	cfg->swap_path = NULL;
}
