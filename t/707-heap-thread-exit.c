/* SPDX-License-Identifier: MIT */
/* libemm-heap: the free pages a thread leaves when it ends go back to emm, unless MIMALLOC_ABANDONED_PAGE_DECOMMIT says not to. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "emm.h"
#include "emm-heap.h"
#include "tap.h"

#define MIB (1UL << 20)
#define BLOCKS 40000		/* of 200 bytes: 8 MB in small pages */

static struct emm_heap *heap;
static void *kept;

static uint64_t region_used(void)
{
	EMM_OPTS(emm_heap_stats, s);

	if (emm_heap_stats(heap, &s))
		bail("emm_heap_stats");
	return s.region_used_bytes;
}

/* Fills 8 MB, frees all but one block (its segment stays, abandoned, when
 * the thread ends), and ends. */
static void *churn(void *arg)
{
	static void *b[BLOCKS];

	(void)arg;
	for (int i = 0; i < BLOCKS; i++) {
		b[i] = emm_heap_malloc(heap, 200);
		if (!b[i])
			return (void *)1;
		memset(b[i], i, 200);
	}
	kept = b[BLOCKS / 2];
	for (int i = 0; i < BLOCKS; i++)
		if (b[i] != kept)
			emm_heap_free(heap, b[i]);
	return NULL;
}

/* A new heap, a thread that churns it and ends: the bytes of the region
 * mimalloc holds committed once it has ended. */
static uint64_t after_thread(struct emm *mm)
{
	pthread_t t;
	void *ret;

	if (emm_heap_create(mm, 256 * MIB, NULL, &heap))
		bail("emm_heap_create");
	if (pthread_create(&t, NULL, churn, NULL) || pthread_join(t, &ret) || ret)
		bail("the thread failed");
	return region_used();
}

static struct emm *open_mm(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 256 * MIB, .swap_size = 64 * MIB);
	struct emm *mm;

	if (emm_open(&o, &mm))
		bail("emm_open");
	return mm;
}

int main(void)
{
	struct emm *mm;
	pid_t pid;
	int status;
	uint64_t used;

	plan(3);
	/* mimalloc's options are the process's: the user's choice is tried in
	 * a child that makes its heap first. */
	pid = fork();
	if (pid == 0) {
		setenv("MIMALLOC_ABANDONED_PAGE_DECOMMIT", "0", 1);
		used = after_thread(open_mm());
		_exit(used >= 4 * MIB ? 0 : 1);
	}
	ok(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	   WEXITSTATUS(status) == 0,
	   "with MIMALLOC_ABANDONED_PAGE_DECOMMIT=0, the ended thread's free pages stay committed");
	mm = open_mm();
	used = after_thread(mm);
	ok(used < 2 * MIB, "by default they go back: %llu bytes committed after 8 MB freed "
	   "but one block, the thread ended", (unsigned long long)used);
	emm_heap_free(heap, kept);
	is_int(emm_heap_destroy(heap), 0, "the heap is destroyed with the block freed");
	emm_close(mm);
	return done_testing();
}
