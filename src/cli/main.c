// SPDX-License-Identifier: MIT
/*
 * bitcask: the command-line tool for a libbitcask store. This file parses the options
 * (accepted before or after the command; "--" ends them), checks that each option makes
 * sense for the command, and dispatches to cmd_<name>. Exit status: 0 success, 1 failure
 * (one line on stderr), 2 usage error (the usage text on stderr).
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BC_VERSION
#define BC_VERSION "unknown"
#endif

/* What a command accepts. */
enum {
	C_KEY = 1 << 0, /* takes KEY (or list's PREFIX): --hex-key applies */
	C_WRITES = 1 << 1, /* opens read-write: --sync applies, --read-only does not */
	C_READS = 1 << 2, /* opens read-only by default: -r and -w apply */
	C_NOOPEN = 1 << 3, /* walks the files without opening: -r accepted, -w not */
	C_TTL = 1 << 4,
	C_RAW = 1 << 5,
};

struct command {
	const char *name;
	int (*fn)(const struct cli_args *a);
	unsigned flags;
};

static const struct command commands[] = {
	{"put", cmd_put, C_KEY | C_WRITES | C_TTL},
	{"get", cmd_get, C_KEY | C_READS},
	{"delete", cmd_delete, C_KEY | C_WRITES},
	{"list", cmd_list, C_KEY | C_READS | C_RAW},
	{"stats", cmd_stats, C_READS},
	{"merge", cmd_merge, C_WRITES},
	{"check", cmd_check, C_NOOPEN},
	{"dump", cmd_dump, C_NOOPEN},
};

static const char usage_short[] =
	"usage: bitcask [OPTIONS] COMMAND DIR [ARGS]\n"
	"  put DIR KEY [FILE]   store FILE (default: standard input) as the value of KEY\n"
	"  get DIR KEY          write the value of KEY to standard output\n"
	"  delete DIR KEY       remove KEY\n"
	"  list DIR [PREFIX]    print the keys (starting with PREFIX), one per line\n"
	"  stats DIR            print statistics as \"name value\" lines\n"
	"  merge DIR            merge every file with dead data; print the bytes reclaimed\n"
	"  check DIR            verify every record; print \"file:offset: reason\" per problem\n"
	"  dump DIR             print every record in log order\n"
	"Run 'bitcask --help' for the options.\n";

static const char usage_options[] =
	"Options (before or after the command; '--' ends them):\n"
	"  -h, --help         print this help\n"
	"      --version      print the version\n"
	"  -r, --read-only    open without taking the lock (the default for get, list and\n"
	"                     stats, which then work beside a running writer)\n"
	"  -w, --read-write   open get, list or stats read-write: takes the lock and repairs\n"
	"                     a torn tail\n"
	"      --sync         put, delete, merge: fdatasync before returning\n"
	"      --ttl SECONDS  put: the key expires SECONDS from now\n"
	"      --max-file-size BYTES\n"
	"                     put, delete, merge: start a new data file past BYTES\n"
	"      --hex-key HEX  take KEY (list: PREFIX) as hex digits, for arbitrary bytes\n"
	"  -0, --raw          list: print each key raw, followed by a NUL byte\n"
	"  -v, --verbose      print the engine's log lines on stderr\n"
	"\n"
	"Keys on the command line are taken as bytes. list and dump print a key with\n"
	"printable ASCII and well-formed UTF-8 as is, a backslash as \\\\ and every other\n"
	"byte (control bytes, newline, invalid UTF-8) as \\xNN with two lower-case hex\n"
	"digits, so every key is one line and decodes back to exactly its bytes.\n"
	"\n"
	"Exit status: 0 success, 1 failure (one line on stderr; get and delete of a\n"
	"missing key, check with problems), 2 usage error.\n";

void cli_print_usage(bool full, int to_stdout)
{
	FILE *f = to_stdout ? stdout : stderr;

	fputs(usage_short, f);
	if (full) {
		fputc('\n', f);
		fputs(usage_options, f);
	}
}

enum {
	OPT_VERSION = 0x100,
	OPT_SYNC,
	OPT_TTL,
	OPT_HEX_KEY,
	OPT_MAX_FILE_SIZE,
};

static const struct option longopts[] = {
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, OPT_VERSION},
	{"read-only", no_argument, NULL, 'r'},
	{"read-write", no_argument, NULL, 'w'},
	{"sync", no_argument, NULL, OPT_SYNC},
	{"ttl", required_argument, NULL, OPT_TTL},
	{"hex-key", required_argument, NULL, OPT_HEX_KEY},
	{"max-file-size", required_argument, NULL, OPT_MAX_FILE_SIZE},
	{"raw", no_argument, NULL, '0'},
	{"verbose", no_argument, NULL, 'v'},
	{NULL, 0, NULL, 0},
};

/* Options seen, to check against the command once it is known. */
struct seen {
	bool help, version;
};

