// SPDX-License-Identifier: MIT
/*
 * Damage to a store at rest (docs/DURABILITY.md "Corruption"; FORMAT.md "Recovery").
 * A small store of several 4 KiB data files with hints is built once, with a history of
 * overwrites, deletes, batches, a chunked object and one 12 KiB inline value. Then, each on
 * a fresh copy: every byte of a middle data file is flipped (with its hint, and with no
 * hints so that recovery scans), every byte of its hint is flipped, a 4 KiB hole is
 * zeroed inside the large record, the middle file is truncated at every offset and the
 * newest file at every offset of its last record, a data file is duplicated under another id, and
 * the middle file is deleted. After each: bc_check reports a problem at the damaged file (data or
 * hint of that id); bc_open read-write succeeds; every key none of whose records lie in the damage
 * reads exactly its newest value (or is absent if deleted); a damaged key reads -ENOENT, -EBADMSG
 * or a value it really had; no key appears that was never written.
 * The walks are loops inside one test each (a fork per offset would be too slow);
 * failures are counted and the first ones printed.
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
#include "scan.h"
#include "testutil.h"

#define MAXKEYS 64
#define MAXHIST 16
#define MAXFILES 32
#define MAXRECS 512
#define BIG 100000
#define HOLE_VAL 12000

struct key {
	char name[16];
	int nhist;
	uint8_t *hist[MAXHIST]; /* every value ever written */
	size_t hlen[MAXHIST];
	bool present; /* final state */
	int final; /* index into hist */
};

struct file {
	char name[32];
	uint8_t *buf;
	size_t len;
};

struct rec {
	int file;
	uint64_t off, len;
	uint8_t type, flags;
	char key[16];
	uint64_t object;
	int batch; /* -1, or the batch's offset group (the BATCH record's offset) */
};

static struct key K[MAXKEYS];
static int nkeys;
static struct file F[MAXFILES];
static int nfiles;
static struct rec Rc[MAXRECS];
static int nrecs;
static char *base, work[4096];
static uint64_t iterations, failures;
static char first_failure[512];

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
	o.max_file_size = 4096;
	return o;
}

static struct key *key_get(const char *name)
{
	for (int i = 0; i < nkeys; i++)
		if (!strcmp(K[i].name, name))
			return &K[i];
	ck_assert_int_lt(nkeys, MAXKEYS);
	struct key *k = &K[nkeys++];
	snprintf(k->name, sizeof(k->name), "%s", name);
	return k;
}

static void hist_add(const char *name, const void *v, size_t n)
{
	struct key *k = key_get(name);
	ck_assert_int_lt(k->nhist, MAXHIST);
	k->hist[k->nhist] = malloc(n ? n : 1);
	memcpy(k->hist[k->nhist], v, n);
	k->hlen[k->nhist] = n;
	k->final = k->nhist++;
	k->present = true;
}

static void put(struct bc_db *db, const char *name, const void *v, size_t n)
{
	ck_assert_int_eq(bc_put(db, 0, name, strlen(name), v, n), 0);
	hist_add(name, v, n);
}

/* ---- building the pristine store ---- */

static int file_cmp(const void *a, const void *b)
{
	return strcmp(((const struct file *)a)->name, ((const struct file *)b)->name);
}

static void load_files(const char *dir)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 5 || n >= sizeof(F[0].name) ||
		    (strcmp(de->d_name + n - 5, ".data") && strcmp(de->d_name + n - 5, ".hint")))
			continue;
		ck_assert_int_lt(nfiles, MAXFILES);
		struct file *f = &F[nfiles++];
		memcpy(f->name, de->d_name, n + 1);
		char path[8400];
		snprintf(path, sizeof(path), "%s/%s", dir, f->name);
		f->buf = tu_read_file(path, &f->len);
		ck_assert_ptr_nonnull(f->buf);
	}
	closedir(d);
	qsort(F, (size_t)nfiles, sizeof(*F), file_cmp);
}

/* Index of the n-th data file (in id order); -1 counts from the end. */
static int data_file(int n)
{
	int idx[MAXFILES], m = 0;
	for (int i = 0; i < nfiles; i++)
		if (strstr(F[i].name, ".data"))
			idx[m++] = i;
	if (n < 0)
		n += m;
	ck_assert(n >= 0 && n < m);
	return idx[n];
}

/* The data file the walks damage: the one with the most records, not the first (so older
 * versions of its keys exist) nor the newest (so damage is not a torn tail). */
static int target_file(void)
{
	int best = -1, most = 0, first = data_file(0), last = data_file(-1);
	for (int i = 0; i < nfiles; i++) {
		if (!strstr(F[i].name, ".data") || i == first || i == last)
			continue;
		int n = 0;
		for (int j = 0; j < nrecs; j++)
			n += Rc[j].file == i;
		if (n > most) {
			most = n;
			best = i;
		}
	}
	ck_assert_int_ge(best, 0);
	return best;
}

static int hint_of(int data)
{
	char want[32];
	snprintf(want, sizeof(want), "%.16s.hint", F[data].name);
	for (int i = 0; i < nfiles; i++)
		if (!strcmp(F[i].name, want))
			return i;
	return -1;
}

