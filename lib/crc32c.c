/* SPDX-License-Identifier: MIT */
/* CRC32C (Castagnoli) with the CPU's crc32 instructions, or tables where it has none. */
#include <stdint.h>
#include <string.h>

#include "swap.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
#endif

#define POLY	0x82f63b78u	/* CRC-32C, bit-reflected */

/*
 * Tables are filled by a constructor, before any thread or signal handler
 * of the program can checksum a page, so readers never see them half made.
 */
static uint32_t crc_table[8][256];

static inline uint64_t load64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t crc32c_bytes(uint32_t crc, const unsigned char *p, size_t len)
{
	while (len--)
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

/* Slicing-by-8: eight table lookups per 64-bit word. Async-signal-safe. */
uint32_t crc32c_generic(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	crc = ~crc;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	for (; len >= 8; len -= 8, p += 8) {
		uint64_t w = load64(p) ^ crc;

		crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
		      crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
		      crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
		      crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
	}
#endif
	return ~crc32c_bytes(crc, p, len);
}

static void generic_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		crc_table[0][n] = c;
	}
	for (int k = 1; k < 8; k++)
		for (int n = 0; n < 256; n++)
			crc_table[k][n] = (crc_table[k - 1][n] >> 8) ^
					  crc_table[0][crc_table[k - 1][n] & 0xff];
}

#if defined(__x86_64__)

/*
 * The crc32 instruction has a latency of three cycles and a throughput of
 * one, so three independent streams over adjacent blocks run three times
 * faster than one. The stream CRCs are joined by "appending zeros" to the
 * earlier ones: a linear operator on the CRC register, kept as four tables
 * per block length (the method of Mark Adler's crc32c.c).
 */
#define LONG_BLOCK	8192
#define SHORT_BLOCK	256

static uint32_t zeros_long[4][256], zeros_short[4][256];

static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
	uint32_t sum = 0;

	for (; vec; vec >>= 1, mat++)
		if (vec & 1)
			sum ^= *mat;
	return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *mat)
{
	for (int n = 0; n < 32; n++)
		square[n] = gf2_times(mat, mat[n]);
}

/* The operator that appends len zero bytes (len a power of two) to a CRC. */
static void zeros_op(uint32_t *even, size_t len)
{
	uint32_t odd[32];

	odd[0] = POLY;			/* one zero bit */
	for (int n = 1; n < 32; n++)
		odd[n] = 1u << (n - 1);
	gf2_square(even, odd);		/* two bits */
	gf2_square(odd, even);		/* four bits */
	for (;;) {
		gf2_square(even, odd);	/* 1, 4, 16... bytes */
		if ((len >>= 1) == 0)
			return;
		gf2_square(odd, even);	/* 2, 8, 32... bytes */
		if ((len >>= 1) == 0)
			break;
	}
	memcpy(even, odd, sizeof(odd));
}

static void zeros_table(uint32_t zeros[4][256], size_t len)
{
	uint32_t op[32];

	zeros_op(op, len);
	for (uint32_t n = 0; n < 256; n++)
		for (int k = 0; k < 4; k++)
			zeros[k][n] = gf2_times(op, n << (8 * k));
}

static inline uint32_t shift(uint32_t zeros[4][256], uint32_t crc)
{
	return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^
	       zeros[2][(crc >> 16) & 0xff] ^ zeros[3][crc >> 24];
}

__attribute__((target("sse4.2")))
static const unsigned char *crc3(uint32_t *crc, const unsigned char *p, size_t block,
				 uint32_t zeros[4][256])
{
	uint64_t c0 = *crc, c1 = 0, c2 = 0;
	const unsigned char *end = p + block;

	for (; p < end; p += 8) {
		c0 = _mm_crc32_u64(c0, load64(p));
		c1 = _mm_crc32_u64(c1, load64(p + block));
		c2 = _mm_crc32_u64(c2, load64(p + 2 * block));
	}
	*crc = shift(zeros, shift(zeros, (uint32_t)c0) ^ (uint32_t)c1) ^ (uint32_t)c2;
	return p + 2 * block;
}

/* Async-signal-safe. */
__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t c = ~crc;

	for (; len && ((uintptr_t)p & 7); len--)
		c = _mm_crc32_u8(c, *p++);
	for (; len >= 3 * LONG_BLOCK; len -= 3 * LONG_BLOCK)
		p = crc3(&c, p, LONG_BLOCK, zeros_long);
	for (; len >= 3 * SHORT_BLOCK; len -= 3 * SHORT_BLOCK)
		p = crc3(&c, p, SHORT_BLOCK, zeros_short);
	for (; len >= 8; len -= 8, p += 8)
		c = (uint32_t)_mm_crc32_u64(c, load64(p));
	for (; len; len--)
		c = _mm_crc32_u8(c, *p++);
	return ~c;
}

static uint32_t (*crc32c_impl)(uint32_t, const void *, size_t) = crc32c_generic;

static void arch_init(void)
{
	/* Constructors may run before libgcc has probed the CPU. */
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("sse4.2"))
		return;
	zeros_table(zeros_long, LONG_BLOCK);
	zeros_table(zeros_short, SHORT_BLOCK);
	crc32c_impl = crc32c_sse42;
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	return crc32c_impl(crc, buf, len);
}

#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)

static void arch_init(void)
{
}

/* ARMv8 CRC32 instructions, compiled in only when the target has them. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t c = ~crc;

	for (; len && ((uintptr_t)p & 7); len--)
		c = __crc32cb(c, *p++);
	for (; len >= 8; len -= 8, p += 8)
		c = __crc32cd(c, load64(p));
	for (; len; len--)
		c = __crc32cb(c, *p++);
	return ~c;
}

#else

static void arch_init(void)
{
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	return crc32c_generic(crc, buf, len);
}

#endif

__attribute__((constructor))
static void crc32c_init(void)
{
	generic_init();
	arch_init();
}
