/* SPDX-License-Identifier: MIT */
/* A futex mutex for the fault path: sleeps instead of spinning, no allocation. */
#include <unistd.h>

#include "futex.h"
#include "internal.h"

/* 0: free, 1: held, 2: held and someone may sleep on it. */

/* Async-signal-safe, provided every holder runs with signals blocked (as
 * emm's handler and emm's API calls do): no handler can then interrupt a
 * holder and wait for the lock it holds. Acquire pairs with the release in
 * mutex_unlock. */
void mutex_lock(_Atomic uint32_t *m)
{
	uint32_t c = 0;

	if (atomic_compare_exchange_strong_explicit(m, &c, 1, memory_order_acquire,
						    memory_order_relaxed))
		return;
	if (c != 2)
		c = atomic_exchange_explicit(m, 2, memory_order_acquire);
	while (c != 0) {
		futex_wait(m, 2, -1);
		c = atomic_exchange_explicit(m, 2, memory_order_acquire);
	}
}

/* Async-signal-safe. Acquire: as mutex_lock. */
bool mutex_trylock(_Atomic uint32_t *m)
{
	uint32_t c = 0;

	return atomic_compare_exchange_strong_explicit(m, &c, 1, memory_order_acquire,
						       memory_order_relaxed);
}

/* Async-signal-safe. Release: the holder's writes reach the next holder. */
void mutex_unlock(_Atomic uint32_t *m)
{
	if (atomic_exchange_explicit(m, 0, memory_order_release) == 2)
		futex_wake(m, 1);
}

/*
 * The fork gate (fork.c). A child made by fork(3) copies its parent's
 * instances from the PTE words it inherited: at the fork no page may be
 * half-way between two homes (a PTE saying resident over physmem not yet
 * read from swap, or saying resident over physmem already punched), and
 * until the copy is made the parent must not move away what the child
 * reads. So every change of where a page's data lives runs inside a
 * section, and so does every call that frees physmem, overwrites a swap
 * slot or writes to a backing file. Between fork's prepare and parent
 * handlers the gate is shut: sections wait to start, but the forking
 * thread's own (a fault in another atfork handler).
 */
#define GATE_SHUT	0x80000000u
static _Atomic uint32_t fork_gate;	/* GATE_SHUT | passers inside */
static _Atomic pid_t gate_owner;	/* the thread that shut it */
/* Sections nest (a reclaim batch writes a FILE page back): only the
 * outermost passes the gate, so an inner one never waits for a fork that
 * waits for the outer. */
static __thread unsigned gate_depth __attribute__((tls_model("initial-exec")));

/* Async-signal-safe. Acquire: pairs with the release in fork_gate_open. */
void fork_gate_enter(void)
{
	uint32_t v;
	pid_t self = 0;

	if (gate_depth++)
		return;
	v = atomic_load_explicit(&fork_gate, memory_order_relaxed);
	for (;;) {
		if ((v & GATE_SHUT) && !self)
			self = (pid_t)syscall(SYS_gettid);
		if ((v & GATE_SHUT) && atomic_load_explicit(&gate_owner, memory_order_relaxed) != self) {
			futex_wait(&fork_gate, v, -1);
			v = atomic_load_explicit(&fork_gate, memory_order_relaxed);
			continue;
		}
		if (atomic_compare_exchange_weak_explicit(&fork_gate, &v, v + 1, memory_order_acquire,
							  memory_order_relaxed))
			return;
	}
}

/* Async-signal-safe. Release: what the passer did is done before the gate
 * shuts behind it. */
void fork_gate_leave(void)
{
	uint32_t v;

	if (--gate_depth)
		return;
	v = atomic_fetch_sub_explicit(&fork_gate, 1, memory_order_release);
	if ((v & GATE_SHUT) && (v & ~GATE_SHUT) == 1)
		futex_wake(&fork_gate, INT32_MAX);
}

/* Shut the gate and wait until no one is inside. Acquire: pairs with
 * fork_gate_leave, so what the passers wrote is in the files. */
void fork_gate_shut(void)
{
	uint32_t v;

	atomic_store_explicit(&gate_owner, (pid_t)syscall(SYS_gettid), memory_order_relaxed);
	v = atomic_fetch_or_explicit(&fork_gate, GATE_SHUT, memory_order_acquire) | GATE_SHUT;
	while (v != GATE_SHUT) {
		futex_wait(&fork_gate, v, -1);
		v = atomic_load_explicit(&fork_gate, memory_order_acquire);
	}
}

/* Release: pairs with the acquire in fork_gate_enter. */
void fork_gate_open(void)
{
	atomic_store_explicit(&gate_owner, 0, memory_order_relaxed);
	atomic_fetch_and_explicit(&fork_gate, ~GATE_SHUT, memory_order_release);
	futex_wake(&fork_gate, INT32_MAX);
}

/* In a forked child, whose only thread is inside no gate: open. */
void fork_gate_reset(void)
{
	atomic_store_explicit(&gate_owner, 0, memory_order_relaxed);
	atomic_store_explicit(&fork_gate, 0, memory_order_relaxed);
}
