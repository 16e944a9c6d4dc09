/* SPDX-License-Identifier: MIT */
/* Statistics: emm_stats, emm_stats_print, and the per-node view. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "internal.h"
#include "options.h"
#include "stats_shm.h"
#include "swap.h"

#define LOAD(mm, f) atomic_load_explicit(&(mm)->c.f, memory_order_relaxed)

static void stats_fill(struct emm *mm, struct emm_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->sz = sizeof(*s);
	s->resident_bytes = LOAD(mm, resident_pages) * PAGE_SIZE;
	s->limit_bytes = mm->cfg.mem_limit;
	s->faults = LOAD(mm, faults);
	s->faults_minor = LOAD(mm, faults_minor);
	s->faults_major = LOAD(mm, faults_major);
	s->faults_zero = LOAD(mm, faults_zero);
	s->faults_wp = LOAD(mm, faults_wp);
	s->faults_bad = LOAD(mm, faults_bad);
	s->swapins = LOAD(mm, swapins);
	s->swapouts = LOAD(mm, swapouts);
	s->pgscan = LOAD(mm, pgscan);
	s->pgsteal = LOAD(mm, pgsteal);
	s->pgactivate = LOAD(mm, pgactivate);
	s->pgdeactivate = LOAD(mm, pgdeactivate);
	s->thp_collapse = LOAD(mm, thp_collapse);
	s->thp_collapse_failed = LOAD(mm, thp_collapse_failed);
	s->thp_split = LOAD(mm, thp_split);
	s->io_errors = LOAD(mm, io_errors);
	s->oom_events = LOAD(mm, oom_events);
	s->writebacks = LOAD(mm, writebacks);
	s->workingset_refault = LOAD(mm, workingset_refault);
	s->workingset_activate = LOAD(mm, workingset_activate);
	s->move_swapped = LOAD(mm, move_swapped);
	s->allocstall = LOAD(mm, allocstall);
	s->pgsteal_direct = LOAD(mm, pgsteal_direct);
	s->revoke_around = LOAD(mm, revoke_around);
	s->revokes = LOAD(mm, revokes);
	s->refault_around = LOAD(mm, refault_around);
	s->huge_bytes = (uint64_t)MAX(LOAD(mm, thp_extents), 0) * PMD_SIZE;
	if (mm->swap) {
		s->swap_used_bytes = swap_slots_used(mm->swap) * PAGE_SIZE;
		s->swap_total_bytes = swap_slots_total(mm->swap) * PAGE_SIZE;
	}
	s->kernel_vmas = (uint64_t)LOAD(mm, kernel_vmas);
	s->vmas = LOAD(mm, vmas);	/* lock-free: callbacks may ask */
}

EMM_API int emm_stats(struct emm *mm, struct emm_stats *st)
{
	struct emm_stats s;

	if (!mm || !st)
		return -EINVAL;
	if (mm_foreign(mm))
		return -ECHILD;	/* backend_quiesce would wait for threads the child has not */
	backend_quiesce(mm);
	stats_fill(mm, &s);
	return stats_put(st, &s, sizeof(s));
}

/* Every field of struct emm_stats after sz: emm_stats_print and the
 * statistics page name them so. */
const struct stats_field stats_fields[] = {
#define F(x) { #x, offsetof(struct emm_stats, x) }
	F(resident_bytes), F(limit_bytes), F(swap_used_bytes), F(swap_total_bytes),
	F(faults), F(faults_minor), F(faults_major), F(faults_zero), F(faults_wp),
	F(faults_bad), F(swapins), F(swapouts), F(pgscan), F(pgsteal),
	F(pgactivate), F(pgdeactivate), F(thp_collapse), F(thp_collapse_failed),
	F(thp_split), F(io_errors), F(kernel_vmas), F(vmas), F(oom_events), F(writebacks), F(huge_bytes),
	F(workingset_refault), F(workingset_activate), F(move_swapped),
	F(allocstall), F(pgsteal_direct), F(revoke_around), F(revokes), F(refault_around),
#undef F
};
const size_t nr_stats_fields = ARRAY_SIZE(stats_fields);

static void default_out(const char *line, void *arg)
{
	(void)arg;
	fprintf(stderr, "%s\n", line);
}

EMM_API void emm_stats_print(struct emm *mm, void (*out)(const char *line, void *arg), void *arg)
{
	struct emm_stats s;
	char line[96];

	if (!mm || mm_foreign(mm))
		return;
	stats_fill(mm, &s);
	for (size_t i = 0; i < nr_stats_fields; i++) {
		snprintf(line, sizeof(line), "%-20s %" PRIu64, stats_fields[i].name,
			 *(const uint64_t *)((const char *)&s + stats_fields[i].off));
		(out ? out : default_out)(line, arg);
	}
}
