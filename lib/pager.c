/* SPDX-License-Identifier: MIT */
/* Pager threads: where user fill and writeback callbacks run, never in a handler. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "futex.h"
#include "internal.h"
#include "pager.h"
#include "util.h"

#define PAGER_THREADS	2
#define PAGER_QUEUE	256	/* a power of two */

/* Bounded MPMC queue (sequence numbers per cell): lock-free, so a signal
 * handler can post to it. */
struct pager_cell {
	_Atomic uint64_t seq;
	struct pager_req *req;
};

struct pager {
	struct emm *mm;
	pthread_t thread[PAGER_THREADS];
	int nthreads;
	_Atomic bool stop;
	_Atomic uint32_t work;		/* futex word: bumped on every post */
	_Atomic uint64_t head, tail;
	struct pager_cell cell[PAGER_QUEUE];
};

/* Set on pager threads: their own faults must not wait for a pager. */
static __thread bool on_pager_thread __attribute__((tls_model("initial-exec")));

bool current_is_pager(void)
{
	return on_pager_thread;
}

/* Async-signal-safe. Acquire/release on the cell sequence hands the
 * request pointer from the producer to the consumer. */
static bool queue_push(struct pager *pg, struct pager_req *req)
{
	uint64_t pos = atomic_load_explicit(&pg->tail, memory_order_relaxed);

	for (;;) {
		struct pager_cell *c = &pg->cell[pos & (PAGER_QUEUE - 1)];
		uint64_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);

		if (seq == pos) {
			if (atomic_compare_exchange_weak_explicit(&pg->tail, &pos, pos + 1,
					memory_order_relaxed, memory_order_relaxed)) {
				c->req = req;
				atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
				return true;
			}
		} else if (seq < pos) {
			return false;	/* full */
		} else {
			pos = atomic_load_explicit(&pg->tail, memory_order_relaxed);
		}
	}
}

static struct pager_req *queue_pop(struct pager *pg)
{
	uint64_t pos = atomic_load_explicit(&pg->head, memory_order_relaxed);

	for (;;) {
		struct pager_cell *c = &pg->cell[pos & (PAGER_QUEUE - 1)];
		uint64_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);

		if (seq == pos + 1) {
			if (atomic_compare_exchange_weak_explicit(&pg->head, &pos, pos + 1,
					memory_order_relaxed, memory_order_relaxed)) {
				struct pager_req *req = c->req;

				/* Release: the cell is free for the producer one lap on. */
				atomic_store_explicit(&c->seq, pos + PAGER_QUEUE, memory_order_release);
				return req;
			}
		} else if (seq < pos + 1) {
			return NULL;	/* empty */
		} else {
			pos = atomic_load_explicit(&pg->head, memory_order_relaxed);
		}
	}
}

static void run_request(struct pager_req *req)
{
	int ret;

	if (req->op == PAGER_FILL)
		ret = req->ops->fill(req->arg, req->offset, req->buf, req->len);
	else
		ret = req->ops->writeback ? req->ops->writeback(req->arg, req->offset,
								 req->buf, req->len) : 0;
	req->err = ret < 0 ? ret : 0;
	/* Release: the waiter sees the filled buffer and err. */
	atomic_store_explicit(&req->done, 1, memory_order_release);
	futex_wake(&req->done, 1);
}

static void *pager_main(void *arg)
{
	struct pager *pg = arg;
	sigset_t all;

	/* Signals other than faults stay with the application's threads. */
	sig_fill_async(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	on_pager_thread = true;
	while (!atomic_load(&pg->stop)) {
		uint32_t seen = atomic_load(&pg->work);
		struct pager_req *req = queue_pop(pg);

		if (req)
			run_request(req);
		else
			futex_wait(&pg->work, seen, -1);
	}
	return NULL;
}

/*
 * Async-signal-safe. Hand a request to the pager threads and wait for it;
 * returns the callback's result. A full queue waits for room. Called with
 * page locks held: the callback must not touch those pages.
 */
int pager_call(struct emm *mm, struct pager_req *req)
{
	struct pager *pg = mm->pager;

	if (!pg)
		return -EIO;
	atomic_store_explicit(&req->done, 0, memory_order_relaxed);
	while (!queue_push(pg, req))
		futex_wake(&pg->work, pg->nthreads);
	atomic_fetch_add_explicit(&pg->work, 1, memory_order_release);
	futex_wake(&pg->work, 1);
	/* Acquire: pairs with the release in run_request. */
	while (!atomic_load_explicit(&req->done, memory_order_acquire))
		futex_wait(&req->done, 0, -1);
	return req->err;
}

/* Start the pager threads on the first pager VMA; mm->lock held. */
int pager_start(struct emm *mm)
{
	struct pager *pg;

	if (mm->pager)
		return 0;
	pg = calloc(1, sizeof(*pg));
	if (!pg)
		return -ENOMEM;
	pg->mm = mm;
	for (uint64_t i = 0; i < PAGER_QUEUE; i++)
		atomic_init(&pg->cell[i].seq, i);
	for (int i = 0; i < PAGER_THREADS; i++) {
		int err = thread_start(&pg->thread[i], "emm-pager", i, pager_main, pg);

		if (err) {
			if (!i) {
				free(pg);
				return err;
			}
			break;
		}
		pg->nthreads++;
	}
	mm->pager = pg;
	return 0;
}

void pager_stop(struct emm *mm)
{
	struct pager *pg = mm->pager;

	if (!pg)
		return;
	atomic_store(&pg->stop, true);
	atomic_fetch_add(&pg->work, 1);
	futex_wake(&pg->work, pg->nthreads);
	for (int i = 0; i < pg->nthreads; i++)
		pthread_join(pg->thread[i], NULL);
	free(pg);
	mm->pager = NULL;
}
