// SPDX-License-Identifier: MIT
/*
 * Command line of bitcaskfs: `bitcaskfs [options] DATADIR MOUNTPOINT`. Our -o options
 * (sync=, ro, max_file_size=, merge_*=, automerge=, dirty_max=) fill struct bc_options;
 * everything else is left in the argument list for libfuse (allow_other, fsname, ...).
 * The list of options is in docs/FILESYSTEM.md, section "Mounting".
 */
#include "bcfs.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	KEY_HELP,
	KEY_VERSION,
	KEY_FG,
	KEY_DEBUG,
	KEY_SINGLE,
	KEY_RO,
	KEY_SYNC,
	KEY_MAXFILE,
	KEY_FRAG,
	KEY_DEAD,
	KEY_SMALL,
	KEY_CHECK,
	KEY_AUTO,
	KEY_DIRTY,
};

static const struct fuse_opt bcfs_opt_spec[] = {
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FG),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("-s", KEY_SINGLE),
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("sync=", KEY_SYNC),
	FUSE_OPT_KEY("max_file_size=", KEY_MAXFILE),
	FUSE_OPT_KEY("merge_frag=", KEY_FRAG),
	FUSE_OPT_KEY("merge_dead=", KEY_DEAD),
	FUSE_OPT_KEY("merge_small=", KEY_SMALL),
	FUSE_OPT_KEY("merge_check_ms=", KEY_CHECK),
	FUSE_OPT_KEY("automerge=", KEY_AUTO),
	FUSE_OPT_KEY("dirty_max=", KEY_DIRTY),
	FUSE_OPT_END,
};

struct parse_ctx {
	struct bcfs *fs;
	struct bcfs_cmdline *cl;
	int bad;
};

/* A size with an optional K, M or G suffix (powers of 1024). */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	default:
		break;
	}
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct parse_ctx *pc = data;
	struct bc_options *o = &pc->fs->bopts;
	const char *val = strchr(arg, '=');
	uint64_t v = 0;

	(void)outargs;
	if (val)
		val++;
	switch (key) {
	case FUSE_OPT_KEY_OPT:
		return 1; /* not ours: libfuse's (allow_other, fsname, dev, suid, ...) */
	case FUSE_OPT_KEY_NONOPT:
		if (!pc->cl->datadir)
			pc->cl->datadir = strdup(arg);
		else if (!pc->cl->mountpoint)
			pc->cl->mountpoint = strdup(arg);
		else {
			fprintf(stderr, "bitcaskfs: unexpected argument '%s'\n", arg);
			pc->bad = 1;
		}
		return 0;
	case KEY_HELP:
		pc->cl->help = true;
		return 0;
	case KEY_VERSION:
		pc->cl->version = true;
		return 0;
	case KEY_FG:
		pc->cl->foreground = true;
		return 0;
	case KEY_DEBUG:
		pc->cl->foreground = pc->cl->debug = true;
		return 1; /* libfuse prints requests too */
	case KEY_SINGLE:
		pc->cl->single = true;
		return 0;
	case KEY_RO:
		pc->fs->ro = true;
		o->read_only = true;
		return 1; /* and a read-only mount */
	case KEY_SYNC:
		if (!strcmp(val, "always")) {
			o->sync = BC_SYNC_ALWAYS;
		} else if (!strcmp(val, "none")) {
			o->sync = BC_SYNC_NONE;
		} else if (!strncmp(val, "interval:", 9) && !parse_size(val + 9, &v) && v &&
			   v <= UINT32_MAX) {
			o->sync = BC_SYNC_INTERVAL;
			o->sync_interval_ms = (uint32_t)v;
		} else {
			fprintf(stderr, "bitcaskfs: sync= takes always, none or interval:MS\n");
			pc->bad = 1;
		}
		return 0;
	case KEY_AUTO:
		if (!strcmp(val, "0") || !strcmp(val, "off"))
			o->merge_disable_auto = true;
		else if (strcmp(val, "1") && strcmp(val, "on"))
			pc->bad = 1;
		return 0;
	default:
		break;
	}
	if (parse_size(val, &v)) {
		fprintf(stderr, "bitcaskfs: bad value in '%s'\n", arg);
		pc->bad = 1;
		return 0;
	}
	switch (key) {
	case KEY_MAXFILE:
		o->max_file_size = v;
		break;
	case KEY_FRAG:
		o->merge_frag_percent = v > 100 ? 100 : (uint32_t)v;
		break;
	case KEY_DEAD:
		o->merge_dead_bytes = v;
		break;
	case KEY_SMALL:
		o->merge_small_file = v;
		break;
	case KEY_CHECK:
		o->merge_check_ms = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
		break;
	case KEY_DIRTY:
		pc->fs->dirty_max = v;
		break;
	}
	return 0;
}

int bcfs_opts_parse(int argc, char **argv, struct bcfs *fs, struct bcfs_cmdline *cl)
{
	struct parse_ctx pc = {.fs = fs, .cl = cl};

	memset(cl, 0, sizeof(*cl));
	cl->args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	if (fuse_opt_parse(&cl->args, &pc, bcfs_opt_spec, opt_proc) == -1 || pc.bad)
		return -EINVAL;
	return 0;
}

void bcfs_opts_usage(const char *prog)
{
	printf("usage: %s [options] DATADIR MOUNTPOINT\n\n"
	       "Mount the bitcask store in DATADIR at MOUNTPOINT: every key is a file.\n\n"
	       "    -h, --help             this text\n"
	       "    -V, --version          print versions\n"
	       "    -f                     stay in the foreground\n"
	       "    -d, -o debug           foreground, print every request\n"
	       "    -s                     one thread\n"
	       "    -o ro                  read-only store and mount\n"
	       "    -o sync=always|none|interval:MS   when writes reach the disk (default: none;\n"
	       "                           fsync and unmount always flush)\n"
	       "    -o max_file_size=SIZE  rotate data files past SIZE (K, M, G suffixes)\n"
	       "    -o merge_frag=PCT      merge a file when PCT of it is dead\n"
	       "    -o merge_dead=SIZE     merge a file holding SIZE dead bytes\n"
	       "    -o merge_small=SIZE    merge files smaller than SIZE together\n"
	       "    -o merge_check_ms=MS   how often automatic merge looks\n"
	       "    -o automerge=0|1       automatic merge (default 1)\n"
	       "    -o dirty_max=SIZE      bound on buffered writes (default 32M)\n"
	       "    -o allow_other         let other users in (permissions are always checked)\n"
	       "and the other mount options of fuse(8).\n",
	       prog);
}
