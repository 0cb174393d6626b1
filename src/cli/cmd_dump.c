// SPDX-License-Identifier: MIT
/*
 * bitcask dump DIR: every record of every data file in replay order, one line each:
 *   FILE:OFFSET TYPE flags=batch|- space=N time=NS expire=S meta=N value=N object=N
 *     chunk=N klen=N key=ESCAPED
 * (one line; key last, so its escaped bytes, spaces included, run to the end of the line).
 * value is the value length for put, the data length for chunk, the object size for link
 * and truncate, the member count for batch. Bytes that are no valid record print as
 *   FILE:OFFSET damage REASON
 */
#include "cli.h"

#include <inttypes.h>

struct dump_ctx {
	int out; /* first output error; the walk goes on but prints nothing more */
};

static void dump_one(void *ctx, const struct bc_dump_record *r)
{
	struct dump_ctx *c = ctx;
	int rc;

	if (c->out)
		return;
	if (r->damage) {
		c->out = cli_outf("%s:%" PRIu64 " damage %s\n", r->file, r->offset, r->damage);
		return;
	}
	rc = cli_outf("%s:%" PRIu64 " %s flags=%s space=%u time=%" PRIu64 " expire=%" PRIu64
		      " meta=%" PRIu32 " value=%" PRIu64 " object=%" PRIu64 " chunk=%" PRIu32
		      " klen=%zu key=",
		      r->file, r->offset, r->type ? r->type : "?", r->in_batch ? "batch" : "-",
		      r->space, r->timestamp_ns, r->expire_s, r->meta_len, r->value_len, r->object,
		      r->chunk, r->klen);
	if (rc == 0 && r->klen > 0)
		rc = cli_out_escaped(r->key, r->klen);
	if (rc == 0)
		rc = cli_out("\n", 1);
	c->out = rc;
}

int cmd_dump(const struct cli_args *a)
{
	struct dump_ctx c = {0};
	int rc, ret;

	ret = cli_no_operands(a);
	if (ret != CLI_OK)
		return ret;
	cli_log_clear();
	rc = bc_dump(a->dir, dump_one, &c);
	if (c.out < 0)
		return cli_output_failed(a, c.out);
	if (rc < 0)
		return cli_fail_dir(a, rc);
	return CLI_OK;
}
