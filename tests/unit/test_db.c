// SPDX-License-Identifier: MIT
/*
 * The engine through its public API: values small and large, partial writes and
 * truncation, batches and renames, expiry, iteration, reopen with and without hints,
 * torn tails and damage, merge, snapshot, locking and check. Each test gets its own store
 * directory, kept (and printed) when the test fails.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bitcask/bitcask.h>

#include "db.h" /* bc_open_io, for a layer that counts writes and fails fallocate */
#include "hint.h"
#include "testutil.h"

static char *dir;
static struct bc_db *db;

static void quiet(void *ctx, enum bc_log_level level, const char *msg)
{
	(void)ctx;
	if (getenv("BC_TEST_VERBOSE"))
		fprintf(stderr, "[%d] %s\n", level, msg);
}

static struct bc_options opts(void)
{
	struct bc_options o = {0};
	o.log = quiet;
	o.merge_disable_auto = true;
	return o;
}

static void open_db(const struct bc_options *o)
{
	int rc = bc_open(dir, o, &db);
	ck_assert_msg(rc == 0, "open %s: %s", dir, bc_strerror(rc));
}

static void reopen(const struct bc_options *o)
{
	ck_assert_int_eq(bc_close(db), 0);
	db = NULL;
	open_db(o);
}

static void setup(void)
{
	dir = tu_tmpdir("db");
	struct bc_options o = opts();
	open_db(&o);
}

static void teardown(void)
{
	bc_close(db);
	db = NULL;
	/* A failing test never reaches here with passed == 1: Check forks per test, and the
	 * teardown of a failed test does not run, so the directory is kept. */
	tu_tmpdir_done(dir, 1);
}

static void put_s(const char *k, const char *v)
{
	int rc = bc_put(db, 0, k, strlen(k), v, strlen(v));
	ck_assert_msg(rc == 0, "put %s: %s", k, bc_strerror(rc));
}

static void expect_s(const char *k, const char *v)
{
	void *val;
	size_t n;
	int rc = bc_get(db, 0, k, strlen(k), 0, &val, &n);
	if (!v) {
		ck_assert_msg(rc == -ENOENT, "get %s: expected missing, got %d", k, rc);
		return;
	}
	ck_assert_msg(rc == 0, "get %s: %s", k, bc_strerror(rc));
	ck_assert_uint_eq(n, strlen(v));
	ck_assert(memcmp(val, v, n) == 0);
	free(val);
}

static void expect_bytes(const char *k, const uint8_t *want, size_t len)
{
	void *val;
	size_t n;
	int rc = bc_get(db, 0, k, strlen(k), 0, &val, &n);
	ck_assert_msg(rc == 0, "get %s: %s", k, bc_strerror(rc));
	ck_assert_uint_eq(n, len);
	for (size_t i = 0; i < len; i++)
		if (((uint8_t *)val)[i] != want[i])
			ck_abort_msg("%s: byte %zu is %u, expected %u", k, i, ((uint8_t *)val)[i],
				     want[i]);
	free(val);
}

START_TEST(put_get_delete)
{
	put_s("a", "1");
	put_s("b", "");
	expect_s("a", "1");
	expect_s("b", "");
	expect_s("c", NULL);
	put_s("a", "2");
	expect_s("a", "2");
	ck_assert_int_eq(bc_delete(db, 0, "a", 1), 0);
	expect_s("a", NULL);
	ck_assert_int_eq(bc_delete(db, 0, "a", 1), -ENOENT);
	ck_assert_int_eq(bc_put(db, 0, "", 0, "x", 1), -EINVAL);
	static char big[BC_MAX_KEY + 1];
	ck_assert_int_eq(bc_put(db, 0, big, sizeof(big), "x", 1), -ENAMETOOLONG);
	ck_assert_int_eq(bc_put(db, 0, big, BC_MAX_KEY, "x", 1), 0);
	ck_assert_int_eq(bc_put(db, 256, "k", 1, "x", 1), -EINVAL);
	/* Spaces are independent. */
	ck_assert_int_eq(bc_put(db, 1, "b", 1, "sys", 3), 0);
	expect_s("b", "");
}
END_TEST

/* The stats count every write to one key as a put, metadata and truncates included. */
START_TEST(operation_counts)
{
	put_s("a", "1");
	ck_assert_int_eq(bc_write(db, 0, "a", 1, 1, "23", 2), 0);
	ck_assert_int_eq(bc_set_meta(db, 0, "a", 1, "m", 1), 0);
	ck_assert_int_eq(bc_truncate(db, 0, "a", 1, 2), 0);
	expect_s("a", "12");
	ck_assert_int_eq(bc_delete(db, 0, "a", 1), 0);
	struct bc_stats st;
	ck_assert_int_eq(bc_stats_get(db, &st), 0);
	ck_assert_uint_eq(st.puts, 4);
	ck_assert_uint_eq(st.deletes, 1);
	ck_assert_uint_ge(st.gets, 1);
	bc_stats_release(&st);
}
END_TEST

START_TEST(reopen_keeps_everything)
{
	struct bc_options o = opts();
	o.max_file_size = 4096; /* many files, many hints */
	reopen(&o);
	char k[32], v[64];
	for (int i = 0; i < 500; i++) {
		snprintf(k, sizeof(k), "key%04d", i);
		snprintf(v, sizeof(v), "value-%d-%d", i, i * 7);
		put_s(k, v);
	}
	for (int i = 0; i < 500; i += 3) {
		snprintf(k, sizeof(k), "key%04d", i);
		ck_assert_int_eq(bc_delete(db, 0, k, strlen(k)), 0);
	}
	for (int pass = 0; pass < 3; pass++) {
		if (pass == 2) {
			/* Without hints: every file is scanned. */
			bc_close(db);
			db = NULL;
			char cmd[4096];
			snprintf(cmd, sizeof(cmd), "rm -f %s/*.hint", dir);
			ck_assert_int_eq(system(cmd), 0);
			open_db(&o);
		} else {
			reopen(&o);
		}
		struct bc_stats st;
		ck_assert_int_eq(bc_stats_get(db, &st), 0);
		ck_assert_uint_eq(st.keys, 500 - 167);
		ck_assert_uint_eq(st.hint_fallbacks, 0);
		bc_stats_release(&st);
		for (int i = 0; i < 500; i++) {
			snprintf(k, sizeof(k), "key%04d", i);
			snprintf(v, sizeof(v), "value-%d-%d", i, i * 7);
			expect_s(k, i % 3 ? v : NULL);
		}
	}
}
END_TEST

START_TEST(large_values)
{
	struct tu_rng r = {7};
	size_t len = 3 * BC_CHUNK_SIZE + 12345;
	uint8_t *v = malloc(len);
	tu_fill(&r, v, len);
	ck_assert_int_eq(bc_put(db, 0, "big", 3, v, len), 0);
	expect_bytes("big", v, len);
	struct bc_stat st;
	ck_assert_int_eq(bc_stat(db, 0, "big", 3, &st), 0);
	ck_assert_uint_eq(st.size, len);
	ck_assert(st.chunked);
	/* Partial reads across chunk boundaries and past the end. */
	uint8_t buf[100000];
	size_t got;
	ck_assert_int_eq(bc_read(db, 0, "big", 3, BC_CHUNK_SIZE - 10, buf, 100000, &got), 0);
	ck_assert_uint_eq(got, 100000);
	ck_assert(memcmp(buf, v + BC_CHUNK_SIZE - 10, got) == 0);
	ck_assert_int_eq(bc_read(db, 0, "big", 3, len - 5, buf, 100, &got), 0);
	ck_assert_uint_eq(got, 5);
	ck_assert_int_eq(bc_read(db, 0, "big", 3, len + 5, buf, 100, &got), 0);
	ck_assert_uint_eq(got, 0);
	void *out;
	size_t n;
	ck_assert_int_eq(bc_get(db, 0, "big", 3, 1000, &out, &n), -EFBIG);
	/* Replace with a small value: the object goes away. */
	put_s("big", "small");
	expect_s("big", "small");
	struct bc_stats s;
	bc_stats_get(db, &s);
	ck_assert_uint_eq(s.objects, 0);
	bc_stats_release(&s);
	/* Streams. */
	struct bc_stream *sm;
	ck_assert_int_eq(bc_stream_open(db, 0, "st", 2, &sm), 0);
	for (size_t off = 0; off < len; off += 7777)
		ck_assert_int_eq(bc_stream_write(sm, v + off, len - off < 7777 ? len - off : 7777),
				 0);
	expect_s("st", NULL); /* nothing visible before commit */
	ck_assert_int_eq(bc_stream_commit(sm, "m", 1, 0), 0);
	expect_bytes("st", v, len);
	char mb[4];
	size_t ml;
	ck_assert_int_eq(bc_stat_meta(db, 0, "st", 2, &st, mb, sizeof(mb), &ml), 0);
	ck_assert(st.chunked && st.size == len && st.meta_len == 1 && ml == 1 && mb[0] == 'm');
	ck_assert_uint_gt(st.mtime_ns, 0);
	ck_assert_int_eq(bc_stat_meta(db, 0, "nope", 4, &st, mb, sizeof(mb), &ml), -ENOENT);
	struct bc_options o = opts();
	reopen(&o);
	expect_bytes("st", v, len);
	ck_assert_int_eq(bc_stream_open(db, 0, "st", 2, &sm), 0);
	ck_assert_int_eq(bc_stream_write(sm, "zz", 2), 0);
	bc_stream_abort(sm);
	expect_bytes("st", v, len);
	free(v);
}
END_TEST

