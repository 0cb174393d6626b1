// SPDX-License-Identifier: MIT
/*
 * Power loss at every sync point (docs/DURABILITY.md "Power loss"). The engine runs with
 * BC_SYNC_ALWAYS over the power-loss simulator (support/powerio.h), which, before and
 * after every fdatasync/fsync, writes crash images: what the disk could hold if power
 * failed right then (unsynced writes dropped, torn, all kept or zeroed; names created,
 * renamed or unlinked since the last directory fsync reverted). Each image is opened with
 * the real I/O layer and must be exactly one of the states the workload allows at that
 * moment: every operation that had returned is present, the one in flight (if any) is
 * wholly present or wholly absent, nothing later exists. After that check the recovered
 * store must take a new write and keep it across a reopen.
 *
 * Workloads: every sequence of up to 3 operations over an alphabet of 6 (put small, put
 * large, delete, batch rename, bc_write, truncate) followed by bc_sync and bc_close, with
 * the default file size and (sequences of up to 2) with a tiny one, so that a rotation
 * falls inside nearly every operation; and a merge of a multi-file store, before and after
 * further writes. BC_POWERLOSS_FULL=1 runs every sequence and every image variant at every
 * point (minutes); BC_POWERLOSS_VERBOSE=1 prints every failure instead of the first ten.
 */
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bitcask/bitcask.h>

#include "db.h"
#include "powerio.h"
#include "testutil.h"

#define NKEYS 3
#define MAXOPS 16
#define LARGE 150000
#define WOFF 65000 /* bc_write crosses the first chunk boundary */
#define WLEN 1000
#define TSIZE 10000

static const char *const keys[NKEYS] = {"a", "b", "c"};

struct state {
	bool present[NKEYS];
	size_t len[NKEYS];
	uint8_t *val[NKEYS];
};

enum op { OP_PUT_SMALL, OP_PUT_LARGE, OP_DELETE, OP_RENAME, OP_WRITE, OP_TRUNCATE, OP_N };
static const char op_letter[OP_N] = {'P', 'L', 'D', 'R', 'W', 'T'};

struct run {
	char *base, store[4096], img[4096];
	struct state st[MAXOPS + 1];
	int nops;
	enum op ops[MAXOPS];
	int lo, hi; /* the allowed states now: st[lo..hi] */
	const char *phase;
	char label[64];
	struct pio pio;
	bool full; /* BC_POWERLOSS_FULL: every variant at every point, every sequence */
	uint64_t points, images, failures;
	char first[10][512];
};

static struct run R;

static void quiet(void *ctx, enum bc_log_level level, const char *msg)
{
	(void)ctx;
	if (getenv("BC_TEST_VERBOSE"))
		fprintf(stderr, "[%d] %s\n", level, msg);
}

static struct bc_options opts(bool always, uint64_t max_file)
{
	struct bc_options o = {0};
	o.log = quiet;
	o.merge_disable_auto = true;
	o.sync = always ? BC_SYNC_ALWAYS : BC_SYNC_NONE;
	o.max_file_size = max_file;
	return o;
}

/* ---- the model ---- */

static void state_copy(struct state *d, const struct state *s)
{
	for (int k = 0; k < NKEYS; k++) {
		d->present[k] = s->present[k];
		d->len[k] = s->len[k];
		free(d->val[k]);
		d->val[k] = malloc(s->len[k] ? s->len[k] : 1);
		ck_assert_ptr_nonnull(d->val[k]);
		if (s->len[k])
			memcpy(d->val[k], s->val[k], s->len[k]);
	}
}

static void state_free(struct state *s)
{
	for (int k = 0; k < NKEYS; k++) {
		free(s->val[k]);
		s->val[k] = NULL;
		s->present[k] = false;
		s->len[k] = 0;
	}
}

static void state_set(struct state *s, int k, const void *v, size_t n)
{
	free(s->val[k]);
	s->val[k] = malloc(n ? n : 1);
	ck_assert_ptr_nonnull(s->val[k]);
	if (n)
		memcpy(s->val[k], v, n);
	s->len[k] = n;
	s->present[k] = true;
}