/* Parse every data file of the pristine store into Rc[]. */
static void parse_records(void)
{
	for (int i = 0; i < nfiles; i++) {
		if (!strstr(F[i].name, ".data"))
			continue;
		char path[8400];
		snprintf(path, sizeof(path), "%s/pristine/%s", base, F[i].name);
		int fd = open(path, O_RDONLY);
		ck_assert_int_ge(fd, 0);
		struct bc_scan s;
		ck_assert_int_eq(bc_scan_init(&s, &bc_io_posix, fd, BC_FILE_HEADER_SIZE, F[i].len),
				 0);
		int batch = -1;
		for (;;) {
			struct bc_record rec;
			uint64_t off, len;
			bool end;
			int rc = bc_scan_next(&s, &rec, &off, &len, &end);
			ck_assert_int_ge(rc, 0);
			if (rc == BC_SCAN_END)
				break;
			ck_assert_int_eq(rc, BC_SCAN_RECORD);
			ck_assert_int_lt(nrecs, MAXRECS);
			struct rec *r = &Rc[nrecs++];
			memset(r, 0, sizeof(*r));
			r->file = i;
			r->off = off;
			r->len = len;
			r->type = rec.type;
			r->flags = rec.flags;
			r->object = rec.object;
			if (rec.klen && rec.klen < sizeof(r->key))
				memcpy(r->key, rec.key, rec.klen);
			if (rec.type == BC_REC_BATCH)
				batch = (int)off;
			else if (!(rec.flags & BC_RF_BATCH))
				batch = -1;
			r->batch =
				rec.type == BC_REC_BATCH || (rec.flags & BC_RF_BATCH) ? batch : -1;
		}
		bc_scan_release(&s);
		close(fd);
	}
}

static void build(void)
{
	nkeys = nfiles = nrecs = 0;
	iterations = failures = 0;
	memset(K, 0, sizeof(K));
	base = tu_tmpdir("corruption");
	char dir[4100];
	snprintf(dir, sizeof(dir), "%s/pristine", base);
	snprintf(work, sizeof(work), "%s/work", base);
	struct bc_options o = opts();
	struct bc_db *db;
	ck_assert_int_eq(bc_open(dir, &o, &db), 0);
	char name[16], val[160];
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 16; i++) {
			snprintf(name, sizeof(name), "k%02d", i);
			if ((i + round) % 5 == 0 && key_get(name)->present) {
				ck_assert_int_eq(bc_delete(db, 0, name, strlen(name)), 0);
				key_get(name)->present = false;
				continue;
			}
			size_t n = 20 + (size_t)((i * 37 + round * 11) % 120);
			memset(val, 'a' + round, n);
			snprintf(val, sizeof(val), "r%d-%s-", round, name);
			val[strlen(val)] = '.';
			put(db, name, val, n);
		}
		/* A batch: two puts and a delete, all or nothing. */
		struct bc_batch *b;
		ck_assert_int_eq(bc_batch_new(&b), 0);
		char bv[2][32];
		for (int j = 0; j < 2; j++) {
			snprintf(name, sizeof(name), "bat%d", j);
			snprintf(bv[j], sizeof(bv[j]), "batch-r%d-%d", round, j);
			ck_assert_int_eq(bc_batch_put(b, 0, name, strlen(name), bv[j],
						      strlen(bv[j]), NULL, 0, 0),
					 0);
		}
		ck_assert_int_eq(bc_batch_delete(b, 0, "k03", 3), 0);
		ck_assert_int_eq(bc_batch_commit(db, b), 0);
		bc_batch_free(b);
		for (int j = 0; j < 2; j++) {
			snprintf(name, sizeof(name), "bat%d", j);
			hist_add(name, bv[j], strlen(bv[j]));
		}
		key_get("k03")->present = false;
		if (round == 1) {
			uint8_t *big = malloc(BIG);
			struct tu_rng r = {.s = 42};
			tu_fill(&r, big, BIG);
			put(db, "big", big, BIG);
			free(big);
		}
		if (round == 2) {
			uint8_t *hv = malloc(HOLE_VAL);
			memset(hv, 'h', HOLE_VAL);
			put(db, "hole", hv, HOLE_VAL);
			free(hv);
		}
	}
	ck_assert_int_eq(bc_close(db), 0);
	load_files(dir);
	parse_records();
}

/* ---- damage and checks ---- */

static void note_failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note_failure(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!failures)
		snprintf(first_failure, sizeof(first_failure), "%s", msg);
	if (failures < 10 || getenv("BC_CORRUPTION_VERBOSE"))
		fprintf(stderr, "corruption: %s\n", msg);
	failures++;
}

/* Write the pristine store into work/, leaving out file skip (-1: none). */
static void restore(int skip)
{
	tu_rmtree(work);
	ck_assert_int_eq(mkdir(work, 0755), 0);
	for (int i = 0; i < nfiles; i++) {
		if (i == skip)
			continue;
		char path[8400];
		snprintf(path, sizeof(path), "%s/%s", work, F[i].name);
		ck_assert_int_eq(tu_write_file(path, F[i].buf, F[i].len), 0);
	}
}

static void write_work(const char *name, const void *buf, size_t len)
{
	char path[8400];
	snprintf(path, sizeof(path), "%s/%s", work, name);
	ck_assert_int_eq(tu_write_file(path, buf, len), 0);
}

static void remove_work(const char *name)
{
	char path[8400];
	snprintf(path, sizeof(path), "%s/%s", work, name);
	unlink(path);
}

static void touch_key(bool *touched, const char *name)
{
	for (int i = 0; i < nkeys; i++)
		if (!strcmp(K[i].name, name))
			touched[i] = true;
}

/* Keys with a record overlapping [d0, d1) of data file `file` (batches count whole). */
static void touched_by(int file, uint64_t d0, uint64_t d1, bool *touched)
{
	for (int i = 0; i < nrecs; i++) {
		struct rec *r = &Rc[i];
		if (r->file != file || r->off + r->len <= d0 || r->off >= d1)
			continue;
		if (r->batch >= 0) {
			for (int j = 0; j < nrecs; j++)
				if (Rc[j].file == file && Rc[j].batch == r->batch && Rc[j].key[0])
					touch_key(touched, Rc[j].key);
		} else if (r->key[0]) {
			touch_key(touched, r->key);
		} else {
			/* A chunk or truncation: the keys that link the object. */
			for (int j = 0; j < nrecs; j++)
				if (Rc[j].type == BC_REC_LINK && Rc[j].object == r->object)
					touch_key(touched, Rc[j].key);
		}
	}
}

