// SPDX-License-Identifier: MIT
/*
 * Control area helpers (src/fs/core_ctl.c, docs/FILESYSTEM.md "Control area"): the
 * command grammar, snapshot placement and the stats formats.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core_ctl.h"

static int parse(const char *line, struct bcfs_cmd *c, const char **why)
{
	return bcfs_ctl_parse(line, strlen(line), c, why);
}

START_TEST(commands)
{
	struct bcfs_cmd c;
	const char *why;

	ck_assert_int_eq(parse("merge", &c, &why), 1);
	ck_assert_int_eq(c.kind, BCFS_CMD_MERGE);
	ck_assert_int_eq(parse("  sync \r", &c, &why), 1);
	ck_assert_int_eq(c.kind, BCFS_CMD_SYNC);
	ck_assert_int_eq(parse("snapshot  snap-1 ", &c, &why), 1);
	ck_assert_int_eq(c.kind, BCFS_CMD_SNAPSHOT);
	ck_assert_str_eq(c.arg, "snap-1");
	ck_assert_int_eq(parse("snapshot /abs/dir", &c, &why), 1);
	ck_assert_str_eq(c.arg, "/abs/dir");
	ck_assert_int_eq(parse("", &c, &why), 0);
	ck_assert_int_eq(parse(" \t", &c, &why), 0);
}
END_TEST

START_TEST(rejects)
{
	struct bcfs_cmd c;
	const char *why;
	static const char *bad[] = {"merg",	   "MERGE",	 "merge now",
				    "sync x",	   "snapshot",	 "snapshot a/b",
				    "snapshot ..", "snapshot .", "frobnicate"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse(bad[i], &c, &why) == -EINVAL, "accepted %s", bad[i]);
		ck_assert_ptr_nonnull(why);
	}
	ck_assert_int_eq(bcfs_ctl_parse("sy\0nc", 5, &c, &why), -EINVAL);
}
END_TEST

START_TEST(snapshot_paths)
{
	char *p;

	p = bcfs_ctl_snapshot_path("/srv/data", "s1");
	ck_assert_str_eq(p, "/srv/s1");
	free(p);
	p = bcfs_ctl_snapshot_path("/srv/data/", "s1");
	ck_assert_str_eq(p, "/srv/s1");
	free(p);
	p = bcfs_ctl_snapshot_path("/srv/data", "/backup/x");
	ck_assert_str_eq(p, "/backup/x");
	free(p);
	p = bcfs_ctl_snapshot_path("data", "s1");
	ck_assert_str_eq(p, "./s1");
	free(p);
}
END_TEST

START_TEST(stats_formats)
{
	struct bc_file_stats f[2] = {
		{.id = 1, .bytes = 100, .live_bytes = 60},
		{.id = 0x10000, .bytes = 10, .live_bytes = 10, .active = true}};
	struct bc_stats st = {
		.keys = 7, .live_bytes = 70, .dead_bytes = 40, .nfiles = 2, .files = f};
	struct bcfs_fs_stats fs = {.uptime_s = 3, .ctl_last_error = "unknown \"x\""};
	char *t = bcfs_ctl_format_stats(&st, &fs, 0), *j = bcfs_ctl_format_stats(&st, &fs, 1);

	ck_assert_ptr_nonnull(strstr(t, "keys 7\n"));
	ck_assert_ptr_nonnull(strstr(t, "dead_bytes 40\n"));
	ck_assert_ptr_nonnull(strstr(t, "merge_state idle\n"));
	ck_assert_ptr_nonnull(strstr(t, "file.0000000000000001.dead_bytes 40\n"));
	ck_assert_ptr_nonnull(strstr(t, "uptime_s 3\n"));
	ck_assert_int_eq(j[0], '{');
	ck_assert_ptr_nonnull(strstr(j, "\"keys\":7,"));
	ck_assert_ptr_nonnull(strstr(j, "\"control_last_error\":\"unknown \\\"x\\\"\""));
	ck_assert_ptr_nonnull(strstr(j, "\"id\":\"0000000000010000\""));
	ck_assert_ptr_nonnull(strstr(j, "]}\n"));
	free(t);
	free(j);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fs_ctl");
	TCase *tc = tcase_create("control");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, commands);
	tcase_add_test(tc, rejects);
	tcase_add_test(tc, snapshot_paths);
	tcase_add_test(tc, stats_formats);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
