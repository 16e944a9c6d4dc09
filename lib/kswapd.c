/* SPDX-License-Identifier: MIT */
/* The budget: charging pages against the watermarks, direct reclaim, and the
 * reclaim threads (kswapd), two per node. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "futex.h"
#include "kswapd.h"
#include "lru.h"
#include "swap.h"
#include "util.h"
#include "vmscan.h"

/* The reclaim thread works in larger batches than a faulting thread:
 * revoking and freeing long runs costs far less per page. */
#define KSWAPD_BATCH	512
/* Reclaim threads per node: while one waits for its batch to be written,
 * others take the next off the lists and revoke it, so the device sees
 * several writes at once. The first is woken above the low watermark,
 * the others only when a fault finds the budget past min: they compete
 * for the CPU with the program. Measured on a 2-vCPU VM, the first touch
 * of 4 GiB under a 1 GiB budget on uffd-sigbus, four alternating rounds
 * each: 729 MiB/s with two, 966 with three, 994 with four (each batch
 * written as one chunk after another, so each thread keeps one write in
 * flight). */
#define KSWAPD_PER_NODE	4

/* Async-signal-safe. No slot left for a dirty page. */
static bool swap_exhausted(struct emm *mm)
{
	return !mm->swap || swap_is_full(mm->swap);
}

/* Async-signal-safe. Watermarks, in pages of resident memory: of the
 * instance, and of each node (its share, with headroom in proportion). */
static long limit_pages(const struct emm *mm)
{
	return (long)(atomic_load_explicit(&mm->cfg.mem_limit, memory_order_relaxed) >> PAGE_SHIFT);
}

static long resident(const struct emm *mm)
{
	return (long)atomic_load_explicit(&mm->c.resident_pages, memory_order_relaxed);
}

/* Async-signal-safe. The limit and watermarks change under the program's
 * emm_set_limit while faults and the reclaim thread read them: relaxed,
 * each read on its own, since any recent value is a fine target. */
static uint64_t wmark_of(const _Atomic uint64_t *wmark)
{
	return atomic_load_explicit(wmark, memory_order_relaxed);
}

static long node_limit(const struct emm *mm, int n)
{
	return atomic_load_explicit(&mm->lru->node[n].limit, memory_order_relaxed);
}

static long wmark(const struct emm *mm, uint64_t headroom)
{
	return limit_pages(mm) - (long)(headroom >> PAGE_SHIFT);
}

static long node_resident(const struct emm *mm, int n)
{
	return atomic_load_explicit(&mm->lru->node[n].resident, memory_order_relaxed);
}

static inline long node_wmark(const struct emm *mm, int n, uint64_t headroom)
{
	long lim = node_limit(mm, n);

	return lim - (long)((headroom >> PAGE_SHIFT) * (uint64_t)lim / (uint64_t)MAX(limit_pages(mm), 1));
}

/* Async-signal-safe. The node furthest over its share: where reclaim for
 * the instance's budget starts. */
static int busiest_node(const struct emm *mm)
{
	int best = 0;

	for (int n = 1; n < mm->lru->nnodes; n++)
		if (node_resident(mm, n) - node_limit(mm, n) >
		    node_resident(mm, best) - node_limit(mm, best))
			best = n;
	return best;
}

/* Async-signal-safe. Is the node (or the instance, through its busiest
 * node) above the watermark? */
static inline bool over(const struct emm *mm, int n, uint64_t headroom, long more)
{
	if (node_resident(mm, n) + more > node_wmark(mm, n, headroom))
		return true;
	return resident(mm) + more > wmark(mm, headroom) && busiest_node(mm) == n;
}

/* Async-signal-safe. Wake a node's first reclaim thread if it sleeps; all
 * of them with all. The count moves for a running thread too: one that
 * looked at the watermarks before this charge and is about to sleep then
 * does not (kswapd), where it used to sleep until its timeout. */
