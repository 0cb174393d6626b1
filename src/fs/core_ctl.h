/* SPDX-License-Identifier: MIT */
/*
 * The control area's pure parts: parsing one command line written to /.bitcask/control,
 * resolving a snapshot name to a directory, and formatting /.bitcask/stats and
 * stats.json. Specified in docs/FILESYSTEM.md, section "Control area".
 */
#ifndef BCFS_CORE_CTL_H
#define BCFS_CORE_CTL_H

#include <stddef.h>
#include <stdint.h>

#include <bitcask/bitcask.h>

enum bcfs_cmd_kind { BCFS_CMD_MERGE = 1, BCFS_CMD_SYNC, BCFS_CMD_SNAPSHOT };

struct bcfs_cmd {
	enum bcfs_cmd_kind kind;
	char arg[4096]; /* SNAPSHOT: the NAME as written, NUL-terminated */
};

/*
 * Parse one line (without its '\n'; a trailing '\r' and surrounding blanks are ignored).
 * Returns 1 for a command (fills *cmd), 0 for a blank line, -EINVAL for anything else
 * with a static reason in *why.
 */
int bcfs_ctl_parse(const char *line, size_t len, struct bcfs_cmd *cmd, const char **why);

/*
 * The directory a snapshot NAME goes to: NAME itself when absolute, else NAME next to
 * datadir (in datadir's parent). Returns a malloc'd path (caller frees) or NULL.
 */
char *bcfs_ctl_snapshot_path(const char *datadir, const char *name);

/* Daemon-side figures shown beside the engine's in the stats files. */
struct bcfs_fs_stats {
	uint64_t uptime_s;
	uint64_t lookups, getattrs, opens, reads, read_bytes, writes, write_bytes;
	uint64_t creates, unlinks, renames, mkdirs, rmdirs, fsyncs, flushes, readdirs;
	uint64_t dirty_bytes; /* buffered writes not yet in the engine */
	uint64_t inodes; /* inodes the kernel holds */
	uint64_t meta_reads; /* metadata records read from the engine (cache misses) */
	uint64_t meta_hits; /* metadata answered from the inode cache */
	uint64_t pending_creates; /* created files whose first record is not written yet */
	uint64_t merges_requested, merge_running, merge_last_rc;
	uint64_t ctl_commands, ctl_errors;
	const char *ctl_last_error; /* "" when none */
};

/*
 * Format the stats text (json == 0: "name value" lines; else one JSON object).
 * Returns a malloc'd NUL-terminated string (caller frees) or NULL.
 */
char *bcfs_ctl_format_stats(const struct bc_stats *st, const struct bcfs_fs_stats *fs, int json);

#endif
