// SPDX-License-Identifier: MIT
/*
 * Fault injection through the I/O seam, after SQLite's "I/O error testing": for each kind
 * of operation (put small and large, overwrite, delete, a batch with a rename, a partial
 * write, a truncate, a rotation, a merge, a close that writes the hint, an open that
 * recovers a torn tail) and for N = 1, 2, ... until the operation runs without reaching
 * the N-th call, a fresh copy of a known store is opened through support/faultio.c, the
 * N-th watched system call is made to fail (EIO once, ENOSPC from then on, or a short
 * write whose continuation fails), the operation runs, and the store is closed. Then:
 *
 *   - reopened with the real I/O layer, the store holds exactly the state before the
 *     operation or exactly the state after it (every key: value, metadata, expiry);
 *   - if the operation reported success (with sync none: it and the wait for a rotated-out
 *     file's sync that the next bc_sync does), the state is the one after it, and the fault
 *     it absorbed was in a best-effort path (a hint file, the lock file, an unlink of a
 *     file no longer needed, the directory sync after a merge's unlinks, the zeros
 *     written ahead of a data file's appends and their removal);
 *   - before the close, the failing handle itself shows the state before or after, and a
 *     probe put made through it afterwards is in the reopened store if it reported
 *     success.
 *
 * The before and after states come from running the operation on copies of the same
 * store without faults. Each test prints how many fault points it covered.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bitcask/bitcask.h>

#include "db.h"
#include "faultio.h"
#include "testutil.h"

#define MAX_POINTS 5000

static void quiet(void *ctx, enum bc_log_level level, const char *msg)
{
	(void)ctx;
	if (getenv("BC_TEST_VERBOSE"))
		fprintf(stderr, "[%d] %s\n", level, msg);
}

/* ---- deterministic values ---- */

static void fillv(uint8_t *buf, size_t len, uint64_t tag)
{
	struct tu_rng r = {tag * 2654435761u + 1};
	tu_fill(&r, buf, len);
}

static uint8_t *mkval(size_t len, uint64_t tag)
{
	uint8_t *v = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(v);
	fillv(v, len, tag);
	return v;
}

/* ---- what a store holds ---- */

struct sent {
	uint8_t space;
	uint8_t key[40];
	size_t klen;
	uint64_t vlen, vhash;
	uint8_t meta[64];
	size_t mlen;
	uint64_t expire;
};

struct snap {
	struct sent *v;
	size_t n, cap;
	int err; /* a read failed: the snapshot is incomplete */
	char why[200];
};

static uint64_t fnv(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = UINT64_C(1469598103934665603);
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * UINT64_C(1099511628211);
	return h;
}

static void snap_release(struct snap *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* Every key of spaces 0 and 1 with its value's hash, metadata and expiry. */
static void snap_take(struct bc_db *db, struct snap *s)
{
	memset(s, 0, sizeof(*s));
	for (unsigned sp = 0; sp < 2 && !s->err; sp++) {
		struct bc_iter *it;
		int rc = bc_iter_new(db, sp, NULL, 0, &it);
		if (rc) {
			s->err = rc;
			snprintf(s->why, sizeof(s->why), "iter_new: %s", bc_strerror(rc));
			return;
		}
		const void *key;
		size_t kl;
		while (!s->err && (rc = bc_iter_next(it, &key, &kl, NULL)) == 0) {
			if (s->n == s->cap) {
				s->cap = s->cap ? 2 * s->cap : 32;
				s->v = realloc(s->v, s->cap * sizeof(*s->v));
				ck_assert_ptr_nonnull(s->v);
			}
			struct sent *e = &s->v[s->n++];
			memset(e, 0, sizeof(*e));
			ck_assert_uint_le(kl, sizeof(e->key));
			e->space = (uint8_t)sp;
			memcpy(e->key, key, kl);
			e->klen = kl;
			void *val;
			size_t vlen;
			rc = bc_get(db, sp, e->key, kl, 0, &val, &vlen);
			if (rc) {
				s->err = rc;
				snprintf(s->why, sizeof(s->why), "get %u/%.*s: %s", sp, (int)kl,
					 (const char *)e->key, bc_strerror(rc));
				break;
			}
			e->vlen = vlen;
			e->vhash = fnv(val, vlen);
			free(val);
			rc = bc_get_meta(db, sp, e->key, kl, e->meta, sizeof(e->meta), &e->mlen);
			struct bc_stat st;
			if (!rc)
				rc = bc_stat(db, sp, e->key, kl, &st);
			if (rc) {
				s->err = rc;
				snprintf(s->why, sizeof(s->why), "meta/stat %u/%.*s: %s", sp,
					 (int)kl, (const char *)e->key, bc_strerror(rc));
				break;
			}
			e->expire = st.expire_s;
		}
		if (!s->err && rc != -ENOENT) {
			s->err = rc;
			snprintf(s->why, sizeof(s->why), "iter_next: %s", bc_strerror(rc));
		}
		bc_iter_free(it);
	}
}

/* Remove the probe key from s; returns whether it was there. */
static bool snap_take_probe(struct snap *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].space == 0 && s->v[i].klen == 5 && !memcmp(s->v[i].key, "probe", 5)) {
			memmove(s->v + i, s->v + i + 1, (s->n - i - 1) * sizeof(*s->v));
			s->n--;
			return true;
		}
	return false;
}