/* Model of one value for partial-write checks. */
static uint8_t *model;
static size_t model_len;

static void m_write(uint64_t off, const uint8_t *buf, size_t len)
{
	if (off + len > model_len) {
		model = realloc(model, off + len);
		memset(model + model_len, 0, off + len - model_len);
		model_len = off + len;
	}
	memcpy(model + off, buf, len);
	ck_assert_int_eq(bc_write(db, 0, "f", 1, off, buf, len), 0);
}

static void m_truncate(uint64_t size)
{
	if (size > model_len) {
		model = realloc(model, size);
		memset(model + model_len, 0, size - model_len);
	}
	model_len = size;
	ck_assert_int_eq(bc_truncate(db, 0, "f", 1, size), 0);
}

START_TEST(partial_writes_and_truncate)
{
	struct tu_rng r = {11};
	uint8_t *buf = malloc(5 * BC_CHUNK_SIZE);
	tu_fill(&r, buf, 5 * BC_CHUNK_SIZE);
	model = NULL;
	model_len = 0;
	m_write(0, buf, 10); /* create small */
	m_write(100, buf, 50); /* gap inside inline */
	m_write(BC_CHUNK_SIZE - 5, buf, 20); /* inline -> object */
	expect_bytes("f", model, model_len);
	m_write(3 * BC_CHUNK_SIZE + 7, buf, 2 * BC_CHUNK_SIZE); /* sparse extension */
	expect_bytes("f", model, model_len);
	m_write(BC_CHUNK_SIZE + 1, buf + 3, 3); /* small overwrite mid object */
	expect_bytes("f", model, model_len);
	m_truncate(BC_CHUNK_SIZE + 2); /* cut inside a chunk */
	m_truncate(4 * BC_CHUNK_SIZE); /* regrow: the cut bytes must read as zeros */
	expect_bytes("f", model, model_len);
	m_truncate(10);
	m_truncate(70000);
	expect_bytes("f", model, model_len);
	for (int i = 0; i < 200; i++) {
		uint64_t off = tu_below(&r, 6 * BC_CHUNK_SIZE);
		size_t len = (size_t)tu_below(&r, 3 * BC_CHUNK_SIZE);
		if (i % 17 == 0)
			m_truncate(tu_below(&r, 6 * BC_CHUNK_SIZE));
		else
			m_write(off, buf + tu_below(&r, BC_CHUNK_SIZE), len);
	}
	expect_bytes("f", model, model_len);
	struct bc_options o = opts();
	reopen(&o);
	expect_bytes("f", model, model_len);
	ck_assert_int_eq(bc_merge(db, true), 0);
	expect_bytes("f", model, model_len);
	reopen(&o);
	expect_bytes("f", model, model_len);
	ck_assert_int_eq(bc_truncate(db, 0, "nope", 4, 5), -ENOENT);
	free(buf);
	free(model);
}
END_TEST

START_TEST(sparse_values_stay_small)
{
	const uint64_t tib = UINT64_C(1) << 40;
	ck_assert_int_eq(bc_write(db, 0, "s", 1, 0, "head", 4), 0);
	ck_assert_int_eq(bc_truncate(db, 0, "s", 1, tib), 0);
	ck_assert_int_eq(bc_write(db, 0, "s", 1, tib, "tail", 4), 0);
	struct bc_stat st;
	ck_assert_int_eq(bc_stat(db, 0, "s", 1, &st), 0);
	ck_assert_uint_eq(st.size, tib + 4);
	struct bc_stats s;
	bc_stats_get(db, &s);
	ck_assert_uint_lt(s.keydir_bytes, 1 << 20); /* a few nodes, not 16M chunk slots */
	ck_assert_uint_lt(s.total_bytes, 1 << 20);
	bc_stats_release(&s);
	char buf[8];
	size_t got;
	ck_assert_int_eq(bc_read(db, 0, "s", 1, tib / 2, buf, 8, &got), 0);
	ck_assert_uint_eq(got, 8);
	ck_assert(!memcmp(buf, "\0\0\0\0\0\0\0\0", 8));
	ck_assert_int_eq(bc_read(db, 0, "s", 1, tib - 2, buf, 8, &got), 0);
	ck_assert_uint_eq(got, 6);
	ck_assert(!memcmp(buf, "\0\0tail", 6));
	struct bc_options o = opts();
	reopen(&o);
	ck_assert_int_eq(bc_read(db, 0, "s", 1, 0, buf, 4, &got), 0);
	ck_assert(got == 4 && !memcmp(buf, "head", 4));
	ck_assert_int_eq(bc_read(db, 0, "s", 1, tib, buf, 8, &got), 0);
	ck_assert(got == 4 && !memcmp(buf, "tail", 4));
	ck_assert_int_eq(bc_write(db, 0, "s", 1, BC_MAX_VALUE, "x", 1), -EFBIG);
}
END_TEST

START_TEST(batches_and_renames)
{
	struct tu_rng r = {3};
	size_t blen = 2 * BC_CHUNK_SIZE + 3;
	uint8_t *big = malloc(blen);
	tu_fill(&r, big, blen);
	put_s("a", "A");
	put_s("gone", "x");
	ck_assert_int_eq(bc_put_ex(db, 0, "big", 3, big, blen, "meta", 4, 0), 0);
	struct bc_batch *b;
	ck_assert_int_eq(bc_batch_new(&b), 0);
	ck_assert_int_eq(bc_batch_put(b, 0, "n", 1, "N", 1, NULL, 0, 0), 0);
	ck_assert_int_eq(bc_batch_delete(b, 0, "gone", 4), 0);
	ck_assert_int_eq(bc_batch_delete(b, 0, "never", 5), 0);
	ck_assert_int_eq(bc_batch_rename(b, 0, "a", 1, 0, "a2", 2), 0);
	ck_assert_int_eq(bc_batch_rename(b, 0, "big", 3, 1, "moved", 5), 0);
	ck_assert_int_eq(bc_batch_rename(b, 0, "n", 1, 0, "n2", 2), 0); /* sees the put */
	ck_assert_int_eq(bc_batch_set_meta(b, 0, "n2", 2, "mm", 2), 0);
	ck_assert_uint_eq(bc_batch_count(b), 7);
	ck_assert_int_eq(bc_batch_commit(db, b), 0);
	expect_s("a", NULL);
	expect_s("a2", "A");
	expect_s("gone", NULL);
	expect_s("n", NULL);
	expect_s("n2", "N");
	expect_s("big", NULL);
	void *v;
	size_t n;
	ck_assert_int_eq(bc_get(db, 1, "moved", 5, 0, &v, &n), 0);
	ck_assert_uint_eq(n, blen);
	ck_assert(memcmp(v, big, blen) == 0);
	free(v);
	char m[8];
	size_t ml;
	ck_assert_int_eq(bc_get_meta(db, 1, "moved", 5, m, sizeof(m), &ml), 0);
	ck_assert_uint_eq(ml, 4);
	ck_assert(memcmp(m, "meta", 4) == 0);
	ck_assert_int_eq(bc_get_meta(db, 0, "n2", 2, m, sizeof(m), &ml), 0);
	ck_assert_uint_eq(ml, 2);
	/* A failing batch applies nothing. */
	bc_batch_reset(b);
	ck_assert_int_eq(bc_batch_put(b, 0, "x", 1, "X", 1, NULL, 0, 0), 0);
	ck_assert_int_eq(bc_batch_rename(b, 0, "missing", 7, 0, "y", 1), 0);
	ck_assert_int_eq(bc_batch_commit(db, b), -ENOENT);
	expect_s("x", NULL);
	/* Rename over an existing large value replaces it and frees its object. */
	ck_assert_int_eq(bc_put(db, 0, "big2", 4, big, blen), 0);
	bc_batch_reset(b);
	ck_assert_int_eq(bc_batch_rename(b, 0, "a2", 2, 0, "big2", 4), 0);
	ck_assert_int_eq(bc_batch_commit(db, b), 0);
	expect_s("big2", "A");
	struct bc_stats st;
	bc_stats_get(db, &st);
	ck_assert_uint_eq(st.objects, 1);
	bc_stats_release(&st);
	bc_batch_free(b);
	struct bc_options o = opts();
	reopen(&o);
	expect_s("big2", "A");
	expect_s("n2", "N");
	ck_assert_int_eq(bc_get(db, 1, "moved", 5, 0, &v, &n), 0);
	ck_assert_uint_eq(n, blen);
	free(v);
	free(big);
}
END_TEST

