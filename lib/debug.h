/* SPDX-License-Identifier: MIT */
/*
 * Debug assertions for the locking and context contracts the comments state
 * (a poor man's lockdep), compiled in by `make DEBUG=1` (EMM_DEBUG) and
 * run by `make check-debug`. Without EMM_DEBUG every macro is empty.
 *
 * - DEBUG_PTE_LOCKED(r, a), DEBUG_RANGE_LOCKED(r, s, e): the PTE lock of a
 *   page (of every page of a range) is held, as the function requires;
 * - DEBUG_NOT_IN_HANDLER(): the function may allocate, sleep on a mutex or
 *   wait for readers: it must not run in emm's signal handler (user code
 *   the handler calls, a trap callback or a chained handler, is not "in"
 *   it: debug_handler_leave marks the hand-over);
 * - DEBUG_IN_SRCU(), DEBUG_NOT_IN_SRCU(): inside an srcu read section (the
 *   fault path), or outside any (synchronize_srcu would wait for itself).
 */
#ifndef EMM_DEBUG_H
#define EMM_DEBUG_H

#include "internal.h"

/*
 * In every build: is this thread inside a trap callback that emm's handler
 * called? The calls that take an instance's lock and allocate (emm_map,
 * emm_unmap, emm_protect) refuse there with -EDEADLK (in_trap_callback).
 * The callback may leave with siglongjmp, never returning to the code that
 * would clear the mark: a mark is believed only while it still holds,
 * see debug.c.
 */
struct trap_mark {
	volatile uint64_t words[4];	/* on the handler's stack */
	uintptr_t prev;			/* the mark of an outer callback */
};
void trap_callback_enter(struct trap_mark *m);
void trap_callback_leave(struct trap_mark *m);
bool in_trap_callback(void);

#ifdef EMM_DEBUG
/* Async-signal-safe: report the broken contract and abort. */
void debug_fail(const char *what, const char *file, int line) __attribute__((noreturn));
void debug_handler_enter(void);
void debug_handler_leave(void);
bool debug_in_handler(void);
void debug_srcu_enter(void);
void debug_srcu_leave(void);
int debug_srcu_depth(void);

#define DEBUG_ASSERT(c)	((c) ? (void)0 : debug_fail(#c, __FILE__, __LINE__))
#define DEBUG_RANGE_LOCKED(r, s, e)	DEBUG_ASSERT(pte_range_locked((r), (s), (e)))	/* pte.h */
#define DEBUG_PTE_LOCKED(r, a)	DEBUG_RANGE_LOCKED((r), (a), (a) + PAGE_SIZE)
#define DEBUG_NOT_IN_HANDLER()	DEBUG_ASSERT(!debug_in_handler())
#define DEBUG_IN_SRCU()		DEBUG_ASSERT(debug_srcu_depth() > 0)
#define DEBUG_NOT_IN_SRCU()	DEBUG_ASSERT(debug_srcu_depth() == 0)
#else
#define DEBUG_ASSERT(c)			((void)0)
#define DEBUG_RANGE_LOCKED(r, s, e)	((void)0)
#define DEBUG_PTE_LOCKED(r, a)		((void)0)
#define DEBUG_NOT_IN_HANDLER()		((void)0)
#define DEBUG_IN_SRCU()			((void)0)
#define DEBUG_NOT_IN_SRCU()		((void)0)
static inline void debug_handler_enter(void) {}
static inline void debug_handler_leave(void) {}
static inline void debug_srcu_enter(void) {}
static inline void debug_srcu_leave(void) {}
#endif

#endif /* EMM_DEBUG_H */