/* Whether a equals b; if not, the first difference in why. */
static bool snap_eq(const struct snap *a, const struct snap *b, char *why, size_t wn)
{
	if (a->err) {
		snprintf(why, wn, "unreadable: %s", a->why);
		return false;
	}
	for (size_t i = 0; i < a->n || i < b->n; i++) {
		if (i >= a->n || i >= b->n) {
			const struct sent *e = i < a->n ? &a->v[i] : &b->v[i];
			snprintf(why, wn, "%s key %u/%.*s", i < a->n ? "extra" : "missing",
				 e->space, (int)e->klen, (const char *)e->key);
			return false;
		}
		const struct sent *x = &a->v[i], *y = &b->v[i];
		if (x->space != y->space || x->klen != y->klen || memcmp(x->key, y->key, x->klen)) {
			snprintf(why, wn, "key %u/%.*s where %u/%.*s was expected", x->space,
				 (int)x->klen, (const char *)x->key, y->space, (int)y->klen,
				 (const char *)y->key);
			return false;
		}
		if (x->vlen != y->vlen || x->vhash != y->vhash) {
			snprintf(why, wn, "%u/%.*s: value of %llu bytes differs (expected %llu)",
				 x->space, (int)x->klen, (const char *)x->key,
				 (unsigned long long)x->vlen, (unsigned long long)y->vlen);
			return false;
		}
		if (x->mlen != y->mlen || memcmp(x->meta, y->meta, x->mlen) ||
		    x->expire != y->expire) {
			snprintf(why, wn, "%u/%.*s: metadata or expiry differs", x->space,
				 (int)x->klen, (const char *)x->key);
			return false;
		}
	}
	return true;
}

/* ---- directories ---- */

static void copy_dir(const char *from, const char *to)
{
	tu_rmtree(to);
	ck_assert_int_eq(mkdir(to, 0755), 0);
	DIR *d = opendir(from);
	ck_assert_ptr_nonnull(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char a[4096], b[4096];
		snprintf(a, sizeof(a), "%s/%s", from, de->d_name);
		snprintf(b, sizeof(b), "%s/%s", to, de->d_name);
		size_t len;
		void *buf = tu_read_file(a, &len);
		ck_assert_ptr_nonnull(buf);
		ck_assert_int_eq(tu_write_file(b, buf, len), 0);
		free(buf);
	}
	closedir(d);
}

static void remove_matching(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	struct dirent *de;
	size_t sl = strlen(suffix);
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n > sl && !strcmp(de->d_name + n - sl, suffix)) {
			char p[4096];
			snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			unlink(p);
		}
	}
	closedir(d);
}

/* Path of the newest data file of dir (static buffer). */
static const char *newest_data(const char *dir)
{
	static char best[4096];
	char name[64] = "";
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n == 21 && !strcmp(de->d_name + 16, ".data") && strcmp(de->d_name, name) > 0)
			memcpy(name, de->d_name, 22);
	}
	closedir(d);
	ck_assert(name[0]);
	snprintf(best, sizeof(best), "%s/%s", dir, name);
	return best;
}

/* ---- the operations under test ---- */