START_TEST(expiry)
{
	ck_assert_int_eq(bc_put_ex(db, 0, "old", 3, "v", 1, NULL, 0, 1), 0);
	ck_assert_int_eq(bc_put_ex(db, 0, "new", 3, "v", 1, NULL, 0, UINT64_C(4000000000)), 0);
	expect_s("old", NULL);
	expect_s("new", "v");
	struct bc_iter *it;
	ck_assert_int_eq(bc_iter_new(db, 0, NULL, 0, &it), 0);
	const void *k;
	size_t kl;
	struct bc_stat st;
	ck_assert_int_eq(bc_iter_next(it, &k, &kl, &st), 0);
	ck_assert(kl == 3 && !memcmp(k, "new", 3));
	ck_assert_uint_eq(st.expire_s, UINT64_C(4000000000));
	ck_assert_int_eq(bc_iter_next(it, &k, &kl, &st), -ENOENT);
	bc_iter_free(it);
	/* Default TTL applies to bc_put. */
	struct bc_options o = opts();
	o.default_ttl_s = 1000;
	reopen(&o);
	put_s("ttl", "v");
	ck_assert_int_eq(bc_stat(db, 0, "ttl", 3, &st), 0);
	ck_assert(st.expire_s > 1000);
	/* Merge drops the expired key. */
	ck_assert_int_eq(bc_merge(db, true), 0);
	expect_s("old", NULL);
	expect_s("new", "v");
	reopen(&o);
	expect_s("old", NULL);
}
END_TEST

START_TEST(ordered_iteration)
{
	char k[32];
	for (int i = 0; i < 300; i++) {
		snprintf(k, sizeof(k), "dir/%03d", i);
		put_s(k, "x");
		snprintf(k, sizeof(k), "other/%03d", i);
		put_s(k, "y");
	}
	put_s("dir", "file");
	put_s("dir0", "after");
	struct bc_iter *it;
	ck_assert_int_eq(bc_iter_new(db, 0, "dir/", 4, &it), 0);
	const void *key;
	size_t kl;
	int n = 0;
	while (bc_iter_next(it, &key, &kl, NULL) == 0) {
		snprintf(k, sizeof(k), "dir/%03d", n);
		ck_assert(kl == strlen(k) && !memcmp(key, k, kl));
		if (n == 100)
			bc_delete(db, 0, "dir/150", 7); /* removed ahead of the cursor */
		n++;
		if (n == 150)
			n++;
	}
	ck_assert_int_eq(n, 300);
	ck_assert_int_eq(bc_iter_seek(it, "dir/29", 6), 0);
	ck_assert_int_eq(bc_iter_next(it, &key, &kl, NULL), 0);
	ck_assert(kl == 7 && !memcmp(key, "dir/290", 7));
	bc_iter_free(it);
	ck_assert_int_eq(bc_iter_new(db, 0, NULL, 0, &it), 0);
	ck_assert_int_eq(bc_iter_next(it, &key, &kl, NULL), 0);
	ck_assert(kl == 3 && !memcmp(key, "dir", 3)); /* a prefix sorts first */
	bc_iter_free(it);
}
END_TEST

START_TEST(merge_reclaims)
{
	struct bc_options o = opts();
	o.max_file_size = 64 * 1024;
	reopen(&o);
	char k[32], v[200];
	for (int round = 0; round < 5; round++)
		for (int i = 0; i < 400; i++) {
			snprintf(k, sizeof(k), "k%d", i);
			memset(v, 'a' + round, sizeof(v));
			ck_assert_int_eq(bc_put(db, 0, k, strlen(k), v, sizeof(v)), 0);
		}
	for (int i = 0; i < 400; i += 2) {
		snprintf(k, sizeof(k), "k%d", i);
		bc_delete(db, 0, k, strlen(k));
	}
	struct bc_stats before, after;
	bc_stats_get(db, &before);
	ck_assert_int_eq(bc_merge(db, true), 0);
	bc_stats_get(db, &after);
	ck_assert_uint_lt(after.total_bytes, before.total_bytes / 3);
	ck_assert_uint_eq(after.merges_done, 1);
	ck_assert_uint_eq(after.keys, 200);
	bc_stats_release(&before);
	bc_stats_release(&after);
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < 400; i++) {
			snprintf(k, sizeof(k), "k%d", i);
			void *got;
			size_t n;
			int rc = bc_get(db, 0, k, strlen(k), 0, &got, &n);
			if (i % 2 == 0) {
				ck_assert_int_eq(rc, -ENOENT);
				continue;
			}
			ck_assert_int_eq(rc, 0);
			ck_assert_uint_eq(n, sizeof(v));
			ck_assert_int_eq(((char *)got)[0], 'e');
			free(got);
		}
		reopen(&o);
	}
	uint64_t problems = 1;
	bc_close(db);
	db = NULL;
	ck_assert_int_eq(bc_check(dir, NULL, NULL, &problems), 0);
	ck_assert_uint_eq(problems, 0);
	open_db(&o);
}
END_TEST

/*
 * Reads copy small records from a mapping of the file and read big ones (and anything past
 * the mapping's end) with pread; mmap_disable reads everything with pread. Both must give
 * the same bytes through rotation, overwrites, a merge and reopens, including records in
 * the growing active file and a batch that runs past max_file_size (and so past the
 * active file's mapping).
 */
#define MR_KEYS 120
static uint8_t *mr_val[MR_KEYS];
static size_t mr_len[MR_KEYS];

static void mr_verify(void)
{
	char k[16];
	for (int i = 0; i < MR_KEYS; i++) {
		snprintf(k, sizeof(k), "m%03d", i);
		if (!mr_val[i]) {
			expect_s(k, NULL);
			continue;
		}
		expect_bytes(k, mr_val[i], mr_len[i]);
		struct bc_stat st;
		ck_assert_int_eq(bc_stat(db, 0, k, strlen(k), &st), 0);
		ck_assert_uint_eq(st.size, mr_len[i]);
		uint8_t part[64];
		size_t got, off = mr_len[i] / 2;
		ck_assert_int_eq(bc_read(db, 0, k, strlen(k), off, part, sizeof(part), &got), 0);
		ck_assert_uint_eq(got,
				  mr_len[i] - off < sizeof(part) ? mr_len[i] - off : sizeof(part));
		ck_assert(memcmp(part, mr_val[i] + off, got) == 0);
	}
}