static void state_resize(struct state *s, int k, size_t n)
{
	uint8_t *v = realloc(s->val[k], n ? n : 1);
	ck_assert_ptr_nonnull(v);
	if (n > s->len[k])
		memset(v + s->len[k], 0, n - s->len[k]);
	s->val[k] = v;
	s->len[k] = n;
}

/* The value an operation writes: distinct per step so states can be told apart. */
static uint8_t *op_value(enum op op, int step, size_t *n)
{
	static uint8_t buf[LARGE];
	struct tu_rng r = {.s = 0x9e3779b97f4a7c15u * (uint64_t)(step + 1) + (uint64_t)op};
	switch (op) {
	case OP_PUT_SMALL:
		*n = (size_t)snprintf((char *)buf, sizeof(buf), "small-%d", step);
		break;
	case OP_PUT_LARGE:
		*n = LARGE;
		tu_fill(&r, buf, *n);
		break;
	case OP_WRITE:
		*n = WLEN;
		tu_fill(&r, buf, *n);
		break;
	default:
		*n = 0;
	}
	return buf;
}

/* Apply op to s; returns the code the engine must give. */
static int model_apply(struct state *s, enum op op, int step)
{
	size_t n;
	const uint8_t *v = op_value(op, step, &n);
	switch (op) {
	case OP_PUT_SMALL:
		state_set(s, 0, v, n);
		return 0;
	case OP_PUT_LARGE:
		state_set(s, 1, v, n);
		return 0;
	case OP_DELETE:
		if (!s->present[0])
			return -ENOENT;
		s->present[0] = false;
		s->len[0] = 0;
		return 0;
	case OP_RENAME:
		if (!s->present[1])
			return -ENOENT;
		state_set(s, 2, s->val[1], s->len[1]);
		s->present[1] = false;
		s->len[1] = 0;
		return 0;
	case OP_WRITE:
		if (!s->present[1]) {
			s->present[1] = true;
			s->len[1] = 0;
		}
		if (s->len[1] < WOFF + WLEN)
			state_resize(s, 1, WOFF + WLEN);
		memcpy(s->val[1] + WOFF, v, n);
		return 0;
	case OP_TRUNCATE:
		if (!s->present[1])
			return -ENOENT;
		state_resize(s, 1, TSIZE);
		return 0;
	default:
		return -EINVAL;
	}
}

static int engine_apply(struct bc_db *db, enum op op, int step)
{
	size_t n;
	const uint8_t *v = op_value(op, step, &n);
	switch (op) {
	case OP_PUT_SMALL:
		return bc_put(db, 0, "a", 1, v, n);
	case OP_PUT_LARGE:
		return bc_put(db, 0, "b", 1, v, n);
	case OP_DELETE:
		return bc_delete(db, 0, "a", 1);
	case OP_RENAME: {
		struct bc_batch *b;
		int rc = bc_batch_new(&b);
		if (!rc)
			rc = bc_batch_rename(b, 0, "b", 1, 0, "c", 1);
		if (!rc)
			rc = bc_batch_commit(db, b);
		bc_batch_free(b);
		return rc;
	}
	case OP_WRITE:
		return bc_write(db, 0, "b", 1, WOFF, v, n);
	case OP_TRUNCATE:
		return bc_truncate(db, 0, "b", 1, TSIZE);
	default:
		return -EINVAL;
	}
}

/* ---- checking one image ---- */

static void note_failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note_failure(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (R.failures < 10)
		snprintf(R.first[R.failures], sizeof(R.first[0]), "%s", msg);
	if (getenv("BC_POWERLOSS_VERBOSE") || R.failures < 10)
		fprintf(stderr, "powerloss: %s\n", msg);
	R.failures++;
}

