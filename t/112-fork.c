/* SPDX-License-Identifier: MIT */
/* A forked child cannot use its parent's instance, nor touch the memory of one opened with EMM_OPEN_NO_FORK_COPY, and whatever it tries leaves the parent unaffected; a child forked as an instance starts its threads can allocate and open its own. */
#include <signal.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE	4096UL
#define MIB	(1UL << 20)
#define LIMIT	(4 * MIB)
#define LEN	(32 * MIB)

static struct emm *mm, *nocopy;
static char *mem, *nomem;

/* Every call on the inherited instance: -ECHILD. Exit status: how many did not. */
static void child_calls(void *arg)
{
	int bad = 0;
	void *p;

	(void)arg;
	alarm(20);
	bad += emm_map(mm, mem + LEN - PAGE, PAGE, NULL) != -ECHILD;
	bad += emm_unmap(mm, mem, PAGE) != -ECHILD;
	bad += emm_protect(mm, mem, PAGE, EMM_PROT_READ) != -ECHILD;
	bad += emm_advise(mm, mem, LEN, EMM_ADV_WILLNEED) != -ECHILD;
	bad += emm_prefault(mm, mem, LEN, 1) != -ECHILD;
	bad += emm_pin(mm, mem, PAGE) != -ECHILD;
	bad += emm_set_limit(mm, 2 * MIB) != -ECHILD;
	bad += emm_reclaim(mm, MIB) != -ECHILD;
	bad += emm_reserve(mm, 2 * MIB, &p) != -ECHILD;
	bad += emm_stats(mm, &(struct emm_stats){ .sz = sizeof(struct emm_stats) }) != -ECHILD;
	bad += emm_close(mm) != -ECHILD;
	_exit(bad);
}

/* Touching memory that no fork copies: not served, the child dies of SIGSEGV. */
static void child_touch(void *arg)
{
	(void)arg;
	alarm(20);
	(void)*(volatile char *)(nomem + LEN / 2);	/* swapped out in the parent */
	_exit(0);
}

/* Allocate and open an instance of its own: a lock an emm thread held at
 * the fork would hang it, and the alarm would kill it. */
static void child_opens(void *arg)
{
	struct emm *own;
	void *p;

	(void)arg;
	alarm(20);
	p = malloc(100000);
	if (!p || emm_open(NULL, &own) || emm_close(own))
		_exit(1);
	free(p);
	_exit(0);
}

/* Fork right after emm_open, while the new instance's threads start. */
static int fork_as_threads_start(int rounds)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = LEN);
	int failed = 0;

	for (int i = 0; i < rounds; i++) {
		struct emm *other;
		char out[1024];
		int st;

		if (emm_open(&o, &other))
			return -1;
		if (fork_stderr(child_opens, NULL, out, sizeof(out), &st))
			st = -1;
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			if (!failed++)
				diag("round %d: child status 0x%x: %s", i, st, out);
		}
		emm_close(other);
	}
	return failed;
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 4 * LEN);
	char out[4096];
	int st;

	plan(7);
	if (emm_open(&o, &mm) || emm_reserve(mm, LEN, (void **)&mem) || emm_map(mm, mem, LEN, NULL))
		bail("emm_open/emm_reserve/emm_map failed");
	fill_words(mem, LEN, word_value);
	o.flags = EMM_OPEN_NO_FORK_COPY;
	if (emm_open(&o, &nocopy))
		bail("emm_open with EMM_OPEN_NO_FORK_COPY failed");
	nomem = (char *)paged_out_region(nocopy, LEN);
	alarm(120);	/* a parent hung by its child fails rather than hangs */

	if (fork_stderr(child_calls, NULL, out, sizeof(out), &st))
		bail("fork");
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "in a child, every call on the parent's instance fails with -ECHILD");
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		diag("status 0x%x: %s", st, out);

	if (fork_stderr(child_touch, NULL, out, sizeof(out), &st))
		bail("fork");
	/* A sanitizer takes the fatal SIGSEGV over (emm passes it on to the
	 * handler installed before it) and ends the process its own way:
	 * there, that the child did not go on is what can be checked. */
	ok(TAP_SANITIZER ? !(WIFEXITED(st) && WEXITSTATUS(st) == 0)
			 : WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
	   "a child touching memory of an instance opened with EMM_OPEN_NO_FORK_COPY dies of SIGSEGV");
	if (TAP_SANITIZER)
		diag("child status 0x%x", st);
	ok(strstr(out, "forked child") != NULL, "and emm says why");
	if (!strstr(out, "forked child"))
		diag("status 0x%x, stderr: %s", st, out);

	/* ThreadSanitizer's own bookkeeping fails there ("dup thread with
	 * used id"): a child's new thread may reuse the id of one of the
	 * parent's, which it still counts as running. */
	if (TAP_TSAN)
		skip(1, "ThreadSanitizer cannot follow threads started in a child of a threaded process");
	else
		is_int(fork_as_threads_start(20), 0,
		       "20 children forked as an instance starts its threads allocate and open their own");
	is_int(count_bad_words(mem, LEN, word_value), 0, "the parent reads back all it wrote");
	ok(stats(mm).swapins > 0, "through swap");
	is_int(emm_close(mm), 0, "emm_close");
	emm_close(nocopy);
	return done_testing();
}