static void mr_put(struct tu_rng *r, int i)
{
	/* around the mapped-read bound (16 KiB records), small, and chunked */
	static const size_t sizes[] = {1, 100, 4000, 16300, 16400, 20000, 70000};
	char k[16];
	snprintf(k, sizeof(k), "m%03d", i);
	free(mr_val[i]);
	mr_len[i] = sizes[tu_below(r, sizeof(sizes) / sizeof(sizes[0]))];
	mr_val[i] = malloc(mr_len[i]);
	ck_assert_ptr_nonnull(mr_val[i]);
	tu_fill(r, mr_val[i], mr_len[i]);
	ck_assert_int_eq(bc_put(db, 0, k, strlen(k), mr_val[i], mr_len[i]), 0);
}

START_TEST(mapped_and_unmapped_reads)
{
	struct tu_rng r = {tu_seed(0x6d6170) | 1};
	struct bc_options o = opts();
	o.max_file_size = 32 * 1024;
	o.mmap_disable = _i;
	reopen(&o);
	for (int i = 0; i < MR_KEYS; i++)
		mr_put(&r, i);
	mr_verify();
	/* A batch bigger than max_file_size: one record in a file of its own, past the end
	 * of the mapping made when that file was created. */
	struct bc_batch *b;
	ck_assert_int_eq(bc_batch_new(&b), 0);
	char k[16];
	for (int i = 0; i < 8; i++) {
		snprintf(k, sizeof(k), "m%03d", i);
		free(mr_val[i]);
		mr_len[i] = 6000;
		mr_val[i] = malloc(mr_len[i]);
		ck_assert_ptr_nonnull(mr_val[i]);
		tu_fill(&r, mr_val[i], mr_len[i]);
		ck_assert_int_eq(bc_batch_put(b, 0, k, strlen(k), mr_val[i], mr_len[i], NULL, 0, 0),
				 0);
	}
	ck_assert_int_eq(bc_batch_commit(db, b), 0);
	bc_batch_free(b);
	mr_verify();
	for (int i = 0; i < MR_KEYS; i += 3)
		mr_put(&r, i);
	for (int i = 1; i < MR_KEYS; i += 7) {
		snprintf(k, sizeof(k), "m%03d", i);
		ck_assert_int_eq(bc_delete(db, 0, k, strlen(k)), 0);
		free(mr_val[i]);
		mr_val[i] = NULL;
	}
	mr_verify();
	ck_assert_int_eq(bc_merge(db, true), 0);
	mr_verify();
	reopen(&o);
	mr_verify();
	o.read_only = true;
	reopen(&o);
	mr_verify();
	for (int i = 0; i < MR_KEYS; i++)
		free(mr_val[i]);
}
END_TEST

START_TEST(lock_and_read_only)
{
	struct bc_db *other;
	struct bc_options o = opts();
	ck_assert_int_eq(bc_open(dir, &o, &other), -EWOULDBLOCK);
	put_s("k", "v");
	o.read_only = true;
	ck_assert_int_eq(bc_open(dir, &o, &other), 0);
	void *v;
	size_t n;
	ck_assert_int_eq(bc_get(other, 0, "k", 1, 0, &v, &n), 0);
	free(v);
	ck_assert_int_eq(bc_put(other, 0, "k", 1, "x", 1), -EROFS);
	ck_assert_int_eq(bc_close(other), 0);
}
END_TEST

static char *data_file(int which)
{
	/* which = 0: the newest data file; 1: the oldest. */
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "ls %s/*.data | sort | %s -n 1", dir, which ? "head" : "tail");
	FILE *p = popen(cmd, "r");
	static char path[4096];
	ck_assert(fgets(path, sizeof(path), p));
	pclose(p);
	path[strcspn(path, "\n")] = 0;
	return path;
}

START_TEST(torn_tail_is_cut)
{
	put_s("a", "1");
	put_s("b", "2");
	bc_close(db);
	db = NULL;
	char *p = data_file(0);
	struct stat st;
	stat(p, &st);
	/* Half a record: the torn write of a crash. */
	int fd = open(p, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "\x12\x34\x56\x78\x01\x00\x00\x00garbage", 15), 15);
	close(fd);
	struct bc_options o = opts();
	open_db(&o);
	expect_s("a", "1");
	expect_s("b", "2");
	struct bc_stats s;
	bc_stats_get(db, &s);
	ck_assert_uint_eq(s.recovered_torn_bytes, 15);
	ck_assert_uint_eq(s.recovered_damaged_records, 0);
	bc_stats_release(&s);
	struct stat st2;
	stat(p, &st2);
	ck_assert_int_eq(st2.st_size, st.st_size);
	put_s("c", "3");
	reopen(&o);
	expect_s("c", "3");
}
END_TEST

static int count_entry(void *ctx, const struct bc_hint_entry *e)
{
	(void)e;
	++*(uint64_t *)ctx;
	return 0;
}

/* The newest data file's hint, loaded: its entries and what it covers, and the file's size. */
static void newest_hint(uint64_t *entries, uint64_t *covered, uint64_t *data_size)
{
	char *p = data_file(0);
	const char *base = strrchr(p, '/') + 1;
	char hname[64];
	struct stat st;
	ck_assert_int_eq(stat(p, &st), 0);
	*data_size = (uint64_t)st.st_size;
	snprintf(hname, sizeof(hname), "%.16s.hint", base);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dfd, 0);
	*entries = 0;
	ck_assert_int_eq(bc_hint_load(&bc_io_posix, dfd, hname, strtoull(base, NULL, 16),
				      UINT64_MAX, count_entry, entries, covered),
			 0);
	close(dfd);
}

/*
 * A read-write open continues the active file's hint (a copy of the old one, which the
 * records appended after it extend), across reopens and across a crash of the writer: at
 * each close the hint covers the whole file and lists every record in it.
 */
START_TEST(active_hint_continues)
{
	struct bc_options o = opts();
	char k[32], v[64];
	uint64_t records = 0, entries, covered, size;
	for (int round = 0; round < 4; round++) {
		if (round == 3) {
			/* Killed without a close: only the hint of the last close is on disk. */
			bc_close(db);
			db = NULL;
			pid_t pid = fork();
			ck_assert_int_ge(pid, 0);
			if (pid == 0) {
				struct bc_db *c;
				if (bc_open(dir, &o, &c))
					_exit(1);
				for (int i = 0; i < 100; i++) {
					snprintf(k, sizeof(k), "crash%03d", i);
					if (bc_put(c, 0, k, strlen(k), k, strlen(k)))
						_exit(1);
				}
				_exit(0);
			}
			int status;
			ck_assert_int_eq(waitpid(pid, &status, 0), pid);
			ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
			records += 100;
			open_db(&o);
		}
		for (int i = 0; i < 200; i++) {
			snprintf(k, sizeof(k), "r%d-key%03d", round, i);
			snprintf(v, sizeof(v), "value-%d-%d", round, i);
			put_s(k, v);
		}
		for (int i = 0; i < 200 && round; i += 10) {
			snprintf(k, sizeof(k), "r%d-key%03d", round - 1, i);
			ck_assert_int_eq(bc_delete(db, 0, k, strlen(k)), 0);
		}
		records += round ? 220 : 200;
		reopen(&o);
		struct bc_stats st;
		ck_assert_int_eq(bc_stats_get(db, &st), 0);
		ck_assert_uint_eq(st.hint_fallbacks, 0);
		ck_assert_uint_eq(st.keys, 100 * (round == 3) + 200 + 180 * (uint64_t)round);
		bc_stats_release(&st);
		bc_close(db);
		db = NULL;
		newest_hint(&entries, &covered, &size);
		ck_assert_uint_eq(entries, records);
		ck_assert_uint_eq(covered, size);
		open_db(&o);
	}
	for (int round = 0; round < 4; round++)
		for (int i = 0; i < 200; i++) {
			snprintf(k, sizeof(k), "r%d-key%03d", round, i);
			snprintf(v, sizeof(v), "value-%d-%d", round, i);
			expect_s(k, round < 3 && i % 10 == 0 ? NULL : v);
		}
	for (int i = 0; i < 100; i++) {
		snprintf(k, sizeof(k), "crash%03d", i);
		expect_s(k, k);
	}
}
END_TEST

