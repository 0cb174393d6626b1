/* SPDX-License-Identifier: MIT */
/*
 * Shared pieces of the bitcask command-line tool: the parsed command line, opening a
 * store with a log callback that remembers the engine's last error line, one-line error
 * reports, output that survives a closed pipe or a full disk, and the key escaping used by
 * list and dump. main.c parses and dispatches; each cmd_<name>.c implements one subcommand
 * and returns the process exit code (CLI_OK, CLI_FAIL or CLI_USAGE).
 * The tool sees the engine only through <bitcask/bitcask.h>.
 */
#ifndef BITCASK_CLI_H
#define BITCASK_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bitcask/bitcask.h>

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* The command line after option parsing. Strings point into argv. */
struct cli_args {
	const char *cmd; /* subcommand name */
	const char *dir; /* store directory (first operand) */
	char **operands; /* operands after DIR */
	int noperands;
	bool read_only; /* -r: explicitly asked */
	bool read_write; /* -w: explicitly asked */
	bool sync; /* --sync */
	bool ttl_set;
	uint64_t ttl_s; /* --ttl */
	uint64_t max_file_size; /* --max-file-size; 0: the engine default */
	bool raw; /* -0/--raw */
	bool verbose; /* -v: pass every engine log line through */
	bool hex_key_set;
	uint8_t *hex_key; /* --hex-key, decoded; owned by main */
	size_t hex_key_len;
};

/* A key (or prefix) taken from the command line: bytes, not a C string. */
struct cli_key {
	const void *data;
	size_t len;
};

/* Subcommands. Each returns CLI_OK, CLI_FAIL or CLI_USAGE. */
int cmd_put(const struct cli_args *a);
int cmd_get(const struct cli_args *a);
int cmd_delete(const struct cli_args *a);
int cmd_list(const struct cli_args *a);
int cmd_stats(const struct cli_args *a);
int cmd_merge(const struct cli_args *a);
int cmd_check(const struct cli_args *a);
int cmd_dump(const struct cli_args *a);

/*
 * Report a usage error for the current command: one "bitcask: CMD: msg" line, then the
 * usage text, both on stderr. Returns CLI_USAGE.
 */
int cli_usage_error(const struct cli_args *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Print the usage text to stderr (full is the -h text). */
void cli_print_usage(bool full, int to_stdout);

/*
 * Take the key (or list's prefix) from the first operand after DIR, or from --hex-key,
 * which then stands in for that operand. required: a missing or empty key is a usage error
 * (list's prefix may be absent or empty). *rest and *nrest receive the operands after the
 * key; more than max_rest of them is a usage error. Returns CLI_OK or CLI_USAGE (reported).
 */
int cli_take_key(const struct cli_args *a, bool required, int max_rest, struct cli_key *key,
		 char ***rest, int *nrest);

/* Usage error unless there are no operands after DIR. Returns CLI_OK or CLI_USAGE. */
int cli_no_operands(const struct cli_args *a);

/*
 * Open the store a->dir read-only or read-write with the CLI's options (auto merge off,
 * log lines captured). On failure prints "bitcask: open DIR: ..." and returns CLI_FAIL.
 */
int cli_open(const struct cli_args *a, bool read_only, struct bc_db **db);

/* Close the store; a flush error is reported like any other. Returns CLI_OK or CLI_FAIL. */
int cli_close(const struct cli_args *a, struct bc_db *db);

/* Forget the captured log line, so the next failure reports only its own. */
void cli_log_clear(void);

/*
 * Report a failed engine call as one line: "bitcask: CMD: DIR: <bc_strerror(rc)>", followed
 * by ": <last engine log line>" when the engine logged one since cli_log_clear.
 * Returns CLI_FAIL.
 */
int cli_fail(const struct cli_args *a, int rc);

/* cli_fail for calls on the store's directory (check, dump): there -ENOENT is the directory. */
int cli_fail_dir(const struct cli_args *a, int rc);

/* Report "bitcask: CMD: <formatted message>" on stderr. Returns CLI_FAIL. */
int cli_error(const struct cli_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Output. cli_write writes bytes straight to fd 1 (no buffering: get streams through it);
 * cli_out* go through stdio. Both return 0 or a negative errno. A closed pipe (-EPIPE) is
 * not an error to report: cli_output_failed exits quietly the way a SIGPIPE would, after
 * the caller had a chance to close the store. cli_out_flush flushes stdout.
 */
int cli_write(const void *buf, size_t len);
int cli_out(const void *buf, size_t len);
int cli_outf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_out_flush(void);

/*
 * After an output error rc: for -EPIPE, die by SIGPIPE silently; otherwise print
 * "bitcask: CMD: stdout: <error>" and return CLI_FAIL.
 */
int cli_output_failed(const struct cli_args *a, int rc);

/*
 * Append key[0..len) to stdout escaped: printable ASCII and well-formed UTF-8 (code
 * points from U+00A0 on) as is, backslash as "\\", every other byte as "\xNN" (two lower
 * case hex digits). The result never contains a newline or a control byte and decodes
 * back to exactly the key. Returns 0 or a negative errno (see cli_out).
 */
int cli_out_escaped(const void *key, size_t len);

/* Parse a decimal unsigned 64-bit number (no sign, no spaces). Returns true on success. */
bool cli_parse_u64(const char *s, uint64_t *out);

/*
 * Decode hex (pairs of digits, either case) into a malloc'd buffer (caller frees; never
 * NULL on success, even when empty). Returns 0, -EINVAL on a malformed string or -ENOMEM.
 */
int cli_parse_hex(const char *s, uint8_t **out, size_t *len);

#endif /* BITCASK_CLI_H */
