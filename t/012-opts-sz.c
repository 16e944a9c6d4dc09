/* SPDX-License-Identifier: MIT */
/* Every options and stats struct at every field boundary of sz: shorter takes defaults, a stats call writes nothing past sz, longer needs zeros. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "emm.h"
#include "tap.h"

#define PAGE	4096UL
#define F(type, field)	(offsetof(struct type, field) + sizeof(((struct type *)0)->field))

/* Where each field of each struct ends: every sz a program built against
 * an older header may pass. */
static const size_t opts_ends[] = {
	F(emm_opts, sz), F(emm_opts, mem_limit), F(emm_opts, swap_path), F(emm_opts, swap_size),
	F(emm_opts, backend), F(emm_opts, thp), F(emm_opts, flags), F(emm_opts, fault_around),
	F(emm_opts, max_kernel_vmas), F(emm_opts, wmark_min), F(emm_opts, wmark_low),
	F(emm_opts, wmark_high), F(emm_opts, oom), F(emm_opts, oom_arg),
	F(emm_opts, thp_max_ptes_none), F(emm_opts, thp_scan_ms), F(emm_opts, uffd_threads),
	F(emm_opts, swap_margin), sizeof(struct emm_opts),
};
static const size_t map_ends[] = {
	F(emm_map_opts, sz), F(emm_map_opts, prot), F(emm_map_opts, policy), F(emm_map_opts, fd),
	F(emm_map_opts, offset), F(emm_map_opts, pager), F(emm_map_opts, pager_arg),
	F(emm_map_opts, trap), F(emm_map_opts, trap_arg), F(emm_map_opts, flags),
	F(emm_map_opts, numa_policy), F(emm_map_opts, numa_nodes), sizeof(struct emm_map_opts),
};
static const size_t stats_ends[] = {
	F(emm_stats, sz), F(emm_stats, resident_bytes), F(emm_stats, limit_bytes),
	F(emm_stats, swap_used_bytes), F(emm_stats, swap_total_bytes), F(emm_stats, faults),
	F(emm_stats, faults_minor), F(emm_stats, faults_major), F(emm_stats, faults_zero),
	F(emm_stats, faults_wp), F(emm_stats, faults_bad), F(emm_stats, swapins),
	F(emm_stats, swapouts), F(emm_stats, pgscan), F(emm_stats, pgsteal),
	F(emm_stats, pgactivate), F(emm_stats, pgdeactivate), F(emm_stats, thp_collapse),
	F(emm_stats, thp_collapse_failed), F(emm_stats, thp_split), F(emm_stats, io_errors),
	F(emm_stats, kernel_vmas), F(emm_stats, vmas), F(emm_stats, oom_events),
	F(emm_stats, writebacks), F(emm_stats, huge_bytes), sizeof(struct emm_stats),
};
static const size_t node_ends[] = {
	F(emm_node_stats, sz), F(emm_node_stats, resident_bytes), F(emm_node_stats, active_bytes),
	F(emm_node_stats, inactive_bytes), F(emm_node_stats, limit_bytes),
	F(emm_node_stats, pgscan), F(emm_node_stats, pgsteal), F(emm_node_stats, swapouts),
	F(emm_node_stats, swapins), sizeof(struct emm_node_stats),
};

/* A struct with room past the library's size, to poison. */
union big {
	struct emm_opts o;
	struct emm_map_opts m;
	struct emm_stats s;
	struct emm_node_stats n;
	unsigned char b[1024];
};

/* What the bytes past sz hold: a value no field accepts. */
static void poison(union big *u, size_t sz)
{
	memset(u->b + sz, 0xff, sizeof(u->b) - sz);
}

static void test_open(void)
{
	unsigned ok_all = 0;

	for (size_t i = 0; i < sizeof(opts_ends) / sizeof(opts_ends[0]); i++) {
		union big u;
		struct emm *mm = NULL;
		struct emm_stats st = { .sz = sizeof(st) };
		int err;

		memset(&u, 0, sizeof(u));
		u.o.sz = opts_ends[i];
		u.o.mem_limit = 64UL << 20;
		if (u.o.sz < F(emm_opts, mem_limit))
			u.o.mem_limit = 0;
		poison(&u, u.o.sz);
		err = emm_open(&u.o, &mm);
		if (!err) {
			emm_stats(mm, &st);
			err = u.o.sz >= F(emm_opts, mem_limit) && st.limit_bytes != 64UL << 20 ? -1 : 0;
			emm_close(mm);
		}
		if (err)
			diag("emm_open with sz %zu: %d", u.o.sz, err);
		ok_all += !err;
	}
	is_int(ok_all, sizeof(opts_ends) / sizeof(opts_ends[0]),
	       "emm_open: every field boundary accepted, the fields inside taken, the rest default");
}