struct check_ctx {
	const char *id; /* the damaged file's 16-digit id */
	bool hit;
};

static void on_problem(void *ctx, const char *file, uint64_t offset, const char *reason)
{
	struct check_ctx *c = ctx;
	(void)offset;
	(void)reason;
	if (!strncmp(file, c->id, 16))
		c->hit = true;
}

/* Is v the key's newest value with some whole 64 KiB chunks read as zeros? */
static bool lost_chunks_as_zeros(const struct key *k, const uint8_t *v, size_t n)
{
	if (!k->present || n != k->hlen[k->final] || n <= BC_CHUNK_SIZE)
		return false;
	const uint8_t *want = k->hist[k->final];
	bool zeroed = false;
	for (size_t at = 0; at < n; at += BC_CHUNK_SIZE) {
		size_t len = n - at < BC_CHUNK_SIZE ? n - at : BC_CHUNK_SIZE;
		if (!memcmp(v + at, want + at, len))
			continue;
		for (size_t i = 0; i < len; i++)
			if (v[at + i])
				return false;
		zeroed = true;
	}
	return zeroed;
}

static bool in_history(const struct key *k, const void *v, size_t n)
{
	for (int h = 0; h < k->nhist; h++)
		if (k->hlen[h] == n && !memcmp(k->hist[h], v, n))
			return true;
	return false;
}

/*
 * Check work/ after damage described by what to data file `file` (its id names it in
 * bc_check's reports), with the given keys touched.
 */
static void verify(const char *what, int file, const bool *touched, bool want_problem)
{
	iterations++;
	struct check_ctx c = {.id = F[file].name};
	uint64_t problems = 0;
	int rc = bc_check(work, on_problem, &c, &problems);
	if (rc)
		note_failure("%s: bc_check: %s", what, bc_strerror(rc));
	else if (want_problem && !c.hit)
		note_failure("%s: bc_check reported %llu problems, none at %.16s", what,
			     (unsigned long long)problems, F[file].name);

	struct bc_options o = opts();
	struct bc_db *db;
	rc = bc_open(work, &o, &db);
	if (rc) {
		note_failure("%s: open: %s", what, bc_strerror(rc));
		return;
	}
	for (int i = 0; i < nkeys; i++) {
		const struct key *k = &K[i];
		void *v = NULL;
		size_t n = 0;
		rc = bc_get(db, 0, k->name, strlen(k->name), 0, &v, &n);
		if (!touched[i]) {
			if (!k->present && rc != -ENOENT)
				note_failure("%s: untouched deleted key %s: %s", what, k->name,
					     rc ? bc_strerror(rc) : "has a value");
			else if (k->present &&
				 (rc || n != k->hlen[k->final] || memcmp(v, k->hist[k->final], n)))
				note_failure("%s: untouched key %s: %s", what, k->name,
					     rc ? bc_strerror(rc) : "wrong value");
		} else if (rc == 0 && !in_history(k, v, n) && lost_chunks_as_zeros(k, v, n)) {
			note_failure("%s: key %s reads with its lost chunks as zeros, rc 0", what,
				     k->name);
		} else if (rc == 0 && !in_history(k, v, n)) {
			note_failure("%s: damaged key %s returned a value it never had (%zu bytes)",
				     what, k->name, n);
		} else if (rc && rc != -ENOENT && rc != -EBADMSG) {
			note_failure("%s: damaged key %s: %s", what, k->name, bc_strerror(rc));
		}
		free(v);
	}
	struct bc_iter *it;
	ck_assert_int_eq(bc_iter_new(db, 0, NULL, 0, &it), 0);
	const void *key;
	size_t klen;
	while (bc_iter_next(it, &key, &klen, NULL) == 0) {
		bool known = false;
		for (int i = 0; i < nkeys && !known; i++)
			known = strlen(K[i].name) == klen && !memcmp(K[i].name, key, klen);
		if (!known)
			note_failure("%s: a key that was never written appeared (%zu bytes)", what,
				     klen);
	}
	bc_iter_free(it);
	bc_close(db);
}

static void finish(const char *what)
{
	fprintf(stderr, "%s: %llu damaged stores checked, %llu failures\n", what,
		(unsigned long long)iterations, (unsigned long long)failures);
	ck_assert_msg(failures == 0, "%llu failures; first: %s", (unsigned long long)failures,
		      first_failure);
	tu_tmpdir_done(base, 1);
}

/* BC_CORRUPTION_STRIDE=N visits every N-th offset (quick experiments); default 1. */
static size_t stride(void)
{
	const char *e = getenv("BC_CORRUPTION_STRIDE");
	return e && atoi(e) > 0 ? (size_t)atoi(e) : 1;
}

static void flip_walk(bool hints)
{
	build();
	int t = target_file();
	uint8_t *buf = malloc(F[t].len);
	for (size_t off = 0; off < F[t].len; off += stride()) {
		restore(-1);
		if (!hints)
			for (int i = 0; i < nfiles; i++)
				if (strstr(F[i].name, ".hint"))
					remove_work(F[i].name);
		memcpy(buf, F[t].buf, F[t].len);
		buf[off] ^= 0xff;
		write_work(F[t].name, buf, F[t].len);
		bool touched[MAXKEYS] = {0};
		if (off < BC_FILE_HEADER_SIZE)
			touched_by(t, 0, F[t].len, touched); /* a bad header loses the file */
		else
			touched_by(t, off, off + 1, touched);
		char what[96];
		snprintf(what, sizeof(what), "%s, byte %zu flipped%s", F[t].name, off,
			 hints ? "" : " (no hints)");
		verify(what, t, touched, true);
	}
	free(buf);
}

