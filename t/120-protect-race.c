/* SPDX-License-Identifier: MIT */
/*
 * A fault next to a range another thread is giving access (emm_protect,
 * emm_map) is served: its fault-around cluster may reach over the range
 * in emm's VMAs before the kernel's VMAs have changed too. On uffd the
 * kernel maps a range in one call only inside one kernel VMA; a cluster
 * crossing the boundary failed, and the faulting thread died of SIGBUS
 * (seen first in V8's heap under the preload).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE	4096UL
#define Y	24		/* pages [0, 24): the faulting thread's */
#define X	16		/* pages [24, 40): given access and taken again */
#define RUN_MS	1000

struct race {
	struct emm *mm;
	char *p;
	atomic_bool stop;
	bool map;		/* emm_map and emm_unmap, not emm_protect */
	long flips;
};

static void *flipper(void *arg)
{
	struct race *rc = arg;
	char *x = rc->p + Y * PAGE;
	EMM_OPTS(emm_map_opts, mo, .prot = EMM_PROT_READ | EMM_PROT_WRITE);

	while (!atomic_load(&rc->stop)) {
		int err = rc->map ? emm_unmap(rc->mm, x, X * PAGE) || emm_map(rc->mm, x, X * PAGE, &mo)
				  : emm_protect(rc->mm, x, X * PAGE, EMM_PROT_NONE) ||
				    emm_protect(rc->mm, x, X * PAGE, EMM_PROT_READ | EMM_PROT_WRITE);

		if (err)
			_exit(3);
		rc->flips++;
	}
	return NULL;
}

/* In a child: touch the last page of Y again and again, each time after
 * dropping Y's pages of its 16-page block [16, 32) (so that its fault maps
 * a cluster, which reaches into X where the VMAs allow), while the flipper
 * changes X. Exits 0 with the counts on its stdout. */
static void child(int backend, bool map)
{
	EMM_OPTS(emm_opts, o, .backend = backend);
	struct race rc = { .map = map };
	long touches = 0, t0;
	pthread_t t;

	if (emm_open(&o, &rc.mm))
		_exit(2);
	if (emm_reserve(rc.mm, 2UL << 20, (void **)&rc.p) ||
	    emm_map(rc.mm, rc.p, (Y + X) * PAGE, NULL))
		_exit(3);
	if (pthread_create(&t, NULL, flipper, &rc))
		_exit(3);
	t0 = now_ms();
	while (now_ms() - t0 < RUN_MS) {
		/* Holes again, [16, 24). */
		if (emm_advise(rc.mm, rc.p + 16 * PAGE, (Y - 16) * PAGE, EMM_ADV_DONTNEED))
			_exit(3);
		rc.p[(Y - 1) * PAGE] = (char)touches;
		if (rc.p[(Y - 1) * PAGE] != (char)touches)
			_exit(4);
		touches++;
	}
	atomic_store(&rc.stop, true);
	pthread_join(t, NULL);
	dprintf(1, "%ld %ld\n", touches, rc.flips);
	emm_close(rc.mm);
	_exit(0);
}

static void child_protect(int backend)
{
	child(backend, false);
}

static void child_map(int backend)
{
	child(backend, true);
}

static void run(int backend, const char *name, bool map)
{
	const char *how = map ? "emm_unmap and emm_map" : "emm_protect";
	EMM_OPTS(emm_opts, o, .backend = backend);
	char out[64];
	struct emm *mm;
	int st;

	/* Offered here? */
	if (!(mm = open_or_skip(&o, name, 1)))
		return;
	emm_close(mm);
	st = in_child(map ? child_map : child_protect, backend, out, sizeof(out));
	if (WIFSIGNALED(st))
		ok(0, "%s: faults next to %s in another thread: killed by signal %d", name, how,
		   WTERMSIG(st));
	else
		ok(WEXITSTATUS(st) == 0, "%s: faults next to %s in another thread all served "
		   "(touches, changes: %s; exit %d)", name, how, out, WEXITSTATUS(st));
}

static void run_protect(int backend, const char *name)
{
	run(backend, name, false);
}

static void run_map(int backend, const char *name)
{
	run(backend, name, true);
}

int main(void)
{
	plan(6);
	each_backend(run_protect);
	each_backend(run_map);
	return done_testing();
}
