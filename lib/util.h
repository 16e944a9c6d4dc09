/* SPDX-License-Identifier: MIT */
/* Small helpers: async-signal-safe output, warnings, sysctls, signal masks, mappings. */
#ifndef EMM_UTIL_H
#define EMM_UTIL_H

#include "internal.h"
#include <signal.h>
#include <sys/mman.h>
#include <time.h>

/* The madvise advice emm uses that Debian 12's headers may lack (Linux 5.14, 6.1). */
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

/* Async-signal-safe: clock_gettime reads the vDSO. CLOCK_MONOTONIC in ns. */
static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct sbuf { char *p; size_t len, cap; };
void sb_puts(struct sbuf *b, const char *s);
void sb_putu(struct sbuf *b, uint64_t v, unsigned base, unsigned width);
void sb_putx(struct sbuf *b, uint64_t v);
void write_all(int fd, const char *s, size_t len);
ssize_t pread_full(int fd, void *buf, size_t len, off_t off);
void emm_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void emm_log(const struct emm *mm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
unsigned long sys_max_map_count(void);
/* The CPUs this process may run on now (sched_getaffinity), at least 1. */
unsigned usable_cpus(void);
void kvma_global_add(long delta);
void kvma_add(struct rsv *r, long delta);
long kvma_global(void);
long kvma_process_limit(void);
long kvma_limit_refresh(void);
bool kvma_need_charge(long delta, bool force);
/* Async-signal-safe. EMM_PROT_* to the PROT_* of mmap and mprotect. */
int prot_to_sys(int prot);
void sig_fill_async(sigset_t *set);
void sig_block(sigset_t *old);
void sig_restore(const sigset_t *old);
void *mmap_aligned(size_t len, size_t align, int prot, int flags, int fd, off_t off);
int thread_start(pthread_t *t, const char *name, int index, void *(*fn)(void *), void *arg);
int prot_implied(int prot);

/*
 * Async-signal-safe. Add n to *tries, of which *wins are the successes;
 * once tries reach cap both are halved, so that the ratio follows the
 * program's phases. Relaxed: a lost update only blurs a statistic.
 */
static inline void count_tries(_Atomic uint32_t *tries, _Atomic uint32_t *wins, uint32_t n, uint32_t cap)
{
	if (atomic_fetch_add_explicit(tries, n, memory_order_relaxed) + n < cap)
		return;
	atomic_store_explicit(tries, atomic_load_explicit(tries, memory_order_relaxed) / 2,
			      memory_order_relaxed);
	atomic_store_explicit(wins, atomic_load_explicit(wins, memory_order_relaxed) / 2,
			      memory_order_relaxed);
}

#endif /* EMM_UTIL_H */
