/* SPDX-License-Identifier: MIT */
/* Every protection with every page state: reads and writes complete or trap as the protection says, and never spin. */
#include <signal.h>

#include "emm.h"
#include "probe.h"
#include "tap.h"
#include "util.h"

#define PAGE	4096UL
#define PAGES	8

/* How the page got where it is before its protection changes. */
enum state { UNTOUCHED, DIRTY, SWAPPED, CLEAN_COPY, COLD, FILE_PAGE, PAGER_PAGE, NSTATES };

static const char *const state_name[] = {
	"never touched", "dirty", "swapped out", "clean with a swap copy", "cold",
	"a FILE page", "a PAGER page",
};

static int pager_fill(void *arg, uint64_t off, void *buf, size_t len)
{
	(void)arg;
	for (size_t i = 0; i < len / 8; i++)
		((uint64_t *)buf)[i] = (off + i * 8) | 1;
	return 0;
}

static const struct emm_pager_ops pager = { .fill = pager_fill };

/* What the first word of page 0 holds in each state. */
static uint64_t first_word(enum state s)
{
	return s == UNTOUCHED ? 0 : s == PAGER_PAGE ? 1 : s == FILE_PAGE ? 0x5a5a5a5a5a5a5a5aULL : 42;
}

static int map_state(struct emm *mm, char *p, enum state s)
{
	EMM_OPTS(emm_map_opts, o, .prot = EMM_PROT_READ | EMM_PROT_WRITE, .trap = trap);
	int fd = -1;

	if (s == FILE_PAGE) {
		static char buf[PAGES * PAGE];

		fd = tmp_file("prot", NULL, 0);
		memset(buf, 0x5a, sizeof(buf));
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			return -EIO;
		o.policy = EMM_POLICY_FILE;
		o.fd = fd;
	} else if (s == PAGER_PAGE) {
		o.policy = EMM_POLICY_PAGER;
		o.pager = &pager;
	}
	if (emm_map(mm, p, PAGES * PAGE, &o))
		return -1;
	if (fd >= 0)
		close(fd);
	if (s == UNTOUCHED || s == FILE_PAGE || s == PAGER_PAGE)
		return 0;
	*(volatile uint64_t *)p = 42;
	if (s == SWAPPED || s == CLEAN_COPY)
		if (emm_advise(mm, p, PAGES * PAGE, EMM_ADV_PAGEOUT))
			return -1;
	if (s == CLEAN_COPY)
		(void)*(volatile uint64_t *)p;
	if (s == COLD)
		return emm_advise(mm, p, PAGES * PAGE, EMM_ADV_COLD);
	return 0;
}

/* In a child of its own, with an alarm, so that a fault that never ends fails the
 * test instead of hanging it. Exit status: the number of wrong results. */
static void child(enum state s, int prot)
{
	int bad = 0, readable = prot != EMM_PROT_NONE, writable = prot & EMM_PROT_WRITE;
	struct emm *mm;
	char *p;

	alarm(10);
	if (emm_open(NULL, &mm) || emm_reserve(mm, 2 << 20, (void **)&p))
		_exit(100);
	if (map_state(mm, p, s) || emm_protect(mm, p, PAGES * PAGE, prot))
		_exit(100);
	bad += access_once(p, 8, 0, 0) != (readable ? NONE : TRAP);
	if (readable)
		bad += *(volatile uint64_t *)p != first_word(s);
	bad += emm_prefault(mm, p + PAGE, PAGE, 0) != (readable ? 0 : -EACCES);
	if (readable)
		bad += access_once(p + PAGE, 8, 0, 0) != NONE;
	bad += access_once(p, 8, 1, 7) != (writable ? NONE : TRAP);
	if (readable)
		bad += *(volatile uint64_t *)p != (writable ? 7 : first_word(s));
	_exit(bad + (emm_close(mm) != 0));
}

int main(void)
{
	plan(8 * NSTATES);
	probe_install();
	for (int prot = 0; prot < 8; prot++)
		for (int s = 0; s < NSTATES; s++) {
			pid_t pid;
			int st;

			tap_flush();
			pid = fork();
			if (pid == 0)
				child(s, prot);
			waitpid(pid, &st, 0);
			if (WIFSIGNALED(st))
				diag("killed by signal %d%s", WTERMSIG(st),
				     WTERMSIG(st) == SIGALRM ? ": an access never completed" : "");
			ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			   "prot %d%s%s%s, page %s: accesses complete or trap as the protection says",
			   prot, prot & EMM_PROT_READ ? " R" : "", prot & EMM_PROT_WRITE ? " W" : "",
			   prot & EMM_PROT_EXEC ? " X" : "", state_name[s]);
		}
	return done_testing();
}