START_TEST(damage_is_skipped_and_reported)
{
	struct bc_options o = opts();
	o.max_file_size = 4096;
	reopen(&o);
	char k[32];
	for (int i = 0; i < 100; i++) {
		snprintf(k, sizeof(k), "key%03d", i);
		put_s(k, "some value bytes");
	}
	bc_close(db);
	db = NULL;
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "rm -f %s/*.hint", dir);
	ck_assert_int_eq(system(cmd), 0);
	char *p = data_file(1);
	int fd = open(p, O_RDWR);
	uint8_t byte;
	ck_assert_int_eq(pread(fd, &byte, 1, 48 + 40), 1); /* inside the first record */
	byte ^= 0xff;
	ck_assert_int_eq(pwrite(fd, &byte, 1, 48 + 40), 1);
	close(fd);
	uint64_t problems = 0;
	ck_assert_int_eq(bc_check(dir, NULL, NULL, &problems), 0);
	ck_assert_uint_eq(problems, 1);
	open_db(&o);
	struct bc_stats s;
	bc_stats_get(db, &s);
	ck_assert_uint_eq(s.recovered_damaged_records, 1);
	ck_assert_uint_eq(s.keys, 99);
	bc_stats_release(&s);
	expect_s("key000", NULL);
	for (int i = 1; i < 100; i++) {
		snprintf(k, sizeof(k), "key%03d", i);
		expect_s(k, "some value bytes");
	}
}
END_TEST

START_TEST(snapshot_is_consistent)
{
	put_s("a", "1");
	put_s("b", "2");
	char *snap = tu_tmpdir("snap");
	rmdir(snap);
	ck_assert_int_eq(bc_snapshot(db, snap), 0);
	/* The file rotated out for it was synced and hinted before it was linked. */
	ck_assert_int_eq(tu_count_suffix(snap, ".data"), 1);
	ck_assert_int_eq(tu_count_suffix(snap, ".hint"), 1);
	put_s("a", "changed");
	put_s("c", "3");
	ck_assert_int_eq(bc_snapshot(db, snap), -EEXIST);
	struct bc_db *s;
	struct bc_options o = opts();
	ck_assert_int_eq(bc_open(snap, &o, &s), 0);
	void *v;
	size_t n;
	ck_assert_int_eq(bc_get(s, 0, "a", 1, 0, &v, &n), 0);
	ck_assert(n == 1 && !memcmp(v, "1", 1));
	free(v);
	ck_assert_int_eq(bc_get(s, 0, "c", 1, 0, &v, &n), -ENOENT);
	bc_close(s);
	expect_s("a", "changed");
	tu_tmpdir_done(snap, 1);
}
END_TEST

START_TEST(sync_always)
{
	struct bc_options o = opts();
	o.sync = BC_SYNC_ALWAYS;
	reopen(&o);
	for (int i = 0; i < 20; i++)
		put_s("k", "v");
	struct bc_stats s;
	bc_stats_get(db, &s);
	ck_assert_uint_eq(s.syncs, 20); /* one fdatasync per write when alone */
	bc_stats_release(&s);
	o.sync = BC_SYNC_INTERVAL;
	o.sync_interval_ms = 10;
	reopen(&o);
	put_s("k", "w");
	for (int i = 0; i < 200; i++) {
		bc_stats_get(db, &s);
		uint64_t n = s.syncs;
		bc_stats_release(&s);
		if (n)
			break;
		usleep(10000);
	}
	bc_stats_get(db, &s);
	ck_assert_uint_ge(s.syncs, 1);
	bc_stats_release(&s);
}
END_TEST

static off_t file_size(const char *p)
{
	struct stat st;
	ck_assert_int_eq(stat(p, &st), 0);
	return st.st_size;
}

static uint8_t last_byte(const char *p)
{
	uint8_t b = 0;
	int fd = open(p, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &b, 1, file_size(p) - 1), 1);
	close(fd);
	return b;
}

/*
 * Run writes in a child process with the store open, then end the child without closing
 * the store: by _exit, or by SIGKILL when kill is set.
 */
static void crash_writer(const struct bc_options *o, int (*writes)(struct bc_db *c), bool kill)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct bc_db *c;
		if (bc_open(dir, o, &c))
			_exit(1);
		if (writes(c))
			_exit(2);
		if (kill)
			raise(SIGKILL);
		_exit(0);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	if (kill)
		ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d",
			      status);
	else
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d",
			      status);
}

/* 3,000 keys of 500 'v' bytes. */
static int zf_writes(struct bc_db *c)
{
	char val[500];
	memset(val, 'v', sizeof(val));
	for (int i = 0; i < 3000; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%04d", i);
		if (bc_put(c, 0, k, strlen(k), val, sizeof(val)))
			return -1;
	}
	return 0;
}

/*
 * Open the store a writer died in with its newest file filled ahead to a 1 MiB boundary:
 * nothing counts as torn or damaged and every key is there. Returns the file's size
 * before the open.
 */
static off_t open_after_crash(const struct bc_options *o, uint64_t keys)
{
	off_t crashed = file_size(data_file(0));
	ck_assert_int_eq(crashed % (1 << 20), 0);
	ck_assert_uint_eq(last_byte(data_file(0)), 0);
	open_db(o);
	struct bc_stats s;
	ck_assert_int_eq(bc_stats_get(db, &s), 0);
	ck_assert_uint_eq(s.recovered_torn_bytes, 0);
	ck_assert_uint_eq(s.recovered_damaged_records, 0);
	ck_assert_uint_eq(s.keys, keys);
	bc_stats_release(&s);
	return crashed;
}

/* Assert that every data file but the newest ends in a record (no filled tail); return
 * how many there are. */
static int closed_files_end_in_records(void)
{
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "ls %s/*.data | sort | head -n -1", dir);
	FILE *ls = popen(cmd, "r");
	char path[4096];
	int closed = 0;
	while (fgets(path, sizeof(path), ls)) {
		path[strcspn(path, "\n")] = 0;
		ck_assert_uint_ne(last_byte(path), 0);
		closed++;
	}
	pclose(ls);
	return closed;
}

/*
 * With syncing on, the active file is zero-filled ahead of its appends, 1 MiB at a time
 * and never past max_file_size. A crash leaves the zeros; the next open cuts them without
 * counting them torn. Rotation and close cut them too.
 */
START_TEST(zero_fill_ahead_of_appends)
{
	struct bc_options o = opts();
	o.sync = BC_SYNC_ALWAYS;
	reopen(&o);
	put_s("plain", "1");
	put_s("a", "1");
	ck_assert_int_eq(file_size(data_file(0)), 1 << 20);
	ck_assert_int_eq(bc_close(db), 0);
	db = NULL;
	ck_assert_int_lt(file_size(data_file(0)), 4096);
	ck_assert_uint_ne(last_byte(data_file(0)), 0);

	crash_writer(&o, zf_writes, false);
	char val[500];
	memset(val, 'v', sizeof(val));
	off_t crashed = open_after_crash(&o, 3002);
	ck_assert_int_lt(file_size(data_file(0)), crashed);
	ck_assert_int_gt(file_size(data_file(0)), crashed - (1 << 20));
	ck_assert_uint_ne(last_byte(data_file(0)), 0);
	for (int i = 0; i < 3000; i += 97) {
		char k[16];
		snprintf(k, sizeof(k), "k%04d", i);
		expect_bytes(k, (const uint8_t *)val, sizeof(val));
	}

	/* Rotation: every file but the active one ends in its last record. */
	o.max_file_size = 64 * 1024;
	reopen(&o);
	for (int i = 0; i < 300; i++) {
		char k[16];
		snprintf(k, sizeof(k), "r%04d", i);
		ck_assert_int_eq(bc_put(db, 0, k, strlen(k), val, sizeof(val)), 0);
	}
	ck_assert_int_eq(file_size(data_file(0)), 64 * 1024);
	ck_assert_int_ge(closed_files_end_in_records(), 2);
	reopen(&o);
	ck_assert_uint_ne(last_byte(data_file(0)), 0);
	expect_bytes("r0299", (const uint8_t *)val, sizeof(val));
	expect_s("plain", "1");
}
END_TEST

/* The value of key i in the mapped-append tests: records on both sides of the 1 KiB bound
 * for copying into the mapping (32-byte header, 6-byte key), bytes that depend on i. */
static size_t ma_len(int i)
{
	static const size_t sizes[] = {100, 1, 4000, 986, 987, 300, 70000};
	return sizes[i % 7];
}

static void ma_fill(int i, uint8_t *buf)
{
	for (size_t j = 0; j < ma_len(i); j++)
		buf[j] = (uint8_t)(i * 31 + j * 7 + (j >> 8));
}