START_TEST(flip_every_byte_of_a_data_file)
{
	flip_walk(true);
	finish("flip data");
}
END_TEST

START_TEST(flip_every_byte_without_hints)
{
	flip_walk(false);
	finish("flip data, no hints");
}
END_TEST

START_TEST(flip_every_byte_of_a_hint_file)
{
	build();
	int t = target_file(), h = hint_of(t);
	ck_assert_int_ge(h, 0);
	uint8_t *buf = malloc(F[h].len);
	bool none[MAXKEYS] = {0};
	for (size_t off = 0; off < F[h].len; off++) {
		restore(-1);
		memcpy(buf, F[h].buf, F[h].len);
		buf[off] ^= 0xff;
		write_work(F[h].name, buf, F[h].len);
		char what[96];
		snprintf(what, sizeof(what), "%s, byte %zu flipped", F[h].name, off);
		verify(what, t, none, true); /* the hint is ignored: nothing is lost */
	}
	free(buf);
	finish("flip hint");
}
END_TEST

START_TEST(zero_a_hole_inside_a_record)
{
	build();
	struct rec *r = NULL;
	for (int i = 0; i < nrecs; i++)
		if (!strcmp(Rc[i].key, "hole"))
			r = &Rc[i];
	ck_assert_ptr_nonnull(r);
	for (int hints = 0; hints < 2; hints++) {
		restore(-1);
		if (!hints)
			remove_work(F[hint_of(r->file)].name);
		uint8_t *buf = malloc(F[r->file].len);
		memcpy(buf, F[r->file].buf, F[r->file].len);
		uint64_t at = r->off + r->len / 2 - 2048;
		memset(buf + at, 0, 4096);
		write_work(F[r->file].name, buf, F[r->file].len);
		free(buf);
		bool touched[MAXKEYS] = {0};
		touched_by(r->file, at, at + 4096, touched);
		verify(hints ? "4 KiB hole (hint kept)" : "4 KiB hole (no hint)", r->file, touched,
		       true);
	}
	finish("hole");
}
END_TEST

static void truncate_walk(int t, size_t from)
{
	for (size_t cut = from; cut < F[t].len; cut++) {
		restore(-1);
		write_work(F[t].name, F[t].buf, cut);
		bool touched[MAXKEYS] = {0};
		touched_by(t, cut < BC_FILE_HEADER_SIZE ? 0 : cut, F[t].len, touched);
		char what[96];
		snprintf(what, sizeof(what), "%s truncated at %zu", F[t].name, cut);
		/* A cut at a record boundary of a file whose hint covers less is undetectable;
		 * here every file has a hint covering all of it. */
		verify(what, t, touched, hint_of(t) >= 0);
	}
}

START_TEST(truncate_at_every_offset)
{
	build();
	truncate_walk(target_file(), 0);
	/* The newest file: every cut inside its last record is a torn tail. */
	int last = data_file(-1);
	size_t from = 0;
	for (int i = 0; i < nrecs; i++)
		if (Rc[i].file == last && Rc[i].off > from)
			from = (size_t)Rc[i].off;
	truncate_walk(last, from);
	finish("truncate");
}
END_TEST

/* The file's bytes followed by n zero bytes (what a writer's zero-fill leaves at a crash). */
static void write_with_zeros(int t, size_t keep, size_t n)
{
	uint8_t *buf = calloc(1, keep + n);
	ck_assert_ptr_nonnull(buf);
	memcpy(buf, F[t].buf, keep);
	write_work(F[t].name, buf, keep + n);
	free(buf);
}

static void work_stats(uint64_t *torn, uint64_t *damaged)
{
	struct bc_options o = opts();
	struct bc_db *db;
	ck_assert_int_eq(bc_open(work, &o, &db), 0);
	struct bc_stats s;
	ck_assert_int_eq(bc_stats_get(db, &s), 0);
	*torn = s.recovered_torn_bytes;
	*damaged = s.recovered_damaged_records;
	bc_stats_release(&s);
	ck_assert_int_eq(bc_close(db), 0);
}

