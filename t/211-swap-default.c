/* SPDX-License-Identifier: MIT */
/* The default swap size follows the file system's free space, less a margin: a program that touches 8 times its budget stays within it. */
#include <sys/statvfs.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE	4096UL
#define MIB	(1UL << 20)
#define LIMIT	(8 * MIB)
#define LEN	(64 * MIB)
#define SLACK	(64 * PAGE)	/* one fault's cluster and the min watermark */

static uint64_t fs_avail(void)
{
	const char *dir = getenv("TMPDIR");
	struct statvfs v;

	if (statvfs(dir && *dir ? dir : "/var/tmp", &v) < 0)
		return 0;
	return (uint64_t)v.f_bavail * v.f_frsize;
}

static void test_budget_holds(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT);
	struct emm *mm;
	uint64_t *mem, max_res = 0;
	struct emm_stats st;

	if (emm_open(&o, &mm) || emm_reserve(mm, LEN, (void **)&mem) || emm_map(mm, mem, LEN, NULL))
		bail("emm_open/emm_reserve/emm_map failed");
	st = stats(mm);
	diag("default swap: %" PRIu64 " MiB", st.swap_total_bytes / MIB);
	ok(st.swap_total_bytes >= LEN, "with swap_size 0 the swap holds 8 times the budget");
	for (size_t off = 0; off < LEN; off += MIB) {
		fill_words((char *)mem + off, MIB, word_value);
		st = stats(mm);
		if (st.resident_bytes > max_res)
			max_res = st.resident_bytes;
	}
	diag("most resident: %" PRIu64 " KiB; swapouts %" PRIu64, max_res / 1024, st.swapouts);
	ok(max_res <= LIMIT + SLACK, "resident stayed within the budget while 64 MiB were written");
	is_int(count_bad_words(mem, LEN, word_value), 0, "every word reads back");
	is_int(emm_close(mm), 0, "emm_close");
}

static void test_margin(void)
{
	uint64_t want = 256 * MIB, avail = fs_avail();
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_margin = avail - want);
	struct emm *mm;
	struct emm_stats st;

	if (!is_int(emm_open(&o, &mm), 0, "emm_open with a margin of all but 256 MiB"))
		return;
	st = stats(mm);
	diag("swap with the margin: %" PRIu64 " KiB", st.swap_total_bytes / 1024);
	/* Others write to the file system meanwhile: allow 64 MiB either way. */
	ok(st.swap_total_bytes + 64 * MIB >= want && st.swap_total_bytes <= want + 64 * MIB,
	   "the swap is the free space less the margin");
	is_int(emm_close(mm), 0, "emm_close");
}

int main(void)
{
	if (fs_avail() < 1ULL << 30)
		skip_all("less than 1 GiB free for the swap file");
	plan(7);
	test_budget_holds();
	test_margin();
	return done_testing();
}