/* Read the three keys and make sure no other key exists. 0, or a message in why. */
static int observe(struct bc_db *db, struct state *o, char *why, size_t whylen)
{
	for (int k = 0; k < NKEYS; k++) {
		void *v = NULL;
		size_t n = 0;
		int rc = bc_get(db, 0, keys[k], 1, 0, &v, &n);
		if (rc == -ENOENT)
			continue;
		if (rc) {
			snprintf(why, whylen, "get %s: %s", keys[k], bc_strerror(rc));
			return rc;
		}
		state_set(o, k, v, n);
		free(v);
	}
	struct bc_iter *it;
	int rc = bc_iter_new(db, 0, NULL, 0, &it);
	if (rc) {
		snprintf(why, whylen, "iter: %s", bc_strerror(rc));
		return rc;
	}
	const void *key;
	size_t klen;
	while ((rc = bc_iter_next(it, &key, &klen, NULL)) == 0) {
		if (klen == 1 && memchr("abcz", *(const char *)key, 4))
			continue;
		snprintf(why, whylen, "unexpected key of %zu bytes", klen);
		bc_iter_free(it);
		return -EINVAL;
	}
	bc_iter_free(it);
	return 0;
}

static bool state_eq(const struct state *a, const struct state *b)
{
	for (int k = 0; k < NKEYS; k++) {
		if (a->present[k] != b->present[k])
			return false;
		if (a->present[k] &&
		    (a->len[k] != b->len[k] || memcmp(a->val[k], b->val[k], a->len[k])))
			return false;
	}
	return true;
}

static void describe(const struct state *s, char *out, size_t len)
{
	size_t at = 0;
	for (int k = 0; k < NKEYS && at < len; k++) {
		if (!s->present[k])
			at += (size_t)snprintf(out + at, len - at, "%s=- ", keys[k]);
		else
			at += (size_t)snprintf(out + at, len - at, "%s=%zu:%.*s ", keys[k],
					       s->len[k], s->len[k] < 16 ? (int)s->len[k] : 5,
					       s->len[k] < 16 ? (const char *)s->val[k] : "(bin)");
	}
}

static const char *mode_name(enum pio_mode m)
{
	static const char *const n[] = {"strict", "prefix", "all", "zeros"};
	return n[m];
}

/* Keep a failing image for inspection. */
static void keep_image(void)
{
	char kept[4200];
	snprintf(kept, sizeof(kept), "%s/failed-%llu", R.base, (unsigned long long)R.failures);
	if (rename(R.img, kept) == 0)
		fprintf(stderr, "powerloss: image kept in %s\n", kept);
}

static void check_image(uint64_t n, enum pio_when when, enum pio_mode mode, bool dir_now)
{
	char ctx[256], why[256] = "";
	snprintf(ctx, sizeof(ctx), "%s [%s] %s sync %llu, %s%s", R.label, R.phase,
		 when == PIO_BEFORE_SYNC ? "before" : "after", (unsigned long long)n,
		 mode_name(mode), dir_now ? "+dir" : "");
	tu_rmtree(R.img);
	ck_assert_int_eq(mkdir(R.img, 0755), 0);
	int rc = pio_crash(&R.pio, R.img, mode, dir_now, n * 131 + (uint64_t)mode + 1);
	ck_assert_msg(rc == 0, "crash image: %s", strerror(-rc));
	R.images++;

	struct bc_options o = opts(false, 0);
	struct bc_db *db;
	rc = bc_open_io(R.img, &o, &pio_nosync_io, &db);
	if (rc) {
		note_failure("%s: open: %s", ctx, bc_strerror(rc));
		keep_image();
		return;
	}
	struct state seen = {0};
	rc = observe(db, &seen, why, sizeof(why));
	int match = -1;
	for (int i = R.lo; !rc && i <= R.hi; i++)
		if (state_eq(&seen, &R.st[i]))
			match = i;
	if (rc || match < 0) {
		char got[128] = "", want[128] = "";
		describe(&seen, got, sizeof(got));
		describe(&R.st[R.hi], want, sizeof(want));
		note_failure("%s: %s; got {%s}, allowed states %d..%d (last {%s})", ctx,
			     rc ? why : "state not allowed", got, R.lo, R.hi, want);
		bc_close(db);
		state_free(&seen);
		keep_image();
		return;
	}
	/* The recovered store takes a new write and keeps it with everything else. */
	rc = bc_put(db, 0, "z", 1, "after", 5);
	if (!rc)
		rc = bc_close(db);
	else
		bc_close(db);
	if (!rc)
		rc = bc_open_io(R.img, &o, &pio_nosync_io, &db);
	if (rc) {
		note_failure("%s: write after recovery: %s", ctx, bc_strerror(rc));
		state_free(&seen);
		keep_image();
		return;
	}
	struct state again = {0};
	void *v = NULL;
	size_t vl = 0;
	rc = observe(db, &again, why, sizeof(why));
	int zrc = bc_get(db, 0, "z", 1, 0, &v, &vl);
	if (rc || !state_eq(&again, &seen) || zrc || vl != 5 || memcmp(v, "after", 5)) {
		note_failure("%s: after recovery and a new write the store changed (%s, z: %s)",
			     ctx, rc ? why : "keys differ", bc_strerror(zrc));
		keep_image();
	}
	free(v);
	bc_close(db);
	state_free(&seen);
	state_free(&again);
}