START_TEST(zero_filled_tails)
{
	build();
	static const size_t zeros[] = {1, 31, 4096, (1u << 20) + 5};
	int files[2] = {target_file(), data_file(-1)};
	bool none[MAXKEYS] = {0};
	for (int f = 0; f < 2; f++) {
		int t = files[f];
		for (size_t z = 0; z < sizeof(zeros) / sizeof(zeros[0]); z++) {
			for (int hints = 0; hints < 2; hints++) {
				char what[96];
				snprintf(what, sizeof(what), "%s + %zu zero bytes%s", F[t].name,
					 zeros[z], hints ? "" : " (no hint)");
				restore(-1);
				if (!hints)
					remove_work(F[hint_of(t)].name);
				write_with_zeros(t, F[t].len, zeros[z]);
				uint64_t problems = 1;
				ck_assert_int_eq(bc_check(work, NULL, NULL, &problems), 0);
				if (problems)
					note_failure("%s: bc_check reported %llu problems", what,
						     (unsigned long long)problems);
				uint64_t torn, damaged;
				work_stats(&torn, &damaged);
				if (torn || damaged)
					note_failure(
						"%s: open counted %llu torn bytes, %llu damaged",
						what, (unsigned long long)torn,
						(unsigned long long)damaged);
				/* A read-write open cuts the zeros of the newest file, the one
				 * it writes to; an older file keeps them until a merge. */
				size_t want = F[t].len + (t == data_file(-1) ? 0 : zeros[z]);
				char path[8400];
				struct stat st;
				snprintf(path, sizeof(path), "%s/%s", work, F[t].name);
				if (stat(path, &st) || (size_t)st.st_size != want)
					note_failure("%s: %lld bytes after open, not %zu", what,
						     (long long)st.st_size, want);
				verify(what, t, none, false);
			}
		}
	}
	/* A crash in the middle of an append into the zeros: the newest file has no
	 * finished hint, and only the record's bytes up to the last non-zero one are torn. */
	int last = data_file(-1);
	struct rec *r = NULL;
	for (int i = 0; i < nrecs; i++)
		if (Rc[i].file == last && (!r || Rc[i].off > r->off))
			r = &Rc[i];
	ck_assert_ptr_nonnull(r);
	size_t cut = (size_t)(r->off + r->len / 2), data_end = cut;
	while (data_end > r->off && !F[last].buf[data_end - 1])
		data_end--;
	ck_assert_uint_gt(data_end, r->off);
	/* A torn batch member tears its whole batch: from the BATCH record on. */
	uint64_t torn_from = r->batch >= 0 ? (uint64_t)r->batch : r->off;
	restore(-1);
	remove_work(F[hint_of(last)].name);
	write_with_zeros(last, cut, 8192);
	uint64_t torn, damaged;
	work_stats(&torn, &damaged);
	ck_assert_uint_eq(torn, data_end - torn_from);
	ck_assert_uint_eq(damaged, 0);
	restore(-1);
	remove_work(F[hint_of(last)].name);
	write_with_zeros(last, cut, 8192);
	bool touched[MAXKEYS] = {0};
	touched_by(last, torn_from, F[last].len, touched);
	verify("torn record, then zeros", last, touched, true);
	finish("zero tails");
}
END_TEST

START_TEST(duplicate_a_file_under_another_id)
{
	build();
	int t = target_file();
	static const char *const ids[] = {"0000000000020001", "00000000ffff0000"};
	bool none[MAXKEYS] = {0};
	for (int i = 0; i < 2; i++) {
		for (int with_hint = 0; with_hint < 2; with_hint++) {
			restore(-1);
			char name[40];
			snprintf(name, sizeof(name), "%s.data", ids[i]);
			write_work(name, F[t].buf, F[t].len);
			if (with_hint) {
				int h = hint_of(t);
				snprintf(name, sizeof(name), "%s.hint", ids[i]);
				write_work(name, F[h].buf, F[h].len);
			}
			char what[96];
			snprintf(what, sizeof(what), "%s copied to %s%s", F[t].name, ids[i],
				 with_hint ? " with its hint" : "");
			/* The copy's header names another id: it is ignored, nothing changes. */
			struct check_ctx c = {.id = ids[i]};
			uint64_t problems = 0;
			ck_assert_int_eq(bc_check(work, on_problem, &c, &problems), 0);
			if (!c.hit)
				note_failure("%s: bc_check does not report the copy", what);
			verify(what, t, none, false);
		}
	}
	finish("duplicate");
}
END_TEST

START_TEST(delete_a_middle_file)
{
	build();
	int t = target_file();
	bool touched[MAXKEYS] = {0};
	touched_by(t, 0, F[t].len, touched);
	restore(t);
	/* The format has no list of files: a lost data file leaves no trace but its hint,
	 * which bc_check ignores (FORMAT.md: "ignored if that file is missing"). */
	struct check_ctx c = {.id = F[t].name};
	uint64_t problems = 0;
	ck_assert_int_eq(bc_check(work, on_problem, &c, &problems), 0);
	if (!c.hit)
		note_failure("bc_check is silent about %.16s.hint whose data file is gone",
			     F[t].name);
	verify("middle data file deleted (hint left behind)", t, touched, false);
	restore(t);
	remove_work(F[hint_of(t)].name);
	verify("middle data file and hint deleted", t, touched, false);
	finish("delete");
}
END_TEST

/*
 * Damage to the chunks of a chunked value whose LINK lives in another file: the value
 * must read as missing, corrupt or an older value, never with the lost chunks as zeros.
 */