static int parse(int argc, char **argv, struct cli_args *a, struct seen *seen)
{
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hrw0v", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			seen->help = true;
			break;
		case OPT_VERSION:
			seen->version = true;
			break;
		case 'r':
			a->read_only = true;
			break;
		case 'w':
			a->read_write = true;
			break;
		case OPT_SYNC:
			a->sync = true;
			break;
		case OPT_TTL:
			if (!cli_parse_u64(optarg, &a->ttl_s) || a->ttl_s == 0)
				return cli_usage_error(NULL,
						       "--ttl wants a whole number of seconds "
						       "from 1 on, not '%s'",
						       optarg);
			a->ttl_set = true;
			break;
		case OPT_MAX_FILE_SIZE:
			if (!cli_parse_u64(optarg, &a->max_file_size) || a->max_file_size == 0)
				return cli_usage_error(NULL,
						       "--max-file-size wants a number of bytes "
						       "from 1 on, not '%s'",
						       optarg);
			break;
		case OPT_HEX_KEY:
			free(a->hex_key);
			rc = cli_parse_hex(optarg, &a->hex_key, &a->hex_key_len);
			if (rc == -ENOMEM) {
				fprintf(stderr, "bitcask: %s\n", strerror(ENOMEM));
				return CLI_FAIL;
			}
			if (rc < 0)
				return cli_usage_error(NULL,
						       "--hex-key wants pairs of hex digits, "
						       "not '%s'",
						       optarg);
			a->hex_key_set = true;
			break;
		case '0':
			a->raw = true;
			break;
		case 'v':
			a->verbose = true;
			break;
		case ':':
			return cli_usage_error(NULL, "option '%s' needs an argument",
					       argv[optind - 1]);
		default:
			if (optopt)
				return cli_usage_error(NULL, "unknown option '-%c'", optopt);
			return cli_usage_error(NULL, "unknown option '%s'", argv[optind - 1]);
		}
	}
	return CLI_OK;
}

/* Reject options that make no sense for the command. */
static int check_options(const struct command *cmd, const struct cli_args *a)
{
	unsigned f = cmd->flags;

	if (a->ttl_set && !(f & C_TTL))
		return cli_usage_error(a, "--ttl applies to put only");
	if (a->raw && !(f & C_RAW))
		return cli_usage_error(a, "--raw applies to list only");
	if (a->hex_key_set && !(f & C_KEY))
		return cli_usage_error(a, "takes no key: --hex-key does not apply");
	if (a->max_file_size && !(f & C_WRITES))
		return cli_usage_error(a, "does not write: --max-file-size does not apply");
	if (a->sync && !(f & C_WRITES))
		return cli_usage_error(a, "does not write: --sync does not apply");
	if (a->read_only && (f & C_WRITES))
		return cli_usage_error(a, "writes: --read-only does not apply");
	if (a->read_write && !(f & C_READS))
		return cli_usage_error(a, "--read-write applies to get, list and stats only");
	if (a->read_only && a->read_write)
		return cli_usage_error(a, "--read-only and --read-write exclude each other");
	return CLI_OK;
}

static int run(int argc, char **argv, struct cli_args *a)
{
	struct seen seen = {false, false};
	const struct command *cmd = NULL;
	size_t i;
	int rc;

	rc = parse(argc, argv, a, &seen);
	if (rc != CLI_OK)
		return rc;
	if (seen.help) {
		cli_print_usage(true, 1);
		return CLI_OK;
	}
	if (seen.version) {
		printf("bitcask %s\n", BC_VERSION);
		return CLI_OK;
	}
	if (optind >= argc)
		return cli_usage_error(NULL, "missing COMMAND");
	a->cmd = argv[optind++];
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, a->cmd) == 0)
			cmd = &commands[i];
	if (!cmd) {
		const char *name = a->cmd;

		a->cmd = NULL;
		return cli_usage_error(NULL, "unknown command '%s'", name);
	}
	if (optind >= argc)
		return cli_usage_error(a, "missing DIR");
	a->dir = argv[optind++];
	if (!*a->dir)
		return cli_usage_error(a, "DIR must not be empty");
	a->operands = argv + optind;
	a->noperands = argc - optind;
	rc = check_options(cmd, a);
	if (rc != CLI_OK)
		return rc;
	return cmd->fn(a);
}

int main(int argc, char **argv)
{
	struct cli_args a;
	int rc;

	/* Write errors, a closed pipe included, come back as errno; see cli_output_failed. */
	signal(SIGPIPE, SIG_IGN);
	memset(&a, 0, sizeof(a));
	rc = run(argc, argv, &a);
	if (rc == CLI_OK) {
		/* Commands flush their own output; --help and --version are checked here. */
		int out = cli_out_flush();

		if (out < 0)
			rc = cli_output_failed(&a, out);
	}
	free(a.hex_key);
	return rc;
}
