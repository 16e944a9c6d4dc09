/* SPDX-License-Identifier: MIT */
/* Batched revoke on the userfaultfd backends (backend_ops.revoke_many): a reclaim batch's ranges zapped with one process_madvise(2), joined across gaps emm maps nothing in and widened across cold neighbours. */
#include <limits.h>
#include <sys/uio.h>

#include "backend.h"
#include "pte.h"
#include "uffd.h"
#include "uffd_wp.h"
#include "uffd_zap.h"
#include "util.h"

/* revoke_many: ranges joined across a gap of at most ZAP_GAP_MAX pages that
 * emm maps nothing in, and at most ZAP_JOIN_MAX ranges per call; a range
 * widened across the cold pages around it within its window of ZAP_WINDOW
 * pages (widen). */
#define ZAP_GAP_MAX	128
#define ZAP_JOIN_MAX	64
#define ZAP_WINDOW	64
/* widen_pays: judged every WIDEN_JUDGE pages revoked around; while off, a
 * batch widens still, up to WIDEN_PROBE_PAGES pages around, each time
 * WIDEN_PROBE more pages were revoked, so that a judgement comes, every
 * WIDEN_JUDGE_OFF pages around. */
#define WIDEN_JUDGE	1024
#define WIDEN_JUDGE_OFF	128
#define WIDEN_PROBE	2048
#define WIDEN_PROBE_PAGES 64


/*
 * Async-signal-safe. May the gap [s, e) between two ranges of a revoke
 * batch be zapped with them? When emm maps none of its pages, zapping it
 * changes nothing. Read without the PTE locks: a page a racing fault maps
 * meanwhile loses its mapping, and its next touch maps it again
 * (uffd_remap; the harvest counts a page without a PTE or a marker as
 * written). Never across a huge extent, which the zap would split.
 */
static bool zap_gap_ok(struct rsv *r, uintptr_t s, uintptr_t e)
{
	if (e - s > ZAP_GAP_MAX * PAGE_SIZE)
		return false;
	for (uintptr_t a = s; a < e; a += PAGE_SIZE) {
		if ((a == s || !(a & (PMD_SIZE - 1))) && extent_huge(r, a))
			return false;
		if (pte_prot(atomic_load_explicit(pte_of(r, a), memory_order_relaxed)))
			return false;
	}
	return true;
}

/*
 * Async-signal-safe. May widen take the page at a into a zap (locking it,
 * *held gets its bit)? One emm has not mapped, yes; a mapped one if it is
 * resident, neither pinned nor referenced (touched since its last revoke:
 * in use, so a hot set stops the widening), and not locked by anyone else
 * (a fault, or a page of this very batch). False stops the widening there.
 */
static bool widen_take(struct rsv *r, uintptr_t a, uintptr_t ws, uint64_t *held)
{
	_Atomic uint64_t *p = pte_of(r, a);
	uint64_t old;

	if (!pte_prot(atomic_load_explicit(p, memory_order_relaxed)))
		return true;
	if (!pte_trylock(p, &old))
		return false;
	if (!pte_prot(old)) {
		pte_unlock(p, old);
		return true;
	}
	if (pte_state(old) != PTE_RESIDENT || (old & (PTE_PINNED | PTE_REFERENCED))) {
		pte_unlock(p, old);
		return false;
	}
	*held |= 1ULL << ((a - ws) >> PAGE_SHIFT);
	return true;
}

/*
 * Async-signal-safe. Widen iov, a range inside one window of ZAP_WINDOW
 * pages, outwards across the pages widen_take takes, within the window:
 * the mapped pages around it are revoked in the same zap, sampled ahead of
 * their turn (a next touch is a minor fault that marks them referenced).
 * Why: each range costs a TLB flush, with the faulting thread on another
 * CPU an IPI; a page revoked now needs no zap of its own later. Random
 * reads of 1 GiB under 256 MiB (uffd-sigbus, 2-vCPU VM, six alternating
 * runs): median 75.9 us a read against 86.1, for 8,650 minor faults a run
 * against 1,240. Returns the bitmap of the pages locked, 0 if not widened.
 */
