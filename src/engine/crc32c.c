// SPDX-License-Identifier: MIT
/*
 * CRC-32C (docs/FORMAT.md "Checksums"). Two implementations of one function: the SSE4.2
 * crc32 instruction, chosen at run time when the CPU has it; and portable slicing-by-8
 * tables, built once on first use. The instruction takes three cycles to give its result
 * but can start a new one every cycle, so long buffers are cut into three lanes whose CRCs
 * run interleaved and are then joined: joining multiplies a lane's register by
 * x^(8 lane bytes), a linear map on 32 bits that two precomputed 4 x 256 tables apply in
 * four lookups (one table per lane length). bc_crc32c_combine joins two CRCs
 * by multiplying by x^(8n) modulo the polynomial (the method of zlib's crc32_combine), so a
 * body can be checksummed before the header that precedes it is known.
 *
 * Bytes are never loaded through casted pointers: the table path assembles words byte by
 * byte (any alignment, any host byte order) and the instruction path uses memcpy.
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BC_CRC_X86 1
#include <nmmintrin.h>
#else
#define BC_CRC_X86 0
#endif

#define POLY 0x82F63B78u /* reflected Castagnoli polynomial */

static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static uint32_t table[8][256];
/* x2n[k] = x^(2^k) modulo the polynomial, in the reflected bit order; k < 3 + 64 covers
 * every bit of a 64-bit byte count. */
#define X2N_SIZE 67
static uint32_t x2n[X2N_SIZE];
static bool have_hw;
/* Lane lengths for the interleaved instruction path, and their shift tables. */
#define LANE_LONG 8192
#define LANE_SHORT 256
struct shift {
	uint32_t t[4][256];
};
static struct shift shift_long, shift_short;

/* a * b modulo the polynomial; a must not be 0 (x^n never is). */
static uint32_t multmodp(uint32_t a, uint32_t b)
{
	uint32_t m = UINT32_C(1) << 31;
	uint32_t p = 0;

	for (;;) {
		if (a & m) {
			p ^= b;
			if ((a & (m - 1)) == 0)
				break;
		}
		m >>= 1;
		b = b & 1 ? (b >> 1) ^ POLY : b >> 1;
	}
	return p;
}

/* x^(8 n) modulo the polynomial: the product of x^(2^k) over the set bits k - 3 of n. */
static uint32_t x8n(uint64_t n)
{
	uint32_t xn = UINT32_C(1) << 31; /* x^0 */
	for (unsigned k = 3; n; k++, n >>= 1) {
		if (n & 1)
			xn = multmodp(x2n[k], xn);
	}
	return xn;
}

/* s->t[b][v] = (v << 8b) * x^(8 n): the register shifted over n zero bytes, byte by byte. */
static void shift_init(struct shift *s, uint64_t n)
{
	uint32_t xn = x8n(n);
	for (unsigned b = 0; b < 4; b++)
		for (uint32_t v = 0; v < 256; v++)
			s->t[b][v] = multmodp(xn, v << (8 * b));
}

static void crc_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[0][n] = c;
	}
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = table[0][n];
		for (int k = 1; k < 8; k++) {
			c = (c >> 8) ^ table[0][c & 0xff];
			table[k][n] = c;
		}
	}

	uint32_t p = UINT32_C(1) << 30; /* x^1 */
	x2n[0] = p;
	for (int k = 1; k < X2N_SIZE; k++)
		x2n[k] = p = multmodp(p, p);
	shift_init(&shift_long, LANE_LONG);
	shift_init(&shift_short, LANE_SHORT);

#if BC_CRC_X86
	__builtin_cpu_init();
	have_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static inline uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Slicing-by-8 over the inverted register c; tables must be built. */
static uint32_t crc_sw(uint32_t c, const uint8_t *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint32_t lo = c ^ le32(p);
		uint32_t hi = le32(p + 4);

		c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
			table[4][lo >> 24] ^ table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
			table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
	return c;
}

#if BC_CRC_X86
static inline uint32_t shift(const struct shift *s, uint32_t c)
{
	return s->t[0][c & 0xff] ^ s->t[1][(c >> 8) & 0xff] ^ s->t[2][(c >> 16) & 0xff] ^
		s->t[3][c >> 24];
}

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* 3 n bytes at p onto register a as three interleaved lanes of n bytes (n % 8 == 0); t
 * shifts a register over n bytes. The register is linear in its start value, so lane b's
 * and c's, started at 0, join a's by shift-and-xor. */
__attribute__((target("sse4.2"))) static inline uint64_t lanes(uint64_t a, const uint8_t *p,
							       size_t n, const struct shift *t)
{
	uint64_t b = 0, c = 0;
	for (size_t i = 0; i < n; i += 8) {
		a = _mm_crc32_u64(a, load64(p + i));
		b = _mm_crc32_u64(b, load64(p + n + i));
		c = _mm_crc32_u64(c, load64(p + 2 * n + i));
	}
	a = shift(t, (uint32_t)a) ^ (uint32_t)b;
	return shift(t, (uint32_t)a) ^ (uint32_t)c;
}

/* The crc32 instruction over the inverted register c; x86 is little-endian, as is the CRC. */
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8(c, *p++);
		len--;
	}
	uint64_t c64 = c;
	for (; len >= 3 * LANE_LONG; p += 3 * LANE_LONG, len -= 3 * LANE_LONG)
		c64 = lanes(c64, p, LANE_LONG, &shift_long);
	for (; len >= 3 * LANE_SHORT; p += 3 * LANE_SHORT, len -= 3 * LANE_SHORT)
		c64 = lanes(c64, p, LANE_SHORT, &shift_short);
	while (len >= 8) {
		c64 = _mm_crc32_u64(c64, load64(p));
		p += 8;
		len -= 8;
	}
	c = (uint32_t)c64;
	while (len--)
		c = _mm_crc32_u8(c, *p++);
	return c;
}
#endif

uint32_t bc_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc_init);
	return ~crc_sw(~crc, buf, len);
}

uint32_t bc_crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc_init);
#if BC_CRC_X86
	if (have_hw)
		return ~crc_hw(~crc, buf, len);
#endif
	return ~crc_sw(~crc, buf, len);
}

bool bc_crc32c_hw_available(void)
{
	pthread_once(&crc_once, crc_init);
	return have_hw;
}

uint32_t bc_crc32c(uint32_t crc, const void *buf, size_t len)
{
	return bc_crc32c_hw(crc, buf, len);
}

uint32_t bc_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
	pthread_once(&crc_once, crc_init);
	/* Appending len_b bytes multiplies crc_a by x^(8 len_b). */
	return multmodp(x8n(len_b), crc_a) ^ crc_b;
}
