// SPDX-License-Identifier: MIT
/* bitcask delete DIR KEY: remove KEY; a missing key is a failure (exit 1). */
#include "cli.h"

int cmd_delete(const struct cli_args *a)
{
	struct cli_key key;
	struct bc_db *db;
	char **rest;
	int nrest, rc, ret;

	ret = cli_take_key(a, true, 0, &key, &rest, &nrest);
	if (ret != CLI_OK)
		return ret;
	ret = cli_open(a, false, &db);
	if (ret != CLI_OK)
		return ret;
	rc = bc_delete(db, BC_SPACE_USER, key.data, key.len);
	if (rc < 0)
		ret = cli_fail(a, rc);
	if (cli_close(a, db) != CLI_OK)
		ret = CLI_FAIL;
	return ret;
}
