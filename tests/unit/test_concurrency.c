// SPDX-License-Identifier: MIT
/*
 * Readers, writers, iterators and merges on one store at once (run under ThreadSanitizer
 * by scripts/test). Each writer owns a key range and records what it last wrote, so
 * readers can check that every value they see is one that was written for that key and
 * never a torn or foreign one.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bitcask/bitcask.h>

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

int main(void)
{
	Suite *s = suite_create("concurrency");
	TCase *t = tcase_create("mixed");
	tcase_set_timeout(t, 300);
	tcase_add_loop_test(t, readers_writers_merges, 0, 2);
	suite_add_tcase(s, t);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
