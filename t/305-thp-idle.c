/* SPDX-License-Identifier: MIT */
/* The promotion scanner sleeps while no VMA may have huge pages, and wakes when one may. */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"
#include "thp.h"
#include "util.h"

#define MIB (1UL << 20)
#define EXT (2 * MIB)
#define SCAN_MS 20
#define LOOK_MS 500
#define WAIT_MS 10000

/* The scanner thread's id, by its name, or 0. */
static long scanner_tid(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	long tid = 0;

	while (d && !tid && (e = readdir(d))) {
		char path[300], comm[32] = "";
		FILE *f;

		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (f && fgets(comm, sizeof(comm), f) && !strcmp(comm, "emm-khugepaged\n"))
			tid = atol(e->d_name);
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return tid;
}

/* Times the thread went to sleep so far. */
static long sleeps(long tid)
{
	char path[64], line[128];
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%ld/status", tid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "voluntary_ctxt_switches:", 24))
			n = atol(line + 24);
	if (f)
		fclose(f);
	return n;
}

/* How often the scanner slept in LOOK_MS. */
static long sleeps_in_look(long tid)
{
	long a = sleeps(tid);

	usleep(LOOK_MS * 1000);
	return sleeps(tid) - a;
}

static struct emm *open_mode(int mode)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 256 * MIB, .thp_scan_ms = SCAN_MS, .thp = mode);
	struct emm *mm;

	if (emm_open(&o, &mm))
		bail("emm_open failed");
	return mm;
}

/* madvise mode: no VMA advised, the scanner sleeps; advised, it scans and
 * collapses; advised away again, it sleeps. */
static void test_madvise(bool collapse)
{
	struct emm *mm = open_mode(EMM_THP_MADVISE);
	long tid = scanner_tid(), n;
	char *r;

	ok(tid > 0, "madvise: the scanner thread is there");
	if (emm_reserve(mm, 8 * MIB, (void **)&r) || emm_map(mm, r, 2 * EXT, NULL))
		bail("emm_reserve or emm_map failed");
	memset(r, 1, 2 * EXT);
	n = sleeps_in_look(tid);
	ok(n <= 1, "no VMA advised: the scanner slept %ld times in %d ms (scan every %d ms)", n,
	   LOOK_MS, SCAN_MS);
	is_int(emm_advise(mm, r, 2 * EXT, EMM_ADV_HUGEPAGE), 0, "advise HUGEPAGE");
	n = sleeps_in_look(tid);
	ok(n >= 5, "a VMA advised: the scanner scans again (%ld rounds in %d ms)", n, LOOK_MS);
	if (collapse)
		ok(thp_wait_huge(r, 2 * EXT, WAIT_MS) >= 0, "and collapses the advised range");
	else
		skip(1, "this machine cannot collapse");
	is_int(emm_advise(mm, r, 2 * EXT, EMM_ADV_NOHUGEPAGE), 0, "advise NOHUGEPAGE");
	usleep(2 * SCAN_MS * 1000);
	n = sleeps_in_look(tid);
	ok(n <= 1, "none advised again: the scanner slept %ld times in %d ms", n, LOOK_MS);
	emm_close(mm);
}

/* always mode: asleep with no VMA, awake once one is mapped. */
static void test_always(void)
{
	struct emm *mm = open_mode(EMM_THP_ALWAYS);
	long tid = scanner_tid(), n;
	char *r;

	ok(tid > 0, "always: the scanner thread is there");
	if (emm_reserve(mm, 8 * MIB, (void **)&r))
		bail("emm_reserve failed");
	n = sleeps_in_look(tid);
	ok(n <= 1, "always, no VMA: the scanner slept %ld times in %d ms", n, LOOK_MS);
	is_int(emm_map(mm, r, 2 * EXT, NULL), 0, "emm_map 4 MiB");
	n = sleeps_in_look(tid);
	ok(n >= 5, "always, a VMA mapped: the scanner scans (%ld rounds in %d ms)", n, LOOK_MS);
	emm_close(mm);
}

int main(void)
{
	const char *why;
	bool collapse = thp_can_collapse(&why);

	if (!collapse)
		diag("%s", why);
	plan(11);
	test_madvise(collapse);
	test_always();
	return done_testing();
}
