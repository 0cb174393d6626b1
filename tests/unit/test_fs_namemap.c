// SPDX-License-Identifier: MIT
/*
 * Name mapping (src/fs/core_namemap.c, docs/FILESYSTEM.md "Name mapping"): every key maps
 * to a path of valid file names and back, on every byte value and every pair of bytes;
 * names that are not canonical are refused; listings built with bcfs_child_of() show each
 * key exactly once.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_namemap.h"
#include "testutil.h"

/* Every name in path is a usable Linux file name. */
static void check_names(const char *path, const void *key, size_t klen)
{
	const char *p = path;

	for (;;) {
		const char *s = strchr(p, '/');
		size_t n = s ? (size_t)(s - p) : strlen(p);

		ck_assert_msg(n >= 1 && n <= BCFS_NAME_MAX, "bad name length %zu in %s", n, path);
		ck_assert(!(n == 1 && p[0] == '.'));
		ck_assert(!(n == 2 && p[0] == '.' && p[1] == '.'));
		if (p == path)
			ck_assert(!(n == strlen(BCFS_CTL_NAME) && !memcmp(p, BCFS_CTL_NAME, n)));
		if (!s)
			break;
		p = s + 1;
	}
	(void)key;
	(void)klen;
}

static void roundtrip(const void *key, size_t klen)
{
	char *path = bcfs_key_to_path(key, klen), *back = NULL;
	size_t blen = 0;
	int rc;

	ck_assert_ptr_nonnull(path);
	check_names(path, key, klen);
	rc = bcfs_path_to_key(path, &back, &blen);
	ck_assert_msg(rc == 0, "path_to_key(%s) = %d", path, rc);
	ck_assert_uint_eq(blen, klen);
	ck_assert(!memcmp(back, key, klen));
	free(back);
	free(path);
}

static void expect_path(const char *key, size_t klen, const char *want)
{
	char *path = bcfs_key_to_path(key, klen);

	ck_assert_ptr_nonnull(path);
	ck_assert_str_eq(path, want);
	free(path);
	roundtrip(key, klen);
}

START_TEST(every_byte_everywhere)
{
	for (int b = 0; b < 256; b++) {
		uint8_t k[8];

		k[0] = (uint8_t)b;
		roundtrip(k, 1);
		k[0] = 'a';
		k[1] = (uint8_t)b;
		k[2] = 'z';
		roundtrip(k, 3);
		roundtrip(k, 2);
		roundtrip(k + 1, 2);
		memcpy(k, "d/", 2);
		k[2] = (uint8_t)b;
		roundtrip(k, 3);
		k[3] = '/';
		k[4] = 'f';
		roundtrip(k, 5);
		k[0] = (uint8_t)b;
		k[1] = '/';
		k[2] = (uint8_t)b;
		roundtrip(k, 3);
		k[0] = '%';
		k[1] = (uint8_t)b;
		roundtrip(k, 2);
		k[0] = '%';
		k[1] = (uint8_t)b;
		k[2] = 'x';
		roundtrip(k, 3);
	}
}
END_TEST

START_TEST(every_byte_pair)
{
	for (int a = 0; a < 256; a++)
		for (int b = 0; b < 256; b++) {
			uint8_t k[2] = {(uint8_t)a, (uint8_t)b};

			roundtrip(k, 2);
		}
}
END_TEST

START_TEST(every_byte_as_a_name)
{
	char buf[64];
	size_t len;

	for (int b = 1; b < 256; b++) {
		char name[1] = {(char)b};
		int rc;

		if (b == '/')
			continue;
		rc = bcfs_name_parse("", 0, name, 1, buf, sizeof(buf), &len, 65535);
		if (b == '.') {
			ck_assert_int_eq(rc, -EINVAL);
			continue;
		}
		ck_assert_int_eq(rc, BCFS_NAME_PLAIN);
		ck_assert_uint_eq(len, 1);
		ck_assert_int_eq(buf[0], (char)b);
	}
}
END_TEST

