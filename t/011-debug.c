/* SPDX-License-Identifier: MIT */
/* The debug assertions of make DEBUG=1 are live: a broken locking or context contract aborts. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "emm.h"
#include "internal.h"
#include "pte.h"
#include "srcu.h"
#include "tap.h"

/* Defined only in a library built with DEBUG=1. */
extern void debug_handler_enter(void) __attribute__((weak));

/* Run fn in a child; did it die of SIGABRT? */
static int aborts(void (*fn)(void))
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		close(STDERR_FILENO);	/* the assertion's message is expected */
		fn();
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static void unlock_unlocked(void)
{
	_Atomic uint64_t word = 0;

	pte_unlock(&word, 0);
}

static void unlock_locked(void)
{
	_Atomic uint64_t word = 0;

	pte_lock(&word);
	pte_unlock(&word, 0);
}

static struct emm_srcu srcu;

static void synchronize_in_reader(void)
{
	int idx = srcu_read_lock(&srcu);

	synchronize_srcu(&srcu);	/* would wait for itself */
	srcu_read_unlock(&srcu, idx);
}

static void synchronize_outside(void)
{
	synchronize_srcu(&srcu);
}

int main(void)
{
	if (!debug_handler_enter)
		skip_all("the library was built without DEBUG=1 (make check-debug builds it with)");
	plan(4);
	is_int(aborts(unlock_unlocked), 1, "pte_unlock of a page nobody locked aborts");
	is_int(aborts(unlock_locked), 0, "pte_unlock of a locked page does not");
	is_int(aborts(synchronize_in_reader), 1, "synchronize_srcu inside a read section aborts");
	is_int(aborts(synchronize_outside), 0, "synchronize_srcu outside one does not");
	return done_testing();
}