START_TEST(damage_to_an_objects_chunks)
{
	build();
	int cf = -1, lf = -1;
	uint64_t coff = 0;
	for (int i = 0; i < nrecs; i++) {
		if (Rc[i].type == BC_REC_LINK && !strcmp(Rc[i].key, "big"))
			lf = Rc[i].file;
		if (Rc[i].type == BC_REC_CHUNK && cf < 0) {
			cf = Rc[i].file;
			coff = Rc[i].off;
		}
	}
	ck_assert(cf >= 0 && lf >= 0);
	struct {
		const char *what;
		uint64_t at;
		bool hint;
	} cases[] = {
		{"chunk file header flipped", 0, true},
		{"chunk record header flipped, no hint", coff + 4, false},
		{"chunk data flipped, no hint", coff + 100, false},
		{"chunk data flipped, hint kept", coff + 100, true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		restore(-1);
		if (!cases[i].hint)
			remove_work(F[hint_of(cf)].name);
		uint8_t *buf = malloc(F[cf].len);
		memcpy(buf, F[cf].buf, F[cf].len);
		buf[cases[i].at] ^= 0xff;
		write_work(F[cf].name, buf, F[cf].len);
		free(buf);
		bool touched[MAXKEYS] = {0};
		if (cases[i].at < BC_FILE_HEADER_SIZE)
			touched_by(cf, 0, F[cf].len, touched);
		else
			touched_by(cf, cases[i].at, cases[i].at + 1, touched);
		char what[160];
		snprintf(what, sizeof(what), "%s (chunks in %.16s, link in %.16s)", cases[i].what,
			 F[cf].name, F[lf].name);
		verify(what, cf, touched, true);
	}
	finish("chunks");
}
END_TEST

/* ---- lost chunks: holes of objects that may have lost a chunk read as errors ---- */

#define C BC_CHUNK_SIZE

/* Where a record lives in a store directory: data file name and offset. */
struct where {
	char file[32];
	uint64_t off;
	bool found;
};

/*
 * Find, in replay order, the last CHUNK record (index idx) of the object the newest LINK
 * of key links to. The store in dir must be undamaged.
 */
static struct where find_chunk(const char *dir, const char *key, uint32_t idx)
{
	struct where w = {0};
	uint64_t object = 0;
	for (int pass = 0; pass < 2; pass++) {
		DIR *d = opendir(dir);
		ck_assert_ptr_nonnull(d);
		char names[MAXFILES * 4][32];
		int n = 0;
		struct dirent *de;
		while ((de = readdir(d))) {
			size_t l = strlen(de->d_name);
			if (l == 21 && !strcmp(de->d_name + 16, ".data")) {
				ck_assert_int_lt(n, MAXFILES * 4);
				memcpy(names[n++], de->d_name, l + 1);
			}
		}
		closedir(d);
		qsort(names, (size_t)n, sizeof(names[0]),
		      (int (*)(const void *, const void *))strcmp);
		for (int i = 0; i < n; i++) {
			char path[8400];
			snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
			int fd = open(path, O_RDONLY);
			ck_assert_int_ge(fd, 0);
			struct stat st;
			ck_assert_int_eq(fstat(fd, &st), 0);
			struct bc_scan sc;
			ck_assert_int_eq(bc_scan_init(&sc, &bc_io_posix, fd, BC_FILE_HEADER_SIZE,
						      (uint64_t)st.st_size),
					 0);
			struct bc_record rec;
			uint64_t off, len;
			bool end;
			while (bc_scan_next(&sc, &rec, &off, &len, &end) == BC_SCAN_RECORD) {
				if (!pass && rec.type == BC_REC_LINK && rec.klen == strlen(key) &&
				    !memcmp(rec.key, key, rec.klen))
					object = rec.object;
				if (pass && rec.type == BC_REC_CHUNK && rec.object == object &&
				    rec.index == idx) {
					size_t nl = strlen(names[i]);
					ck_assert_uint_lt(nl, sizeof(w.file));
					memcpy(w.file, names[i], nl + 1);
					w.off = off;
					w.found = true;
				}
			}
			bc_scan_release(&sc);
			close(fd);
		}
	}
	ck_assert_msg(w.found, "no chunk %u of %s", idx, key);
	return w;
}

/* Flip one byte of a file (a record header's type byte makes the header implausible). */
static void flip_byte(const char *dir, const char *file, uint64_t off)
{
	char path[8400];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	size_t len;
	uint8_t *b = tu_read_file(path, &len);
	ck_assert_ptr_nonnull(b);
	ck_assert_uint_lt(off, len);
	b[off] ^= 0xff;
	ck_assert_int_eq(tu_write_file(path, b, len), 0);
	free(b);
}

static void remove_hints(const char *dir)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l > 5 && !strcmp(de->d_name + l - 5, ".hint")) {
			char path[8400];
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			unlink(path);
		}
	}
	closedir(d);
}

/* bc_read of len bytes at off of key: rc, and whether they were all zeros. */
static int read_range(struct bc_db *db, const char *key, uint64_t off, size_t len, bool *zeros)
{
	uint8_t *b = malloc(len);
	size_t got = 0;
	int rc = bc_read(db, 0, key, strlen(key), off, b, len, &got);
	*zeros = !rc && got == len;
	for (size_t i = 0; *zeros && i < len; i++)
		*zeros = !b[i];
	free(b);
	return rc;
}

struct named {
	const char *keys[4]; /* keys that must be named in a problem */
	bool seen[4];
};

static void on_named(void *ctx, const char *file, uint64_t offset, const char *reason)
{
	struct named *n = ctx;
	(void)file;
	(void)offset;
	if (getenv("BC_TEST_VERBOSE"))
		fprintf(stderr, "check: %s:%llu: %s\n", file, (unsigned long long)offset, reason);
	for (int i = 0; i < 4 && n->keys[i]; i++) {
		char want[64];
		snprintf(want, sizeof(want), "key \"%s\" ", n->keys[i]);
		if (strstr(reason, want))
			n->seen[i] = true;
	}
}

/* bc_check finds problems and names each key in keys (NULL-terminated, at most 4). */
static void check_names(const char *dir, const char *k0, const char *k1)
{
	struct named n = {.keys = {k0, k1}};
	uint64_t problems = 0;
	ck_assert_int_eq(bc_check(dir, on_named, &n, &problems), 0);
	ck_assert_uint_gt(problems, 0);
	for (int i = 0; i < 4 && n.keys[i]; i++)
		ck_assert_msg(n.seen[i], "bc_check does not name key %s", n.keys[i]);
}

