/* SPDX-License-Identifier: MIT */
/* x86-64: CRC32C with the SSE4.2 crc32 instruction, three streams at once. */
#if defined(__x86_64__)
#include <nmmintrin.h>

#include "crc32c.h"

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

	odd[0] = CRC32C_POLY;		/* one zero bit */
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
		c0 = _mm_crc32_u64(c0, crc32c_load64(p));
		c1 = _mm_crc32_u64(c1, crc32c_load64(p + block));
		c2 = _mm_crc32_u64(c2, crc32c_load64(p + 2 * block));
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
		c = (uint32_t)_mm_crc32_u64(c, crc32c_load64(p));
	for (; len; len--)
		c = _mm_crc32_u8(c, *p++);
	return ~c;
}

crc32c_fn *arch_crc32c(void)
{
	/* Constructors may run before libgcc has probed the CPU. */
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("sse4.2"))
		return NULL;
	zeros_table(zeros_long, LONG_BLOCK);
	zeros_table(zeros_short, SHORT_BLOCK);
	return crc32c_sse42;
}

#endif /* __x86_64__ */
