// SPDX-License-Identifier: MIT
/*
 * Readers, writers, iterators and merges on one store at once (run under ThreadSanitizer
 * by scripts/test). Each writer owns a key range and records what it last wrote, so
 * readers can check that every value they see is one that was written for that key and
 * never a torn or foreign one. Also the thread that syncs the file a rotation left.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bitcask/bitcask.h>

#include "db.h" /* bc_open_io, for a layer that holds fdatasync back */
#include "testutil.h"

#define WRITERS 3
#define KEYS 200
#define ROUNDS 1500

static struct bc_db *db;
static atomic_int stop;
static atomic_long reads_ok;

static void quiet(void *ctx, enum bc_log_level level, const char *msg)
{
	(void)ctx;
	(void)level;
	(void)msg;
}

/* A value names its key and carries a checksum of itself, so any mix-up shows. */
static size_t make_value(char *buf, int w, int k, int round)
{
	int len = 20 + (k * 37 + round) % 300;
	if (round % 50 == 0)
		len = 70000 + k; /* now and then a chunked value */
	int n = snprintf(buf, 64, "w%d k%d r%d |", w, k, round);
	for (int i = n; i < len; i++)
		buf[i] = (char)('a' + (i * 31 + k + round) % 26);
	return (size_t)len;
}

static void check_value(const char *key, const char *v, size_t n)
{
	int w, k, r;
	char head[64];
	size_t hn = n < sizeof(head) - 1 ? n : sizeof(head) - 1;
	memcpy(head, v, hn);
	head[hn] = 0; /* values are not NUL-terminated */
	ck_assert_msg(sscanf(head, "w%d k%d r%d |", &w, &k, &r) == 3, "garbage value for %s", key);
	char kk[32];
	snprintf(kk, sizeof(kk), "w%d-%d", w, k);
	ck_assert_msg(!strcmp(kk, key), "value of %s found under %s", kk, key);
	char *want = malloc(80000);
	size_t wn = make_value(want, w, k, r);
	ck_assert_msg(wn == n, "%s: %zu bytes, expected %zu", key, n, wn);
	ck_assert_msg(memcmp(want, v, n) == 0, "%s: wrong bytes", key);
	free(want);
}

static void *writer(void *arg)
{
	int w = (int)(intptr_t)arg;
	char *buf = malloc(80000);
	char key[32];
	for (int r = 1; r <= ROUNDS; r++) {
		int k = (r * 7 + w) % KEYS;
		snprintf(key, sizeof(key), "w%d-%d", w, k);
		size_t n = make_value(buf, w, k, r);
		if (r % 13 == 0) {
			int rc = bc_delete(db, 0, key, strlen(key));
			ck_assert(rc == 0 || rc == -ENOENT);
		} else if (r % 17 == 0) {
			struct bc_batch *b;
			bc_batch_new(&b);
			bc_batch_put(b, 0, key, strlen(key), buf, n, NULL, 0, 0);
			bc_batch_put(b, 1, key, strlen(key), "x", 1, NULL, 0, 0);
			ck_assert_int_eq(bc_batch_commit(db, b), 0);
			bc_batch_free(b);
		} else {
			ck_assert_int_eq(bc_put(db, 0, key, strlen(key), buf, n), 0);
		}
	}
	free(buf);
	return NULL;
}

static void *reader(void *arg)
{
	(void)arg;
	char key[32];
	unsigned seed = 1;
	while (!atomic_load(&stop)) {
		seed = seed * 1103515245 + 12345;
		snprintf(key, sizeof(key), "w%u-%u", (seed >> 8) % WRITERS, (seed >> 16) % KEYS);
		void *v;
		size_t n;
		int rc = bc_get(db, 0, key, strlen(key), 0, &v, &n);
		ck_assert_msg(rc == 0 || rc == -ENOENT, "get %s: %s", key, bc_strerror(rc));
		if (!rc) {
			check_value(key, v, n);
			free(v);
			atomic_fetch_add(&reads_ok, 1);
		}
	}
	return NULL;
}

static void *lister(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		struct bc_iter *it;
		ck_assert_int_eq(bc_iter_new(db, 0, "w", 1, &it), 0);
		const void *k;
		size_t kl;
		char last[64] = "";
		size_t lastn = 0;
		while (bc_iter_next(it, &k, &kl, NULL) == 0) {
			size_t m = kl < lastn ? kl : lastn;
			int c = memcmp(last, k, m);
			ck_assert_msg(c < 0 || (c == 0 && lastn < kl), "iteration out of order");
			memcpy(last, k, kl);
			lastn = kl;
		}
		bc_iter_free(it);
	}
	return NULL;
}

static void *merger(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		int rc = bc_merge(db, true);
		ck_assert_msg(rc == 0 || rc == -EBUSY, "merge: %s", bc_strerror(rc));
		/* waits for the file a rotation left, as merges and rotations do */
		ck_assert_int_eq(bc_sync(db), 0);
		struct bc_stats st;
		bc_stats_get(db, &st);
		bc_stats_release(&st);
	}
	return NULL;
}