static void put_ok(struct bc_db *db, unsigned sp, const char *k, const void *v, size_t n,
		   const char *meta, uint64_t exp)
{
	int rc = bc_put_ex(db, sp, k, strlen(k), v, n, meta, meta ? strlen(meta) : 0, exp);
	ck_assert_msg(rc == 0, "setup put %s: %s", k, bc_strerror(rc));
}

/* The store every operation starts from (plus what its own setup adds). */
static void base_setup(struct bc_db *db)
{
	uint8_t *big = mkval(200000, 1), *big2 = mkval(150000, 2);
	put_ok(db, 0, "a", "alpha", 5, NULL, 0);
	put_ok(db, 0, "b", "bravo", 5, "mode=644", 0);
	put_ok(db, 0, "big", big, 200000, "bigmeta", 0);
	put_ok(db, 0, "big2", big2, 150000, NULL, 0);
	put_ok(db, 0, "exp", "later", 5, NULL, UINT64_C(4000000000) - 1);
	put_ok(db, 0, "gone", "x", 1, NULL, 0);
	ck_assert_int_eq(bc_delete(db, 0, "gone", 4), 0);
	put_ok(db, 1, "dir", "d", 1, "dirmeta", 0);
	free(big);
	free(big2);
}

/* Fill the active file towards 4 KiB with small records so the next put rotates. */
static void many_small(struct bc_db *db, int n, int rounds)
{
	char k[16], v[200];
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < n; i++) {
			snprintf(k, sizeof(k), "s%02d", i);
			memset(v, 'a' + r, sizeof(v));
			put_ok(db, 0, k, v, 100 + (size_t)i, NULL, 0);
		}
}

static void setup_rotation(struct bc_db *db)
{
	base_setup(db);
	many_small(db, 12, 1);
}

static void setup_merge(struct bc_db *db)
{
	base_setup(db);
	many_small(db, 20, 4); /* overwritten three times: most of it is dead */
	ck_assert_int_eq(bc_delete(db, 0, "big2", 4), 0);
	put_ok(db, 0, "tail", "t", 1, NULL, 0);
}

static int op_put_small(struct bc_db **db)
{
	return bc_put(*db, 0, "new", 3, "fresh", 5);
}

static int op_put_large(struct bc_db **db)
{
	uint8_t *v = mkval(3 * BC_CHUNK_SIZE + 999, 3);
	int rc = bc_put_ex(*db, 0, "a", 1, v, 3 * BC_CHUNK_SIZE + 999, "m", 1, 0);
	free(v);
	return rc;
}

static int op_overwrite(struct bc_db **db)
{
	/* A chunked value replaced by a small one: its object goes away. */
	return bc_put_ex(*db, 0, "big", 3, "small now", 9, "newmeta", 7, 0);
}

static int op_delete(struct bc_db **db)
{
	return bc_delete(*db, 0, "big2", 4);
}

static int op_batch(struct bc_db **db)
{
	struct bc_batch *b;
	int rc = bc_batch_new(&b);
	if (rc)
		return rc;
	ck_assert_int_eq(bc_batch_put(b, 0, "n", 1, "N", 1, "nm", 2, 0), 0);
	ck_assert_int_eq(bc_batch_delete(b, 0, "a", 1), 0);
	ck_assert_int_eq(bc_batch_rename(b, 0, "big", 3, 1, "dir", 3), 0); /* onto a key */
	ck_assert_int_eq(bc_batch_rename(b, 0, "b", 1, 0, "b2", 2), 0);
	ck_assert_int_eq(bc_batch_set_meta(b, 0, "b2", 2, "renamed", 7), 0);
	rc = bc_batch_commit(*db, b);
	bc_batch_free(b);
	return rc;
}

static int op_write(struct bc_db **db)
{
	/* Crosses a chunk boundary of an object and extends it past its end. */
	size_t len = BC_CHUNK_SIZE + 500;
	uint8_t *v = mkval(len, 4);
	int rc = bc_write(*db, 0, "big2", 4, 150000 - BC_CHUNK_SIZE + 10, v, len);
	free(v);
	return rc;
}

static int op_write_convert(struct bc_db **db)
{
	/* An inline value becomes an object, leaving a hole. */
	return bc_write(*db, 0, "b", 1, 2 * BC_CHUNK_SIZE + 7, "tail", 4);
}

static int op_truncate(struct bc_db **db)
{
	return bc_truncate(*db, 0, "big", 3, BC_CHUNK_SIZE + 17);
}

