/* SPDX-License-Identifier: MIT */
/* VMA merge and split: the count after map, protect and unmap, and real accesses matching. */
#include <string.h>

#include "access.h"
#include "emm.h"
#include "tap.h"
#include "probe.h"

#define PAGE 4096UL
#define PART (16 * PAGE)

static const char *const outcome_name[] = { "no fault", "trap", "chained fault" };

static struct emm *mm;
static char *A, *B, *C;		/* three adjacent parts of PART bytes */

static struct emm_fault prev_trap;

/* One read or write of p; checks the outcome and what the fault said. */
static void probe(const char *what, char *p, int write, int want)
{
	const char *acc = write ? "write" : "read";
	int got;

	memset(&last_trap, 0, sizeof(last_trap));
	chain_addr = NULL;
	got = access_once(p, 1, write, 0x5a);
	if (got != want) {
		ok(0, "%s: %s: %s", what, acc, outcome_name[want]);
		diag("saw %s", outcome_name[got]);
		return;
	}
	if (got == TRAP) {
		prev_trap = last_trap;
		ok(last_trap.addr == p && (last_trap.write == write || !fault_access_known()) &&
		   last_trap.policy == EMM_POLICY_ANON,
		   "%s: %s: trap at the address, write=%d%s", what, acc, write,
		   fault_access_known() ? "" : " (not checked: the machine does not say)");
	} else if (got == CHAIN)
		ok(chain_addr == p, "%s: %s: chained fault at the address", what, acc);
	else
		ok(1, "%s: %s: no fault", what, acc);
}

/* Probe a read and a write in each part; want[] gives the outcome per part
 * for read and write. */
static void probe_all(const char *step, const int want[3][2])
{
	char *parts[3] = { A, B, C };
	char what[64];

	for (int i = 0; i < 3; i++) {
		snprintf(what, sizeof(what), "%s, part %c", step, 'A' + i);
		probe(what, parts[i] + 5 * PAGE + 64, 0, want[i][0]);
		probe(what, parts[i] + 5 * PAGE + 64, 1, want[i][1]);
	}
}

static long vmas(void)
{
	EMM_OPTS(emm_stats, st);

	return emm_stats(mm, &st) ? -1 : (long)st.vmas;
}

static void test_merge(void)
{
	EMM_OPTS(emm_map_opts, o, .prot = EMM_PROT_READ | EMM_PROT_WRITE, .trap = trap);
	static const int rw[3][2] = { { NONE, NONE }, { NONE, NONE }, { NONE, NONE } };

	ok(emm_map(mm, A, PART, &o) == 0 && emm_map(mm, B, PART, &o) == 0 &&
	   emm_map(mm, C, PART, &o) == 0, "three adjacent maps");
	is_int(vmas(), 1, "equal attributes: one VMA");
	A[0] = 'A';
	B[0] = 'B';
	C[0] = 'C';
	probe_all("all read-write", rw);
}

static void test_protect(void)
{
	static const int ro[3][2] = { { NONE, NONE }, { NONE, TRAP }, { NONE, NONE } };
	static const int none[3][2] = { { NONE, NONE }, { TRAP, TRAP }, { NONE, NONE } };
	static const int rw[3][2] = { { NONE, NONE }, { NONE, NONE }, { NONE, NONE } };

	is_int(emm_protect(mm, B, PART, EMM_PROT_READ), 0, "protect the middle read-only");
	is_int(vmas(), 3, "split: three VMAs");
	probe_all("middle read-only", ro);
	ok(prev_trap.vma_start == B && prev_trap.vma_len == PART,
	   "the trap names the middle VMA (%p+%zu)", prev_trap.vma_start, prev_trap.vma_len);
	ok(A[0] == 'A' && B[0] == 'B' && C[0] == 'C', "data kept across the split");

	is_int(emm_protect(mm, B, PART, EMM_PROT_READ | EMM_PROT_WRITE), 0, "protect it back");
	is_int(vmas(), 1, "merged: one VMA");
	probe_all("middle read-write again", rw);

	is_int(emm_protect(mm, B, PART, EMM_PROT_NONE), 0, "protect the middle PROT_NONE");
	is_int(vmas(), 3, "split: three VMAs");
	probe_all("middle PROT_NONE", none);
	is_int(emm_protect(mm, B, PART, EMM_PROT_READ | EMM_PROT_WRITE), 0, "protect it back");
	is_int(vmas(), 1, "merged: one VMA");
	ok(A[0] == 'A' && B[0] == 'B' && C[0] == 'C', "data kept across protections");
}

static void test_unmap(void)
{
	EMM_OPTS(emm_map_opts, o, .prot = EMM_PROT_READ | EMM_PROT_WRITE, .trap = trap);
	static const int hole[3][2] = { { NONE, NONE }, { CHAIN, CHAIN }, { NONE, NONE } };
	static const int rw[3][2] = { { NONE, NONE }, { NONE, NONE }, { NONE, NONE } };
	int t = traps;

	is_int(emm_unmap(mm, B + 4 * PAGE, 8 * PAGE), 0, "unmap part of the middle");
	is_int(vmas(), 2, "two VMAs around the hole");
	probe_all("middle partly unmapped", hole);
	probe("below the hole", B + 3 * PAGE, 1, NONE);
	probe("above the hole", B + 12 * PAGE, 1, NONE);
	is_int(traps, t, "the hole's faults did not reach the trap callback");
	ok(B[0] == 'B', "data below the hole kept");

	is_int(emm_map(mm, B + 4 * PAGE, 8 * PAGE, &o), 0, "map the hole again");
	is_int(vmas(), 1, "merged: one VMA");
	ok(B[5 * PAGE + 64] == 0, "the remapped part reads zero");
	probe_all("hole mapped again", rw);
}

int main(void)
{
	void *r;

	probe_install();
	if (emm_open(NULL, &mm) || emm_reserve(mm, 4 << 20, &r))
		bail("cannot open and reserve");
	A = (char *)r + PART;
	B = A + PART;
	C = B + PART;
	test_merge();
	test_protect();
	test_unmap();
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
