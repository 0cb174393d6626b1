// SPDX-License-Identifier: MIT
/*
 * bitcask get DIR KEY: copy the value of KEY to standard output in 1 MiB pieces with
 * bc_read, so a value of any size passes through a fixed buffer. Opens read-only unless
 * -w, so it works beside a running writer (and sees the store as it was at open).
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>

#define GET_PIECE (1u << 20)

int cmd_get(const struct cli_args *a)
{
	struct cli_key key;
	struct bc_db *db;
	char **rest;
	int nrest, rc, ret;
	uint64_t off = 0;
	void *buf;

	ret = cli_take_key(a, true, 0, &key, &rest, &nrest);
	if (ret != CLI_OK)
		return ret;
	buf = malloc(GET_PIECE);
	if (!buf)
		return cli_error(a, "%s", bc_strerror(-ENOMEM));
	ret = cli_open(a, !a->read_write, &db);
	if (ret != CLI_OK)
		goto out_free;
	for (;;) {
		size_t got = 0;

		cli_log_clear();
		rc = bc_read(db, BC_SPACE_USER, key.data, key.len, off, buf, GET_PIECE, &got);
		if (rc < 0) {
			ret = cli_fail(a, rc);
			break;
		}
		if (got == 0)
			break;
		rc = cli_write(buf, got);
		if (rc < 0) {
			bc_close(db);
			free(buf);
			return cli_output_failed(a, rc);
		}
		off += got;
		/* A short piece is the end of the value. */
		if (got < GET_PIECE)
			break;
	}
	if (cli_close(a, db) != CLI_OK)
		ret = CLI_FAIL;
out_free:
	free(buf);
	return ret;
}