START_TEST(readers_writers_merges)
{
	char *dir = tu_tmpdir("conc");
	struct bc_options o = {0};
	o.log = quiet;
	o.max_file_size = 256 * 1024;
	o.merge_disable_auto = true;
	o.sync = _i ? BC_SYNC_ALWAYS : BC_SYNC_NONE;
	ck_assert_int_eq(bc_open(dir, &o, &db), 0);
	pthread_t w[WRITERS], r[2], l, m;
	atomic_store(&stop, 0);
	for (int i = 0; i < 2; i++)
		pthread_create(&r[i], NULL, reader, NULL);
	pthread_create(&l, NULL, lister, NULL);
	pthread_create(&m, NULL, merger, NULL);
	for (int i = 0; i < WRITERS; i++)
		pthread_create(&w[i], NULL, writer, (void *)(intptr_t)i);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(w[i], NULL);
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(r[i], NULL);
	pthread_join(l, NULL);
	pthread_join(m, NULL);
	ck_assert_int_gt(atomic_load(&reads_ok), 0);
	/* After a reopen every writer's last value per key is there. */
	ck_assert_int_eq(bc_close(db), 0);
	ck_assert_int_eq(bc_open(dir, &o, &db), 0);
	char *buf = malloc(80000), key[32];
	for (int wi = 0; wi < WRITERS; wi++)
		for (int k = 0; k < KEYS; k++) {
			int last = 0;
			for (int rr = 1; rr <= ROUNDS; rr++)
				if ((rr * 7 + wi) % KEYS == k)
					last = rr;
			snprintf(key, sizeof(key), "w%d-%d", wi, k);
			void *v;
			size_t n;
			int rc = bc_get(db, 0, key, strlen(key), 0, &v, &n);
			if (!last || last % 13 == 0) {
				ck_assert_int_eq(rc, -ENOENT);
				continue;
			}
			ck_assert_int_eq(rc, 0);
			size_t wn = make_value(buf, wi, k, last);
			ck_assert_uint_eq(n, wn);
			ck_assert(memcmp(v, buf, n) == 0);
			free(v);
		}
	free(buf);
	bc_close(db);
	tu_tmpdir_done(dir, 1);
}
END_TEST

/*
 * An I/O layer whose fdatasync of one file (the first synced while the gate is shut)
 * waits while the gate is shut, and whose fdatasync fails with EIO while fail is set;
 * entered counts the calls that reached it.
 */
static struct {
	struct bc_io io;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool shut, fail;
	int held_fd;
	unsigned entered;
} gate = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .held_fd = -1};

static int gate_fdatasync(void *ctx, int fd)
{
	(void)ctx;
	pthread_mutex_lock(&gate.mu);
	gate.entered++;
	pthread_cond_broadcast(&gate.cv);
	if (gate.shut && gate.held_fd < 0)
		gate.held_fd = fd;
	while (gate.shut && gate.held_fd == fd)
		pthread_cond_wait(&gate.cv, &gate.mu);
	bool fail = gate.fail;
	pthread_mutex_unlock(&gate.mu);
	return fail ? -EIO : bc_io_posix.fdatasync(bc_io_posix.ctx, fd);
}

static void gate_set(bool shut, bool fail)
{
	pthread_mutex_lock(&gate.mu);
	gate.shut = shut;
	gate.fail = fail;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.mu);
}

/* Hints in dir whose data file is not there. */
static unsigned orphan_hints(const char *dir)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	unsigned n = 0;
	for (struct dirent *e; (e = readdir(d));) {
		size_t l = strlen(e->d_name);
		if (l <= 5 || strcmp(e->d_name + l - 5, ".hint"))
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%.*s.data", dir, (int)(l - 5), e->d_name);
		n += access(path, F_OK) != 0;
	}
	closedir(d);
	return n;
}

static char logged[256];
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void keep_errors(void *ctx, enum bc_log_level level, const char *msg)
{
	(void)ctx;
	pthread_mutex_lock(&log_mu);
	if (level == BC_LOG_ERROR && !logged[0])
		snprintf(logged, sizeof(logged), "%s", msg);
	pthread_mutex_unlock(&log_mu);
}

static void put_n(int from, int to)
{
	char key[32], val[1000];
	for (int i = from; i < to; i++) {
		snprintf(key, sizeof(key), "r%05d", i);
		memset(val, 'a' + i % 26, sizeof(val));
		int rc = bc_put(db, 0, key, strlen(key), val, sizeof(val));
		ck_assert_msg(rc == 0, "put %s: %s", key, bc_strerror(rc));
	}
}

static void expect_n(int from, int to)
{
	char key[32];
	for (int i = from; i < to; i++) {
		snprintf(key, sizeof(key), "r%05d", i);
		void *v;
		size_t n;
		ck_assert_int_eq(bc_get(db, 0, key, strlen(key), 0, &v, &n), 0);
		ck_assert_uint_eq(n, 1000);
		ck_assert_int_eq(((char *)v)[999], 'a' + i % 26);
		free(v);
	}
}

