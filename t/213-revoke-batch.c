/* SPDX-License-Identifier: MIT */
/* Batched revoke on the userfaultfd backends: exactly the pages reclaim revoked lose their kernel mapping, a range the kernel refuses stays mapped, ranges joined across unmapped gaps never reach a mapped page, and every page reads back right. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backend.h"
#include "emm.h"
#include "internal.h"
#include "pte-peek.h"
#include "tap.h"
#include "uffd.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define NPAGES 1024		/* the scattered test's range, in pages */
#define LOCKED 300		/* a touched page the test mlocks behind emm's back */

static bool touched(size_t i)
{
	return i % 3 == 0 || (i >= 600 && i < 616);
}

/*
 * Pages emm says it revoked but the kernel still maps: a write there would
 * go unseen. Read emm's word first: with the program touching nothing,
 * nothing grants access again, so a page emm revoked stays unmapped (or is
 * evicted) while the kernel is asked.
 */
static size_t revoked_but_mapped(const char *p, size_t npages)
{
	size_t bad = 0;

	for (size_t i = 0; i < npages; i++) {
		uint64_t v = pte_word(p + i * PAGE);

		if (pte_state(v) != PTE_NONE && pte_prot(v) == EMM_PROT_NONE &&
		    kernel_mapped(p + i * PAGE) && bad++ < 5)
			diag("page %zu: revoked by emm, mapped by the kernel", i);
	}
	return bad;
}

static size_t bad_pages(const char *p, size_t npages, bool (*which)(size_t))
{
	size_t bad = 0;

	for (size_t i = 0; i < npages; i++)
		if (which(i))
			bad += count_bad_words(p + i * PAGE, PAGE, word_value) != 0;
	return bad;
}

/* mlock(2) and munlock(2) themselves: AddressSanitizer makes the libc
 * calls do nothing. */
static int mlock_raw(void *p, size_t len)
{
	return (int)syscall(SYS_mlock, p, len);
}

static int munlock_raw(void *p, size_t len)
{
	return (int)syscall(SYS_munlock, p, len);
}

/* EMM_ADV_COLD over scattered pages, one of them mlocked: the kernel
 * refuses to zap that one, so it alone stays mapped. */
static void test_cold(struct emm *mm, char *p)
{
	size_t wrong = 0, still = 0;

	for (size_t i = 0; i < NPAGES; i++)
		if (touched(i))
			fill_words(p + i * PAGE, PAGE, word_value);
	if (mlock_raw(p + LOCKED * PAGE, PAGE))
		bail("mlock: %s", strerror(errno));
	is_int(emm_advise(mm, p, NPAGES * PAGE, EMM_ADV_COLD), 0, "EMM_ADV_COLD over 4 MiB");
	for (size_t i = 0; i < NPAGES; i++) {
		uint64_t v = pte_word(p + i * PAGE);
		bool gone = pte_prot(v) == EMM_PROT_NONE && !kernel_mapped(p + i * PAGE);

		if (i == LOCKED || !touched(i))
			continue;
		if (pte_state(v) != PTE_RESIDENT || !gone)
			wrong++;
	}
	is_int(wrong, 0, "every touched page but the locked one: resident, revoked, unmapped");
	ok(pte_prot(pte_word(p + LOCKED * PAGE)) != EMM_PROT_NONE && kernel_mapped(p + LOCKED * PAGE),
	   "the page the kernel would not zap stays mapped, and emm says so");
	for (size_t i = 0; i < NPAGES; i++)
		still += !touched(i) && pte_state(pte_word(p + i * PAGE)) != PTE_NONE;
	is_int(still, 0, "untouched pages stay untouched");
	is_int(bad_pages(p, NPAGES, touched), 0, "every touched page reads back right");
	munlock_raw(p + LOCKED * PAGE, PAGE);
}

/* EMM_ADV_COLD over pages with unmapped gaps between them, which the zap
 * joins into one range, and a pinned page among them, mapped and not in
 * the batch: the zap must not reach over it. */
static void test_join(struct emm *mm, char *p)
{
	const size_t npages = 256, pinned = 100;
	size_t wrong = 0;

	for (size_t i = 0; i < npages; i++)
		if (touched(i))
			fill_words(p + i * PAGE, PAGE, word_value);
	if (emm_pin(mm, p + pinned * PAGE, PAGE))
		bail("emm_pin");
	is_int(emm_advise(mm, p, npages * PAGE, EMM_ADV_COLD), 0, "EMM_ADV_COLD over pages with gaps");
	for (size_t i = 0; i < npages; i++)
		wrong += touched(i) && i != pinned &&
			 (pte_prot(pte_word(p + i * PAGE)) != EMM_PROT_NONE || kernel_mapped(p + i * PAGE));
	is_int(wrong, 0, "  every touched page revoked and unmapped, the gaps joined or not");
	ok(pte_prot(pte_word(p + pinned * PAGE)) != EMM_PROT_NONE && kernel_mapped(p + pinned * PAGE),
	   "  the pinned page between them stays mapped: no zap reached over it");
	is_int(bad_pages(p, npages, touched), 0, "  every touched page reads back right");
	emm_unpin(mm, p + pinned * PAGE, PAGE);
}

