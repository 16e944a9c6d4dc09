/* SPDX-License-Identifier: MIT */
/* The report on stderr for a fault nobody handles: where, what, VMAs, backtrace. */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <unistd.h>

#include "debug.h"
#include "internal.h"
#include "report.h"
#include "util.h"
#include "vma.h"

#define REPORT_MAX_VMAS	32
#define REPORT_MAX_FRAMES 32

/* Async-signal-safe. */
static void flush(struct sbuf *b)
{
	write_all(STDERR_FILENO, b->p, b->len);
	b->len = 0;
	b->p[0] = '\0';
}

/* Async-signal-safe. */
static const char *access_name(int access)
{
	switch (access) {
	case EMM_PROT_WRITE: return "write";
	case EMM_PROT_EXEC: return "exec";
	case EMM_PROT_READ: return "read";
	default: return "unknown";
	}
}

/* Async-signal-safe. */
static void put_prot(struct sbuf *b, int prot)
{
	char s[4] = "---";

	if (prot & EMM_PROT_READ)
		s[0] = 'r';
	if (prot & EMM_PROT_WRITE)
		s[1] = 'w';
	if (prot & EMM_PROT_EXEC)
		s[2] = 'x';
	sb_puts(b, s);
}

/* Async-signal-safe. */
static void put_policy(struct sbuf *b, int policy)
{
	static const char *const names[] = { " anon", " file", " pager", " guard" };

	sb_puts(b, policy >= 0 && policy < 4 ? names[policy] : " ?");
}

/* Async-signal-safe. Called inside mm->srcu's read section. */
static void report_vmas(struct sbuf *b, struct rsv *r)
{
	size_t n = vma_count(r), i = 0;

	sb_puts(b, "emm: reservation ");
	sb_putx(b, r->start);
	sb_puts(b, "-");
	sb_putx(b, r->start + r->len);
	sb_puts(b, ", its VMAs:\n");
	flush(b);
	for (const struct emm_vma *v = vma_next(r, r->start); v && i < REPORT_MAX_VMAS;
	     v = vma_next(r, v->end), i++) {
		sb_puts(b, "emm:   ");
		sb_putx(b, v->start);
		sb_puts(b, "-");
		sb_putx(b, v->end);
		sb_puts(b, " ");
		put_prot(b, v->prot);
		put_policy(b, v->policy);
		sb_puts(b, "\n");
		flush(b);
	}
	if (n > REPORT_MAX_VMAS) {
		sb_puts(b, "emm:   ... and ");
		sb_putu(b, n - REPORT_MAX_VMAS, 10, 1);
		sb_puts(b, " more\n");
	}
	if (!n)
		sb_puts(b, "emm:   (none)\n");
	flush(b);
}

/* Async-signal-safe (libunwind's local unwinding is, per its manual). */
static void report_backtrace(struct sbuf *b, void *uc)
{
	unw_cursor_t cursor;
	unw_context_t ctx;
	int ret;

#if defined(__x86_64__)
	ret = unw_init_local2(&cursor, (unw_context_t *)uc, UNW_INIT_SIGNAL_FRAME);
#else
	(void)uc;
	unw_getcontext(&ctx);
	ret = unw_init_local(&cursor, &ctx);
#endif
	(void)ctx;
	sb_puts(b, "emm: backtrace:\n");
	flush(b);
	for (int i = 0; ret >= 0 && i < REPORT_MAX_FRAMES; i++) {
		unw_word_t ip = 0, off = 0;
		char name[128];

		unw_get_reg(&cursor, UNW_REG_IP, &ip);
		sb_puts(b, "emm:   #");
		sb_putu(b, (uint64_t)i, 10, 1);
		sb_puts(b, " ");
		sb_putx(b, ip);
		if (unw_get_proc_name(&cursor, name, sizeof(name), &off) == 0) {
			sb_puts(b, " ");
			sb_puts(b, name);
			sb_puts(b, "+");
			sb_putx(b, off);
		}
		sb_puts(b, "\n");
		flush(b);
		if (unw_step(&cursor) <= 0)
			break;
	}
}

/*
 * Async-signal-safe. Say what went wrong before the default action ends
 * the process: the signal, the address and access, the reservation's VMAs,
 * and where the thread was.
 */
void report_bad_fault(int sig, const siginfo_t *si, void *uc, int access, struct rsv *r)
{
	/*
	 * The process writing a report: a fault inside it (the backtrace of
	 * a forked child reaches data its parent kept on an emm heap, which
	 * the child does not have) must not start another report, and
	 * another, until the stack runs out. The nested fault's default
	 * action ends the process instead.
	 */
	static volatile pid_t reporting;
	pid_t self = getpid();
	char line[256];
	struct sbuf b = { line, 0, sizeof(line) };

	if (reporting == self)
		return;
	reporting = self;

	sb_puts(&b, sig == SIGBUS ? "emm: SIGBUS" : "emm: SIGSEGV");
	sb_puts(&b, ": ");
	sb_puts(&b, access_name(access));
	sb_puts(&b, " access at ");
	sb_putx(&b, (uintptr_t)si->si_addr);
	if (!r)
		sb_puts(&b, ", not in memory emm manages\n");
	else if (!find_vma(r, (uintptr_t)si->si_addr))
		sb_puts(&b, ", in a reservation but outside any VMA\n");
	else if (sig == SIGBUS)
		sb_puts(&b, ", which emm could not serve\n");
	else
		sb_puts(&b, ", which the VMA does not allow\n");
	flush(&b);
	if (r)
		report_vmas(&b, r);
	if (uc) {	/* NULL: not in the faulting thread, which has no backtrace to give */
		struct trap_mark mark;

		/* libunwind may map memory for itself. Under libemm-preload.so
		 * that mmap is an emm_map, which would wait here for the read
		 * section this fault holds: the mark makes it refuse (EDEADLK),
		 * and the preload asks the kernel instead. */
		trap_callback_enter(&mark);
		report_backtrace(&b, uc);
		trap_callback_leave(&mark);
	}
	reporting = 0;
}