/* Every read the test makes of the damaged store, after each reopen. */
static void expect_lost(struct bc_db *db)
{
	void *v = NULL;
	size_t n = 0;
	bool z;
	/* A fresh object whose chunk 1 record lost its header, LINK in a later file. */
	ck_assert_int_eq(bc_get(db, 0, "big", 3, 0, &v, &n), -EBADMSG);
	ck_assert_int_eq(read_range(db, "big", C + 10, 100, &z), -EBADMSG);
	ck_assert_int_eq(read_range(db, "big", 10, 100, &z), 0); /* chunk 0 is intact */
	/* An in-place write into a hole of a linked object (no LINK follows it). */
	ck_assert_int_eq(read_range(db, "inplace", 0, 100, &z), -EBADMSG);
	ck_assert_int_eq(read_range(db, "inplace", 3 * C, 4, &z), 0);
	/* The accepted false positive: a sparse object as old as the damage. */
	ck_assert_int_eq(read_range(db, "sparse", 0, 100, &z), -EBADMSG);
	ck_assert_int_eq(read_range(db, "sparse", 3 * C, 4, &z), 0);
	/* A partial rewrite of a lost chunk must not turn it into zeros. */
	ck_assert_int_eq(bc_write(db, 0, "inplace", 7, 100, "x", 1), -EBADMSG);
	ck_assert_int_eq(read_range(db, "inplace", 0, 100, &z), -EBADMSG);
}

static struct bc_options lost_opts(void)
{
	struct bc_options o = opts();
	o.max_file_size = 4096; /* a file per chunk: rotations between chunks and LINKs */
	return o;
}

START_TEST(hole_of_a_suspect_object_reads_as_an_error)
{
	char *dir = tu_tmpdir("lostchunk");
	struct bc_options o = lost_opts();
	struct bc_db *db;
	ck_assert_int_eq(bc_open(dir, &o, &db), 0);
	ck_assert_int_eq(bc_write(db, 0, "sparse", 6, 3 * C, "tail", 4), 0);
	ck_assert_int_eq(bc_write(db, 0, "inplace", 7, 3 * C, "tail", 4), 0);
	uint8_t *big = malloc(3 * C);
	struct tu_rng r = {.s = 7};
	tu_fill(&r, big, 3 * C);
	ck_assert_int_eq(bc_put(db, 0, "big", 3, big, 3 * C), 0);
	uint8_t *q = malloc(C);
	memset(q, 'q', C);
	ck_assert_int_eq(bc_write(db, 0, "inplace", 7, 0, q, C), 0);
	ck_assert_int_eq(bc_put(db, 0, "after", 5, "x", 1), 0); /* the damage is not a tail */
	ck_assert_int_eq(bc_close(db), 0);

	struct where wb = find_chunk(dir, "big", 1), wi = find_chunk(dir, "inplace", 0);
	remove_hints(dir); /* recovery scans, and cannot tell whose chunks were lost */
	flip_byte(dir, wb.file, wb.off + 4);
	flip_byte(dir, wi.file, wi.off + 4);

	ck_assert_int_eq(bc_open(dir, &o, &db), 0);
	expect_lost(db);
	/* Objects made after the damage are not suspect: their holes read as zeros. */
	bool z;
	ck_assert_int_eq(bc_write(db, 0, "fresh", 5, 2 * C, "x", 1), 0);
	ck_assert_int_eq(read_range(db, "fresh", 0, 2 * C, &z), 0);
	ck_assert(z);
	ck_assert_int_eq(bc_close(db), 0);
	check_names(dir, "big", "inplace");

	/* Merges must not launder the damage: the evidence stays, reads keep failing. */
	for (int round = 0; round < 2; round++) {
		ck_assert_int_eq(bc_open(dir, &o, &db), 0);
		expect_lost(db);
		ck_assert_int_eq(read_range(db, "fresh", 0, 2 * C, &z), 0);
		ck_assert(z);
		ck_assert_int_eq(bc_put(db, 0, "after", 5, "y", 1), 0);
		ck_assert_int_eq(bc_merge(db, true), 0);
		expect_lost(db);
		ck_assert_int_eq(bc_close(db), 0);
		check_names(dir, "big", "inplace");
	}
	free(big);
	free(q);
	tu_tmpdir_done(dir, 1);
}
END_TEST

START_TEST(damage_in_the_newest_file_stays_visible)
{
	char *dir = tu_tmpdir("lostnewest");
	struct bc_options o = lost_opts();
	o.max_file_size = 1 << 20; /* one file */
	struct bc_db *db;
	ck_assert_int_eq(bc_open(dir, &o, &db), 0);
	uint8_t *big = calloc(1, 3 * C);
	memset(big, 'b', 3 * C);
	ck_assert_int_eq(bc_put(db, 0, "big", 3, big, 3 * C), 0);
	ck_assert_int_eq(bc_put(db, 0, "after", 5, "x", 1), 0);
	ck_assert_int_eq(bc_close(db), 0);
	struct where wb = find_chunk(dir, "big", 1);
	remove_hints(dir);
	flip_byte(dir, wb.file, wb.off + 4);
	/* The first open scans the damage; later opens must not lose it to a hint of the
	 * file written at close, nor to appends after it. */
	for (int round = 0; round < 3; round++) {
		ck_assert_int_eq(bc_open(dir, &o, &db), 0);
		void *v = NULL;
		size_t n = 0;
		ck_assert_int_eq(bc_get(db, 0, "big", 3, 0, &v, &n), -EBADMSG);
		ck_assert_int_eq(bc_put(db, 0, "later", 5, "y", 1), 0);
		bool z;
		ck_assert_int_eq(bc_write(db, 0, "fresh", 5, 2 * C, "x", 1), 0);
		ck_assert_int_eq(read_range(db, "fresh", 0, C, &z), 0);
		ck_assert(z);
		ck_assert_int_eq(bc_close(db), 0);
		check_names(dir, "big", NULL);
	}
	free(big);
	tu_tmpdir_done(dir, 1);
}
END_TEST

