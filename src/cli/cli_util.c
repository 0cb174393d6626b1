// SPDX-License-Identifier: MIT
/*
 * Helpers every subcommand shares: opening and closing a store with the CLI's options,
 * capturing the engine's log so a failure is reported as one line, writing to stdout
 * so that a full disk is an error and a closed pipe is a quiet exit, key escaping for
 * list and dump, and number and hex parsing. Contracts are in cli.h.
 */
#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The engine may log from its background threads, so the captured line is guarded.
 * An error line wins over a warning: the warning is kept only while no error came.
 */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_line[512];
static enum bc_log_level log_level;
static bool log_have;
static bool log_verbose;

static void cli_log(void *ctx, enum bc_log_level level, const char *msg)
{
	(void)ctx;
	pthread_mutex_lock(&log_lock);
	if (log_verbose)
		fprintf(stderr, "bitcask: engine: %s\n", msg);
	if (level <= BC_LOG_WARN && (!log_have || level <= log_level)) {
		size_t i;

		snprintf(log_line, sizeof(log_line), "%s", msg);
		/* One report is one line, whatever the engine sent. */
		for (i = 0; log_line[i]; i++)
			if (log_line[i] == '\n' || log_line[i] == '\r')
				log_line[i] = ' ';
		log_level = level;
		log_have = true;
	}
	pthread_mutex_unlock(&log_lock);
}

void cli_log_clear(void)
{
	pthread_mutex_lock(&log_lock);
	log_have = false;
	log_line[0] = '\0';
	pthread_mutex_unlock(&log_lock);
}

/* Print "<prefix>: <message>[ (<log line>)]" on stderr. */
static void report(const char *prefix, const char *msg)
{
	pthread_mutex_lock(&log_lock);
	if (log_have)
		fprintf(stderr, "%s: %s (%s)\n", prefix, msg, log_line);
	else
		fprintf(stderr, "%s: %s\n", prefix, msg);
	pthread_mutex_unlock(&log_lock);
}

int cli_fail(const struct cli_args *a, int rc)
{
	char prefix[64 + 4096];

	snprintf(prefix, sizeof(prefix), "bitcask: %s: %s", a->cmd, a->dir);
	report(prefix, bc_strerror(rc));
	return CLI_FAIL;
}

int cli_fail_dir(const struct cli_args *a, int rc)
{
	char prefix[64 + 4096];

	snprintf(prefix, sizeof(prefix), "bitcask: %s: %s", a->cmd, a->dir);
	report(prefix, rc == -ENOENT ? strerror(ENOENT) : bc_strerror(rc));
	return CLI_FAIL;
}

int cli_error(const struct cli_args *a, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bitcask: %s: ", a->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_FAIL;
}

