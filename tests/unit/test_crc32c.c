// SPDX-License-Identifier: MIT
/*
 * Unit tests for crc32c.c: published check values, a bit-at-a-time reference, incremental
 * versus one-shot, the instruction path against the tables over random lengths and
 * alignments, and combine.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "testutil.h"

/* The definition, one bit at a time: the reference every fast path must match. */
static uint32_t crc_ref(uint32_t crc, const uint8_t *p, size_t len)
{
	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
	}
	return ~crc;
}

typedef uint32_t (*crc_fn)(uint32_t crc, const void *buf, size_t len);

static const struct {
	const char *name;
	crc_fn fn;
} impls[] = {
	{"bc_crc32c", bc_crc32c},
	{"sw", bc_crc32c_sw},
	{"hw", bc_crc32c_hw},
};
#define NIMPLS (int)(sizeof(impls) / sizeof(impls[0]))

START_TEST(check_value)
{
	crc_fn fn = impls[_i].fn;

	ck_assert_uint_eq(fn(0, "123456789", 9), 0xE3069283u);
	ck_assert_uint_eq(fn(0, "", 0), 0);
	ck_assert_uint_eq(fn(0x12345678u, NULL, 0), 0x12345678u);
}
END_TEST

/* RFC 3720 (iSCSI) B.4 test vectors. */
START_TEST(rfc3720_vectors)
{
	crc_fn fn = impls[_i].fn;
	uint8_t buf[48];

	memset(buf, 0, 32);
	ck_assert_uint_eq(fn(0, buf, 32), 0x8A9136AAu);
	memset(buf, 0xff, 32);
	ck_assert_uint_eq(fn(0, buf, 32), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	ck_assert_uint_eq(fn(0, buf, 32), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	ck_assert_uint_eq(fn(0, buf, 32), 0x113FDB5Cu);

	static const uint8_t scsi_read[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	ck_assert_uint_eq(fn(0, scsi_read, sizeof(scsi_read)), 0xD9963A56u);
}
END_TEST

START_TEST(matches_bitwise_reference)
{
	crc_fn fn = impls[_i].fn;
	struct tu_rng r = {tu_seed(0x5eed)};
	uint8_t buf[1100];

	tu_fill(&r, buf, sizeof(buf));
	for (size_t len = 0; len < 300; len++)
		ck_assert_uint_eq(fn(0, buf, len), crc_ref(0, buf, len));
	ck_assert_uint_eq(fn(0, buf, sizeof(buf)), crc_ref(0, buf, sizeof(buf)));
}
END_TEST

START_TEST(incremental_equals_one_shot)
{
	crc_fn fn = impls[_i].fn;
	struct tu_rng r = {tu_seed(0xc0ffee)};
	uint8_t buf[700];

	tu_fill(&r, buf, sizeof(buf));
	uint32_t whole = fn(0, buf, sizeof(buf));
	for (size_t cut = 0; cut <= sizeof(buf); cut++)
		ck_assert_uint_eq(fn(fn(0, buf, cut), buf + cut, sizeof(buf) - cut), whole);
	/* Three random pieces, repeatedly. */
	for (int i = 0; i < 1000; i++) {
		size_t a = tu_below(&r, sizeof(buf) + 1);
		size_t b = a + tu_below(&r, sizeof(buf) - a + 1);
		uint32_t c = fn(0, buf, a);
		c = fn(c, buf + a, b - a);
		c = fn(c, buf + b, sizeof(buf) - b);
		ck_assert_uint_eq(c, whole);
	}
}
END_TEST

START_TEST(hw_equals_sw)
{
	struct tu_rng r = {tu_seed(0xfeed)};
	size_t cap = 70000;
	uint8_t *buf = malloc(cap + 16);

	ck_assert_ptr_nonnull(buf);
	if (!bc_crc32c_hw_available())
		fprintf(stderr, "no SSE4.2: hw path falls back to the tables\n");
	tu_fill(&r, buf, cap + 16);
	for (int i = 0; i < 3000; i++) {
		size_t align = tu_below(&r, 16);
		size_t len = i < 100 ? (size_t)i : tu_below(&r, i % 10 ? 5000 : cap);
		uint32_t seed = i % 3 ? (uint32_t)tu_rand(&r) : 0;
		uint32_t sw = bc_crc32c_sw(seed, buf + align, len);
		ck_assert_msg(bc_crc32c_hw(seed, buf + align, len) == sw,
			      "len %zu align %zu seed %08x", len, align, seed);
		ck_assert_uint_eq(bc_crc32c(seed, buf + align, len), sw);
	}
	/* Either side of where the instruction path switches to three lanes of 256 and of
	 * 8192 bytes, and several rounds of each. */
	static const size_t edges[] = {767,   768,   769,   775,	 776,	1535,
				       1536,  2311,  24575, 24576,	 24577, 24583,
				       25343, 25344, 49152, 49152 + 768, 70000};
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
		for (size_t align = 0; align < 9; align++) {
			uint32_t sw = bc_crc32c_sw(0x12345678, buf + align, edges[i]);
			ck_assert_msg(bc_crc32c_hw(0x12345678, buf + align, edges[i]) == sw,
				      "len %zu align %zu", edges[i], align);
		}
	}
	free(buf);
}
END_TEST

START_TEST(combine_equals_concatenation)
{
	struct tu_rng r = {tu_seed(0xabcdef)};
	uint8_t buf[5000];

	tu_fill(&r, buf, sizeof(buf));
	for (int i = 0; i < 2000; i++) {
		size_t len = i < 50 ? (size_t)i : tu_below(&r, sizeof(buf) + 1);
		size_t cut = tu_below(&r, len + 1);
		uint32_t a = bc_crc32c(0, buf, cut);
		uint32_t b = bc_crc32c(0, buf + cut, len - cut);
		ck_assert_uint_eq(bc_crc32c_combine(a, b, len - cut), bc_crc32c(0, buf, len));
	}
}
END_TEST

/*
 * Lengths past 2^32. With crc_b = 0, combine(a, 0, n) is a * x^(8n) modulo the
 * polynomial, so shifting by m and then by n must equal shifting by m + n; this checks the
 * x^(2^k) table for every k against the small lengths verified above.
 */
START_TEST(combine_large_lengths)
{
	struct tu_rng r = {tu_seed(0x1234)};
	uint32_t a = bc_crc32c(0, "123456789", 9);

	ck_assert_uint_eq(bc_crc32c_combine(a, 0, 0), a);
	for (int i = 0; i < 500; i++) {
		uint64_t m = tu_rand(&r) >> (1 + tu_below(&r, 63));
		uint64_t n = tu_rand(&r) >> (1 + tu_below(&r, 63));
		uint32_t two = bc_crc32c_combine(bc_crc32c_combine(a, 0, m), 0, n);
		ck_assert_msg(two == bc_crc32c_combine(a, 0, m + n), "m %llu n %llu",
			      (unsigned long long)m, (unsigned long long)n);
	}
}
END_TEST

static Suite *crc32c_suite(void)
{
	Suite *s = suite_create("crc32c");
	TCase *tc;

	tc = tcase_create("check values");
	tcase_add_loop_test(tc, check_value, 0, NIMPLS);
	tcase_add_loop_test(tc, rfc3720_vectors, 0, NIMPLS);
	tcase_add_loop_test(tc, matches_bitwise_reference, 0, NIMPLS);
	suite_add_tcase(s, tc);

	tc = tcase_create("incremental equals one-shot");
	tcase_add_loop_test(tc, incremental_equals_one_shot, 0, NIMPLS);
	suite_add_tcase(s, tc);

	tc = tcase_create("hw equals sw");
	tcase_add_test(tc, hw_equals_sw);
	suite_add_tcase(s, tc);

	tc = tcase_create("combine");
	tcase_add_test(tc, combine_equals_concatenation);
	tcase_add_test(tc, combine_large_lengths);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(crc32c_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
