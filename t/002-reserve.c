/* SPDX-License-Identifier: MIT */
/* emm_reserve, emm_reserve_ex and emm_release: alignment, no access, many ranges and instances, errors. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "emm.h"
#include "tap.h"
#include "probe.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define GIB (1UL << 30)
#define HUGE (2 * MIB)

/* 1 if the access faulted and the fault reached on_segv at p, 0 if not. */
static int probe(volatile char *p, int write)
{
	chain_addr = NULL;
	return access_once(p, 1, write, 1) == CHAIN && chain_addr == (void *)p;
}

static int aligned(void *p, uintptr_t a)
{
	return ((uintptr_t)p & (a - 1)) == 0;
}

struct overlap { uintptr_t lo, hi; int hits; };

static void overlap_line(const char *line, void *arg)
{
	struct overlap *o = arg;
	char *end;
	uintptr_t s = (uintptr_t)strtoull(line, &end, 16);
	uintptr_t e = (uintptr_t)strtoull(end + 1, NULL, 16);

	if (s < o->hi && e > o->lo)
		o->hits++;
}

/* Whether any mapping of the process covers part of [lo, lo + len). */
static int mapped(void *lo, size_t len)
{
	struct overlap o = { (uintptr_t)lo, (uintptr_t)lo + len, 0 };

	maps_foreach(overlap_line, &o);
	return o.hits > 0;
}

static void test_big(struct emm *mm)
{
	size_t len = 64 * GIB;
	void *a = NULL;
	char *p;

	is_int(emm_reserve(mm, len, &a), 0, "reserve 64 GiB");
	p = a;
	ok(a && aligned(a, HUGE), "it is 2 MiB-aligned (%p)", a);
	ok(probe(p, 0), "read of its first byte faults, seen at that address");
	ok(probe(p + len / 2 + 123, 1), "write in its middle faults");
	ok(probe(p + len - 1, 0), "read of its last byte faults");
	is_int(emm_release(mm, a), 0, "release it");
	ok(!mapped(a, len), "nothing is mapped there any more");
}

static void test_many(struct emm *mm)
{
	static const size_t lens[] = { HUGE, HUGE + PAGE, 8 * MIB, GIB };
	void *a[4] = { 0 };
	int okay = 1, disjoint = 1;

	for (int i = 0; i < 4; i++)
		okay &= emm_reserve(mm, lens[i], &a[i]) == 0 && aligned(a[i], HUGE);
	ok(okay, "four reservations in one instance, all 2 MiB-aligned");
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++) {
			uintptr_t si = (uintptr_t)a[i], sj = (uintptr_t)a[j];

			if (i != j && si < sj + lens[j] && sj < si + lens[i])
				disjoint = 0;
		}
	ok(disjoint, "they do not overlap");
	/* 2 MiB + 4 KiB is rounded up to 4 MiB: its last page can be mapped. */
	is_int(emm_map(mm, (char *)a[1] + 2 * HUGE - PAGE, PAGE, NULL), 0,
	       "length rounded up to 2 MiB: the last page of the rounded range maps");
	for (int i = 0; i < 4; i++)
		okay &= emm_release(mm, a[i]) == 0;
	ok(okay, "release all four");
}

static void test_two_instances(struct emm *mm)
{
	struct emm *mm2 = NULL;
	void *a = NULL, *b = NULL;

	is_int(emm_open(NULL, &mm2), 0, "a second instance opens");
	ok(emm_reserve(mm, 4 * MIB, &a) == 0 && emm_reserve(mm2, 4 * MIB, &b) == 0,
	   "each reserves 4 MiB");
	ok(emm_map(mm, a, 4 * MIB, NULL) == 0 && emm_map(mm2, b, 4 * MIB, NULL) == 0,
	   "each maps its range");
	memset(a, 0x11, 4 * MIB);
	memset(b, 0x22, 4 * MIB);
	ok(((char *)a)[4 * MIB - 1] == 0x11 && ((char *)b)[0] == 0x22,
	   "both serve faults at once, data apart");
	is_int(emm_release(mm2, a), -EINVAL, "an instance cannot release the other's range");
	is_int(emm_close(mm2), 0, "close the second instance");
	memset((char *)a + MIB, 0x33, PAGE);
	ok(((char *)a)[MIB] == 0x33 && ((char *)a)[0] == 0x11,
	   "the first still serves faults and kept its data");
	is_int(emm_release(mm, a), 0, "release the first's range");
}

