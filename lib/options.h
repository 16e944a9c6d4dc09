/* SPDX-License-Identifier: MIT */
/* The options table: defaults, EMM_* variables, the caller's options structs. */
#ifndef EMM_OPTIONS_H
#define EMM_OPTIONS_H

#include "internal.h"

int opts_check(const void *opts, size_t opts_sz, size_t min_sz, size_t known_sz);
int config_load(struct emm_config *cfg, const struct emm_opts *opts);
int config_limit(struct emm_config *cfg, uint64_t limit, bool strict);
void config_free(struct emm_config *cfg);
int parse_size(const char *s, uint64_t *out);

#endif /* EMM_OPTIONS_H */