static void hook(void *ctx, struct pio *p, uint64_t n, enum pio_when when)
{
	(void)ctx;
	(void)p;
	if (when == PIO_BEFORE_SYNC) {
		R.points++;
		check_image(n, when, PIO_STRICT, false);
		check_image(n, when, PIO_PREFIX, false);
		/* Zeroed tails and "everything landed" alternate between sync points (both on
		 * every point with BC_POWERLOSS_FULL=1). */
		if (n % 2 == 0 || R.full)
			check_image(n, when, PIO_ZEROS, false);
		if (n % 2 == 1 || R.full)
			check_image(n, when, PIO_ALL, true);
	} else {
		check_image(n, when, PIO_STRICT, false);
	}
}

/* ---- driving workloads ---- */

static void run_begin(const char *tag)
{
	memset(&R, 0, sizeof(R));
	R.full = getenv("BC_POWERLOSS_FULL") != NULL;
	R.base = tu_tmpdir(tag);
	snprintf(R.store, sizeof(R.store), "%s/store", R.base);
	snprintf(R.img, sizeof(R.img), "%s/img", R.base);
}

static void run_end(const char *what)
{
	fprintf(stderr, "%s: %llu sync points, %llu crash images checked, %llu failures\n", what,
		(unsigned long long)R.points, (unsigned long long)R.images,
		(unsigned long long)R.failures);
	for (int i = 0; i <= MAXOPS; i++)
		state_free(&R.st[i]);
	ck_assert_msg(R.failures == 0, "%llu crash images wrong; first: %s",
		      (unsigned long long)R.failures, R.first[0]);
	tu_tmpdir_done(R.base, 1);
}

/* A store holding a = "init-a" and b = a large value, closed cleanly; st[0] says so. */
static void initial_store(uint64_t max_file)
{
	tu_rmtree(R.store);
	ck_assert_int_eq(mkdir(R.store, 0755), 0);
	struct bc_options o = opts(false, max_file);
	struct bc_db *db;
	ck_assert_int_eq(bc_open(R.store, &o, &db), 0);
	state_free(&R.st[0]);
	ck_assert_int_eq(bc_put(db, 0, "a", 1, "init-a", 6), 0);
	state_set(&R.st[0], 0, "init-a", 6);
	size_t n;
	const uint8_t *v = op_value(OP_PUT_LARGE, 99, &n);
	ck_assert_int_eq(bc_put(db, 0, "b", 1, v, n), 0);
	state_set(&R.st[0], 1, v, n);
	ck_assert_int_eq(bc_close(db), 0);
}