static void wakeup_kswapd(struct emm *mm, int n, bool all)
{
	for (int i = 0; mm->kswapd && i < (all ? KSWAPD_PER_NODE : 1); i++) {
		struct kswapd *ks = &mm->kswapd[n * KSWAPD_PER_NODE + i];

		if (!ks->started)
			continue;
		/* seq_cst, both: count then running here, running then the
		 * count (in futex_wait) in kswapd; a store then a load on each
		 * side, so one of them sees the other's store and no wake-up
		 * is lost. */
		atomic_fetch_add_explicit(&ks->wake, 1, memory_order_seq_cst);
		if (!atomic_load_explicit(&ks->running, memory_order_seq_cst))
			futex_wake(&ks->wake, 1);
	}
}

/*
 * The batch work space of the calling thread when it is one of emm's own
 * (readahead, fault service), made by the thread that starts it
 * (reclaim_space_alloc): a thread that allocated as it started could hold
 * the allocator's lock while the program forks, and the child would wait
 * for it forever. Its direct reclaim then takes what the
 * charge asks for in one batch, up to KSWAPD_BATCH, where a program's
 * thread, in a signal handler, takes SWAP_CLUSTER_MAX at a time off its
 * stack. Each batch costs a revoke and a punch, each a TLB flush sent to
 * every CPU the program runs on. A readahead thread charging a 2 MiB
 * window made 16 of each; now it makes one. Measured on a 2-vCPU VM,
 * uffd-sigbus, alternating runs: the second pass of a 4 GiB sequential
 * read under a 1 GiB budget 175 to 183 K pages/s with 7.6 to 8.1 s of CPU,
 * against 138 to 171 K with 9.1 to 11.7 s; a FILE VMA read in order
 * (2 GiB, 512 MiB budget) 999 to 1,073 MiB/s against 875 to 951.
 */
static __thread struct reclaim *thread_rc __attribute__((tls_model("initial-exec")));

struct reclaim *reclaim_space_alloc(void)
{
	return reclaim_alloc(KSWAPD_BATCH);
}

/* The calling thread reclaims in rc from now on (NULL: off its stack);
 * rc stays the caller's, to free once the thread is gone. */
void reclaim_thread_attach(struct reclaim *rc)
{
	thread_rc = rc;
}

/*
 * Async-signal-safe. Direct reclaim of nr pages from node, in the calling
 * thread's work space if it has one; a program's thread, in a signal
 * handler, takes the instance's spare one when no other thread has it,
 * else SWAP_CLUSTER_MAX pages at a time off its stack. A cold huge extent
 * leaves whole only from a batch with room for its 512 pages (pageout.c,
 * huge_whole_ok); off the stack it is split and its pages go one by one.
 * First touch of 4 GiB of EMM_MAP_HUGEPAGE memory under a 1 GiB budget
 * (uffd-sigbus, 2-vCPU VM), every extent made huge (fault.c,
 * huge_fault_ok): 441 and 631 extents split without the spare space, none
 * with it, and 3.6 to 3.8 s of CPU against 5.9 and 5.0.
 */
static long direct_reclaim(struct emm *mm, int node, long nr)
{
	struct reclaim *rc;
	long got;

	if (thread_rc)
		return shrink_node_with(mm, node, nr, thread_rc);
	rc = atomic_exchange_explicit(&mm->direct_rc, NULL, memory_order_acquire);
	if (!rc)
		return shrink_node(mm, node, nr);
	got = shrink_node_with(mm, node, nr, rc);
	atomic_store_explicit(&mm->direct_rc, rc, memory_order_release);
	return got;
}

/* Async-signal-safe. mm_charge above the low watermark: target is the
 * node whose reclaim thread to wake, and where to reclaim past min. Out of
 * line, so that a charge below the watermark costs a few loads. */
