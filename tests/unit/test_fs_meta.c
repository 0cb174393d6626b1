// SPDX-License-Identifier: MIT
/*
 * Metadata encoding (src/fs/core_meta.c, docs/FILESYSTEM.md "Metadata encoding"):
 * round trip, the exact little-endian layout, xattr semantics, and rejection of every
 * truncation and of damaged lengths.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "core_meta.h"

static void sample(struct bcfs_meta *m)
{
	memset(m, 0, sizeof(*m));
	m->mode = S_IFREG | 0640;
	m->uid = 1000;
	m->gid = 0x01020304;
	m->atime_ns = -5;
	m->mtime_ns = 1700000000123456789LL;
	m->ctime_ns = 42;
	ck_assert_int_eq(bcfs_meta_xattr_set(m, "user.a", "hello", 5, 0), 0);
	ck_assert_int_eq(bcfs_meta_xattr_set(m, "user.empty", "", 0, 0), 0);
}

START_TEST(roundtrip)
{
	struct bcfs_meta m, d;
	unsigned char buf[1024];
	int n;

	sample(&m);
	n = bcfs_meta_encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(n, (int)bcfs_meta_size(&m));
	ck_assert_int_eq(n, BCFS_META_HDR + 3 + 6 + 5 + 3 + 10);
	ck_assert_int_eq(bcfs_meta_decode(buf, (size_t)n, &d), 0);
	ck_assert_uint_eq(d.mode, m.mode);
	ck_assert_uint_eq(d.uid, 1000);
	ck_assert_uint_eq(d.gid, 0x01020304);
	ck_assert(d.atime_ns == -5);
	ck_assert(d.mtime_ns == 1700000000123456789LL);
	ck_assert(d.ctime_ns == 42);
	ck_assert_uint_eq(d.nxattrs, 2);
	ck_assert_uint_eq(bcfs_meta_xattr_get(&d, "user.a")->vlen, 5);
	ck_assert(!memcmp(bcfs_meta_xattr_get(&d, "user.a")->value, "hello", 5));
	ck_assert_uint_eq(bcfs_meta_xattr_get(&d, "user.empty")->vlen, 0);
	bcfs_meta_release(&d);
	bcfs_meta_release(&m);
}
END_TEST

START_TEST(layout_is_little_endian)
{
	struct bcfs_meta m = {.mode = 0x000081a4, .uid = 1, .gid = 2, .mtime_ns = 0x0102};
	unsigned char buf[64];
	static const unsigned char want[BCFS_META_HDR] = {
		1, 0, 0, 0, 0xa4, 0x81, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 2,	  1,	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	};

	ck_assert_int_eq(bcfs_meta_encode(&m, buf, sizeof(buf)), BCFS_META_HDR);
	ck_assert(!memcmp(buf, want, sizeof(want)));
}
END_TEST

START_TEST(rejects_truncation_and_damage)
{
	struct bcfs_meta m, d;
	unsigned char buf[1024];
	int n;

	sample(&m);
	n = bcfs_meta_encode(&m, buf, sizeof(buf));
	for (int cut = 0; cut < n; cut++)
		ck_assert_int_lt(bcfs_meta_decode(buf, (size_t)cut, &d), 0);
	buf[0] = 2;
	ck_assert_int_eq(bcfs_meta_decode(buf, (size_t)n, &d), -EPROTONOSUPPORT);
	buf[0] = 1;
	buf[BCFS_META_HDR + 1] = 0xff; /* value length past the end */
	ck_assert_int_eq(bcfs_meta_decode(buf, (size_t)n, &d), -EBADMSG);
	buf[BCFS_META_HDR + 1] = 5;
	buf[BCFS_META_HDR] = 0; /* empty name */
	ck_assert_int_eq(bcfs_meta_decode(buf, (size_t)n, &d), -EBADMSG);
	bcfs_meta_release(&m);
}
END_TEST

START_TEST(xattr_flags_and_limits)
{
	struct bcfs_meta m = {0};
	static char big[70000];
	char list[64];

	ck_assert_int_eq(bcfs_meta_xattr_set(&m, "user.x", "1", 1, XATTR_REPLACE), -ENODATA);
	ck_assert_int_eq(bcfs_meta_xattr_set(&m, "user.x", "1", 1, XATTR_CREATE), 0);
	ck_assert_int_eq(bcfs_meta_xattr_set(&m, "user.x", "2", 1, XATTR_CREATE), -EEXIST);
	ck_assert_int_eq(bcfs_meta_xattr_set(&m, "user.x", "22", 2, XATTR_REPLACE), 0);
	ck_assert_int_eq(bcfs_meta_xattr_set(&m, "user.y", big, 65536, 0), -E2BIG);
	ck_assert_int_eq(bcfs_meta_xattr_set(&m, "user.y", big, 65535, 0), 0);
	ck_assert_int_eq(bcfs_meta_encode(&m, big, sizeof(big)), -ENOSPC);
	ck_assert_int_eq(bcfs_meta_xattr_remove(&m, "user.y"), 0);
	ck_assert_int_eq(bcfs_meta_xattr_remove(&m, "user.y"), -ENODATA);
	ck_assert_uint_eq(bcfs_meta_xattr_list_size(&m), 7);
	bcfs_meta_xattr_list(&m, list);
	ck_assert(!memcmp(list, "user.x", 7));
	bcfs_meta_release(&m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fs_meta");
	TCase *tc = tcase_create("encoding");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, roundtrip);
	tcase_add_test(tc, layout_is_little_endian);
	tcase_add_test(tc, rejects_truncation_and_damage);
	tcase_add_test(tc, xattr_flags_and_limits);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
