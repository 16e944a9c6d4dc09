/* SPDX-License-Identifier: MIT */
/* Fault-around of minor faults: one trap maps the revoked neighbours in its fault_around window. */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LEN MIB
#define PAGES (LEN / PAGE)

/* A 1 MiB VMA on a 2 MiB boundary, each page written, then made cold:
 * resident, access revoked. */
static struct emm *setup(unsigned fault_around, int advice, unsigned char **mem)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 64 * MIB, .fault_around = fault_around);
	struct emm *mm;
	void *p;

	if (emm_open(&o, &mm) || emm_reserve(mm, 4 * MIB, &p) || emm_map(mm, p, LEN, NULL) ||
	    (advice >= 0 && emm_advise(mm, p, LEN, advice)))
		bail("setting up");
	*mem = p;
	for (size_t i = 0; i < PAGES; i++)
		(*mem)[i * PAGE] = (unsigned char)(i + 1);
	if (emm_advise(mm, p, LEN, EMM_ADV_COLD))
		bail("EMM_ADV_COLD");
	return mm;
}

static uint64_t minor(struct emm *mm)
{
	return stats(mm).faults_minor;
}

/* Every page read once in order: the minor faults it took, and the pages
 * whose byte was wrong. */
static uint64_t read_all(struct emm *mm, const unsigned char *mem, long *bad)
{
	uint64_t m0 = minor(mm);

	*bad = 0;
	for (size_t i = 0; i < PAGES; i++)
		*bad += mem[i * PAGE] != (unsigned char)(i + 1);
	return minor(mm) - m0;
}

static void default_window(void)
{
	unsigned char *mem;
	struct emm *mm = setup(0, -1, &mem);
	uint64_t m0 = minor(mm), n;
	volatile unsigned char x;
	long bad;

	x = mem[3 * PAGE];
	is_int(minor(mm) - m0, 1, "a touch of a revoked page: one minor fault");
	for (size_t i = 0; i < 16; i++)
		x = mem[i * PAGE];
	is_int(minor(mm) - m0, 1, "  its 15 neighbours in the 16-page window came with it");
	x = mem[16 * PAGE];
	is_int(minor(mm) - m0, 2, "  the next window is a fault of its own");
	(void)x;
	emm_close(mm);
	mm = setup(0, -1, &mem);
	n = read_all(mm, mem, &bad);
	is_int(n, PAGES / 16, "reading 256 revoked pages in order: one minor fault per 16 pages");
	is_int(bad, 0, "  each page holds what was written");
	emm_close(mm);
}

static void turned_off(void)
{
	unsigned char *mem;
	struct emm *mm = setup(1, -1, &mem);
	long bad;

	is_int(read_all(mm, mem, &bad), PAGES, "fault_around 1: a minor fault per page");
	emm_close(mm);
	mm = setup(0, EMM_ADV_RANDOM, &mem);
	is_int(read_all(mm, mem, &bad), PAGES, "EMM_ADV_RANDOM: a minor fault per page");
	is_int(bad, 0, "  each page holds what was written");
	emm_close(mm);
}

int main(void)
{
	plan(8);
	unsetenv("EMM_FAULT_AROUND");
	default_window();
	turned_off();
	return done_testing();
}
