/* SPDX-License-Identifier: MIT */
/* Debug assertions (make DEBUG=1): per-thread context, the checks' slow parts. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "debug.h"

/*
 * The trap callback this thread is in: the address of a mark on the signal
 * handler's stack, and the value its words hold. A callback that left with
 * siglongjmp leaves its mark behind, so one is believed only while (1) the
 * stack pointer is below it (the handler's frame is still under way), (2)
 * its words are intact (a frame that reused that stack since wrote over
 * them, most likely) and (3) every asynchronous signal is blocked, as
 * emm's handler blocks them (siglongjmp to a sigsetjmp(env, 1) point gives
 * the old mask back). A stale mark found above the stack pointer is dropped.
 */
static __thread uintptr_t trap_at __attribute__((tls_model("initial-exec")));
static __thread uint64_t trap_value __attribute__((tls_model("initial-exec")));
static __thread uint64_t trap_gen __attribute__((tls_model("initial-exec")));

/* Async-signal-safe. What the words of a mark at m hold in generation g. */
static uint64_t mark_value(const struct trap_mark *m, uint64_t g)
{
	return ((uintptr_t)m ^ (g * 0x9e3779b97f4a7c15ull)) | 1;
}

/* Async-signal-safe. Called by emm's handler before a trap callback. */
void trap_callback_enter(struct trap_mark *m)
{
	uint64_t v = mark_value(m, ++trap_gen);

	for (size_t i = 0; i < ARRAY_SIZE(m->words); i++)
		m->words[i] = v;
	m->prev = trap_at;
	trap_at = (uintptr_t)m;
	trap_value = v;
}

/* Async-signal-safe. The callback returned: the outer mark, if any, again. */
void trap_callback_leave(struct trap_mark *m)
{
	const struct trap_mark *outer = (const struct trap_mark *)m->prev;

	for (size_t i = 0; i < ARRAY_SIZE(m->words); i++)
		m->words[i] = 0;
	trap_at = m->prev;
	trap_value = outer ? outer->words[0] : 0;
}

/* Async-signal-safe. Are the classic signals emm's handler blocks (all
 * but the faults and those that cannot be blocked) blocked now? */
static bool async_signals_blocked(void)
{
	sigset_t cur;

	if (pthread_sigmask(SIG_SETMASK, NULL, &cur))
		return false;
	for (int sig = 1; sig < 32; sig++)
		if (sig != SIGKILL && sig != SIGSTOP && sig != SIGSEGV && sig != SIGBUS &&
		    sigismember(&cur, sig) != 1)
			return false;
	return true;
}

/* Async-signal-safe. Is this thread inside a trap callback? A stale mark
 * may lie in stack that frames of the program use now: it is read as raw
 * memory, which AddressSanitizer must not take for an overflow. */
__attribute__((no_sanitize_address)) bool in_trap_callback(void)
{
	const struct trap_mark *m = (const struct trap_mark *)trap_at;
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);

	if (!m)
		return false;
	if (sp >= (uintptr_t)m) {
		trap_at = 0;		/* left with siglongjmp */
		return false;
	}
	for (size_t i = 0; i < ARRAY_SIZE(m->words); i++)
		if (m->words[i] != trap_value)
			return false;
	return async_signals_blocked();
}

#ifdef EMM_DEBUG
/* Initial-exec: never allocated lazily, so the handler may touch them. */
static __thread int handler_depth __attribute__((tls_model("initial-exec")));
static __thread int srcu_depth __attribute__((tls_model("initial-exec")));

/* Async-signal-safe. */
void debug_fail(const char *what, const char *file, int line)
{
	const char *parts[] = { "emm: debug assertion failed: ", what, " at ", file, ":" };
	char num[12];
	int n = sizeof(num);

	for (size_t i = 0; i < ARRAY_SIZE(parts); i++)
		if (write(STDERR_FILENO, parts[i], strlen(parts[i])) < 0)
			break;
	num[--n] = '\n';
	do {
		num[--n] = (char)('0' + line % 10);
		line /= 10;
	} while (line && n > 0);
	if (write(STDERR_FILENO, num + n, sizeof(num) - (size_t)n) < 0)
		abort();
	abort();
}

void debug_handler_enter(void)
{
	handler_depth++;
}

void debug_handler_leave(void)
{
	handler_depth--;
}

bool debug_in_handler(void)
{
	return handler_depth > 0;
}

void debug_srcu_enter(void)
{
	srcu_depth++;
}

void debug_srcu_leave(void)
{
	srcu_depth--;
}

int debug_srcu_depth(void)
{
	return srcu_depth;
}
#endif