static uint64_t widen(struct rsv *r, struct iovec *iov)
{
	uintptr_t s = (uintptr_t)iov->iov_base, e = s + iov->iov_len;
	uintptr_t ws = ALIGN_DOWN(s, ZAP_WINDOW * PAGE_SIZE), we = ws + ZAP_WINDOW * PAGE_SIZE;
	uintptr_t lo = s, hi = e;
	uint64_t held = 0;

	if (e > we || ws < r->start || we > r->start + r->len || extent_huge(r, ws))
		return 0;
	for (uintptr_t a = s; a > ws && widen_take(r, a - PAGE_SIZE, ws, &held); a -= PAGE_SIZE)
		if (held & (1ULL << ((a - PAGE_SIZE - ws) >> PAGE_SHIFT)))
			lo = a - PAGE_SIZE;
	for (uintptr_t a = e; a < we && widen_take(r, a, ws, &held); a += PAGE_SIZE)
		if (held & (1ULL << ((a - ws) >> PAGE_SHIFT)))
			hi = a + PAGE_SIZE;
	if (held)
		*iov = (struct iovec){ .iov_base = (void *)lo, .iov_len = hi - lo };
	return held;
}

/*
 * Async-signal-safe. Does widening pay for this instance now? It pays
 * where the pages revoked around are cold: a program reading at random
 * across far more than its budget. Where they are in use, as a heap's
 * neighbours are, each comes back as a minor fault, which costs more than
 * the flush it saved. Judged on a window of WIDEN_JUDGE pages revoked
 * around: off while those of them touched again (refault_around, their
 * own minor faults, PTE_AROUND) pass a quarter of them; while off, on a
 * window of WIDEN_JUDGE_OFF, so that a phase of the program whose
 * neighbours are cold soon has it back; the probes go by pages revoked,
 * not batches, whose sizes differ a hundredfold between programs. Judged
 * on all minor faults, with a probe every 64 batches, a stream's
 * readahead markers turned it off for the random reads after the stream
 * (four threads, 4 GiB under 1 GiB, uffd-sigbus, three pairs: 0.04 to
 * 0.69 pages around a read and 0.15 to 0.21 revokes, against 1.37 to 1.44
 * and 0.12 to 0.17 now; 52.1 to 67.5 us a read against 54.4 to 59.7;
 * Python's dict script 4.28 to 5.22 s against 4.23 to 5.19, widening on
 * with 9 to 13% of its pages around touched again). Measured before that
 * on a 2-vCPU VM, uffd, each pair alternating: Python's dict script under half
 * its peak (45 MiB) took 3.59 to 4.16 s without widening against 4.15 to
 * 4.67 with it (five pairs; minor faults 18 K against 24 to 26 K, with
 * 24 K minor faults for 52 K pages revoked around); random reads of 1 GiB
 * under 256 MiB (uffd-sigbus) 72 to 84 us a read with it against 99 to 103
 * without (three pairs), with 1 K minor faults for 506 K pages revoked
 * around. Racing judges may lose a window: that only delays the next.
 * Returns how many pages around batch v may revoke: all, a probe's, none.
 */
static unsigned widen_pays(struct emm *mm, struct zap_pace *p, const struct revoke_vec *v)
{
	uint64_t around = atomic_load_explicit(&mm->c.revoke_around, memory_order_relaxed);
	uint64_t back = atomic_load_explicit(&mm->c.refault_around, memory_order_relaxed);
	uint64_t a0 = atomic_load_explicit(&p->around0, memory_order_relaxed);
	bool off = atomic_load_explicit(&p->off, memory_order_relaxed);
	uint64_t pages = 0;

	if (around - a0 >= (off ? WIDEN_JUDGE_OFF : WIDEN_JUDGE)) {
		off = (back - atomic_load_explicit(&p->back0, memory_order_relaxed)) * 4 > around - a0;
		atomic_store_explicit(&p->off, off, memory_order_relaxed);
		atomic_store_explicit(&p->around0, around, memory_order_relaxed);
		atomic_store_explicit(&p->back0, back, memory_order_relaxed);
	}
	if (!off)
		return UINT_MAX;
	for (unsigned k = 0; k < v->n; k++)
		pages += v->iov[k].iov_len >> PAGE_SHIFT;
	if (atomic_fetch_add_explicit(&p->revoked, pages, memory_order_relaxed) + pages < WIDEN_PROBE)
		return 0;
	atomic_store_explicit(&p->revoked, 0, memory_order_relaxed);
	return WIDEN_PROBE_PAGES;
}

/* Async-signal-safe. The pages widen locked in the window of s: their new
 * protection if zapped (else the kernel may or may not have zapped them,
 * and their next touch maps them again), then their locks. */