/* EMM_ADV_PAGEOUT: every page swapped, none mapped, all read back right. */
static void test_pageout(struct emm *mm, char *p)
{
	struct emm_stats s0 = stats(mm), s1;
	size_t n = 0, wrong = 0;

	for (size_t i = 0; i < NPAGES; i++)
		if (touched(i))
			fill_words(p + i * PAGE, PAGE, word_value), n++;
	is_int(emm_advise(mm, p, NPAGES * PAGE, EMM_ADV_PAGEOUT), 0, "EMM_ADV_PAGEOUT over 4 MiB");
	s1 = stats(mm);
	is_int(s1.swapouts - s0.swapouts, n, "every touched page written out (%zu)", n);
	for (size_t i = 0; i < NPAGES; i++)
		wrong += touched(i) && (pte_state(pte_word(p + i * PAGE)) != PTE_SWAPPED ||
					kernel_mapped(p + i * PAGE));
	is_int(wrong, 0, "every touched page swapped and unmapped");
	is_int(bad_pages(p, NPAGES, touched), 0, "every page reads back right from swap");
}

/* backend_revoke_many itself: three ranges, the middle one mlocked. The
 * kernel stops there; only the first counts as revoked. */
static void test_partial(char *p)
{
	const size_t pg[3][2] = { { 700, 704 }, { 708, 709 }, { 716, 718 } };
	struct iovec iov[3];
	struct rsv *rv[3];
	struct revoke_vec v = { .n = 3, .iov = iov, .rsv = rv };
	int idx = 0, fd;
	struct rsv *r = rsv_enter((uintptr_t)p, &idx);
	const char *how = "";
	unsigned got;
	size_t bad = 0;

	if (zap_open(&fd, &how)) {
		rsv_leave(r, idx);
		skip(4, "process_madvise(2) refuses MADV_DONTNEED here (Linux < 6.13, or seccomp)");
		return;
	}
	if (fd >= 0)
		close(fd);
	for (int k = 0; k < 3; k++) {
		fill_words(p + pg[k][0] * PAGE, (pg[k][1] - pg[k][0]) * PAGE, word_value);
		iov[k] = (struct iovec){ p + pg[k][0] * PAGE, (pg[k][1] - pg[k][0]) * PAGE };
		rv[k] = r;
	}
	if (mlock_raw(iov[1].iov_base, iov[1].iov_len))
		bail("mlock: %s", strerror(errno));
	for (int k = 0; k < 3; k++)
		lock_range(r, (uintptr_t)iov[k].iov_base, (uintptr_t)iov[k].iov_base + iov[k].iov_len);
	got = backend_revoke_many(r->mm, &v);
	for (int k = 0; k < 3; k++)
		unlock_untouched(r, (uintptr_t)iov[k].iov_base,
				 (uintptr_t)iov[k].iov_base + iov[k].iov_len);
	rsv_leave(r, idx);
	is_int(got, 1, "process_madvise stops at the locked range: one range revoked");
	ok(pte_prot(pte_word(p + 700 * PAGE)) == EMM_PROT_NONE &&
	   pte_prot(pte_word(p + 703 * PAGE)) == EMM_PROT_NONE && !kernel_mapped(p + 701 * PAGE),
	   "the first range: revoked in emm's words and in the kernel's page tables");
	ok(pte_prot(pte_word(p + 708 * PAGE)) != EMM_PROT_NONE &&
	   pte_prot(pte_word(p + 716 * PAGE)) != EMM_PROT_NONE,
	   "the ranges not advised still count as mapped");
	munlock_raw(iov[1].iov_base, iov[1].iov_len);
	for (int k = 0; k < 3; k++)
		bad += count_bad_words(iov[k].iov_base, iov[k].iov_len, word_value);
	is_int(bad, 0, "all three ranges read back right");
}

static bool every(size_t i)
{
	return i % 4 == 1;
}

/* Budget pressure: reclaim revokes and evicts batches of scattered pages
 * (the reclaim thread's batches and the faulting threads'); whatever emm
 * says it revoked, the kernel does not map. */
static void test_pressure(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 8 * MIB, .swap_size = 256 * MIB,
		 .thp = EMM_THP_NEVER, .fault_around = 1);
	const size_t npages = 64 * MIB / PAGE;
	struct emm *mm;
	char *p;

	if (emm_open(&o, &mm) || emm_reserve(mm, 64 * MIB, (void **)&p) ||
	    emm_map(mm, p, 64 * MIB, NULL))
		bail("cannot open and map a small instance");
	for (size_t i = 0; i < npages; i++)
		if (every(i))
			fill_words(p + i * PAGE, PAGE, word_value);
	ok(stats(mm).swapouts > 0, "16 MiB in scattered pages under 8 MiB: swapped out (%" PRIu64 ")",
	   stats(mm).swapouts);
	is_int(revoked_but_mapped(p, npages), 0, "no page emm revoked is still mapped by the kernel");
	is_int(bad_pages(p, npages, every), 0, "every page reads back right");
	is_int(emm_close(mm), 0, "emm_close");
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 256 * MIB, .swap_size = 256 * MIB,
		 .thp = EMM_THP_NEVER, .fault_around = 1);
	struct emm *mm;
	char *p;

	if (emm_open(&o, &mm))
		bail("emm_open failed");
	if (emm_backend(mm) == EMM_BACKEND_SIGNAL) {
		emm_close(mm);
		skip_all("signal backend: a revoke is mprotect, the kernel's page tables keep the page");
	}
	if (access("/proc/self/pagemap", R_OK))
		skip_all("cannot read /proc/self/pagemap");
	plan(22);
	if (emm_reserve(mm, 4 * MIB, (void **)&p) || emm_map(mm, p, 4 * MIB, NULL))
		bail("cannot reserve and map 4 MiB");
	test_cold(mm, p);
	test_pageout(mm, p);
	test_partial(p);
	if (emm_reserve(mm, MIB, (void **)&p) || emm_map(mm, p, MIB, NULL))
		bail("cannot reserve and map 1 MiB");
	test_join(mm, p);
	is_int(emm_close(mm), 0, "emm_close");
	test_pressure();
	return done_testing();
}