static void ma_put(struct bc_db *d, int i)
{
	static uint8_t buf[70000];
	char k[16];
	snprintf(k, sizeof(k), "w%05d", i);
	ma_fill(i, buf);
	int rc = bc_put(d, 0, k, strlen(k), buf, ma_len(i));
	ck_assert_msg(rc == 0, "put %s: %s", k, bc_strerror(rc));
}

static void ma_verify(int n)
{
	static uint8_t buf[70000];
	for (int i = 0; i < n; i++) {
		char k[16];
		snprintf(k, sizeof(k), "w%05d", i);
		ma_fill(i, buf);
		expect_bytes(k, buf, ma_len(i));
	}
}

static int ma_writes(struct bc_db *c)
{
	for (int i = 200; i < 1500; i++)
		ma_put(c, i);
	return 0;
}

/*
 * Without per-put syncing, on a filesystem where it is safe (ext4 here), the active file
 * has room reserved a MiB at a time, at least a MiB ahead of its appends (so the first
 * put reserves two), and small appends are copied into its mapping. A
 * killed writer loses nothing it acknowledged (the page cache has it), and the next open
 * cuts the reserved room without counting it torn; close and rotation cut it too.
 */
START_TEST(mapped_appends)
{
	struct bc_options o = opts();
	o.sync = _i ? BC_SYNC_INTERVAL : BC_SYNC_NONE;
	reopen(&o);
	put_s("a", "1");
	ck_assert_int_eq(file_size(data_file(0)), 2 << 20);
	ck_assert_uint_eq(last_byte(data_file(0)), 0);
	for (int i = 0; i < 200; i++)
		ma_put(db, i);
	ma_verify(200);
	reopen(&o);
	ck_assert_uint_ne(last_byte(data_file(0)), 0);
	ma_verify(200);

	ck_assert_int_eq(bc_close(db), 0);
	db = NULL;
	crash_writer(&o, ma_writes, true);
	open_after_crash(&o, 1501);
	ck_assert_uint_ne(last_byte(data_file(0)), 0);
	ma_verify(1500);
	expect_s("a", "1");

	/* Rotation: room is never reserved past max_file_size, and every file but the
	 * active one ends in its last record. */
	o.max_file_size = 96 * 1024;
	reopen(&o);
	for (int i = 0; i < 300; i++)
		ma_put(db, i);
	ck_assert_int_le(file_size(data_file(0)), 96 * 1024);
	ck_assert_int_ge(closed_files_end_in_records(), 3);
	ma_verify(1500);
	ck_assert_int_eq(bc_close(db), 0);
	db = NULL;
	uint64_t problems = 1;
	ck_assert_int_eq(bc_check(dir, NULL, NULL, &problems), 0);
	ck_assert_uint_eq(problems, 0);
	open_db(&o);
}
END_TEST

/* An I/O layer over the real one that counts data-file writes, fails fallocate from its
 * fail_from-th call on (0: never), fails writes while fail_writes is set, and records
 * writeback, advise and willneed calls. The engine's
 * threads call it too (a rotation's hint, the append helper): the hooks record under
 * cio_mu, and the tests read what they recorded after bc_close has joined the threads. */
static pthread_mutex_t cio_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	struct bc_io io;
	unsigned fallocs, fail_from;
	unsigned writes;
	bool fail_writes; /* pwritev fails with ENOSPC */
	unsigned nwb; /* writeback calls, the first 8 kept in wb */
	struct wb_call {
		int fd;
		off_t off, len;
	} wb[8];
	unsigned nadv; /* advise calls, the first 64 kept in adv */
	struct {
		enum bc_io_advice advice;
		uint8_t *addr;
		size_t len;
	} adv[64];
	unsigned nwill; /* willneed calls, the first 64 kept in will */
	struct wb_call will[64];
} cio;

static void cio_writeback(void *ctx, int fd, off_t off, off_t len)
{
	(void)ctx;
	pthread_mutex_lock(&cio_mu);
	if (cio.nwb < 8) {
		cio.wb[cio.nwb].fd = fd;
		cio.wb[cio.nwb].off = off;
		cio.wb[cio.nwb].len = len;
	}
	cio.nwb++;
	pthread_mutex_unlock(&cio_mu);
	bc_io_posix.writeback(bc_io_posix.ctx, fd, off, len);
}

static int cio_advise(void *ctx, void *addr, size_t len, enum bc_io_advice advice)
{
	(void)ctx;
	pthread_mutex_lock(&cio_mu);
	if (cio.nadv < 64) {
		cio.adv[cio.nadv].advice = advice;
		cio.adv[cio.nadv].addr = addr;
		cio.adv[cio.nadv].len = len;
	}
	cio.nadv++;
	pthread_mutex_unlock(&cio_mu);
	return bc_io_posix.advise(bc_io_posix.ctx, addr, len, advice);
}

static void cio_willneed(void *ctx, int fd, off_t off, off_t len)
{
	(void)ctx;
	pthread_mutex_lock(&cio_mu);
	if (cio.nwill < 64)
		cio.will[cio.nwill] = (struct wb_call){fd, off, len};
	cio.nwill++;
	pthread_mutex_unlock(&cio_mu);
	bc_io_posix.willneed(bc_io_posix.ctx, fd, off, len);
}

static ssize_t cio_pwritev(void *ctx, int fd, const struct iovec *iov, int n, off_t off);
static int cio_fallocate(void *ctx, int fd, off_t off, off_t len);

static void cio_reset(void)
{
	memset(&cio, 0, sizeof(cio));
	cio.io = bc_io_posix;
	cio.io.pwritev = cio_pwritev;
	cio.io.fallocate = cio_fallocate;
	cio.io.writeback = cio_writeback;
	cio.io.advise = cio_advise;
	cio.io.willneed = cio_willneed;
}

/* The writable mapping of the active file. */
static uint8_t *active_wmap(void)
{
	uint8_t *p = bc_active_file(db)->wmap;
	ck_assert_ptr_nonnull(p);
	return p;
}

static ssize_t cio_pwritev(void *ctx, int fd, const struct iovec *iov, int n, off_t off)
{
	(void)ctx;
	pthread_mutex_lock(&cio_mu);
	cio.writes++;
	bool fail = cio.fail_writes;
	pthread_mutex_unlock(&cio_mu);
	if (fail)
		return -ENOSPC;
	return bc_io_posix.pwritev(bc_io_posix.ctx, fd, iov, n, off);
}

static int cio_fallocate(void *ctx, int fd, off_t off, off_t len)
{
	(void)ctx;
	pthread_mutex_lock(&cio_mu);
	bool fail = ++cio.fallocs >= cio.fail_from && cio.fail_from;
	pthread_mutex_unlock(&cio_mu);
	if (fail)
		return -ENOSPC;
	return bc_io_posix.fallocate(bc_io_posix.ctx, fd, off, len);
}

/*
 * Small appends into reserved room make no write call. A filesystem that cannot reserve
 * (fallocate failing with ENOSPC, at once or after a while) costs only that: appends go
 * back to pwritev, nothing is lost, and close cuts whatever was reserved.
 */
START_TEST(mapped_appends_fall_back)
{
	ck_assert_int_eq(bc_close(db), 0);
	db = NULL;
	cio_reset();
	struct bc_options o = opts();
	ck_assert_int_eq(bc_open_io(dir, &o, &cio.io, &db), 0);
	put_s("first", "x"); /* may write the hint file's header */
	cio.writes = 0;
	for (int i = 0; i < 100; i++)
		ma_put(db, i * 7); /* 100 B values: all copied into the mapping */
	ck_assert_uint_eq(cio.writes, 0);
	ck_assert_int_eq(bc_close(db), 0);
	db = NULL;

	for (unsigned from = 1; from <= 3; from++) {
		cio.fallocs = 0;
		cio.fail_from = from;
		ck_assert_int_eq(bc_open_io(dir, &o, &cio.io, &db), 0);
		cio.writes = 0;
		for (int i = 0; i < 400; i++)
			ma_put(db, i);
		ck_assert_uint_gt(cio.writes, 0);
		ma_verify(400);
		if (from == 1) /* nothing reserved: the file ends in its last record */
			ck_assert_uint_ne(last_byte(data_file(0)), 0);
		ck_assert_int_eq(bc_close(db), 0);
		db = NULL;
		ck_assert_uint_ne(last_byte(data_file(0)), 0);
		open_db(&o);
		ma_verify(400);
		expect_s("first", "x");
		ck_assert_int_eq(bc_close(db), 0);
		db = NULL;
	}
	open_db(&o);
}
END_TEST

