/* SPDX-License-Identifier: MIT */
/* x86-64: CRC32C with the SSE4.2 crc32 instruction, three streams at once,
 * and for long buffers by carry-less multiplication, 256 bytes a step. */
#if defined(__x86_64__)
#include <immintrin.h>

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

/*
 * Folding (Intel's "Fast CRC Computation for Generic Polynomials Using
 * PCLMULQDQ"): a 128-bit block A followed d bits later by a block B may be
 * replaced by A.hi * (x^(d+63) mod P) + A.lo * (x^(d-1) mod P) + B without
 * changing the CRC (bit-reflected, hence the -1). Four 512-bit accumulators
 * fold 256 bytes a step: about 16 instructions where the crc32 loop takes
 * 85. What is left, 128 bits, goes through crc32 (the reduction).
 */
#define FOLD_STEP	256
#define FOLD_MIN	1024	/* below this the crc32 instruction is as quick */

/* x^n mod P (P with its x^32 term), bit-reflected into the top half of 64 bits. */
static uint64_t xpow_mod(unsigned n)
{
	uint64_t r = 1, out = 0;

	while (n--) {
		r <<= 1;
		if (r >> 32)
			r ^= 0x11edc6f41ull;	/* CRC32C_POLY, not reflected */
	}
	for (int m = 0; m < 32; m++)
		out |= ((r >> m) & 1) << (63 - m);
	return out;
}

/* Constants of a fold across d bits: for the high 64 bits, then the low. */
static uint64_t fold_k[4][2];	/* d = 2048 (a step), 512, 384 and 256 ... */
static uint64_t fold_k128[2];	/* ... and 128 */

static void fold_init(void)
{
	static const unsigned d[4] = { 8 * FOLD_STEP, 512, 384, 256 };

	for (int i = 0; i < 4; i++) {
		fold_k[i][0] = xpow_mod(d[i] + 63);
		fold_k[i][1] = xpow_mod(d[i] - 1);
	}
	fold_k128[0] = xpow_mod(128 + 63);
	fold_k128[1] = xpow_mod(128 - 1);
}

__attribute__((target("avx512f,vpclmulqdq")))
static inline __m512i fold512(__m512i a, __m512i k, __m512i b)
{
	return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(a, k, 0x00),
					 _mm512_clmulepi64_epi128(a, k, 0x11), b, 0x96);
}

__attribute__((target("pclmul,sse4.2")))
static inline __m128i fold128(__m128i a, const uint64_t k[2], __m128i b)
{
	__m128i kk = _mm_set_epi64x((long long)k[1], (long long)k[0]);

	return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(a, kk, 0x00),
					   _mm_clmulepi64_si128(a, kk, 0x11)), b);
}

/* Async-signal-safe: zmm registers are saved in a signal frame as any others. */
__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2")))
static uint32_t crc32c_vpclmul(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	__m512i x0, x1, x2, x3, k;
	__m128i r;

	if (len < FOLD_MIN)
		return crc32c_sse42(crc, buf, len);
	x0 = _mm512_xor_si512(_mm512_loadu_si512(p),
			      _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)~crc)));
	x1 = _mm512_loadu_si512(p + 64);
	x2 = _mm512_loadu_si512(p + 128);
	x3 = _mm512_loadu_si512(p + 192);
	k = _mm512_broadcast_i32x4(_mm_set_epi64x((long long)fold_k[0][1], (long long)fold_k[0][0]));
	for (p += FOLD_STEP, len -= FOLD_STEP; len >= FOLD_STEP; p += FOLD_STEP, len -= FOLD_STEP) {
		x0 = fold512(x0, k, _mm512_loadu_si512(p));
		x1 = fold512(x1, k, _mm512_loadu_si512(p + 64));
		x2 = fold512(x2, k, _mm512_loadu_si512(p + 128));
		x3 = fold512(x3, k, _mm512_loadu_si512(p + 192));
	}
	/* Each accumulator's lanes sit 64 bytes ahead of the next one's. */
	k = _mm512_broadcast_i32x4(_mm_set_epi64x((long long)fold_k[1][1], (long long)fold_k[1][0]));
	x3 = fold512(fold512(fold512(x0, k, x1), k, x2), k, x3);
	/* Its four lanes: 48, 32 and 16 bytes ahead of the last. */
	r = _mm512_extracti32x4_epi32(x3, 3);
	r = fold128(_mm512_extracti32x4_epi32(x3, 0), fold_k[2], r);
	r = fold128(_mm512_extracti32x4_epi32(x3, 1), fold_k[3], r);
	r = fold128(_mm512_extracti32x4_epi32(x3, 2), fold_k128, r);
	crc = (uint32_t)_mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(r));
	crc = (uint32_t)_mm_crc32_u64(crc, (uint64_t)_mm_extract_epi64(r, 1));
	return crc32c_sse42(~crc, p, len);
}

int arch_crc32c(crc32c_fn **fns, int max)
{
	int n = 0;

	/* Constructors may run before libgcc has probed the CPU. */
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("sse4.2"))
		return 0;
	zeros_table(zeros_long, LONG_BLOCK);
	zeros_table(zeros_short, SHORT_BLOCK);
	fold_init();
	if (n < max && __builtin_cpu_supports("avx512f") &&
	    __builtin_cpu_supports("vpclmulqdq") && __builtin_cpu_supports("pclmul"))
		fns[n++] = crc32c_vpclmul;
	if (n < max)
		fns[n++] = crc32c_sse42;
	return n;
}

#endif /* __x86_64__ */
