/* SPDX-License-Identifier: MIT */
/* CRC32C (Castagnoli): the portable table version, and the choice between it
 * and the CPU's crc32 instructions (arch/). */
#include <stdint.h>
#include <string.h>

#include "crc32c.h"
#include "swap.h"

/*
 * Tables are filled by a constructor, before any thread or signal handler
 * of the program can checksum a page, so readers never see them half made.
 */
static uint32_t crc_table[8][256];

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
		uint64_t w = crc32c_load64(p) ^ crc;

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
			c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc_table[0][n] = c;
	}
	for (int k = 1; k < 8; k++)
		for (int n = 0; n < 256; n++)
			crc_table[k][n] = (crc_table[k - 1][n] >> 8) ^
					  crc_table[0][crc_table[k - 1][n] & 0xff];
}

/* The CPU's instructions where arch_crc32c found them, else the tables. */
static crc32c_fn *crc32c_impl = crc32c_generic;
static crc32c_fn *variants[4];
static int nvariants;

/* Async-signal-safe. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	return crc32c_impl(crc, buf, len);
}

/* Every CRC32C this CPU can run, the one in use first, the tables' last:
 * for the tests, which hold each to the tables. */
int crc32c_variants(crc32c_fn **fns, int max)
{
	int n = 0;

	for (; n < nvariants && n < max; n++)
		fns[n] = variants[n];
	return n;
}

__attribute__((constructor))
static void crc32c_init(void)
{
	generic_init();
	nvariants = arch_crc32c(variants, (int)(sizeof(variants) / sizeof(variants[0])) - 1);
	if (nvariants)
		crc32c_impl = variants[0];
	variants[nvariants++] = crc32c_generic;
}
