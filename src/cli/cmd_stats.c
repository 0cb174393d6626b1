// SPDX-License-Identifier: MIT
/*
 * bitcask stats DIR: every field of struct bc_stats as a "name value" line, then four
 * lines per data file named file.<id in 16 hex digits>.<field>. Numbers are decimal;
 * merge_state is "idle" or "running"; booleans are 0 or 1.
 */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>

struct field {
	const char *name;
	uint64_t value;
};

static int print_fields(const struct field *f, size_t n)
{
	size_t i;
	int rc = 0;

	for (i = 0; rc == 0 && i < n; i++)
		rc = cli_outf("%s %" PRIu64 "\n", f[i].name, f[i].value);
	return rc;
}

/* clang-format off */
#define FIELD(name) {#name, s->name}
/* clang-format on */
#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

static int print_stats(const struct bc_stats *s)
{
	/* clang-format off */
	const struct field head[] = {
		FIELD(keys),
		FIELD(objects),
		FIELD(total_bytes),
		FIELD(live_bytes),
		FIELD(dead_bytes),
		FIELD(fragmentation_percent),
		FIELD(keydir_bytes),
	};
	/* clang-format on */
	const struct field tail[] = {
		FIELD(merge_bytes_total),
		FIELD(merge_bytes_done),
		FIELD(merges_done),
		FIELD(merge_reclaimed_bytes),
		FIELD(recovered_torn_bytes),
		FIELD(recovered_damaged_records),
		FIELD(recovered_damaged_bytes),
		FIELD(hint_fallbacks),
		FIELD(read_errors),
		FIELD(puts),
		FIELD(gets),
		FIELD(deletes),
		FIELD(batches),
		FIELD(syncs),
		FIELD(nfiles),
	};
	size_t i;
	int rc;

	rc = print_fields(head, NFIELDS(head));
	if (rc == 0)
		rc = cli_outf("merge_state %s\n",
			      s->merge_state == BC_MERGE_RUNNING ? "running" : "idle");
	if (rc == 0)
		rc = print_fields(tail, NFIELDS(tail));
	for (i = 0; rc == 0 && i < s->nfiles; i++) {
		const struct bc_file_stats *f = &s->files[i];
		char name[64];
		const struct field per_file[] = {
			{"bytes", f->bytes},
			{"live_bytes", f->live_bytes},
			{"active", f->active},
			{"has_hint", f->has_hint},
		};
		size_t k;

		for (k = 0; rc == 0 && k < NFIELDS(per_file); k++) {
			snprintf(name, sizeof(name), "file.%016" PRIx64 ".%s", f->id,
				 per_file[k].name);
			rc = cli_outf("%s %" PRIu64 "\n", name, per_file[k].value);
		}
	}
	return rc;
}

int cmd_stats(const struct cli_args *a)
{
	struct bc_stats st = {0};
	struct bc_db *db;
	int rc, ret, out = 0;

	ret = cli_no_operands(a);
	if (ret != CLI_OK)
		return ret;
	ret = cli_open(a, !a->read_write, &db);
	if (ret != CLI_OK)
		return ret;
	rc = bc_stats_get(db, &st);
	if (rc < 0)
		ret = cli_fail(a, rc);
	else
		out = print_stats(&st);
	bc_stats_release(&st);
	if (cli_close(a, db) != CLI_OK)
		ret = CLI_FAIL;
	if (out < 0)
		return cli_output_failed(a, out);
	return ret;
}