/* Run ops[0..nops) on the store under the simulator with crash images at every sync. */
static void run_ops(uint64_t max_file)
{
	for (int i = 0; i < R.nops; i++) {
		state_copy(&R.st[i + 1], &R.st[i]);
		model_apply(&R.st[i + 1], R.ops[i], i);
	}
	ck_assert_int_eq(pio_init(&R.pio, R.store), 0);
	pio_set_hook(&R.pio, hook, NULL);
	struct bc_options o = opts(true, max_file);
	struct bc_db *db;
	R.lo = R.hi = 0;
	R.phase = "open";
	int rc = bc_open_io(R.store, &o, &R.pio.io, &db);
	ck_assert_msg(rc == 0, "open: %s", bc_strerror(rc));
	for (int i = 0; i < R.nops; i++) {
		struct state tmp = {0};
		state_copy(&tmp, &R.st[i]);
		int want = model_apply(&tmp, R.ops[i], i);
		state_free(&tmp);
		char ph[32];
		snprintf(ph, sizeof(ph), "op %d %c", i, op_letter[R.ops[i]]);
		R.phase = ph;
		R.lo = i;
		R.hi = i + 1;
		rc = engine_apply(db, R.ops[i], i);
		ck_assert_msg(rc == want, "%s op %d (%c): %s, expected %s", R.label, i,
			      op_letter[R.ops[i]], bc_strerror(rc), bc_strerror(want));
		R.lo = i + 1;
	}
	R.phase = "sync";
	ck_assert_int_eq(bc_sync(db), 0);
	R.phase = "close";
	ck_assert_int_eq(bc_close(db), 0);
	R.phase = "after close";
	hook(NULL, &R.pio, R.pio.syncs + 1, PIO_BEFORE_SYNC);
	pio_release(&R.pio);
}

static void all_sequences(const char *tag, uint64_t max_file, int maxlen)
{
	run_begin(tag);
	int seqs = 0;
	if (R.full)
		maxlen = 3;
	for (int len = 1; len <= maxlen; len++) {
		int total = 1;
		for (int i = 0; i < len; i++)
			total *= OP_N;
		for (int code = 0; code < total; code++) {
			int c = code;
			R.nops = len;
			for (int i = 0; i < len; i++) {
				R.ops[i] = (enum op)(c % OP_N);
				c /= OP_N;
			}
			char *l = R.label;
			l += sprintf(l, "%s seq ", tag);
			for (int i = 0; i < len; i++)
				*l++ = op_letter[R.ops[i]];
			*l = 0;
			initial_store(max_file);
			run_ops(max_file);
			seqs++;
		}
	}
	fprintf(stderr, "%s: %d sequences\n", tag, seqs);
	run_end(tag);
}

START_TEST(every_sequence_of_three)
{
	all_sequences("powerloss", 0, 3);
}
END_TEST

START_TEST(every_sequence_with_rotation)
{
	/* Sequences of up to 2 here (all 3 with BC_POWERLOSS_FULL=1): a 4 KiB file limit
	 * makes every large value rotate, so rotation falls inside nearly every operation. */
	all_sequences("powerloss-rot", 4096, 2);
}
END_TEST

