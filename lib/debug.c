/* SPDX-License-Identifier: MIT */
/* Debug assertions (make DEBUG=1): per-thread context, the checks' slow parts. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "debug.h"

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