static void test_errors(struct emm *mm)
{
	void *a = NULL, *b = NULL;
	int local;

	is_int(emm_reserve(NULL, HUGE, &a), -EINVAL, "reserve with mm NULL: -EINVAL");
	is_int(emm_reserve(mm, HUGE, NULL), -EINVAL, "reserve with addrp NULL: -EINVAL");
	is_int(emm_reserve(mm, 0, &a), -EINVAL, "reserve of length 0: -EINVAL");
	is_int(emm_reserve(mm, PAGE + 1, &a), -EINVAL, "reserve of unaligned length: -EINVAL");
	is_int(emm_reserve(mm, 100, &a), -EINVAL, "reserve of length 100: -EINVAL");

	is_int(emm_reserve(mm, 4 * MIB, &b), 0, "reserve 4 MiB");
	is_int(emm_release(NULL, b), -EINVAL, "release with mm NULL: -EINVAL");
	is_int(emm_release(mm, (char *)b + PAGE), -EINVAL, "release of a non-start address: -EINVAL");
	is_int(emm_release(mm, (char *)b + HUGE), -EINVAL, "release of a 2 MiB step inside: -EINVAL");
	is_int(emm_release(mm, &local), -EINVAL, "release of an unknown address: -EINVAL");
	is_int(emm_release(mm, NULL), -EINVAL, "release of NULL: -EINVAL");
	is_int(emm_release(mm, b), 0, "release of the start: 0");
	is_int(emm_release(mm, b), -EINVAL, "release it again: -EINVAL");
}

/* emm_reserve_ex: the alignment asked for, and the options struct rules. */
static void test_ex(struct emm *mm)
{
	static const size_t aligns[] = { 0, HUGE, 32 * MIB, GIB };
	EMM_OPTS(emm_reserve_opts, o);
	struct { struct emm_reserve_opts o; uint64_t more; } big = { o, 0 };
	void *a = NULL;
	int okay = 1;

	for (int i = 0; i < 4; i++) {
		o.align = aligns[i];
		okay &= emm_reserve_ex(mm, 3 * HUGE, &o, &a) == 0 &&
			aligned(a, aligns[i] ? aligns[i] : HUGE) &&
			emm_map(mm, (char *)a + 2 * HUGE, HUGE, NULL) == 0 &&
			emm_release(mm, a) == 0;
	}
	ok(okay, "align 0, 2 MiB, 32 MiB and 1 GiB give starts so aligned, lengths as asked");
	is_int(emm_reserve_ex(mm, HUGE, NULL, &a), 0, "NULL options: as emm_reserve");
	ok(aligned(a, HUGE) && emm_release(mm, a) == 0, "2 MiB-aligned, released");
	o.align = 3 * HUGE;
	is_int(emm_reserve_ex(mm, HUGE, &o, &a), -EINVAL, "align not a power of two: -EINVAL");
	o.align = MIB;
	is_int(emm_reserve_ex(mm, HUGE, &o, &a), -EINVAL, "align below 2 MiB: -EINVAL");
	o.align = 32 * MIB;
	is_int(emm_reserve_ex(NULL, HUGE, &o, &a), -EINVAL, "mm NULL: -EINVAL");
	is_int(emm_reserve_ex(mm, 0, &o, &a), -EINVAL, "length 0: -EINVAL");
	is_int(emm_reserve_ex(mm, HUGE, &o, NULL), -EINVAL, "addrp NULL: -EINVAL");
	o.sz = 4;
	is_int(emm_reserve_ex(mm, HUGE, &o, &a), -EINVAL, "sz smaller than its first field: -EINVAL");
	o.sz = sizeof(size_t);
	ok(emm_reserve_ex(mm, HUGE, &o, &a) == 0 && aligned(a, HUGE) && emm_release(mm, a) == 0,
	   "sz of an older struct: the align it lacks is the default");
	big.o.sz = sizeof(big);
	big.more = 1;
	is_int(emm_reserve_ex(mm, HUGE, &big.o, &a), -EINVAL, "non-zero bytes past the struct: -EINVAL");
	big.more = 0;
	ok(emm_reserve_ex(mm, HUGE, &big.o, &a) == 0 && emm_release(mm, a) == 0,
	   "zero bytes past the struct: accepted");
}

int main(void)
{
	struct emm *mm = NULL;

	plan(7 + 4 + 8 + 13 + 12 + 2);
	probe_install();
	if (emm_open(NULL, &mm))
		bail("emm_open failed");
	test_big(mm);
	test_many(mm);
	test_two_instances(mm);
	test_errors(mm);
	test_ex(mm);
	is_int(chains, 3, "exactly the three probes reached the prior handler");
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
