// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: open-time recovery (src/engine/recover.c, scan.c, hint.c, apply.c) and
 * bc_check on a store made of the input. The input becomes 0000000000010000.data in a fresh
 * directory; when it starts with 'H' and a little-endian u16 length L, the L bytes after
 * that become 0000000000010000.hint and the rest the data file. bc_open read-write must
 * succeed (damage is skipped, never fatal), every listed key must read (or fail with a code,
 * not a crash), a new write must work, and bc_close and bc_check must finish.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bitcask/bitcask.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void silent(void *ctx, enum bc_log_level level, const char *msg)
{
	(void)ctx;
	(void)level;
	(void)msg;
}

static void no_report(void *ctx, const char *file, uint64_t off, const char *reason)
{
	(void)ctx;
	(void)file;
	(void)off;
	(void)reason;
}

static void clean(void)
{
	DIR *d = opendir(dir);
	if (!d)
		abort();
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			char p[128];
			snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			unlink(p);
		}
	closedir(d);
}

static void cleanup(void)
{
	clean();
	rmdir(dir);
}

static void put_file(const char *name, const uint8_t *buf, size_t len)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || (len && write(fd, buf, len) != (ssize_t)len))
		abort();
	close(fd);
}

static void read_space(struct bc_db *db, unsigned space)
{
	struct bc_iter *it;
	if (bc_iter_new(db, space, NULL, 0, &it))
		return;
	const void *k;
	size_t klen;
	struct bc_stat st;
	for (int n = 0; n < 4096 && bc_iter_next(it, &k, &klen, &st) == 0; n++) {
		uint8_t buf[256];
		size_t got = 0;
		/* The value's first and last bytes; a huge sparse object reads as zeros. */
		bc_read(db, space, k, klen, 0, buf, sizeof(buf), &got);
		if (st.size > sizeof(buf))
			bc_read(db, space, k, klen, st.size - sizeof(buf), buf, sizeof(buf), &got);
		struct bc_stat st2;
		bc_stat(db, space, k, klen, &st2);
		size_t mlen;
		bc_get_meta(db, space, k, klen, buf, sizeof(buf), &mlen);
		if (st.size <= 65536) {
			void *v = NULL;
			size_t vl;
			if (bc_get(db, space, k, klen, 65536, &v, &vl) == 0 && vl != st.size)
				abort();
			free(v);
		}
	}
	bc_iter_free(it);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0]) {
		/* In memory when possible: every execution writes files. */
		snprintf(dir, sizeof(dir), "%s/bc-fuzz-recover-XXXXXX",
			 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		if (!mkdtemp(dir))
			abort();
		atexit(cleanup);
	}
	clean();
	if (size >= 3 && data[0] == 'H') {
		size_t hl = (size_t)data[1] | (size_t)data[2] << 8;
		if (hl > size - 3)
			hl = size - 3;
		put_file("0000000000010000.hint", data + 3, hl);
		put_file("0000000000010000.data", data + 3 + hl, size - 3 - hl);
	} else {
		put_file("0000000000010000.data", data, size);
	}

	uint64_t problems = 0;
	if (bc_check(dir, no_report, NULL, &problems) == -EPROTONOSUPPORT)
		return 0;

	struct bc_options o = {0};
	o.log = silent;
	o.merge_disable_auto = true;
	struct bc_db *db = NULL;
	int rc = bc_open(dir, &o, &db);
	if (rc == -EPROTONOSUPPORT)
		return 0;
	if (rc)
		abort(); /* damage must never make open fail */
	read_space(db, 0);
	read_space(db, 1);
	if (bc_put(db, 0, "fuzz", 4, "v", 1))
		abort();
	struct bc_stats st;
	if (bc_stats_get(db, &st) == 0)
		bc_stats_release(&st);
	if (bc_close(db))
		abort();
	bc_check(dir, no_report, NULL, &problems);
	return 0;
}
