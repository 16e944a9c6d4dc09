/* SPDX-License-Identifier: MIT */
/* AArch64: CRC32C with the ARMv8 CRC32 instructions, where the CPU has them
 * (optional in ARMv8.0, so asked of the kernel's HWCAP at run time). */
#if defined(__aarch64__)
#include <arm_acle.h>
#include <sys/auxv.h>

#include "crc32c.h"

/* Async-signal-safe. */
__attribute__((target("+crc")))
static uint32_t crc32c_armv8(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t c = ~crc;

	for (; len && ((uintptr_t)p & 7); len--)
		c = __crc32cb(c, *p++);
	for (; len >= 8; len -= 8, p += 8)
		c = __crc32cd(c, crc32c_load64(p));
	for (; len; len--)
		c = __crc32cb(c, *p++);
	return ~c;
}

int arch_crc32c(crc32c_fn **fns, int max)
{
	if (max < 1 || !(getauxval(AT_HWCAP) & HWCAP_CRC32))
		return 0;
	fns[0] = crc32c_armv8;
	return 1;
}

#endif /* __aarch64__ */