static int by_fd_off(const void *a, const void *b)
{
	const struct wb_call *x = a, *y = b;
	if (x->fd != y->fd)
		return x->fd < y->fd ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

/*
 * Without BC_SYNC_ALWAYS, each 4 MiB the active file's records pass is handed to the
 * kernel's writeback once, from the start of each file: by the append helper, which first
 * drops the range from the mapping, or without a mapping by the writer. With ALWAYS there
 * is no helper and nothing is.
 */
START_TEST(write_behind)
{
	ck_assert_int_eq(bc_close(db), 0);
	db = NULL;
	cio_reset();
	struct bc_options o = opts();
	o.max_file_size = 10 << 20;
	ck_assert_int_eq(bc_open_io(dir, &o, &cio.io, &db), 0);
	const off_t step = 4 << 20;
	/* About 16 MiB: a file of 10 MiB (two steps), then 6 MiB in the next (one). */
	static uint8_t v[4000];
	char k[16];
	uint8_t *map[2] = {NULL, NULL};
	for (int i = 0; i < 4000; i++) {
		snprintf(k, sizeof(k), "b%05d", i);
		memset(v, 'a' + i % 26, sizeof(v));
		ck_assert_int_eq(bc_put(db, 0, k, strlen(k), v, sizeof(v)), 0);
		if (i == 0)
			map[0] = active_wmap();
	}
	map[1] = active_wmap();
	ck_assert_ptr_ne(map[0], map[1]);
	ck_assert_int_eq(bc_close(db), 0); /* joins the helper: every job posted has run */
	db = NULL;
	ck_assert_uint_eq(cio.nwb, 3);
	qsort(cio.wb, 3, sizeof(cio.wb[0]), by_fd_off);
	int first = cio.wb[0].fd == cio.wb[1].fd ? 0 : 1; /* the file with two */
	ck_assert(cio.wb[first].off == 0 && cio.wb[first].len == step);
	ck_assert(cio.wb[first + 1].fd == cio.wb[first].fd && cio.wb[first + 1].off == step &&
		  cio.wb[first + 1].len == step);
	int second = first ? 0 : 2;
	ck_assert(cio.wb[second].off == 0 && cio.wb[second].len == step);
	/* 4000-byte values are written with pwritev: nothing faulted in ahead. Each range
	 * written back was first dropped from its file's mapping. */
	ck_assert_uint_eq(cio.nadv, 3);
	bool seen[3] = {false, false, false};
	for (unsigned i = 0; i < 3; i++) {
		ck_assert_int_eq(cio.adv[i].advice, BC_IO_RELEASE);
		ck_assert_uint_eq(cio.adv[i].len, (size_t)step);
		if (cio.adv[i].addr == map[0])
			seen[0] = true;
		else if (cio.adv[i].addr == map[0] + step)
			seen[1] = true;
		else if (cio.adv[i].addr == map[1])
			seen[2] = true;
	}
	ck_assert(seen[0] && seen[1] && seen[2]);

	/* Unmapped, the writer hands the same ranges to writeback itself: 8.5 MiB more, from
	 * 5.4 MiB into the second file (its first 4 MiB went at the first open) to 3.9 MiB
	 * into a third. */
	o.mmap_disable = true;
	cio_reset();
	ck_assert_int_eq(bc_open_io(dir, &o, &cio.io, &db), 0);
	for (int i = 0; i < 2200; i++) {
		snprintf(k, sizeof(k), "d%05d", i);
		ck_assert_int_eq(bc_put(db, 0, k, strlen(k), v, sizeof(v)), 0);
	}
	ck_assert_uint_eq(cio.nwb, 1);
	ck_assert(cio.wb[0].off == step && cio.wb[0].len == step);
	ck_assert_int_eq(bc_close(db), 0);
	db = NULL;
	ck_assert_uint_eq(cio.nadv, 0);

	o.mmap_disable = false;
	o.sync = BC_SYNC_ALWAYS;
	cio_reset();
	ck_assert_int_eq(bc_open_io(dir, &o, &cio.io, &db), 0);
	ck_assert_ptr_null(db->ahead);
	for (int i = 0; i < 1100; i++) {
		snprintf(k, sizeof(k), "c%05d", i);
		ck_assert_int_eq(bc_put(db, 0, k, strlen(k), v, sizeof(v)), 0);
	}
	ck_assert_int_eq(bc_close(db), 0);
	db = NULL;
	ck_assert_uint_eq(cio.nwb, 0);
	ck_assert_uint_eq(cio.nadv, 0);
	ck_assert_uint_eq(cio.nwill, 0);
	o.sync = BC_SYNC_NONE;
	o.read_only = true;
	open_db(&o);
	ck_assert_ptr_null(db->ahead);
	for (int i = 0; i < 4000; i += 97) {
		snprintf(k, sizeof(k), "b%05d", i);
		memset(v, 'a' + i % 26, sizeof(v));
		void *got;
		size_t n;
		ck_assert_int_eq(bc_get(db, 0, k, strlen(k), 0, &got, &n), 0);
		ck_assert(n == sizeof(v) && !memcmp(got, v, n));
		free(got);
	}
}
END_TEST

/*
 * Small appends copied into the mapping find their pages faulted in: the room reserved
 * ahead stays a whole MiB ahead of the appends, and the helper faults in each MiB as it
 * is reserved, in whole pages, without changing a byte (every value reads back after a
 * reopen). The last MiB of a file is reserved once, not at every append.
 */
START_TEST(append_helper_faults_ahead)
{
	ck_assert_int_eq(bc_close(db), 0);
	db = NULL;
	cio_reset();
	struct bc_options o = opts();
	o.max_file_size = 4 << 20;
	ck_assert_int_eq(bc_open_io(dir, &o, &cio.io, &db), 0);
	const size_t mib = 1 << 20;
	const int n = 40000; /* 100-byte values: a 4 MiB file, then about 1.3 MiB */
	uint8_t *map[2] = {NULL, NULL};
	for (int i = 0; i < n; i++) {
		char k[16], v[100];
		snprintf(k, sizeof(k), "f%06d", i);
		memset(v, 'A' + i % 26, sizeof(v));
		ck_assert_int_eq(bc_put(db, 0, k, strlen(k), v, sizeof(v)), 0);
		if (i == 0)
			map[0] = active_wmap();
	}
	map[1] = active_wmap();
	ck_assert_ptr_ne(map[0], map[1]);
	ck_assert_int_eq(bc_close(db), 0);
	db = NULL;
	/* Per file, which MiB of the mapping a fault covered: whole pages, inside the file. */
	bool covered[2][4] = {{false}};
	ck_assert_uint_gt(cio.nadv, 0);
	ck_assert_uint_le(cio.nadv, 64);
	for (unsigned i = 0; i < cio.nadv; i++) {
		ck_assert_int_eq(cio.adv[i].advice, BC_IO_POPULATE);
		ck_assert_uint_eq((uintptr_t)cio.adv[i].addr % 4096, 0);
		ck_assert_uint_eq(cio.adv[i].len % 4096, 0);
		int m = cio.adv[i].addr >= map[1] && cio.adv[i].addr < map[1] + 4 * mib;
		size_t at = (size_t)(cio.adv[i].addr - map[m]);
		ck_assert_uint_le(at + cio.adv[i].len, 4 * mib);
		for (size_t b = at / mib; b * mib < at + cio.adv[i].len; b++)
			covered[m][b] = true;
	}
	/* The first file, whole; the second up to the MiB after its last record. */
	ck_assert(covered[0][0] && covered[0][1] && covered[0][2] && covered[0][3]);
	ck_assert(covered[1][0] && covered[1][1] && covered[1][2] && !covered[1][3]);
	/* Reserved room: fallocate per MiB, not per append in the last one (7 MiB in all). */
	ck_assert_uint_le(cio.fallocs, 8);
	open_db(&o);
	for (int i = 0; i < n; i += 7) {
		char k[16], v[100];
		snprintf(k, sizeof(k), "f%06d", i);
		memset(v, 'A' + i % 26, sizeof(v));
		expect_bytes(k, (const uint8_t *)v, sizeof(v));
	}
}
END_TEST

/* Value i of the prepared-append test: len bytes that depend on i and on the prefix p. */
static void pa_value(char p, int i, uint8_t *v, size_t len)
{
	for (size_t j = 0; j < len; j++)
		v[j] = (uint8_t)(p + i * 13 + j * 5 + (j >> 9));
}

static int pa_put(struct bc_db *d, char p, int i, size_t len)
{
	static uint8_t v[20000];
	char k[16];
	snprintf(k, sizeof(k), "%c%05d", p, i);
	pa_value(p, i, v, len);
	return bc_put(d, 0, k, strlen(k), v, len);
}

static void pa_verify(char p, int n, size_t len)
{
	static uint8_t v[20000];
	for (int i = 0; i < n; i++) {
		char k[16];
		snprintf(k, sizeof(k), "%c%05d", p, i);
		pa_value(p, i, v, len);
		expect_bytes(k, v, len);
	}
}

/* 1,000 values of 4,000 bytes under 'c'. */
static int pa_writes(struct bc_db *c)
{
	for (int i = 0; i < 1000; i++)
		if (pa_put(c, 'c', i, 4000))
			return -1;
	return 0;
}

/* The MiBs of [0, 4 MiB) that the willneed calls on fd touched, as bits; asserts that
 * they lie inside the file's 4 MiB and that no two of them overlap. */
static unsigned prepared_mibs(int fd)
{
	const off_t mib = 1 << 20;
	unsigned bits = 0;
	off_t last_end = 0;
	ck_assert_uint_le(cio.nwill, 64);
	qsort(cio.will, cio.nwill, sizeof(cio.will[0]), by_fd_off);
	for (unsigned i = 0; i < cio.nwill; i++) {
		const struct wb_call *c = &cio.will[i];
		if (c->fd != fd)
			continue;
		ck_assert(c->len > 0 && c->off >= last_end && c->off + c->len <= 4 * mib);
		last_end = c->off + c->len;
		for (off_t b = c->off / mib; b * mib < c->off + c->len; b++)
			bits |= 1u << b;
	}
	return bits;
}

/*
 * Appends made with pwritev (values over 1 KiB, or every value when the file is not mapped
 * for writing, as under bitcaskfs) find their pages in the page cache: the file is grown
 * a whole MiB ahead of them with no blocks, and the helper reads each new MiB in, once.
 * Appends of more than 16 KiB get none of it. Close, rotation and a failed write cut the
 * room; a killed writer leaves it, and the next open cuts it without counting it torn.
 */
START_TEST(append_helper_prepares_ahead)
{
	struct bc_options o = opts();
	o.mmap_disable = _i;
	ck_assert_int_eq(bc_close(db), 0);
	db = NULL;
	crash_writer(&o, pa_writes, true);
	open_after_crash(&o, 1000);
	pa_verify('c', 1000, 4000);
	ck_assert_int_eq(bc_close(db), 0);
	db = NULL;

	/*
	 * 4,038-byte records: the crash left 3.85 MiB in the file the open continues (A),
	 * 1,500 more fill it, another (B) and 1.63 MiB of a third (C), grown to 3 MiB.
	 */
	cio_reset();
	o.max_file_size = 4 << 20;
	ck_assert_int_eq(bc_open_io(dir, &o, &cio.io, &db), 0);
	const off_t mib = 1 << 20;
	int fd_a = bc_active_file(db)->fd;
	ck_assert_int_eq(pa_put(db, 'p', 0, 4000), 0);
	ck_assert_int_eq(file_size(data_file(0)), 4 * mib);
	for (int i = 1; i < 1500; i++)
		ck_assert_int_eq(pa_put(db, 'p', i, 4000), 0);
	int fd_c = bc_active_file(db)->fd;
	struct stat st;
	ck_assert_int_eq(stat(data_file(0), &st), 0);
	ck_assert_int_eq(st.st_size, 3 * mib);
	ck_assert_int_lt(st.st_blocks * 512, 2 * mib);
	/* 20,000-byte values to 2.2 MiB: the room is short of a MiB ahead, and stays so. */
	for (int i = 0; i < 30; i++)
		ck_assert_int_eq(pa_put(db, 'b', i, 20000), 0);
	ck_assert_int_eq(file_size(data_file(0)), 3 * mib);
	ck_assert_uint_eq(last_byte(data_file(0)), 0);
	/* 100-byte values: reserved and copied into the mapping, or without one prepared. */
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(pa_put(db, 's', i, 100), 0);
	ck_assert_int_eq(file_size(data_file(0)), 4 * mib);
	ck_assert_int_eq(bc_close(db), 0); /* joins the helper: every job posted has run */
	db = NULL;
	ck_assert_uint_ne(last_byte(data_file(0)), 0);

	ck_assert_uint_eq(prepared_mibs(fd_a), 0x8);
	ck_assert_uint_eq(prepared_mibs(fd_c), _i ? 0xf : 0x7);
	for (unsigned i = 0; i < cio.nwill; i++) /* B's: every MiB */
		if (cio.will[i].fd != fd_a && cio.will[i].fd != fd_c) {
			ck_assert_uint_eq(prepared_mibs(cio.will[i].fd), 0xf);
			break;
		}
	ck_assert_uint_eq(cio.nwill, 3 + 1 + 2 + (unsigned)_i);

	/* A write into the room that fails (a full disk) leaves the file cut back to its
	 * records; the next append grows the room again. */
	ck_assert_int_eq(bc_open_io(dir, &o, &cio.io, &db), 0);
	off_t records = file_size(data_file(0));
	ck_assert_uint_ne(last_byte(data_file(0)), 0);
	pthread_mutex_lock(&cio_mu);
	cio.fail_writes = true;
	pthread_mutex_unlock(&cio_mu);
	ck_assert_int_eq(pa_put(db, 'e', 0, 4000), -ENOSPC);
	ck_assert_int_eq(file_size(data_file(0)), records);
	pthread_mutex_lock(&cio_mu);
	cio.fail_writes = false;
	pthread_mutex_unlock(&cio_mu);
	ck_assert_int_eq(pa_put(db, 'e', 0, 4000), 0);
	ck_assert_int_gt(file_size(data_file(0)), records + mib / 2);
	ck_assert_uint_eq(last_byte(data_file(0)), 0);
	ck_assert_int_eq(bc_close(db), 0);
	db = NULL;
	open_db(&o);
	pa_verify('e', 1, 4000);
	pa_verify('c', 1000, 4000);
	pa_verify('p', 1500, 4000);
	pa_verify('b', 30, 20000);
	pa_verify('s', 20, 100);
}
END_TEST

static Suite *db_suite(void)
{
	Suite *s = suite_create("db");
	TCase *t = tcase_create("api");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 120);
	tcase_add_test(t, put_get_delete);
	tcase_add_test(t, operation_counts);
	tcase_add_test(t, reopen_keeps_everything);
	tcase_add_test(t, large_values);
	tcase_add_test(t, partial_writes_and_truncate);
	tcase_add_test(t, sparse_values_stay_small);
	tcase_add_test(t, batches_and_renames);
	tcase_add_test(t, expiry);
	tcase_add_test(t, ordered_iteration);
	tcase_add_test(t, merge_reclaims);
	tcase_add_loop_test(t, mapped_and_unmapped_reads, 0, 2);
	tcase_add_test(t, lock_and_read_only);
	tcase_add_test(t, torn_tail_is_cut);
	tcase_add_test(t, active_hint_continues);
	tcase_add_test(t, damage_is_skipped_and_reported);
	tcase_add_test(t, snapshot_is_consistent);
	tcase_add_test(t, sync_always);
	tcase_add_test(t, zero_fill_ahead_of_appends);
	tcase_add_loop_test(t, mapped_appends, 0, 2);
	tcase_add_test(t, mapped_appends_fall_back);
	tcase_add_test(t, write_behind);
	tcase_add_test(t, append_helper_faults_ahead);
	tcase_add_loop_test(t, append_helper_prepares_ahead, 0, 2);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(db_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