static void unwiden(struct rsv *r, uintptr_t s, uint64_t held, bool zapped, int uffd,
		    int pagemap_fd)
{
	for (uintptr_t a = ALIGN_DOWN(s, ZAP_WINDOW * PAGE_SIZE); held; a += PAGE_SIZE, held >>= 1) {
		uint64_t mark = 0;

		if (!(held & 1))
			continue;
		if (zapped) {
			wp_harvest(r, uffd, pagemap_fd, a, a + PAGE_SIZE);
			backend_set_pte_prot(r, a, a + PAGE_SIZE, EMM_PROT_NONE);
			count_event(r->mm, revoke_around);
			mark = PTE_AROUND;	/* a minor fault counts it (fault.c) */
		}
		pte_unlock(pte_of(r, a), locked_val(r, a) | mark);
	}
}

/* Async-signal-safe. Join v's ranges from *i on into at most ZAP_JOIN_MAX
 * in iov; last[k]: the last of v's ranges iov[k] covers; held[k]: what
 * widen locked around it, while *wide pages may still be (less what it
 * takes). *i moves past those taken. Returns how many iov holds. */
static unsigned join_ranges(const struct revoke_vec *v, unsigned *i, struct iovec *iov,
			    unsigned *last, uint64_t *held, unsigned *wide)
{
	unsigned n = 0;

	for (; *i < v->n; (*i)++) {
		uintptr_t s = (uintptr_t)v->iov[*i].iov_base, end;

		end = n ? (uintptr_t)iov[n - 1].iov_base + iov[n - 1].iov_len : 0;
		if (n && v->rsv[*i] == v->rsv[last[n - 1]] && s >= end &&
		    zap_gap_ok(v->rsv[*i], end, s)) {
			iov[n - 1].iov_len = s + v->iov[*i].iov_len - (uintptr_t)iov[n - 1].iov_base;
		} else if (n == ZAP_JOIN_MAX) {
			break;
		} else {
			iov[n] = v->iov[*i];
			held[n] = *wide ? widen(v->rsv[*i], &iov[n]) : 0;
			*wide -= MIN(*wide, (unsigned)__builtin_popcountll(held[n]));
			n++;
		}
		last[n - 1] = *i;
	}
	return n;
}

/*
 * Async-signal-safe; the PTE locks of every range of v held on entry and
 * exit. The ranges zapped in one process_madvise(2) call, neighbours
 * joined into one range across gaps emm maps nothing in (zap_gap_ok): the
 * kernel flushes the TLB once per range (the app view's entries are dirty,
 * emm-tuning(7)), page by page up to 33 pages, whole above. On a 2-vCPU
 * VM with shadow page tables 32 pages cost 160 to 170 us one by one, 24
 * to 41 us as one range of 63 to 993 pages; with the program on the other
 * CPU, 23.6 us a range (an IPI) for 64 one-page ranges, 1.8 a page as one.
 * Real batches join less (SQLite's 17,300 ranges in 12,400, no faster
 * beyond the noise). Where the kernel stops early, the ranges it did not
 * cover whole are the caller's.
 */
unsigned zap_revoke_many(struct emm *mm, const struct revoke_vec *v, int zap_fd, int uffd,
			 int pagemap_fd, struct zap_pace *pace)
{
	struct iovec iov[ZAP_JOIN_MAX];
	unsigned last[ZAP_JOIN_MAX], i = 0;
	uint64_t held[ZAP_JOIN_MAX];
	unsigned wide = widen_pays(mm, pace, v);

	while (i < v->n) {
		unsigned done = i, n = join_ranges(v, &i, iov, last, held, &wide);
		ssize_t left = zap_many(zap_fd, iov, n);

		/* The kernel stops at the first range it refuses; widen's locks go. */
		for (unsigned k = 0; k < n; k++) {
			bool zapped = left >= (ssize_t)iov[k].iov_len;

			if (held[k])
				unwiden(v->rsv[last[k]], (uintptr_t)iov[k].iov_base, held[k], zapped,
					uffd, pagemap_fd);
			if (!zapped) {
				left = -1;
				continue;
			}
			left -= (ssize_t)iov[k].iov_len;
			count_event(mm, revokes);	/* each a flush of its own */
			for (; done <= last[k]; done++) {
				uintptr_t s = (uintptr_t)v->iov[done].iov_base;

				wp_harvest(v->rsv[done], uffd, pagemap_fd, s,
					   s + v->iov[done].iov_len);
				backend_set_pte_prot(v->rsv[done], s, s + v->iov[done].iov_len,
						     EMM_PROT_NONE);
			}
		}
		if (done < i)
			return done;
	}
	return i;
}
