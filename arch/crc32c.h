/* SPDX-License-Identifier: MIT */
/* What lib/crc32c.c asks of the architecture: a CRC32C in the CPU's own
 * instructions, where it has them. */
#ifndef EMM_ARCH_CRC32C_H
#define EMM_ARCH_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CRC32C_POLY	0x82f63b78u	/* CRC-32C, bit-reflected */

/* crc in, crc out, as crc32c() (lib/swap.h). Async-signal-safe. */
typedef uint32_t crc32c_fn(uint32_t crc, const void *buf, size_t len);

static inline uint64_t crc32c_load64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/*
 * The architecture's CRC32Cs that this CPU has the instructions for (asked
 * at run time), the quickest first, at most max of them into fns; returns
 * how many (0: none). Called from lib/crc32c.c's constructor, before any
 * thread or signal handler can checksum a page.
 */
#if defined(__x86_64__) || defined(__aarch64__)
int arch_crc32c(crc32c_fn **fns, int max);
#else
static inline int arch_crc32c(crc32c_fn **fns, int max)
{
	(void)fns, (void)max;
	return 0;
}
#endif

#endif /* EMM_ARCH_CRC32C_H */