static int op_stream(struct bc_db **db)
{
	struct bc_stream *s;
	int rc = bc_stream_open(*db, 0, "b", 1, &s);
	if (rc)
		return rc;
	uint8_t *v = mkval(5 * BC_CHUNK_SIZE, 5);
	for (size_t off = 0; off < 5 * BC_CHUNK_SIZE && !rc; off += 50000) {
		size_t n = 5 * BC_CHUNK_SIZE - off < 50000 ? 5 * BC_CHUNK_SIZE - off : 50000;
		rc = bc_stream_write(s, v + off, n);
	}
	free(v);
	if (rc) {
		bc_stream_abort(s);
		return rc;
	}
	return bc_stream_commit(s, "sm", 2, 0);
}

static int op_rotation(struct bc_db **db)
{
	uint8_t *v = mkval(3000, 6);
	int rc = bc_put(*db, 0, "rot", 3, v, 3000);
	free(v);
	return rc;
}

static int op_merge(struct bc_db **db)
{
	return bc_merge(*db, true);
}

static void pre_close(struct bc_db *db)
{
	put_ok(db, 0, "c1", "one", 3, NULL, 0);
	put_ok(db, 0, "c2", "two", 3, "m", 0);
	ck_assert_int_eq(bc_delete(db, 0, "a", 1), 0);
}

static int op_close(struct bc_db **db)
{
	int rc = bc_close(*db);
	*db = NULL;
	return rc;
}

/* A store that needs real recovery: a torn tail, a missing hint, leftover .tmp files. */
static void damage_for_open(const char *dir)
{
	remove_matching(dir, ".hint");
	const char *p = newest_data(dir);
	int fd = open(p, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "\x12\x34\x56\x78\x01\x00\x00\x00torn", 12), 12);
	close(fd);
	char t[4096];
	snprintf(t, sizeof(t), "%s/00000000000fffff.data.tmp", dir);
	ck_assert_int_eq(tu_write_file(t, "partial merge output", 20), 0);
	snprintf(t, sizeof(t), "%s/0000000000010000.hint.tmp", dir);
	ck_assert_int_eq(tu_write_file(t, "partial hint", 12), 0);
}

struct optest {
	const char *name;
	void (*setup)(struct bc_db *db);
	void (*damage)(const char *dir); /* after setup, on the closed store */
	void (*pre)(struct bc_db *db); /* on the faulty handle, before arming */
	int (*op)(struct bc_db **db); /* NULL: the operation is the open itself */
	uint64_t max_file_size;
	bool merge; /* the directory sync after a merge's unlinks is best-effort */
};

static const struct optest ops[] = {
	{"put small", base_setup, NULL, NULL, op_put_small, 0, false},
	{"put large", base_setup, NULL, NULL, op_put_large, 0, false},
	{"overwrite", base_setup, NULL, NULL, op_overwrite, 0, false},
	{"delete", base_setup, NULL, NULL, op_delete, 0, false},
	{"batch with renames", base_setup, NULL, NULL, op_batch, 0, false},
	{"partial write", base_setup, NULL, NULL, op_write, 0, false},
	{"write converting inline", base_setup, NULL, NULL, op_write_convert, 0, false},
	{"truncate", base_setup, NULL, NULL, op_truncate, 0, false},
	{"stream", base_setup, NULL, NULL, op_stream, 0, false},
	{"rotation", setup_rotation, NULL, NULL, op_rotation, 4096, false},
	{"merge", setup_merge, NULL, NULL, op_merge, 4096, true},
	{"close", base_setup, NULL, pre_close, op_close, 0, false},
	{"open and recover", base_setup, damage_for_open, NULL, NULL, 4096, false},
};
#define NOPS (sizeof(ops) / sizeof(*ops))

/* How faults are injected, and with which sync policy the faulty handle runs. */
struct config {
	const char *name;
	unsigned mask;
	int err;
	enum fio_mode mode;
	enum bc_sync_mode sync;
};

