/* SPDX-License-Identifier: MIT */
/* Instances do not wait for each other: while a fault in one waits on a pager fill that
 * blocks (on a pipe), emm_reserve, emm_map, emm_protect, emm_unmap and emm_release on
 * another complete; the fault then completes with the filled data. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define FILL_WORD 0x108108108108ULL
#define WAIT_MS 10000		/* far above what the other instance's calls take */

static int pipefd[2];
static _Atomic int fill_started;

/* The first fill waits for a byte on the pipe: the fault stays in progress. */
static int fill(void *arg, uint64_t offset, void *buf, size_t len)
{
	char c;

	(void)arg;
	(void)offset;
	if (!atomic_exchange(&fill_started, 1) && read(pipefd[0], &c, 1) != 1)
		return -EIO;
	for (size_t i = 0; i < len / 8; i++)
		((uint64_t *)buf)[i] = FILL_WORD;
	return 0;
}

static const struct emm_pager_ops slow_pager = { .fill = fill };

static volatile uint64_t *slow_page;
static uint64_t seen;

static void *toucher(void *arg)
{
	(void)arg;
	seen = *slow_page;	/* faults, and waits for the fill */
	return NULL;
}

/* The other instance's writers, each of which waits for its own readers. */
static struct emm *other;
static _Atomic int other_done;
static int other_err;

static void *other_calls(void *arg)
{
	EMM_OPTS(emm_map_opts, anon, .prot = EMM_PROT_READ | EMM_PROT_WRITE);
	void *base = NULL;
	int err;

	(void)arg;
	err = emm_reserve(other, 4 * MIB, &base);
	for (int i = 0; !err && i < 64; i++) {
		char *p = (char *)base + (size_t)i * 64 * 1024;

		err = emm_map(other, p, 64 * 1024, &anon);
		if (!err) {
			p[0] = (char)i;		/* a fault of its own, served meanwhile */
			err = emm_protect(other, p, 64 * 1024, EMM_PROT_READ);
		}
		if (!err)
			err = emm_unmap(other, p, 64 * 1024);
	}
	if (!err)
		err = emm_release(other, base);
	other_err = err;
	atomic_store(&other_done, 1);
	return NULL;
}

static long wait_flag(_Atomic int *flag, long ms)
{
	long t0 = now_ms();

	while (!atomic_load(flag) && now_ms() - t0 < ms)
		usleep(1000);
	return now_ms() - t0;
}

int main(void)
{
	EMM_OPTS(emm_map_opts, pager, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .policy = EMM_POLICY_PAGER, .pager = &slow_pager);
	struct emm *mm;
	pthread_t t, o;
	void *base;
	long ms;

	plan(7);
	if (pipe(pipefd))
		bail("pipe: %s", strerror(errno));
	if (emm_open(NULL, &mm) || emm_open(NULL, &other))
		bail("emm_open failed");
	is_int(emm_reserve(mm, 4 * MIB, &base), 0, "reserve in the first instance");
	is_int(emm_map(mm, base, 4 * MIB, &pager), 0, "a PAGER VMA over it");
	slow_page = base;
	if (pthread_create(&t, NULL, toucher, NULL))
		bail("pthread_create failed");
	ok(wait_flag(&fill_started, WAIT_MS) < WAIT_MS, "a fault in the first instance waits on its fill");

	if (pthread_create(&o, NULL, other_calls, NULL))
		bail("pthread_create failed");
	ms = wait_flag(&other_done, WAIT_MS);
	ok(atomic_load(&other_done), "the second instance's reserve, map, protect, unmap and release "
	   "complete while the fill is blocked (%ld ms)", ms);

	/* Let the fill go, so a failure above still ends. */
	if (write(pipefd[1], "x", 1) != 1)
		bail("write: %s", strerror(errno));
	pthread_join(o, NULL);
	is_int(other_err, 0, "and every one of them succeeded");
	pthread_join(t, NULL);
	ok(seen == FILL_WORD, "the blocked fault completes with the filled data");
	is_int(emm_close(other) | emm_close(mm), 0, "both instances close");
	return done_testing();
}
