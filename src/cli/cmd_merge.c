// SPDX-License-Identifier: MIT
/*
 * bitcask merge DIR: a full merge (every immutable file with dead data) in this process,
 * then "reclaimed_bytes N" on stdout: the bytes the merge freed, as the engine counts them.
 */
#include "cli.h"

#include <inttypes.h>

int cmd_merge(const struct cli_args *a)
{
	struct bc_stats before = {0}, after = {0};
	struct bc_db *db;
	int rc, ret, out = 0;

	ret = cli_no_operands(a);
	if (ret != CLI_OK)
		return ret;
	ret = cli_open(a, false, &db);
	if (ret != CLI_OK)
		return ret;
	rc = bc_stats_get(db, &before);
	if (rc == 0) {
		cli_log_clear();
		rc = bc_merge(db, true);
	}
	if (rc == 0)
		rc = bc_stats_get(db, &after);
	if (rc < 0)
		ret = cli_fail(a, rc);
	else
		out = cli_outf("reclaimed_bytes %" PRIu64 "\n",
			       after.merge_reclaimed_bytes - before.merge_reclaimed_bytes);
	bc_stats_release(&before);
	bc_stats_release(&after);
	if (cli_close(a, db) != CLI_OK)
		ret = CLI_FAIL;
	if (out < 0)
		return cli_output_failed(a, out);
	return ret;
}
