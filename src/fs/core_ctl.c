// SPDX-License-Identifier: MIT
/*
 * Control area helpers (docs/FILESYSTEM.md, "Control area"): the command grammar is one
 * command per line, words separated by blanks:
 *   merge | sync | snapshot NAME
 * and the stats files list the engine's bc_stats and the daemon's counters.
 */
#include "core_ctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

int bcfs_ctl_parse(const char *line, size_t len, struct bcfs_cmd *cmd, const char **why)
{
	size_t b = 0, e = len, w;

	memset(cmd, 0, sizeof(*cmd));
	*why = NULL;
	while (b < e && blank(line[b]))
		b++;
	while (e > b && blank(line[e - 1]))
		e--;
	if (b == e)
		return 0;
	if (memchr(line + b, 0, e - b)) {
		*why = "NUL byte in command";
		return -EINVAL;
	}
	for (w = b; w < e && !blank(line[w]); w++)
		;
	if (w - b == 5 && !memcmp(line + b, "merge", 5)) {
		cmd->kind = BCFS_CMD_MERGE;
	} else if (w - b == 4 && !memcmp(line + b, "sync", 4)) {
		cmd->kind = BCFS_CMD_SYNC;
	} else if (w - b == 8 && !memcmp(line + b, "snapshot", 8)) {
		size_t a = w, n;

		while (a < e && blank(line[a]))
			a++;
		n = e - a;
		if (n == 0) {
			*why = "snapshot needs a NAME";
			return -EINVAL;
		}
		if (n >= sizeof(cmd->arg)) {
			*why = "snapshot NAME too long";
			return -EINVAL;
		}
		memcpy(cmd->arg, line + a, n);
		cmd->arg[n] = 0;
		if (cmd->arg[0] != '/' &&
		    (strchr(cmd->arg, '/') || !strcmp(cmd->arg, ".") || !strcmp(cmd->arg, ".."))) {
			*why = "snapshot NAME must be a plain name or an absolute path";
			return -EINVAL;
		}
		cmd->kind = BCFS_CMD_SNAPSHOT;
		return 1;
	} else {
		*why = "unknown command";
		return -EINVAL;
	}
	if (w != e) {
		*why = "command takes no argument";
		return -EINVAL;
	}
	return 1;
}

char *bcfs_ctl_snapshot_path(const char *datadir, const char *name)
{
	size_t dl = strlen(datadir), nl = strlen(name);
	char *p;

	if (name[0] == '/')
		return strdup(name);
	while (dl > 1 && datadir[dl - 1] == '/')
		dl--;
	while (dl > 0 && datadir[dl - 1] != '/')
		dl--; /* keep the parent, with its trailing '/' */
	p = malloc(dl + nl + 3);
	if (!p)
		return NULL;
	if (dl == 0) {
		memcpy(p, "./", 2);
		dl = 2;
	} else {
		memcpy(p, datadir, dl);
	}
	memcpy(p + dl, name, nl + 1);
	return p;
}

struct sbuf {
	char *p;
	size_t len, cap;
	int err;
};

static void __attribute__((format(printf, 2, 3))) sb_printf(struct sbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (sb->err)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(sb->p + sb->len, sb->cap - sb->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			sb->err = 1;
			return;
		}
		if ((size_t)n < sb->cap - sb->len) {
			sb->len += (size_t)n;
			return;
		}
		size_t ncap = 2 * sb->cap + (size_t)n;
		char *np = realloc(sb->p, ncap);

		if (!np) {
			sb->err = 1;
			return;
		}
		sb->p = np;
		sb->cap = ncap;
	}
}

/* One numeric field in either format. */
static void num(struct sbuf *sb, int json, int *first, const char *name, uint64_t v)
{
	if (json)
		sb_printf(sb, "%s\"%s\":%llu", *first ? "" : ",", name, (unsigned long long)v);
	else
		sb_printf(sb, "%s %llu\n", name, (unsigned long long)v);
	*first = 0;
}

static void str(struct sbuf *sb, int json, int *first, const char *name, const char *v)
{
	if (!json) {
		sb_printf(sb, "%s %s\n", name, v);
		return;
	}
	sb_printf(sb, "%s\"%s\":\"", *first ? "" : ",", name);
	for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
		if (*c == '"' || *c == '\\')
			sb_printf(sb, "\\%c", *c);
		else if (*c < 0x20 || *c >= 0x7f)
			sb_printf(sb, "\\u%04x", *c);
		else
			sb_printf(sb, "%c", *c);
	}
	sb_printf(sb, "\"");
	*first = 0;
}

