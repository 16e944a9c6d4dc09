/* SPDX-License-Identifier: MIT */
/* A small TAP producer for the tests: plan, ok, is_int, is_str, diag, skip, bail. */
#ifndef EMM_TAP_H
#define EMM_TAP_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define TAP_FN static __attribute__((unused))
#define TAP_PRINTF(f, a) __attribute__((format(printf, f, a)))

static int tap_planned = -1, tap_run, tap_failed;

/* Flushed after every line: a test that forks must not hand its child
 * unwritten output, or the child would print it a second time. */
TAP_FN void tap_flush(void)
{
	fflush(stdout);
	fflush(stderr);
}

TAP_FN void plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
	tap_flush();
}

TAP_FN TAP_PRINTF(1, 0) void vdiag(const char *fmt, va_list ap)
{
	fflush(stdout);
	fputs("# ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	tap_flush();
}

TAP_FN TAP_PRINTF(1, 2) void diag(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(fmt, ap);
	va_end(ap);
}

TAP_FN TAP_PRINTF(4, 0) int tap_vok(const char *file, int line, int cond,
				    const char *fmt, va_list ap)
{
	tap_run++;
	printf("%sok %d - ", cond ? "" : "not ", tap_run);
	vprintf(fmt, ap);
	putchar('\n');
	tap_flush();
	if (!cond) {
		tap_failed++;
		diag("  Failed test %d at %s line %d.", tap_run, file, line);
	}
	return cond;
}

TAP_FN TAP_PRINTF(4, 5) int tap_ok(const char *file, int line, int cond, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = tap_vok(file, line, cond, fmt, ap);
	va_end(ap);
	return r;
}

TAP_FN TAP_PRINTF(5, 6) int tap_is_int(const char *file, int line, long long got,
				       long long want, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = tap_vok(file, line, got == want, fmt, ap);
	va_end(ap);
	if (!r)
		diag("         got: %lld\n#     expected: %lld", got, want);
	return r;
}

TAP_FN TAP_PRINTF(5, 6) int tap_is_str(const char *file, int line, const char *got,
				       const char *want, const char *fmt, ...)
{
	va_list ap;
	int r, same = got && want ? strcmp(got, want) == 0 : got == want;

	va_start(ap, fmt);
	r = tap_vok(file, line, same, fmt, ap);
	va_end(ap);
	if (!r)
		diag("         got: '%s'\n#     expected: '%s'",
		     got ? got : "(null)", want ? want : "(null)");
	return r;
}

/* Macros so that a failure names the line of the test that made it. */
#define ok(cond, ...)		tap_ok(__FILE__, __LINE__, !!(cond), __VA_ARGS__)
#define is_int(got, want, ...)	tap_is_int(__FILE__, __LINE__, (got), (want), __VA_ARGS__)
#define is_str(got, want, ...)	tap_is_str(__FILE__, __LINE__, (got), (want), __VA_ARGS__)

TAP_FN void skip(int n, const char *reason)
{
	while (n-- > 0) {
		printf("ok %d # skip %s\n", ++tap_run, reason);
		tap_flush();
	}
}

TAP_FN void skip_all(const char *reason)
{
	printf("1..0 # SKIP %s\n", reason);
	tap_flush();
	exit(0);
}

/* The sanitizer the test was built with, or NULL. */
#if defined(__SANITIZE_ADDRESS__)
#define TAP_SANITIZER "AddressSanitizer"
#elif defined(__SANITIZE_THREAD__)
#define TAP_SANITIZER "ThreadSanitizer"
#define TAP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TAP_SANITIZER "AddressSanitizer"
#elif __has_feature(thread_sanitizer)
#define TAP_SANITIZER "ThreadSanitizer"
#define TAP_TSAN 1
#endif
#endif
#ifndef TAP_TSAN
#define TAP_TSAN 0
#endif
#ifndef TAP_SANITIZER
#define TAP_SANITIZER ((const char *)0)
#endif

/* Skip the whole test under a sanitizer, which it cannot work with. */
TAP_FN void skip_all_sanitized(const char *why)
{
	char reason[256];

	if (!TAP_SANITIZER)
		return;
	snprintf(reason, sizeof(reason), "under %s: %s", TAP_SANITIZER, why);
	skip_all(reason);
}

/* Skip the whole test under ThreadSanitizer only: for tests that touch
 * more memory than its shadow (four bytes for each byte touched) can
 * have on a small machine. */
TAP_FN void skip_all_tsan(const char *why)
{
	if (TAP_TSAN)
		skip_all_sanitized(why);
}

TAP_FN TAP_PRINTF(1, 2) void bail(const char *fmt, ...)
{
	va_list ap;

	fputs("Bail out! ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	tap_flush();
	exit(255);
}

/* The exit status: 0 when every planned test ran and passed. */
TAP_FN int done_testing(void)
{
	if (tap_planned < 0) {
		printf("1..%d\n", tap_run);
		tap_planned = tap_run;
	}
	tap_flush();
	if (tap_run != tap_planned) {
		diag("planned %d tests but ran %d", tap_planned, tap_run);
		return 255;
	}
	if (tap_failed)
		diag("failed %d of %d tests", tap_failed, tap_run);
	return tap_failed > 254 ? 254 : tap_failed;
}

/* splitmix64: a seeded generator, so a failing run can be repeated. */
TAP_FN uint64_t tap_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/*
 * Calls fn(line, arg) for each line of /proc/self/maps, without stdio or
 * malloc so that reading the map does not change it. Returns the number of
 * lines, or -errno.
 */
TAP_FN long maps_foreach(void (*fn)(const char *line, void *arg), void *arg)
{
	static char buf[1 << 16];
	size_t have = 0;
	long lines = 0;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
		char *p = buf, *nl;

		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		while ((nl = strchr(p, '\n'))) {
			*nl = '\0';
			if (fn)
				fn(p, arg);
			lines++;
			p = nl + 1;
		}
		have -= (size_t)(p - buf);
		memmove(buf, p, have);
	}
	close(fd);
	return lines;
}

/* The number of lines in /proc/self/maps. */
TAP_FN long maps_count(void)
{
	return maps_foreach(NULL, NULL);
}

struct tap_range { uintptr_t lo, hi; long n; };

TAP_FN void tap_range_line(const char *line, void *arg)
{
	struct tap_range *r = arg;
	uintptr_t start = (uintptr_t)strtoull(line, NULL, 16);

	if (start >= r->lo && start < r->hi)
		r->n++;
}

/* The number of /proc/self/maps lines that start inside [lo, hi). */
TAP_FN long maps_count_range(uintptr_t lo, uintptr_t hi)
{
	struct tap_range r = { lo, hi, 0 };
	long n = maps_foreach(tap_range_line, &r);

	return n < 0 ? n : r.n;
}

/*
 * Runs fn(arg) in a child whose stderr is a pipe; stores what it wrote in
 * out (NUL-terminated) and its wait status in *status. Returns 0 or -errno.
 * fn should end with _exit.
 */
TAP_FN int fork_stderr(void (*fn)(void *), void *arg, char *out, size_t cap, int *status)
{
	int p[2];
	size_t have = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	tap_flush();
	pid = fork();
	if (pid < 0) {
		int err = -errno;

		close(p[0]);
		close(p[1]);
		return err;
	}
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		fn(arg);
		_exit(0);
	}
	close(p[1]);
	for (;;) {
		char sink[512];
		char *dst = have + 1 < cap ? out + have : sink;
		size_t room = have + 1 < cap ? cap - 1 - have : sizeof(sink);
		ssize_t n = read(p[0], dst, room);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (dst != sink)
			have += (size_t)n;
	}
	close(p[0]);
	if (cap)
		out[have] = '\0';
	while (waitpid(pid, status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

#endif /* EMM_TAP_H */