static void test_map(struct emm *mm, char *base)
{
	unsigned ok_all = 0;

	for (size_t i = 0; i < sizeof(map_ends) / sizeof(map_ends[0]); i++) {
		union big u;
		char *p = base + i * PAGE;
		int err;

		memset(&u, 0, sizeof(u));
		u.m.sz = map_ends[i];
		if (u.m.sz >= F(emm_map_opts, prot))
			u.m.prot = EMM_PROT_READ | EMM_PROT_WRITE;
		poison(&u, u.m.sz);
		err = emm_map(mm, p, PAGE, &u.m);
		if (!err) {
			p[0] = 1;	/* read-write: what the caller set, or the default */
			err = emm_unmap(mm, p, PAGE);
		}
		if (err)
			diag("emm_map with sz %zu: %d", u.m.sz, err);
		ok_all += !err;
	}
	is_int(ok_all, sizeof(map_ends) / sizeof(map_ends[0]),
	       "emm_map: every field boundary accepted, missing fields default (read-write anonymous)");
}

static void test_stats(struct emm *mm)
{
	unsigned ok_all = 0;

	for (size_t i = 0; i < sizeof(stats_ends) / sizeof(stats_ends[0]); i++) {
		union big u, before;
		size_t sz = stats_ends[i];

		memset(&u, 0, sizeof(u));
		u.s.sz = sz;
		poison(&u, sz);
		memcpy(&before, &u, sizeof(u));
		if (emm_stats(mm, &u.s) == 0 && u.s.sz == sz &&
		    !memcmp(u.b + sz, before.b + sz, sizeof(u.b) - sz) &&
		    (sz < F(emm_stats, limit_bytes) || u.s.limit_bytes == 64UL << 20))
			ok_all++;
		else
			diag("emm_stats with sz %zu", sz);
	}
	is_int(ok_all, sizeof(stats_ends) / sizeof(stats_ends[0]),
	       "emm_stats: every field boundary accepted, nothing written past sz");
	for (size_t i = 0; i < sizeof(node_ends) / sizeof(node_ends[0]); i++) {
		union big u, before;
		size_t sz = node_ends[i];

		memset(&u, 0, sizeof(u));
		u.n.sz = sz;
		poison(&u, sz);
		memcpy(&before, &u, sizeof(u));
		if (emm_node_stats(mm, 0, &u.n) == 0 && u.n.sz == sz &&
		    !memcmp(u.b + sz, before.b + sz, sizeof(u.b) - sz))
			ok_all++;
		else
			diag("emm_node_stats with sz %zu", sz);
	}
	is_int(ok_all, sizeof(stats_ends) / sizeof(stats_ends[0]) +
	       sizeof(node_ends) / sizeof(node_ends[0]),
	       "emm_node_stats: every field boundary accepted, nothing written past sz");
}

/* Longer than the library knows: zeros are fine, anything else is not. */
static void test_longer(struct emm *mm, char *base)
{
	union big u;
	struct emm *m2;

	memset(&u, 0, sizeof(u));
	u.o.sz = sizeof(u);
	u.o.mem_limit = 64UL << 20;
	is_int(emm_open(&u.o, &m2), 0, "emm_open: longer, zero tail: accepted");
	emm_close(m2);
	u.b[sizeof(struct emm_opts) + 3] = 1;
	is_int(emm_open(&u.o, &m2), -EINVAL, "emm_open: longer, non-zero tail: -EINVAL");
	memset(&u, 0, sizeof(u));
	u.m.sz = sizeof(u);
	u.m.prot = EMM_PROT_READ;
	u.b[sizeof(struct emm_map_opts)] = 1;
	is_int(emm_map(mm, base, PAGE, &u.m), -EINVAL, "emm_map: longer, non-zero tail: -EINVAL");
	memset(&u, 0, sizeof(u));
	u.s.sz = sizeof(u);
	is_int(emm_stats(mm, &u.s), 0, "emm_stats: longer, zero tail: accepted");
	u.b[sizeof(u) - 1] = 1;
	is_int(emm_stats(mm, &u.s), -EINVAL, "emm_stats: longer, non-zero tail: -EINVAL");
	memset(&u, 0, sizeof(u));
	u.n.sz = sizeof(u);
	u.b[sizeof(struct emm_node_stats)] = 1;
	is_int(emm_node_stats(mm, 0, &u.n), -EINVAL, "emm_node_stats: longer, non-zero tail: -EINVAL");
	memset(&u, 0, sizeof(u));
	u.s.sz = sizeof(size_t) - 1;
	is_int(emm_stats(mm, &u.s), -EINVAL, "emm_stats: sz short of its own field: -EINVAL");
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 64UL << 20);
	struct emm *mm;
	void *base;

	plan(1 + 1 + 2 + 7 + 2);
	test_open();
	if (emm_open(&o, &mm) || emm_reserve(mm, 2UL << 20, &base))
		bail("emm_open or emm_reserve failed");
	test_map(mm, base);
	test_stats(mm);
	test_longer(mm, base);
	is_int(emm_release(mm, base), 0, "emm_release");
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