START_TEST(special_components)
{
	expect_path("", 0, "%=");
	expect_path(".", 1, "%=.");
	expect_path("..", 2, "%=..");
	expect_path("/", 1, "%=/%=");
	expect_path("a/", 2, "a/%=");
	expect_path("/a", 2, "%=/a");
	expect_path("a//b", 4, "a/%=/b");
	expect_path("a/./b", 5, "a/%=./b");
	expect_path("a/../b", 6, "a/%=../b");
	expect_path(".bitcask", 8, "%=.bitcask");
	expect_path(".bitcask/x", 10, "%=.bitcask/x");
	expect_path("d/.bitcask", 10, "d/.bitcask");
	expect_path("%=x", 3, "%=%25=x");
	expect_path("%+x", 3, "%=%25+x");
	expect_path("%@", 2, "%=%25@");
	expect_path("%", 1, "%");
	expect_path("%20", 3, "%20");
	expect_path("100%", 4, "100%");
	expect_path("a\0b", 3, "%=a%00b");
	expect_path("a%\0", 3, "%=a%25%00");
	expect_path(".hidden", 7, ".hidden");
	expect_path("...", 3, "...");
	expect_path("a\nb", 3, "a\nb");
}
END_TEST

START_TEST(rejects_noncanonical)
{
	char buf[600];
	size_t len;
	static const char *bad[] = {"%=abc", "%=%41", "%=%2", "%=%",	"%=%25x%", "%@x",
				    "%+",    "%+zz",  "%+2f", "%+ABCD", "%+abc",   "%=="};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(bcfs_name_parse("", 0, bad[i], strlen(bad[i]), buf, sizeof(buf), &len,
					      65535) == -EINVAL,
			      "accepted %s", bad[i]);
	/* The control area name is no key at the root, but is one deeper down. */
	ck_assert_int_eq(bcfs_name_parse("", 0, ".bitcask", 8, buf, sizeof(buf), &len, 65535),
			 -EINVAL);
	ck_assert_int_eq(bcfs_name_parse("d/", 2, ".bitcask", 8, buf, sizeof(buf), &len, 65535),
			 BCFS_NAME_PLAIN);
	/* The shadow name only inside a real directory. */
	ck_assert_int_eq(bcfs_name_parse("", 0, "%@", 2, buf, sizeof(buf), &len, 65535), -EINVAL);
	ck_assert_int_eq(bcfs_name_parse("d/", 2, "%@", 2, buf, sizeof(buf), &len, 65535),
			 BCFS_NAME_SHADOW);
	ck_assert_uint_eq(len, 1);
	ck_assert_int_eq(buf[0], 'd');
	/* Too long for a name, too long for the engine. */
	memset(buf, 'n', 256);
	ck_assert_int_eq(bcfs_name_parse("", 0, buf, 256, buf + 300, 300, &len, 65535),
			 -ENAMETOOLONG);
	ck_assert_int_eq(bcfs_name_parse("d/", 2, "abc", 3, buf, sizeof(buf), &len, 4),
			 -ENAMETOOLONG);
	ck_assert_int_eq(bcfs_name_parse("d/", 2, "ab", 2, buf, sizeof(buf), &len, 4),
			 BCFS_NAME_PLAIN);
}
END_TEST