/* A store of many small files (overwrites and deletes), merged under the simulator. */
START_TEST(merge_at_every_sync)
{
	run_begin("powerloss-merge");
	snprintf(R.label, sizeof(R.label), "merge");
	ck_assert_int_eq(mkdir(R.store, 0755), 0);
	struct bc_options o = opts(false, 4096);
	struct bc_db *db;
	ck_assert_int_eq(bc_open(R.store, &o, &db), 0);
	char v[1200];
	for (int i = 0; i < 24; i++) {
		int k = i % NKEYS;
		memset(v, 'a' + i, sizeof(v));
		size_t n = 200 + (size_t)i * 40;
		ck_assert_int_eq(bc_put(db, 0, keys[k], 1, v, n), 0);
		state_set(&R.st[0], k, v, n);
		if (i == 20) {
			ck_assert_int_eq(bc_delete(db, 0, "c", 1), 0);
			R.st[0].present[2] = false;
		}
	}
	size_t n;
	const uint8_t *big = op_value(OP_PUT_LARGE, 7, &n);
	ck_assert_int_eq(bc_put(db, 0, "b", 1, big, n), 0);
	state_set(&R.st[0], 1, big, n);
	ck_assert_int_eq(bc_close(db), 0);

	ck_assert_int_eq(pio_init(&R.pio, R.store), 0);
	pio_set_hook(&R.pio, hook, NULL);
	o = opts(true, 4096);
	R.lo = R.hi = 0;
	R.phase = "open";
	ck_assert_int_eq(bc_open_io(R.store, &o, &R.pio.io, &db), 0);
	R.phase = "merge 1";
	int rc = bc_merge(db, true);
	ck_assert_msg(rc == 0, "merge: %s", bc_strerror(rc));
	/* More history, then a second merge over the first one's outputs. */
	static const enum op more[] = {OP_PUT_SMALL, OP_WRITE,	OP_RENAME,
				       OP_PUT_LARGE, OP_DELETE, OP_TRUNCATE};
	for (int i = 0; i < 6; i++) {
		state_copy(&R.st[i + 1], &R.st[i]);
		int want = model_apply(&R.st[i + 1], more[i], 40 + i);
		char ph[32];
		snprintf(ph, sizeof(ph), "op %d %c", i, op_letter[more[i]]);
		R.phase = ph;
		R.lo = i;
		R.hi = i + 1;
		ck_assert_int_eq(engine_apply(db, more[i], 40 + i), want);
		R.lo = i + 1;
	}
	R.phase = "merge 2";
	rc = bc_merge(db, true);
	ck_assert_msg(rc == 0, "merge: %s", bc_strerror(rc));
	R.phase = "close";
	ck_assert_int_eq(bc_close(db), 0);
	R.phase = "after close";
	hook(NULL, &R.pio, R.pio.syncs + 1, PIO_BEFORE_SYNC);
	pio_release(&R.pio);
	run_end("merge");
}
END_TEST

/*
 * BC_SYNC_NONE and BC_SYNC_INTERVAL: what bc_sync covered survives. The workload rotates
 * (4 KiB files) between syncs, so a sync must also make the new files' names durable.
 * Images are taken only after each bc_sync returns (strict: nothing unsynced survives).
 * Rotation under these policies leaves the directory unsynced; bc_sync must fsync it, or
 * the files created since would vanish after a power loss with everything in them.
 */
START_TEST(bc_sync_covers_rotation_without_always)
{
	run_begin("powerloss-none");
	snprintf(R.label, sizeof(R.label), "sync=none");
	initial_store(4096);
	ck_assert_int_eq(pio_init(&R.pio, R.store), 0);
	struct bc_options o = opts(false, 4096);
	struct bc_db *db;
	ck_assert_int_eq(bc_open_io(R.store, &o, &R.pio.io, &db), 0);
	static const enum op ops[] = {OP_PUT_SMALL, OP_PUT_LARGE, OP_WRITE,	OP_DELETE,
				      OP_PUT_LARGE, OP_RENAME,	  OP_PUT_SMALL, OP_TRUNCATE};
	for (int i = 0; i < 8; i++) {
		state_copy(&R.st[i + 1], &R.st[i]);
		int want = model_apply(&R.st[i + 1], ops[i], 60 + i);
		ck_assert_int_eq(engine_apply(db, ops[i], 60 + i), want);
		ck_assert_int_eq(bc_sync(db), 0);
		R.lo = R.hi = i + 1;
		R.phase = "after bc_sync";
		check_image(R.pio.syncs, PIO_AFTER_SYNC, PIO_STRICT, false);
	}
	ck_assert_int_eq(bc_close(db), 0);
	pio_release(&R.pio);
	run_end("sync=none");
}
END_TEST

static Suite *powerloss_suite(void)
{
	Suite *s = suite_create("powerloss");
	TCase *t = tcase_create("crash at every sync");
	tcase_set_timeout(t, 600);
	tcase_add_test(t, every_sequence_of_three);
	tcase_add_test(t, every_sequence_with_rotation);
	tcase_add_test(t, merge_at_every_sync);
	tcase_add_test(t, bc_sync_covers_rotation_without_always);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	/* Thousands of small crash images: keep them in memory when we can (the simulator
	 * decides durability, not the disk). */
	if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	SRunner *sr = srunner_create(powerloss_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