char *bcfs_ctl_format_stats(const struct bc_stats *st, const struct bcfs_fs_stats *fs, int json)
{
	struct sbuf sb = {.cap = 1024};
	int first = 1;
	uint64_t pct =
		st->merge_bytes_total ? st->merge_bytes_done * 100 / st->merge_bytes_total : 0;

	sb.p = malloc(sb.cap);
	if (!sb.p)
		return NULL;
	if (json)
		sb_printf(&sb, "{");
	num(&sb, json, &first, "keys", st->keys);
	num(&sb, json, &first, "objects", st->objects);
	num(&sb, json, &first, "total_bytes", st->total_bytes);
	num(&sb, json, &first, "live_bytes", st->live_bytes);
	num(&sb, json, &first, "dead_bytes", st->dead_bytes);
	num(&sb, json, &first, "fragmentation_percent", st->fragmentation_percent);
	num(&sb, json, &first, "keydir_bytes", st->keydir_bytes);
	str(&sb, json, &first, "merge_state",
	    st->merge_state == BC_MERGE_RUNNING || fs->merge_running ? "running" : "idle");
	num(&sb, json, &first, "merge_bytes_total", st->merge_bytes_total);
	num(&sb, json, &first, "merge_bytes_done", st->merge_bytes_done);
	num(&sb, json, &first, "merge_progress_percent", pct);
	num(&sb, json, &first, "merges_done", st->merges_done);
	num(&sb, json, &first, "merge_reclaimed_bytes", st->merge_reclaimed_bytes);
	num(&sb, json, &first, "merges_requested", fs->merges_requested);
	num(&sb, json, &first, "merge_last_rc", fs->merge_last_rc);
	num(&sb, json, &first, "recovered_torn_bytes", st->recovered_torn_bytes);
	num(&sb, json, &first, "recovered_damaged_records", st->recovered_damaged_records);
	num(&sb, json, &first, "recovered_damaged_bytes", st->recovered_damaged_bytes);
	num(&sb, json, &first, "hint_fallbacks", st->hint_fallbacks);
	num(&sb, json, &first, "read_errors", st->read_errors);
	num(&sb, json, &first, "engine_puts", st->puts);
	num(&sb, json, &first, "engine_gets", st->gets);
	num(&sb, json, &first, "engine_deletes", st->deletes);
	num(&sb, json, &first, "engine_batches", st->batches);
	num(&sb, json, &first, "engine_syncs", st->syncs);
	num(&sb, json, &first, "uptime_s", fs->uptime_s);
	num(&sb, json, &first, "op_lookup", fs->lookups);
	num(&sb, json, &first, "op_getattr", fs->getattrs);
	num(&sb, json, &first, "op_open", fs->opens);
	num(&sb, json, &first, "op_read", fs->reads);
	num(&sb, json, &first, "op_read_bytes", fs->read_bytes);
	num(&sb, json, &first, "op_write", fs->writes);
	num(&sb, json, &first, "op_write_bytes", fs->write_bytes);
	num(&sb, json, &first, "op_create", fs->creates);
	num(&sb, json, &first, "op_unlink", fs->unlinks);
	num(&sb, json, &first, "op_rename", fs->renames);
	num(&sb, json, &first, "op_mkdir", fs->mkdirs);
	num(&sb, json, &first, "op_rmdir", fs->rmdirs);
	num(&sb, json, &first, "op_fsync", fs->fsyncs);
	num(&sb, json, &first, "op_flush", fs->flushes);
	num(&sb, json, &first, "op_readdir", fs->readdirs);
	num(&sb, json, &first, "dirty_bytes", fs->dirty_bytes);
	num(&sb, json, &first, "inodes", fs->inodes);
	num(&sb, json, &first, "meta_reads", fs->meta_reads);
	num(&sb, json, &first, "meta_cache_hits", fs->meta_hits);
	num(&sb, json, &first, "pending_creates", fs->pending_creates);
	num(&sb, json, &first, "control_commands", fs->ctl_commands);
	num(&sb, json, &first, "control_errors", fs->ctl_errors);
	str(&sb, json, &first, "control_last_error",
	    fs->ctl_last_error && *fs->ctl_last_error ? fs->ctl_last_error : "-");
	num(&sb, json, &first, "files", st->nfiles);
	if (json)
		sb_printf(&sb, ",\"file\":[");
	for (size_t i = 0; i < st->nfiles; i++) {
		const struct bc_file_stats *f = &st->files[i];
		uint64_t dead = f->bytes > f->live_bytes ? f->bytes - f->live_bytes : 0;

		if (json)
			sb_printf(&sb,
				  "%s{\"id\":\"%016llx\",\"bytes\":%llu,\"live_bytes\":%llu,"
				  "\"dead_bytes\":%llu,\"active\":%s,\"has_hint\":%s}",
				  i ? "," : "", (unsigned long long)f->id,
				  (unsigned long long)f->bytes, (unsigned long long)f->live_bytes,
				  (unsigned long long)dead, f->active ? "true" : "false",
				  f->has_hint ? "true" : "false");
		else
			sb_printf(&sb,
				  "file.%016llx.bytes %llu\nfile.%016llx.live_bytes %llu\n"
				  "file.%016llx.dead_bytes %llu\nfile.%016llx.active %d\n",
				  (unsigned long long)f->id, (unsigned long long)f->bytes,
				  (unsigned long long)f->id, (unsigned long long)f->live_bytes,
				  (unsigned long long)f->id, (unsigned long long)dead,
				  (unsigned long long)f->id, f->active ? 1 : 0);
	}
	if (json)
		sb_printf(&sb, "]}\n");
	if (sb.err) {
		free(sb.p);
		return NULL;
	}
	return sb.p;
}