START_TEST(long_components)
{
	struct tu_rng r = {tu_seed(0x5eed)};
	uint8_t k[2000];

	/* 255 plain bytes is one name, 256 is a continuation plus the rest. */
	memset(k, 'x', sizeof(k));
	{
		char *p = bcfs_key_to_path(k, 255);

		ck_assert_ptr_null(strchr(p, '/'));
		free(p);
		p = bcfs_key_to_path(k, 256);
		ck_assert_int_eq(p[0], '%');
		ck_assert_int_eq(p[1], '+');
		ck_assert_uint_eq(strlen(p), 2 + 252 + 1 + 130);
		free(p);
	}
	for (size_t len = 200; len < 1200; len += 1)
		roundtrip(k, len);
	for (int i = 0; i < 3000; i++) {
		size_t len = 1 + tu_below(&r, sizeof(k));
		static const uint8_t alpha[] = {'a', '/', 0, '%', '.', '=', '+', '@', 0xff};

		for (size_t j = 0; j < len; j++)
			k[j] = tu_below(&r, 4) ? alpha[tu_below(&r, sizeof(alpha))]
					       : (uint8_t)tu_below(&r, 256);
		roundtrip(k, len);
		/* A long run of bytes that need escapes. */
		memset(k, tu_below(&r, 2) ? 0 : '%', len);
		roundtrip(k, len);
	}
}
END_TEST

/*
 * List directory kp over a sorted key set the way the daemon does (iterate, skip past
 * subtrees) and check each name appears once; returns the number of entries.
 */
static int cmp_key(const void *a, const void *b)
{
	const uint8_t *const *x = a, *const *y = b;
	size_t lx = (*x)[0], ly = (*y)[0];
	int c = memcmp(*x + 1, *y + 1, lx < ly ? lx : ly);

	return c ? c : (lx > ly) - (lx < ly);
}

START_TEST(listing_shows_each_key_once)
{
	struct tu_rng r = {tu_seed(0xd1)};
	enum { N = 400 };
	uint8_t *keys[N];
	static const uint8_t alpha[] = {'a', 'b', '/', 0, '%', '.'};

	for (int i = 0; i < N; i++) {
		size_t len = 1 + tu_below(&r, 8);

		keys[i] = malloc(len + 1);
		keys[i][0] = (uint8_t)len;
		for (size_t j = 0; j < len; j++)
			keys[i][1 + j] = alpha[tu_below(&r, sizeof(alpha))];
	}
	qsort(keys, N, sizeof(keys[0]), cmp_key);
	/* Every key: its path leads back to it and it shows in each directory on the way. */
	for (int i = 0; i < N; i++) {
		size_t klen = keys[i][0], kplen = 0;
		const uint8_t *key = keys[i] + 1;
		struct bcfs_child ch;
		int files = 0;

		roundtrip(key, klen);
		for (;;) {
			/* Listing kp: the entry for this key appears exactly once. */
			int seen = 0;

			ck_assert_int_eq(bcfs_child_of(key, kplen, key, klen, &ch), 0);
			ck_assert_int_ne(ch.kind, BCFS_CHILD_NONE);
			for (int j = 0; j < N; j++) {
				struct bcfs_child o;

				if (keys[j][0] < kplen || memcmp(keys[j] + 1, key, kplen) ||
				    !cmp_key(&keys[j], &keys[i]))
					continue;
				bcfs_child_of(key, kplen, keys[j] + 1, keys[j][0], &o);
				if (o.kind == ch.kind && !strcmp(o.name, ch.name) &&
				    (o.kind == BCFS_CHILD_FILE) && j != i)
					seen++;
			}
			ck_assert_int_eq(seen, 0); /* no other key shows as the same file */
			if (ch.kind == BCFS_CHILD_FILE) {
				files++;
				break;
			}
			kplen = ch.sub_len;
		}
		ck_assert_int_eq(files, 1);
	}
	for (int i = 0; i < N; i++)
		free(keys[i]);
}
END_TEST

static Suite *namemap_suite(void)
{
	Suite *s = suite_create("fs_namemap");
	TCase *tc = tcase_create("mapping");

	tcase_add_test(tc, every_byte_everywhere);
	tcase_add_test(tc, every_byte_pair);
	tcase_add_test(tc, every_byte_as_a_name);
	tcase_add_test(tc, special_components);
	tcase_add_test(tc, rejects_noncanonical);
	tcase_add_test(tc, long_components);
	tcase_add_test(tc, listing_shows_each_key_once);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(namemap_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
