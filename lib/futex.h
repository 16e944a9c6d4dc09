/* SPDX-License-Identifier: MIT */
/* The one futex wrapper: sleep while a 32-bit word holds a value, wake sleepers. */
#ifndef EMM_FUTEX_H
#define EMM_FUTEX_H

#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Async-signal-safe. Sleep while *w == val, at most ms milliseconds (-1:
 * no limit); returns at once if it differs. Spurious wake-ups happen:
 * callers check their condition again. */
static inline void futex_wait(void *w, uint32_t val, long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, ms < 0 ? NULL : &ts, NULL, 0);
}

/* Async-signal-safe. Wake up to n sleepers on w (INT32_MAX: all). */
static inline void futex_wake(void *w, int n)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

#endif /* EMM_FUTEX_H */