static const struct config configs[] = {
	{"EIO once, sync always", FIO_ALL, EIO, FIO_ONCE, BC_SYNC_ALWAYS},
	{"ENOSPC from N on, sync always", FIO_ALL, ENOSPC, FIO_PERSIST, BC_SYNC_ALWAYS},
	{"short write then EIO, sync always", 1u << FIO_PWRITEV, EIO, FIO_SHORT, BC_SYNC_ALWAYS},
	{"EIO once, sync none", FIO_ALL, EIO, FIO_ONCE, BC_SYNC_NONE},
	{"EIO from N on, sync none", FIO_ALL, EIO, FIO_PERSIST, BC_SYNC_NONE},
};
#define NCONFIGS (sizeof(configs) / sizeof(*configs))

/* ---- the runner ---- */

static char *root;
static struct fio fio;

static struct bc_options options(const struct optest *t, enum bc_sync_mode sync)
{
	struct bc_options o = {0};
	o.log = quiet;
	o.merge_disable_auto = true;
	o.max_file_size = t->max_file_size;
	o.sync = sync;
	return o;
}

static void path(char *out, const char *leaf)
{
	snprintf(out, 4096, "%s/%s", root, leaf);
}

/* Open dir with the real I/O layer and take its snapshot. */
static void snap_dir(const char *dir, const struct bc_options *o, struct snap *s)
{
	struct bc_db *db;
	int rc = bc_open(dir, o, &db);
	if (rc) {
		memset(s, 0, sizeof(*s));
		s->err = rc;
		snprintf(s->why, sizeof(s->why), "open with the real I/O layer: %s",
			 bc_strerror(rc));
		return;
	}
	snap_take(db, s);
	rc = bc_close(db);
	if (rc && !s->err) {
		s->err = rc;
		snprintf(s->why, sizeof(s->why), "close: %s", bc_strerror(rc));
	}
}

/* Run pre and op on a copy of the template without faults: the before and after states. */
static void reference_states(const struct optest *t, const struct bc_options *o,
			     struct snap *before, struct snap *after)
{
	char tmpl[4096], w[4096];
	path(tmpl, "template");
	path(w, "reference");
	for (int which = 0; which < 2; which++) {
		copy_dir(tmpl, w);
		struct bc_db *db;
		int rc = bc_open(w, o, &db);
		ck_assert_msg(rc == 0, "reference open: %s", bc_strerror(rc));
		if (t->pre)
			t->pre(db);
		if (which && t->op) {
			rc = t->op(&db);
			ck_assert_msg(rc == 0, "%s without faults: %s", t->name, bc_strerror(rc));
		}
		bc_close(db);
		snap_dir(w, o, which ? after : before);
		ck_assert_msg(!(which ? after : before)->err, "reference state: %s",
			      (which ? after : before)->why);
	}
	tu_rmtree(w);
}

/* Whether every fault injected so far hit a best-effort path. */
static bool only_best_effort(const struct optest *t, char *what, size_t wn)
{
	struct fio_hit log[FIO_HITLOG];
	uint64_t n = fio_hit_log(&fio, log, FIO_HITLOG);
	for (uint64_t i = 0; i < n && i < FIO_HITLOG; i++) {
		const struct fio_hit *h = &log[i];
		if (strstr(h->name, ".hint") || !strcmp(h->name, BC_LOCK_NAME) ||
		    h->kind == FIO_UNLINKAT)
			continue;
		/* No record is all zeros, so a write of zeros to a data file is the zero-fill
		 * ahead of appends, and a cut of only zeros removes it: both best-effort. */
		if (h->zeros && strstr(h->name, ".data"))
			continue;
		if (t->merge && h->kind == FIO_FSYNC && !strcmp(h->name, "(dir)"))
			continue;
		snprintf(what, wn, "%s %s", fio_kind_name(h->kind), h->name);
		return false;
	}
	return true;
}

struct tally {
	unsigned points, failures, absorbed, kept_before, kept_after;
	const char *keep; /* this point failed: keep its directory */
};

static void failure(struct tally *ty, const char *w, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void failure(struct tally *ty, const char *w, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "FAULT FAILURE: %s\n", msg);
	ty->failures++;
	ty->keep = w;
}

/* Remove the work directory, or keep it (renamed) when this point failed. */
static void work_done(struct tally *ty, const char *w)
{
	static unsigned kept;
	if (ty->keep && kept < 8) {
		char keep[4096 + 16];
		snprintf(keep, sizeof(keep), "%.4095s-fail%u", w, ++kept);
		if (rename(w, keep) == 0) {
			fprintf(stderr, "  store kept in %s\n", keep);
			ty->keep = NULL;
			return;
		}
	}
	ty->keep = NULL;
	tu_rmtree(w);
}