START_TEST(holes_of_an_undamaged_store_read_as_zeros)
{
	char *dir = tu_tmpdir("sparse");
	struct bc_options o = lost_opts();
	struct bc_db *db;
	ck_assert_int_eq(bc_open(dir, &o, &db), 0);
	ck_assert_int_eq(bc_write(db, 0, "sparse", 6, 3 * C, "tail", 4), 0);
	ck_assert_int_eq(bc_truncate(db, 0, "grown", 5, 0), -ENOENT);
	ck_assert_int_eq(bc_put(db, 0, "grown", 5, "abc", 3), 0);
	ck_assert_int_eq(bc_truncate(db, 0, "grown", 5, 5 * C), 0);
	ck_assert_int_eq(bc_close(db), 0);
	for (int round = 0; round < 3; round++) {
		if (round == 1)
			remove_hints(dir);
		ck_assert_int_eq(bc_open(dir, &o, &db), 0);
		bool z;
		ck_assert_int_eq(read_range(db, "sparse", 0, 3 * C, &z), 0);
		ck_assert(z);
		ck_assert_int_eq(read_range(db, "grown", 3, 5 * C - 3, &z), 0);
		ck_assert(z);
		if (round == 2)
			ck_assert_int_eq(bc_merge(db, true), 0);
		ck_assert_int_eq(bc_close(db), 0);
		uint64_t problems = 1;
		ck_assert_int_eq(bc_check(dir, NULL, NULL, &problems), 0);
		ck_assert_uint_eq(problems, 0);
	}
	tu_tmpdir_done(dir, 1);
}
END_TEST

/*
 * Damage inside a chunk's data that open does not see (the hint is kept): every path that
 * reads the chunk fails with -EBADMSG rather than use the bytes. Whole-chunk reads (straight
 * into the caller's buffer), partial reads, and the reads of partial overwrites and of
 * truncations, which would otherwise write the damage back under a fresh CRC; with mapped
 * reads and without (a short last chunk is read from the mapping).
 */
START_TEST(damaged_chunk_is_never_used)
{
	for (int mapped = 0; mapped < 2; mapped++) {
		char *dir = tu_tmpdir("chunkuse");
		struct bc_options o = opts();
		o.max_file_size = 1 << 20;
		o.mmap_disable = !mapped;
		struct bc_db *db;
		uint8_t *big = malloc(2 * C + 1000);
		struct tu_rng r = {.s = 11};
		tu_fill(&r, big, 2 * C + 1000);
		ck_assert_int_eq(bc_open(dir, &o, &db), 0);
		ck_assert_int_eq(bc_put(db, 0, "big", 3, big, 2 * C + 1000), 0);
		ck_assert_int_eq(bc_close(db), 0);
		struct where w1 = find_chunk(dir, "big", 1), w2 = find_chunk(dir, "big", 2);
		flip_byte(dir, w1.file, w1.off + BC_CHUNK_HEAD + 100);
		flip_byte(dir, w2.file, w2.off + BC_CHUNK_HEAD + 100);

		ck_assert_int_eq(bc_open(dir, &o, &db), 0);
		bool z;
		ck_assert_int_eq(read_range(db, "big", C, C, &z), -EBADMSG);
		ck_assert_int_eq(read_range(db, "big", C + 10, 100, &z), -EBADMSG);
		ck_assert_int_eq(read_range(db, "big", 2 * C, 1000, &z), -EBADMSG);
		ck_assert_int_eq(read_range(db, "big", 2 * C + 10, 10, &z), -EBADMSG);
		ck_assert_int_eq(bc_write(db, 0, "big", 3, C + 10, "hello", 5), -EBADMSG);
		ck_assert_int_eq(bc_write(db, 0, "big", 3, 2 * C + 10, "hello", 5), -EBADMSG);
		ck_assert_int_eq(bc_truncate(db, 0, "big", 3, C + 100), -EBADMSG);
		ck_assert_int_eq(bc_truncate(db, 0, "big", 3, 2 * C + 500), -EBADMSG);
		ck_assert_int_eq(read_range(db, "big", C, C, &z), -EBADMSG);
		/* The undamaged chunk still takes a partial overwrite. */
		ck_assert_int_eq(bc_write(db, 0, "big", 3, 10, "hello", 5), 0);
		memcpy(big + 10, "hello", 5);
		uint8_t got[200];
		size_t n = 0;
		ck_assert_int_eq(bc_read(db, 0, "big", 3, 0, got, sizeof(got), &n), 0);
		ck_assert_uint_eq(n, sizeof(got));
		ck_assert_int_eq(memcmp(got, big, sizeof(got)), 0);
		ck_assert_int_eq(bc_close(db), 0);
		free(big);
		tu_tmpdir_done(dir, 1);
	}
}
END_TEST

static Suite *corruption_suite(void)
{
	Suite *s = suite_create("corruption");
	TCase *t = tcase_create("damage at rest");
	tcase_set_timeout(t, 600);
	tcase_add_test(t, flip_every_byte_of_a_data_file);
	tcase_add_test(t, flip_every_byte_without_hints);
	tcase_add_test(t, flip_every_byte_of_a_hint_file);
	tcase_add_test(t, zero_a_hole_inside_a_record);
	tcase_add_test(t, truncate_at_every_offset);
	tcase_add_test(t, zero_filled_tails);
	tcase_add_test(t, duplicate_a_file_under_another_id);
	tcase_add_test(t, delete_a_middle_file);
	tcase_add_test(t, damage_to_an_objects_chunks);
	tcase_add_test(t, damaged_chunk_is_never_used);
	suite_add_tcase(s, t);
	TCase *l = tcase_create("lost chunks");
	tcase_set_timeout(l, 120);
	tcase_add_test(l, hole_of_a_suspect_object_reads_as_an_error);
	tcase_add_test(l, damage_in_the_newest_file_stays_visible);
	tcase_add_test(l, holes_of_an_undamaged_store_read_as_zeros);
	suite_add_tcase(s, l);
	return s;
}

int main(void)
{
	if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	SRunner *sr = srunner_create(corruption_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
