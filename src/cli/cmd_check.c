// SPDX-License-Identifier: MIT
/*
 * bitcask check DIR: verify every record and hint file with bc_check (no lock, read-only,
 * so it works beside a writer) and print "file:offset: reason" on stdout per problem.
 * Exit 1 with a count on stderr when there is any.
 */
#include "cli.h"

#include <inttypes.h>

struct check_ctx {
	int out; /* first output error; later problems are only counted */
};

static void report(void *ctx, const char *file, uint64_t offset, const char *reason)
{
	struct check_ctx *c = ctx;

	if (c->out == 0)
		c->out = cli_outf("%s:%" PRIu64 ": %s\n", file, offset, reason);
}

int cmd_check(const struct cli_args *a)
{
	struct check_ctx c = {0};
	uint64_t problems = 0;
	int rc, ret;

	ret = cli_no_operands(a);
	if (ret != CLI_OK)
		return ret;
	cli_log_clear();
	rc = bc_check(a->dir, report, &c, &problems);
	if (c.out == 0)
		c.out = cli_out_flush();
	if (c.out < 0)
		return cli_output_failed(a, c.out);
	if (rc < 0)
		return cli_fail_dir(a, rc);
	if (problems > 0)
		return cli_error(a, "%s: %" PRIu64 " problem%s found", a->dir, problems,
				 problems == 1 ? "" : "s");
	return CLI_OK;
}