/* Inject fault n under config c into a copy of the template; false when op ran clean. */
static bool one_point(const struct optest *t, const struct config *c, uint64_t n,
		      const struct snap *before, const struct snap *after, struct tally *ty)
{
	char tmpl[4096], w[4096];
	path(tmpl, "template");
	path(w, "work");
	copy_dir(tmpl, w);
	struct bc_options o = options(t, c->sync);
	struct bc_db *db = NULL;
	int rc;
	char hit[160];
	uint64_t seen;

	if (!t->op) {
		fio_arm(&fio, c->mask, n, c->err, c->mode);
		rc = bc_open_io(w, &o, &fio.io, &db);
		seen = fio_seen(&fio);
	} else {
		rc = bc_open_io(w, &o, &fio.io, &db);
		ck_assert_msg(rc == 0, "open before arming: %s", bc_strerror(rc));
		if (t->pre)
			t->pre(db);
		fio_arm(&fio, c->mask, n, c->err, c->mode);
		rc = t->op(&db);
		/* Without BC_SYNC_ALWAYS a rotation syncs the old file in a thread of its own,
		 * and a fault there surfaces at the next sync, which waits for it as this
		 * does: the operation and that wait report it together. */
		if (!rc && db)
			rc = bc_retire_wait(db);
		seen = fio_seen(&fio);
	}
	bool clean = seen < n;
	bool faulted = fio_hits(&fio) > 0;
	fio_describe_hit(&fio, hit, sizeof(hit));
	char what[160] = "", why[300] = "", why2[300] = "";
	bool best_effort = only_best_effort(t, what, sizeof(what));
	const char *cfg = c->name;

	if (faulted)
		ty->points++;
	if (rc == 0 && faulted) {
		if (!best_effort)
			failure(ty, w,
				"%s [%s] fault %llu (%s): returned success after a fault in %s",
				t->name, cfg, (unsigned long long)n, hit, what);
		else
			ty->absorbed++;
	}
	if (clean && rc != 0)
		failure(ty, w, "%s [%s]: failed without a fault: %s", t->name, cfg,
			bc_strerror(rc));

	/* The failing handle's own view, and a probe written through it. */
	int probe = -1;
	if (db) {
		struct snap s;
		snap_take(db, &s);
		if (!snap_eq(&s, after, why, sizeof(why)) &&
		    !snap_eq(&s, before, why2, sizeof(why2)))
			failure(ty, w,
				"%s [%s] fault %llu (%s, op returned %d): the handle shows neither "
				"state: vs after: %s; vs before: %s",
				t->name, cfg, (unsigned long long)n, hit, rc, why, why2);
		snap_release(&s);
		if (rc == 0 || c->mode != FIO_PERSIST)
			probe = bc_put(db, 0, "probe", 5, "p", 1);
		bc_close(db);
	}
	fio_disarm(&fio);

	struct snap s;
	snap_dir(w, &o, &s);
	bool has_probe = snap_take_probe(&s);
	if (probe == 0 && !has_probe)
		failure(ty, w,
			"%s [%s] fault %llu (%s): a probe put acknowledged after the fault "
			"is lost",
			t->name, cfg, (unsigned long long)n, hit);
	bool is_after = snap_eq(&s, after, why, sizeof(why));
	bool is_before = !is_after && snap_eq(&s, before, why2, sizeof(why2));
	if (!is_after && !is_before)
		failure(ty, w,
			"%s [%s] fault %llu (%s, op returned %d): reopened store is neither state: "
			"vs after: %s; vs before: %s",
			t->name, cfg, (unsigned long long)n, hit, rc, why, why2);
	else if (rc == 0 && !is_after)
		failure(ty, w,
			"%s [%s] fault %llu (%s): success reported but the change is lost (%s)",
			t->name, cfg, (unsigned long long)n, hit, why);
	if (faulted && is_before)
		ty->kept_before++;
	if (faulted && is_after)
		ty->kept_after++;
	snap_release(&s);
	work_done(ty, w);
	return !clean;
}