/* Put from key i on until the store has one more data file; returns the next key. */
static int put_past_rotation(const char *dir, int i)
{
	int files = tu_count_suffix(dir, ".data");
	for (; tu_count_suffix(dir, ".data") == files; i++)
		put_n(i, i + 1);
	return i;
}

static void wait_entered(unsigned n)
{
	pthread_mutex_lock(&gate.mu);
	while (gate.entered < n)
		pthread_cond_wait(&gate.cv, &gate.mu);
	pthread_mutex_unlock(&gate.mu);
}

static void *sync_thread(void *arg)
{
	atomic_int *done = arg;
	int rc = bc_sync(db);
	atomic_store(done, rc ? rc : 1);
	return NULL;
}

static void *merge_thread(void *arg)
{
	atomic_int *done = arg;
	int rc = bc_merge(db, true);
	atomic_store(done, rc ? rc : 1);
	return NULL;
}

/*
 * Without BC_SYNC_ALWAYS, a rotation leaves the old file's fdatasync and then its hint to
 * a thread: the writer that rotated goes on at once, bc_sync waits for that sync, a
 * failed one fails bc_sync and stops writes, and nothing written is lost.
 */
START_TEST(rotation_syncs_aside)
{
	char *dir = tu_tmpdir("retire");
	gate.io = bc_io_posix;
	gate.io.fdatasync = gate_fdatasync;
	gate.entered = 0;
	gate.held_fd = -1;
	gate_set(true, false);
	struct bc_options o = {0};
	o.log = keep_errors;
	o.max_file_size = 64 * 1024;
	o.merge_disable_auto = true;
	ck_assert_int_eq(bc_open_io(dir, &o, &gate.io, &db), 0);

	/* 100 KiB of puts: one rotation, whose sync waits at the gate while they go on. */
	put_n(0, 100);
	ck_assert_int_eq(tu_count_suffix(dir, ".data"), 2);
	wait_entered(1);
	ck_assert_int_eq(tu_count_suffix(dir, ".hint"), 0); /* only after the data is synced */
	expect_n(0, 100);

	/* bc_sync covers the old file too: it waits for that sync. */
	atomic_int done = 0;
	pthread_t th;
	struct timespec pause = {0, 50 * 1000 * 1000};
	pthread_create(&th, NULL, sync_thread, &done);
	nanosleep(&pause, NULL);
	ck_assert_int_eq(atomic_load(&done), 0);
	gate_set(false, false);
	pthread_join(th, NULL);
	ck_assert_int_eq(atomic_load(&done), 1);
	ck_assert_int_eq(tu_count_suffix(dir, ".hint"), 1);

	/* So does a merge, without holding writers back meanwhile; and it leaves no hint of
	 * a file it removed. */
	gate.held_fd = -1;
	gate_set(true, false);
	unsigned entered = gate.entered;
	int next = put_past_rotation(dir, 100);
	wait_entered(entered + 1);
	done = 0;
	pthread_create(&th, NULL, merge_thread, &done);
	nanosleep(&pause, NULL);
	ck_assert_int_eq(atomic_load(&done), 0);
	put_n(next, next + 5);
	next += 5;
	gate_set(false, false);
	pthread_join(th, NULL);
	ck_assert_int_eq(atomic_load(&done), 1);
	ck_assert_uint_eq(orphan_hints(dir), 0);
	expect_n(0, next);

	/* A failed sync of the old file: bc_sync reports it, writes stop, it is logged. */
	gate_set(false, true);
	int hints = tu_count_suffix(dir, ".hint");
	next = put_past_rotation(dir, next);
	ck_assert_int_eq(bc_sync(db), -EIO);
	char key[] = "after";
	ck_assert_int_ne(bc_put(db, 0, key, strlen(key), "x", 1), 0);
	pthread_mutex_lock(&log_mu);
	ck_assert_msg(strstr(logged, "after rotation"), "logged: %s", logged);
	pthread_mutex_unlock(&log_mu);
	ck_assert_int_eq(tu_count_suffix(dir, ".hint"), hints); /* no hint without the sync */
	ck_assert_int_eq(tu_count_suffix(dir, ".tmp"), 1); /* the active file's hint */
	bc_close(db);

	/* The bytes reached the files (only the sync "failed"): a reopen has them all. */
	gate_set(false, false);
	o.log = quiet;
	ck_assert_int_eq(bc_open(dir, &o, &db), 0);
	expect_n(0, next);
	ck_assert_int_eq(bc_close(db), 0);
	tu_tmpdir_done(dir, 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("concurrency");
	TCase *t = tcase_create("mixed");
	tcase_set_timeout(t, 300);
	tcase_add_loop_test(t, readers_writers_merges, 0, 2);
	tcase_add_test(t, rotation_syncs_aside);
	suite_add_tcase(s, t);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