int cli_usage_error(const struct cli_args *a, const char *fmt, ...)
{
	va_list ap;

	if (a && a->cmd)
		fprintf(stderr, "bitcask: %s: ", a->cmd);
	else
		fputs("bitcask: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	cli_print_usage(false, 0);
	return CLI_USAGE;
}

int cli_take_key(const struct cli_args *a, bool required, int max_rest, struct cli_key *key,
		 char ***rest, int *nrest)
{
	char **ops = a->operands;
	int n = a->noperands;

	if (a->hex_key_set) {
		key->data = a->hex_key;
		key->len = a->hex_key_len;
	} else if (n > 0) {
		key->data = ops[0];
		key->len = strlen(ops[0]);
		ops++;
		n--;
	} else {
		if (required)
			return cli_usage_error(a, "missing KEY");
		key->data = NULL;
		key->len = 0;
	}
	if (required && key->len == 0)
		return cli_usage_error(a, "the key must not be empty");
	if (n > max_rest)
		return cli_usage_error(a, "unexpected argument '%s'", ops[max_rest]);
	*rest = ops;
	*nrest = n;
	return CLI_OK;
}

int cli_no_operands(const struct cli_args *a)
{
	if (a->noperands > 0)
		return cli_usage_error(a, "unexpected argument '%s'", a->operands[0]);
	return CLI_OK;
}

int cli_open(const struct cli_args *a, bool read_only, struct bc_db **db)
{
	struct bc_options o;
	int rc;

	memset(&o, 0, sizeof(o));
	o.read_only = read_only;
	o.sync = a->sync ? BC_SYNC_ALWAYS : BC_SYNC_NONE;
	o.max_file_size = a->max_file_size;
	/* A short-lived process must not start merges nobody asked for. */
	o.merge_disable_auto = true;
	o.log = cli_log;
	log_verbose = a->verbose;
	cli_log_clear();
	rc = bc_open(a->dir, &o, db);
	if (rc < 0) {
		char prefix[64 + 4096];

		*db = NULL;
		snprintf(prefix, sizeof(prefix), "bitcask: open %s", a->dir);
		/* Here -ENOENT is the directory, not a key, whatever the engine calls it. */
		report(prefix, rc == -ENOENT ? strerror(ENOENT) : bc_strerror(rc));
		return CLI_FAIL;
	}
	cli_log_clear();
	return CLI_OK;
}

int cli_close(const struct cli_args *a, struct bc_db *db)
{
	int rc;

	cli_log_clear();
	rc = bc_close(db);
	if (rc < 0)
		return cli_fail(a, rc);
	return CLI_OK;
}

int cli_write(const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The first stdio error on stdout; later writes are not attempted. */
static int out_err;

static int out_check(void)
{
	if (out_err == 0 && ferror(stdout))
		out_err = errno ? -errno : -EIO;
	return out_err;
}

int cli_out(const void *buf, size_t len)
{
	if (out_err)
		return out_err;
	errno = 0;
	if (len > 0 && fwrite(buf, 1, len, stdout) != len)
		return out_check() ? out_err : (out_err = -EIO);
	return out_check();
}

int cli_outf(const char *fmt, ...)
{
	va_list ap;
	int n;

	if (out_err)
		return out_err;
	errno = 0;
	va_start(ap, fmt);
	n = vfprintf(stdout, fmt, ap);
	va_end(ap);
	if (n < 0)
		return out_check() ? out_err : (out_err = -EIO);
	return out_check();
}

int cli_out_flush(void)
{
	if (out_err)
		return out_err;
	errno = 0;
	if (fflush(stdout) != 0)
		return out_check() ? out_err : (out_err = -EIO);
	return out_check();
}

int cli_output_failed(const struct cli_args *a, int rc)
{
	if (rc == -EPIPE) {
		/*
		 * The reader went away (get | head): stop without a message, the way a
		 * program that does not ignore SIGPIPE would. Drop unwritten stdio output first
		 * so nothing retries the write on the way out.
		 */
		fflush(stderr);
		signal(SIGPIPE, SIG_DFL);
		raise(SIGPIPE);
		_exit(128 + SIGPIPE);
	}
	if (a->cmd)
		fprintf(stderr, "bitcask: %s: stdout: %s\n", a->cmd, strerror(-rc));
	else
		fprintf(stderr, "bitcask: stdout: %s\n", strerror(-rc));
	return CLI_FAIL;
}

/*
 * Length of the well-formed UTF-8 sequence at p (at most n bytes) when it encodes a code
 * point we print as is (U+00A0 and up, but not the line and paragraph separators U+2028
 * and U+2029, which some tools take for newlines); 0 otherwise.
 */
static size_t utf8_printable(const uint8_t *p, size_t n)
{
	uint8_t c = p[0];
	size_t len, i;
	uint8_t lo = 0x80, hi = 0xbf;

	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (n < len)
		return 0;
	/* The second byte's range excludes overlong forms, surrogates and > U+10FFFF. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	if (len == 2 && p[1] < 0xa0 && c == 0xc2)
		return 0; /* U+0080..U+009F: C1 controls */
	if (len == 3 && c == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9))
		return 0;
	return len;
}

int cli_out_escaped(const void *key, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *k = key;
	char buf[1024];
	size_t used = 0, i = 0;
	int rc;

	while (i < len) {
		uint8_t c = k[i];
		size_t u;

		/* Room for the longest piece: a 4-byte UTF-8 sequence or "\xNN". */
		if (used + 4 > sizeof(buf)) {
			rc = cli_out(buf, used);
			if (rc < 0)
				return rc;
			used = 0;
		}
		if (c == '\\') {
			buf[used++] = '\\';
			buf[used++] = '\\';
			i++;
		} else if (c >= 0x20 && c < 0x7f) {
			buf[used++] = (char)c;
			i++;
		} else if ((u = utf8_printable(k + i, len - i)) > 0) {
			memcpy(buf + used, k + i, u);
			used += u;
			i += u;
		} else {
			buf[used++] = '\\';
			buf[used++] = 'x';
			buf[used++] = hex[c >> 4];
			buf[used++] = hex[c & 15];
			i++;
		}
	}
	return cli_out(buf, used);
}

bool cli_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned d;

		if (*s < '0' || *s > '9')
			return false;
		d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int cli_parse_hex(const char *s, uint8_t **out, size_t *len)
{
	size_t n = strlen(s), i;
	uint8_t *b;

	*out = NULL;
	if (n % 2)
		return -EINVAL;
	b = malloc(n / 2 + 1);
	if (!b)
		return -ENOMEM;
	for (i = 0; i < n / 2; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			free(b);
			return -EINVAL;
		}
		b[i] = (uint8_t)(hi << 4 | lo);
	}
	*out = b;
	*len = n / 2;
	return 0;
}