__attribute__((noinline))
static void charge_over_low(struct emm *mm, int target, long pages)
{
	/* Tell the thread what is coming, so it frees room for it too. */
	if (mm->kswapd)
		atomic_store_explicit(&mm->kswapd[target * KSWAPD_PER_NODE].want,
				      MIN(pages, node_limit(mm, target) / 8), memory_order_relaxed);
	wakeup_kswapd(mm, target, false);
	if (!over(mm, target, wmark_of(&mm->cfg.wmark_min), pages) &&
	    resident(mm) + pages <= wmark(mm, wmark_of(&mm->cfg.wmark_min)))
		return;
	wakeup_kswapd(mm, target, true);
	/* With swap full only clean and zero pages can go: leave that to the
	 * reclaim thread rather than scan the lists at every fault. */
	if (swap_exhausted(mm)) {
		count_event(mm, oom_events);
		return;
	}
	count_event(mm, allocstall);
	for (int i = 0; i < 4 && (over(mm, target, wmark_of(&mm->cfg.wmark_min), pages) ||
				  resident(mm) + pages > wmark(mm, wmark_of(&mm->cfg.wmark_min))); i++) {
		long got = direct_reclaim(mm, target, MAX(pages, SWAP_CLUSTER_MAX));

		count_events(mm, pgsteal_direct, (uint64_t)got);
		if (!got)
			break;
	}
}

/*
 * Async-signal-safe. pages more are about to become resident on node:
 * above the low watermark wake the node's reclaim thread; past min,
 * reclaim a batch here (direct reclaim). When nothing can be reclaimed the
 * budget is exceeded, never the data dropped.
 */
void mm_charge(struct emm *mm, int node, long pages)
{
	uint64_t low = wmark_of(&mm->cfg.wmark_low);

	/* Below the watermark, the node and the instance both (so not over()):
	 * nothing to do, the case of nearly every fault. */
	if (node_resident(mm, node) + pages <= node_wmark(mm, node, low) &&
	    resident(mm) + pages <= wmark(mm, low))
		return;
	if (!over(mm, node, low, pages))
		node = busiest_node(mm);
	charge_over_low(mm, node, pages);
}

/* Async-signal-safe. Pages charged to node have come in: wake its reclaim
 * thread if they took it (or the instance) past the low watermark. A
 * charge looks before its pages come in, so charges on several threads at
 * once may each find room and together pass the watermark, even the
 * budget, after the thread last looked; with no charge after them, the
 * thread slept on with the budget exceeded (t/702 under AddressSanitizer:
 * 8,600 KiB resident under 8,192 for a second, nothing scanned). The last
 * of them to come in sees it here. */
void mm_charged(struct emm *mm, int node)
{
	uint64_t low = wmark_of(&mm->cfg.wmark_low);

	if (node_resident(mm, node) <= node_wmark(mm, node, low) && resident(mm) <= wmark(mm, low))
		return;
	wakeup_kswapd(mm, over(mm, node, low, 0) ? node : busiest_node(mm), false);
}

/* Async-signal-safe. May pages more come in on node and leave it and the
 * instance under half their share and budget: room to spare, whatever
 * faults charge meanwhile? */
bool mm_has_spare(const struct emm *mm, int node, long pages)
{
	return node_resident(mm, node) + pages <= node_limit(mm, node) / 2 &&
	       resident(mm) + pages <= limit_pages(mm) / 2;
}

/* Async-signal-safe. May pages more come in on node with no direct
 * reclaim (below the min watermark, the node and the instance both)? If
 * not, the node's reclaim threads are woken, to make that room. */
bool mm_room_unstalled(struct emm *mm, int node, long pages)
{
	uint64_t min = wmark_of(&mm->cfg.wmark_min);

	if (!over(mm, node, min, pages) && resident(mm) + pages <= wmark(mm, min))
		return true;
	wakeup_kswapd(mm, node, true);
	return false;
}

/* Async-signal-safe. May pages more come in on node without passing its
 * share or the budget? */
bool mm_has_room(const struct emm *mm, int node, long pages)
{
	return node_resident(mm, node) + pages <= node_limit(mm, node) &&
	       resident(mm) + pages <= limit_pages(mm);
}

static void kswapd_sleep(struct kswapd *ks, uint32_t seen, long ms)
{
	futex_wait(&ks->wake, seen, ms);
}

/* The budget is exceeded and nothing more can go: tell the program. */
static void out_of_memory(struct emm *mm)
{
	long over_by = resident(mm) - limit_pages(mm);

	if (over_by <= 0)
		return;
	count_event(mm, oom_events);
	if (mm->cfg.oom)
		mm->cfg.oom(mm, (uint64_t)over_by << PAGE_SHIFT, mm->cfg.oom_arg);
}

