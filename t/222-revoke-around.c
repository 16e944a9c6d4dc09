/* SPDX-License-Identifier: MIT */
/* Reclaim on the userfaultfd backends revokes the cold mapped pages around each page it revokes, in the same zap: counted in revoke_around, a touch of one of them in refault_around, never a pinned page, never one the kernel still maps while emm says revoked, every page read back right; none on the signal backend. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "emm.h"
#include "pte-peek.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LIMIT (8 * MIB)
#define LEN (32 * MIB)
#define PAGES (LEN / PAGE)
#define READS 20000
#define PER_BACKEND 7

/* Resident pages emm says it revoked that the kernel still maps: a write
 * there would go unseen. Nothing touches the region meanwhile. */
static size_t revoked_but_mapped(const char *p)
{
	size_t bad = 0;

	for (size_t i = 0; i < PAGES; i++) {
		uint64_t v = pte_word(p + i * PAGE);

		if (pte_state(v) == PTE_RESIDENT && pte_prot(v) == EMM_PROT_NONE &&
		    kernel_mapped(p + i * PAGE) && bad++ < 5)
			diag("page %zu: revoked by emm, mapped by the kernel", i);
	}
	return bad;
}

/* read(2) into the pinned page, its own bytes back: the kernel reaches it
 * with no fault for emm to serve (EFAULT on uffd-sigbus otherwise). */
static bool syscall_reaches(uint64_t *page)
{
	uint64_t word = page[0];
	int fd[2];
	bool ok;

	if (pipe(fd))
		bail("pipe: %s", strerror(errno));
	ok = write(fd[1], &word, sizeof(word)) == sizeof(word) &&
	     read(fd[0], page, sizeof(word)) == sizeof(word);
	close(fd[0]);
	close(fd[1]);
	return ok;
}

/* The first page of a that reclaim revoked around another and nothing
 * touched since: its touch is a minor fault counted in refault_around, and
 * the page's mark goes. */
static void refault_counted(struct emm *mm, const char *a, const char *name)
{
	const uint64_t *w = NULL;
	uint64_t before;

	for (size_t i = 0; i < PAGES && !w; i++) {
		uint64_t v = pte_word(a + i * PAGE);

		if (pte_state(v) == PTE_RESIDENT && pte_prot(v) == EMM_PROT_NONE && (v & PTE_AROUND))
			w = (const uint64_t *)(a + i * PAGE);
	}
	if (!w) {
		ok(false, "%s: a page revoked around and resident still", name);
		skip(1, "no such page");
		return;
	}
	before = stats(mm).refault_around;
	if (*w != word_value(w))
		diag("%s: the page revoked around read back wrong", name);
	is_int(stats(mm).refault_around - before, 1,
	       "%s: touching a page revoked around counts one refault_around", name);
	ok(!(pte_word(w) & PTE_AROUND), "%s: ... and the page is no longer marked", name);
}

static void run(int backend, const char *name)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 2 * LEN, .backend = backend);
	uint64_t seed = 22, sum = 0, bad = 0;
	struct emm_stats s;
	struct emm *mm = open_or_skip(&o, name, PER_BACKEND);
	char *a, *pinned;
	bool uffd = backend != EMM_BACKEND_SIGNAL;
	int err;

	if (!mm)
		return;
	err = emm_reserve(mm, LEN, (void **)&a) || emm_map(mm, a, LEN, NULL);
	if (err)
		bail("%s: setting up", name);
	fill_words(a, LEN, word_value);
	/* Pinned in the middle of cold neighbours that reclaim revokes. */
	pinned = a + 5 * MIB + 17 * PAGE;
	if (emm_pin(mm, pinned, PAGE))
		bail("%s: emm_pin", name);
	for (int i = 0; i < READS; i++) {
		const uint64_t *w = (const uint64_t *)(a + tap_rand(&seed) % PAGES * PAGE);

		bad += *w != word_value(w);
		sum += *w;
	}
	reclaim_settle(mm);
	s = stats(mm);
	if (uffd)
		ok(s.revoke_around > 0, "%s: cold pages revoked around others: revoke_around %" PRIu64
		   " (pgsteal %" PRIu64 ", minor faults %" PRIu64 ")", name, s.revoke_around, s.pgsteal,
		   s.faults_minor);
	else
		is_int(s.revoke_around, 0, "%s: revoke_around stays 0", name);
	ok(pte_prot(pte_word(pinned)) != EMM_PROT_NONE, "%s: the pinned page is still mapped", name);
	ok(syscall_reaches((uint64_t *)pinned), "%s: read(2) into the pinned page", name);
	if (uffd)
		is_int(revoked_but_mapped(a), 0, "%s: no page revoked by emm is mapped by the kernel", name);
	else
		skip(1, "signal: mprotect leaves pages present in the pagemap");
	if (uffd)
		refault_counted(mm, a, name);
	else {
		is_int(stats(mm).refault_around, 0, "%s: refault_around stays 0", name);
		skip(1, "signal: no page is revoked around");
	}
	bad += count_bad_words(a, LEN, word_value);
	is_int(bad, 0, "%s: every word read back right (%d random reads, then all)", name, READS);
	emm_unpin(mm, pinned, PAGE);
	emm_close(mm);
	(void)sum;
}

int main(void)
{
	plan(3 * PER_BACKEND);
	each_backend(run);
	return 0;
}
