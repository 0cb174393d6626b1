// SPDX-License-Identifier: MIT
/*
 * bitcask put DIR KEY [FILE]: store FILE (or standard input; "-" names it too) as the
 * value of KEY. A value that fits in one chunk is read whole and stored with one bc_put_ex;
 * a larger one goes through a bc_stream in 1 MiB pieces, so memory stays bounded whatever
 * its size, and the key changes only when the whole input was read (a read error or an
 * interrupt leaves the old value). The store is opened before the input is read, so a
 * slow producer holds the lock meanwhile.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PUT_PIECE (1u << 20)

/* Read until buf is full or end of input. Returns bytes read or a negative errno. */
static ssize_t read_full(int fd, char *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, buf + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

struct put_job {
	const struct cli_args *a;
	struct bc_db *db;
	struct cli_key key;
	int fd;
	const char *input; /* name for messages */
	char *buf;
};

/* --ttl counts from the commit, not from the start of a possibly slow input. */
static uint64_t expire_at(const struct cli_args *a)
{
	uint64_t now;

	if (!a->ttl_set)
		return 0;
	now = (uint64_t)time(NULL);
	return a->ttl_s > UINT64_MAX - now ? UINT64_MAX : now + a->ttl_s;
}

static int input_error(const struct put_job *j, ssize_t n)
{
	return cli_error(j->a, "%s: %s", j->input, strerror((int)-n));
}

/* Stream the value: the first piece (already read, n bytes) and the rest of the input. */
static int put_stream(struct put_job *j, size_t n)
{
	struct bc_stream *s;
	int rc;

	cli_log_clear();
	rc = bc_stream_open(j->db, BC_SPACE_USER, j->key.data, j->key.len, &s);
	if (rc < 0)
		return cli_fail(j->a, rc);
	for (;;) {
		ssize_t got;

		rc = bc_stream_write(s, j->buf, n);
		if (rc < 0) {
			bc_stream_abort(s);
			return cli_fail(j->a, rc);
		}
		got = read_full(j->fd, j->buf, PUT_PIECE);
		if (got < 0) {
			bc_stream_abort(s);
			return input_error(j, got);
		}
		if (got == 0)
			break;
		n = (size_t)got;
	}
	rc = bc_stream_commit(s, NULL, 0, expire_at(j->a));
	if (rc < 0)
		return cli_fail(j->a, rc);
	return CLI_OK;
}

static int put_value(struct put_job *j)
{
	ssize_t n;
	int rc;

	/* One byte past a chunk tells a small value from one that needs a stream. */
	n = read_full(j->fd, j->buf, (size_t)BC_CHUNK_SIZE + 1);
	if (n < 0)
		return input_error(j, n);
	if ((size_t)n > BC_CHUNK_SIZE)
		return put_stream(j, (size_t)n);
	cli_log_clear();
	rc = bc_put_ex(j->db, BC_SPACE_USER, j->key.data, j->key.len, j->buf, (size_t)n, NULL, 0,
		       expire_at(j->a));
	if (rc < 0)
		return cli_fail(j->a, rc);
	return CLI_OK;
}

int cmd_put(const struct cli_args *a)
{
	struct put_job j = {.a = a, .fd = STDIN_FILENO, .input = "stdin"};
	char **rest;
	int nrest, ret;

	ret = cli_take_key(a, true, 1, &j.key, &rest, &nrest);
	if (ret != CLI_OK)
		return ret;
	if (nrest == 1 && strcmp(rest[0], "-") != 0) {
		j.input = rest[0];
		j.fd = open(j.input, O_RDONLY | O_CLOEXEC);
		if (j.fd < 0)
			return cli_error(a, "%s: %s", j.input, strerror(errno));
	}
	j.buf = malloc(PUT_PIECE);
	if (!j.buf) {
		ret = cli_error(a, "%s", strerror(ENOMEM));
		goto out_fd;
	}
	ret = cli_open(a, false, &j.db);
	if (ret != CLI_OK)
		goto out_buf;
	ret = put_value(&j);
	if (cli_close(a, j.db) != CLI_OK)
		ret = CLI_FAIL;
out_buf:
	free(j.buf);
out_fd:
	if (j.fd != STDIN_FILENO)
		close(j.fd);
	return ret;
}