/* A node's reclaim thread: sleeps until the node (or the instance, when
 * this node is the busiest) passes the low watermark, then reclaims down to
 * the high one. */
static void *kswapd(void *arg)
{
	struct kswapd *ks = arg;
	struct emm *mm = ks->mm;
	sigset_t all;

	/* The application's signals go to its threads; faults stay deliverable
	 * (the oom callback may touch emm memory). */
	sig_fill_async(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	while (!atomic_load(&mm->kswapd_stop)) {
		uint32_t seen = atomic_load(&ks->wake);
		long want = atomic_exchange(&ks->want, 0);	/* pages a fault is about to add */

		if (!want && !over(mm, ks->node, wmark_of(&mm->cfg.wmark_low), 0)) {
			atomic_store(&ks->running, false);
			kswapd_sleep(ks, seen, THREAD_IDLE_MS);
			atomic_store(&ks->running, true);
			continue;
		}
		while (!atomic_load(&mm->kswapd_stop) && over(mm, ks->node, wmark_of(&mm->cfg.wmark_high), want)) {
			/* A batch at a time, the need looked at again after each:
			 * emm_set_limit and faulting threads reclaim meanwhile, and
			 * a need sized once went on after they had met it (the
			 * budget halved, the thread and emm_set_limit each took
			 * the half: all of it went). */
			long need = MIN(node_resident(mm, ks->node) + want -
					node_wmark(mm, ks->node, wmark_of(&mm->cfg.wmark_high)),
					KSWAPD_BATCH);
			long got = shrink_node_with(mm, ks->node, need, ks->rc);

			if (got)
				continue;
			out_of_memory(mm);
			kswapd_sleep(ks, atomic_load(&ks->wake), 10);
			break;
		}
	}
	return NULL;
}

/* Whether a reclaim thread of the node (of any node, for -1) is at work:
 * it may hold a batch of the node's pages off its lists. */
bool kswapd_busy(const struct emm *mm, int node)
{
	for (int k = 0; mm->kswapd && k < mm->lru->nnodes * KSWAPD_PER_NODE; k++) {
		const struct kswapd *ks = &mm->kswapd[k];

		if ((node < 0 || ks->node == node) && ks->started && atomic_load(&ks->running))
			return true;
	}
	return false;
}

/* KSWAPD_PER_NODE reclaim threads per node. */
int kswapd_start(struct emm *mm)
{
	int threads = mm->lru->nnodes * KSWAPD_PER_NODE;

	mm->kswapd = calloc((size_t)threads, sizeof(*mm->kswapd));
	if (!mm->kswapd)
		return -ENOMEM;
	atomic_store(&mm->direct_rc, reclaim_alloc(KSWAPD_BATCH));
	if (!atomic_load(&mm->direct_rc))
		return -ENOMEM;
	for (int k = 0; k < threads; k++) {
		struct kswapd *ks = &mm->kswapd[k];
		int err;

		ks->mm = mm;
		ks->node = k / KSWAPD_PER_NODE;
		ks->rc = reclaim_alloc(KSWAPD_BATCH);
		if (!ks->rc)
			return -ENOMEM;
		atomic_store(&ks->running, true);
		err = thread_start(&ks->thread, "emm-kswapd", k, kswapd, ks);
		if (err)
			return err;
		ks->started = true;
	}
	return 0;
}

void kswapd_stop(struct emm *mm)
{
	if (!mm->kswapd)
		return;
	atomic_store(&mm->kswapd_stop, true);
	for (int k = 0; k < mm->lru->nnodes * KSWAPD_PER_NODE; k++) {
		struct kswapd *ks = &mm->kswapd[k];

		atomic_fetch_add(&ks->wake, 1);
		futex_wake(&ks->wake, 1);
		if (ks->started)
			pthread_join(ks->thread, NULL);
		free(ks->rc);
	}
	free(mm->kswapd);
	mm->kswapd = NULL;
	free(atomic_exchange(&mm->direct_rc, NULL));
}
