// SPDX-License-Identifier: MIT
/*
 * bitcask list DIR [PREFIX]: the live keys of the user space that start with PREFIX, in
 * the engine's order (unsigned bytes, shorter first), one per line and escaped as cli.h
 * describes, or with --raw each key as is followed by a NUL byte.
 */
#include "cli.h"

#include <errno.h>

int cmd_list(const struct cli_args *a)
{
	struct cli_key prefix;
	struct bc_iter *it = NULL;
	struct bc_db *db;
	char **rest;
	int nrest, rc, ret, out = 0;

	ret = cli_take_key(a, false, 0, &prefix, &rest, &nrest);
	if (ret != CLI_OK)
		return ret;
	ret = cli_open(a, !a->read_write, &db);
	if (ret != CLI_OK)
		return ret;
	rc = bc_iter_new(db, BC_SPACE_USER, prefix.data, prefix.len, &it);
	if (rc < 0) {
		ret = cli_fail(a, rc);
		goto out_close;
	}
	for (;;) {
		const void *k;
		size_t klen;

		rc = bc_iter_next(it, &k, &klen, NULL);
		if (rc == -ENOENT)
			break;
		if (rc < 0) {
			ret = cli_fail(a, rc);
			break;
		}
		if (a->raw) {
			out = cli_out(k, klen);
			if (out == 0)
				out = cli_out("", 1);
		} else {
			out = cli_out_escaped(k, klen);
			if (out == 0)
				out = cli_out("\n", 1);
		}
		if (out < 0)
			break;
	}
	bc_iter_free(it);
out_close:
	if (cli_close(a, db) != CLI_OK)
		ret = CLI_FAIL;
	if (out < 0)
		return cli_output_failed(a, out);
	return ret;
}