START_TEST(faults)
{
	const struct optest *t = &ops[_i];
	root = tu_tmpdir("faultio");
	fio_init(&fio);
	unsigned total = 0, failures = 0;
	for (size_t ci = 0; ci < NCONFIGS; ci++) {
		const struct config *c = &configs[ci];
		struct bc_options o = options(t, BC_SYNC_NONE);
		char tmpl[4096];
		path(tmpl, "template");
		tu_rmtree(tmpl);
		struct bc_db *db;
		ck_assert_int_eq(bc_open(tmpl, &o, &db), 0);
		t->setup(db);
		ck_assert_int_eq(bc_close(db), 0);
		if (t->damage)
			t->damage(tmpl);
		struct snap before, after;
		o.sync = c->sync;
		reference_states(t, &o, &before, &after);
		struct tally ty = {0};
		uint64_t n = 1;
		while (one_point(t, c, n, &before, &after, &ty)) {
			n++;
			ck_assert_msg(n < MAX_POINTS, "%s: more than %d fault points", t->name,
				      MAX_POINTS);
		}
		fprintf(stderr,
			"faultio: %-24s %-34s %3u fault points (%u lost the op, %u kept it, %u "
			"absorbed by best-effort paths), %u failures\n",
			t->name, c->name, ty.points, ty.kept_before, ty.kept_after, ty.absorbed,
			ty.failures);
		total += ty.points;
		failures += ty.failures;
		snap_release(&before);
		snap_release(&after);
	}
	fprintf(stderr, "faultio: %s: %u fault points in all, %u failures\n", t->name, total,
		failures);
	fio_release(&fio);
	ck_assert_msg(failures == 0, "%s: %u fault points misbehaved (see above)", t->name,
		      failures);
	tu_tmpdir_done(root, 1);
}
END_TEST

/* The fault layer itself: counting, once, persistent and short writes. */
START_TEST(faultio_layer)
{
	char *d = tu_tmpdir("fio");
	struct fio *f = malloc(sizeof(*f));
	ck_assert_ptr_nonnull(f);
	fio_init(f);
	int dfd = open(d, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dfd, 0);
	fio_arm(f, 1u << FIO_PWRITEV, 2, ENOSPC, FIO_ONCE);
	int fd = bc_io_openat(&f->io, dfd, "x", O_RDWR | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bc_io_pwrite_full(&f->io, fd, "abcd", 4, 0), 0);
	ck_assert_int_eq(bc_io_pwrite_full(&f->io, fd, "efgh", 4, 4), -ENOSPC);
	ck_assert_int_eq(bc_io_pwrite_full(&f->io, fd, "ijkl", 4, 8), 0);
	ck_assert_uint_eq(fio_hits(f), 1);
	char hit[100];
	fio_describe_hit(f, hit, sizeof(hit));
	ck_assert_str_eq(hit, "pwritev x");
	fio_arm(f, 1u << FIO_PWRITEV, 1, EIO, FIO_SHORT);
	ck_assert_int_eq(bc_io_pwrite_full(&f->io, fd, "0123456789", 10, 0), -EIO);
	char buf[16] = "";
	ck_assert_int_eq(pread(fd, buf, 12, 0), 12);
	ck_assert(!memcmp(buf, "01234\0\0\0ijkl", 12)); /* half went out, then EIO */
	fio_arm(f, FIO_ALL, 2, EIO, FIO_PERSIST);
	ck_assert_int_eq(bc_io_fdatasync(&f->io, fd), 0);
	ck_assert_int_eq(bc_io_fsync(&f->io, fd), -EIO);
	ck_assert_int_eq(bc_io_ftruncate(&f->io, fd, 0), -EIO);
	ck_assert_uint_eq(fio_seen(f), 3);
	fio_disarm(f);
	ck_assert_int_eq(bc_io_ftruncate(&f->io, fd, 0), 0);
	bc_io_close(&f->io, fd);
	close(dfd);
	fio_release(f);
	free(f);
	tu_tmpdir_done(d, 1);
}
END_TEST

static Suite *faultio_suite(void)
{
	Suite *s = suite_create("faultio");
	TCase *t = tcase_create("layer");
	tcase_add_test(t, faultio_layer);
	suite_add_tcase(s, t);
	t = tcase_create("faults");
	tcase_set_timeout(t, 300);
	tcase_add_loop_test(t, faults, 0, (int)NOPS);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(faultio_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
