/* SPDX-License-Identifier: MIT */
/* Small helpers: async-signal-safe formatting and output, warnings, sysctls. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Async-signal-safe. */
void sb_puts(struct sbuf *b, const char *s)
{
	while (*s && b->len + 1 < b->cap)
		b->p[b->len++] = *s++;
	b->p[b->len] = '\0';
}

/* Async-signal-safe. */
void sb_putu(struct sbuf *b, uint64_t v, unsigned base, unsigned width)
{
	char tmp[24];
	unsigned n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v && n < sizeof(tmp) - 1);
	while (n < width && n < sizeof(tmp) - 1)
		tmp[n++] = '0';
	while (n && b->len + 1 < b->cap)
		b->p[b->len++] = tmp[--n];
	b->p[b->len] = '\0';
}

/* Async-signal-safe. */
void sb_putx(struct sbuf *b, uint64_t v)
{
	sb_puts(b, "0x");
	sb_putu(b, v, 16, 1);
}

/* Async-signal-safe. */
void write_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = write(fd, s, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

static void vlog(const char *prefix, const char *fmt, va_list ap)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "emm: %s", prefix);

	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	n = (int)strlen(line);
	if ((size_t)n < sizeof(line) - 1)
		line[n++] = '\n';
	write_all(STDERR_FILENO, line, (size_t)n);
}

void emm_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("warning: ", fmt, ap);
	va_end(ap);
}

void emm_log(const struct emm *mm, const char *fmt, ...)
{
	va_list ap;

	if (!(mm->cfg.flags & EMM_OPEN_VERBOSE))
		return;
	va_start(ap, fmt);
	vlog("", fmt, ap);
	va_end(ap);
}

unsigned long sys_max_map_count(void)
{
	char buf[32] = "";
	int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 65530;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 65530;
	buf[n] = '\0';
	return strtoul(buf, NULL, 10) ?: 65530;
}
