// SPDX-License-Identifier: MIT
/*
 * Unit tests for hint.c: the entry codec and its rules, the writer and the loader through
 * real files in a temporary directory. A hint is trusted only as a whole, so every damage
 * test checks two things: the load fails with -EBADMSG, and the callback was never called.
 * Hints that are structurally wrong but carry a correct CRC are built by hand
 * (build_hint), so the structure checks are tested apart from the CRC.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "hint.h"
#include "record.h"
#include "testutil.h"

#define FILE_ID UINT64_C(0x30000)
#define NAME "0000000000030000.hint"
#define T0 UINT64_C(1700000000000000000)

/* The temporary directory of the running test, named in failure messages. */
static char *tmpdir;
static int dirfd_;

#define CHECK(cond) ck_assert_msg(cond, "%s (dir %s)", #cond, tmpdir ? tmpdir : "-")

static void dir_setup(void)
{
	tmpdir = tu_tmpdir("hint");
	dirfd_ = open(tmpdir, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dirfd_, 0);
}

/* Only reached when the test passed: a failed assertion ends the test before it. */
static void dir_done(void)
{
	close(dirfd_);
	tu_tmpdir_done(tmpdir, 1);
	tmpdir = NULL;
}

static bool exists(const char *name)
{
	return faccessat(dirfd_, name, F_OK, 0) == 0;
}

/* ---- Sample entries ---- */

static const uint8_t long_key[BC_MAX_KEY] = {'L'};

/* A small hint's worth of entries, one of each type, offsets as a data file would have
 * them (a 48-byte BATCH record sits between the DELETE and the LINK). */
static const struct bc_hint_entry small[] = {
	{.offset = 48,
	 .type = BC_REC_PUT,
	 .space = 0,
	 .klen = 5,
	 .mlen = 2,
	 .vlen = 3,
	 .expire_s = 77,
	 .key = (const uint8_t *)"alpha"},
	{.offset = 90,
	 .type = BC_REC_DELETE,
	 .space = 1,
	 .klen = 4,
	 .key = (const uint8_t *)"beta"},
	{.offset = 174,
	 .type = BC_REC_LINK,
	 .space = 2,
	 .klen = 3,
	 .mlen = 1,
	 .vlen = 16,
	 .object = 1,
	 .size = 70000,
	 .key = (const uint8_t *)"big"},
	{.offset = 226,
	 .type = BC_REC_CHUNK,
	 .vlen = 16 + 100,
	 .object = 1,
	 .index = 1,
	 .dlen = 100},
	{.offset = 374, .type = BC_REC_TRUNC, .vlen = 16, .object = 1, .size = 65536},
};
#define NSMALL (int)(sizeof(small) / sizeof(small[0]))
#define SMALL_COVERED 422

static size_t small_hint_size(void)
{
	size_t n = BC_FILE_HEADER_SIZE + BC_HINT_TRAILER_SIZE;
	for (int i = 0; i < NSMALL; i++)
		n += bc_hint_entry_size(&small[i]);
	return n;
}

static void assert_entry_eq(const struct bc_hint_entry *a, const struct bc_hint_entry *b)
{
	ck_assert_uint_eq(a->offset, b->offset);
	ck_assert_uint_eq(a->type, b->type);
	ck_assert_uint_eq(a->space, b->space);
	ck_assert_uint_eq(a->klen, b->klen);
	ck_assert_uint_eq(a->mlen, b->mlen);
	ck_assert_uint_eq(a->vlen, b->vlen);
	ck_assert_uint_eq(a->expire_s, b->expire_s);
	ck_assert_uint_eq(a->object, b->object);
	ck_assert_uint_eq(a->size, b->size);
	ck_assert_uint_eq(a->index, b->index);
	ck_assert_uint_eq(a->dlen, b->dlen);
	if (a->klen)
		ck_assert_int_eq(memcmp(a->key, b->key, a->klen), 0);
}

/* Collects what bc_hint_load hands out (keys copied: they are valid during the call). */
struct collect {
	int n, cap;
	struct bc_hint_entry *e;
	int stop_at; /* return 123 from this call (1-based); 0 = never */
};

static int collect_fn(void *ctx, const struct bc_hint_entry *e)
{
	struct collect *c = ctx;

	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 64;
		c->e = realloc(c->e, (size_t)c->cap * sizeof(*c->e));
		ck_assert_ptr_nonnull(c->e);
	}
	struct bc_hint_entry *d = &c->e[c->n++];
	*d = *e;
	uint8_t *k = malloc(e->klen + 1u);
	ck_assert_ptr_nonnull(k);
	if (e->klen)
		memcpy(k, e->key, e->klen);
	d->key = k;
	return c->stop_at && c->n == c->stop_at ? 123 : 0;
}

static void collect_release(struct collect *c)
{
	for (int i = 0; i < c->n; i++)
		free((void *)c->e[i].key);
	free(c->e);
	memset(c, 0, sizeof(*c));
}

static int write_small(const struct bc_io *io)
{
	struct bc_hint_writer *w;
	int rc = bc_hint_writer_open(io, dirfd_, NAME, FILE_ID, 9, &w);
	if (rc)
		return rc;
	for (int i = 0; i < NSMALL; i++) {
		rc = bc_hint_writer_add(w, &small[i]);
		if (rc) {
			bc_hint_writer_abort(w);
			return rc;
		}
	}
	return bc_hint_writer_finish(w, SMALL_COVERED);
}

static char *path_of(const char *name)
{
	size_t n = strlen(tmpdir) + strlen(name) + 2;
	char *p = malloc(n);
	ck_assert_ptr_nonnull(p);
	snprintf(p, n, "%s/%s", tmpdir, name);
	return p;
}

/* Resume NAME; assert it fails with want, leaves no tmp file and leaves NAME as it was. */
static void assert_resume_fails(const struct bc_io *io, int want)
{
	struct bc_hint_writer *w = (void *)1;
	char *p = path_of(NAME);
	size_t before = 0, after = 0;
	uint8_t *a = tu_read_file(p, &before);
	int rc = bc_hint_writer_resume(io, dirfd_, NAME, FILE_ID, &w);
	uint8_t *b = tu_read_file(p, &after);

	ck_assert_msg(rc == want, "resume returned %d, want %d (dir %s)", rc, want, tmpdir);
	CHECK(w == NULL);
	CHECK(!exists(NAME ".tmp"));
	CHECK((a == NULL) == (b == NULL) && before == after);
	CHECK(!a || memcmp(a, b, before) == 0);
	free(a);
	free(b);
	free(p);
}

/* Load NAME; assert it fails with want and the callback saw nothing. */
static void assert_load_fails(int want)
{
	struct collect c = {0};
	uint64_t covered = 12345;
	int rc = bc_hint_load(&bc_io_posix, dirfd_, NAME, FILE_ID, UINT64_MAX, collect_fn, &c,
			      &covered);
	ck_assert_msg(rc == want, "load returned %d, want %d (dir %s)", rc, want, tmpdir);
	ck_assert_msg(c.n == 0, "callback called %d times (dir %s)", c.n, tmpdir);
	ck_assert_uint_eq(covered, 12345);
	collect_release(&c);
	/* In one pass the callback may have seen entries, but the verdict is the same. */
	rc = bc_hint_stream(&bc_io_posix, dirfd_, NAME, FILE_ID, UINT64_MAX, collect_fn, &c,
			    &covered);
	ck_assert_msg(rc == want, "stream returned %d, want %d (dir %s)", rc, want, tmpdir);
	ck_assert_uint_eq(covered, 12345);
	collect_release(&c);
}

/* ---- Entry codec ---- */

START_TEST(entry_round_trip)
{
	uint8_t buf[256];
	struct bc_hint_entry e;
	size_t used;

	size_t n = bc_hint_entry_encode(buf, &small[_i]);
	ck_assert_uint_eq(n, bc_hint_entry_size(&small[_i]));
	ck_assert_uint_eq(
		n,
		24 + (small[_i].type == BC_REC_PUT || small[_i].type == BC_REC_DELETE ? 0 : 16) +
			small[_i].klen);
	ck_assert_int_eq(bc_hint_entry_decode(buf, n, &e, &used), 0);
	ck_assert_uint_eq(used, n);
	assert_entry_eq(&e, &small[_i]);
	ck_assert_ptr_eq(e.key, buf + n - small[_i].klen);
	ck_assert_int_eq(bc_hint_entry_decode(buf, sizeof(buf), &e, &used), 0);
	ck_assert_uint_eq(used, n);

	for (size_t cut = 0; cut < n; cut++) {
		uint8_t *part = malloc(cut ? cut : 1);
		ck_assert_ptr_nonnull(part);
		memcpy(part, buf, cut);
		ck_assert_int_eq(bc_hint_entry_decode(part, cut, &e, &used), -ENODATA);
		free(part);
	}
}
END_TEST

START_TEST(entry_longest_key)
{
	static uint8_t buf[BC_HINT_ENTRY_SIZE + 16 + BC_MAX_KEY];
	struct bc_hint_entry in = {.offset = 48,
				   .type = BC_REC_LINK,
				   .klen = BC_MAX_KEY,
				   .mlen = BC_MAX_META,
				   .vlen = 16,
				   .object = 3,
				   .size = 1,
				   .key = long_key};
	struct bc_hint_entry e;
	size_t used;

	ck_assert_uint_eq(bc_hint_entry_encode(buf, &in), sizeof(buf));
	ck_assert_int_eq(bc_hint_entry_decode(buf, sizeof(buf), &e, &used), 0);
	ck_assert_uint_eq(used, sizeof(buf));
	assert_entry_eq(&e, &in);
}
END_TEST

/* One broken rule each; the encoder writes whatever it is given. */
static const struct bc_hint_entry bad_entries[] = {
	{.offset = 48, .type = 0, .klen = 1, .key = (const uint8_t *)"k"},
	{.offset = 48, .type = 7, .klen = 1, .key = (const uint8_t *)"k"},
	{.offset = 48, .type = BC_REC_BATCH, .vlen = 16},
	{.offset = 48, .type = BC_REC_PUT, .klen = 0},
	{.offset = 48,
	 .type = BC_REC_PUT,
	 .klen = 1,
	 .vlen = BC_MAX_INLINE + 1,
	 .key = (const uint8_t *)"k"},
	{.offset = 48, .type = BC_REC_DELETE, .klen = 0},
	{.offset = 48, .type = BC_REC_DELETE, .klen = 1, .mlen = 1, .key = (const uint8_t *)"k"},
	{.offset = 48, .type = BC_REC_DELETE, .klen = 1, .vlen = 1, .key = (const uint8_t *)"k"},
	{.offset = 48,
	 .type = BC_REC_DELETE,
	 .klen = 1,
	 .expire_s = 1,
	 .key = (const uint8_t *)"k"},
	{.offset = 48, .type = BC_REC_LINK, .klen = 0, .vlen = 16},
	{.offset = 48, .type = BC_REC_LINK, .klen = 1, .vlen = 17, .key = (const uint8_t *)"k"},
	{.offset = 48,
	 .type = BC_REC_LINK,
	 .klen = 1,
	 .vlen = 16,
	 .size = BC_MAX_VALUE + 1,
	 .key = (const uint8_t *)"k"},
	{.offset = 48,
	 .type = BC_REC_CHUNK,
	 .klen = 1,
	 .vlen = 17,
	 .dlen = 1,
	 .key = (const uint8_t *)"k"},
	{.offset = 48, .type = BC_REC_CHUNK, .mlen = 1, .vlen = 17, .dlen = 1},
	{.offset = 48, .type = BC_REC_CHUNK, .space = 1, .vlen = 17, .dlen = 1},
	{.offset = 48, .type = BC_REC_CHUNK, .expire_s = 1, .vlen = 17, .dlen = 1},
	{.offset = 48, .type = BC_REC_CHUNK, .vlen = 16, .dlen = 0},
	{.offset = 48,
	 .type = BC_REC_CHUNK,
	 .vlen = 16 + BC_CHUNK_SIZE + 1,
	 .dlen = BC_CHUNK_SIZE + 1},
	{.offset = 48, .type = BC_REC_CHUNK, .vlen = 17, .dlen = 2},
	{.offset = 48, .type = BC_REC_TRUNC, .klen = 1, .vlen = 16, .key = (const uint8_t *)"k"},
	{.offset = 48, .type = BC_REC_TRUNC, .mlen = 1, .vlen = 16},
	{.offset = 48, .type = BC_REC_TRUNC, .space = 9, .vlen = 16},
	{.offset = 48, .type = BC_REC_TRUNC, .expire_s = 9, .vlen = 16},
	{.offset = 48, .type = BC_REC_TRUNC, .vlen = 15},
	{.offset = 48, .type = BC_REC_TRUNC, .vlen = 16, .size = UINT64_MAX},
};
#define NBAD (int)(sizeof(bad_entries) / sizeof(bad_entries[0]))

START_TEST(entry_rule_rejected)
{
	uint8_t buf[256];
	struct bc_hint_entry e;
	size_t used;

	size_t n = bc_hint_entry_encode(buf, &bad_entries[_i]);
	memset(buf + n, 0, sizeof(buf) - n);
	ck_assert_msg(bc_hint_entry_decode(buf, sizeof(buf), &e, &used) == -EBADMSG,
		      "bad entry %d decoded", _i);
	ck_assert_ptr_null(e.key);

	/* The writer refuses it too. */
	dir_setup();
	struct bc_hint_writer *w;
	ck_assert_int_eq(bc_hint_writer_open(&bc_io_posix, dirfd_, NAME, FILE_ID, 1, &w), 0);
	CHECK(bc_hint_writer_add(w, &bad_entries[_i]) == -EINVAL);
	bc_hint_writer_abort(w);
	dir_done();
}
END_TEST

START_TEST(entry_reserved_rejected)
{
	uint8_t buf[64];
	struct bc_hint_entry e;
	size_t used;

	size_t n = bc_hint_entry_encode(buf, &small[0]);
	buf[BC_HE_RESERVED + 1] = 1;
	ck_assert_int_eq(bc_hint_entry_decode(buf, n, &e, &used), -EBADMSG);
	/* Rejected from the fixed part alone, before the rest is there. */
	ck_assert_int_eq(bc_hint_entry_decode(buf, BC_HINT_ENTRY_SIZE, &e, &used), -EBADMSG);
}
END_TEST

/* ---- Writer and loader ---- */

/* What loading the small hint must give: its coverage and every entry, in order. */
static void expect_small(struct collect *c, uint64_t covered)
{
	CHECK(covered == SMALL_COVERED);
	CHECK(c->n == NSMALL);
	for (int i = 0; i < NSMALL; i++)
		assert_entry_eq(&c->e[i], &small[i]);
	collect_release(c);
}

START_TEST(small_round_trip)
{
	struct collect c = {0};
	uint64_t covered = 0;

	dir_setup();
	CHECK(write_small(&bc_io_posix) == 0);
	CHECK(exists(NAME));
	CHECK(!exists(NAME ".tmp"));
	CHECK(bc_hint_load(&bc_io_posix, dirfd_, NAME, FILE_ID, UINT64_MAX, collect_fn, &c,
			   &covered) == 0);
	expect_small(&c, covered);

	/* In one pass: the same entries. */
	covered = 0;
	CHECK(bc_hint_stream(&bc_io_posix, dirfd_, NAME, FILE_ID, UINT64_MAX, collect_fn, &c,
			     &covered) == 0);
	expect_small(&c, covered);
	CHECK(bc_hint_stream(&bc_io_posix, dirfd_, NAME, FILE_ID, SMALL_COVERED - 1, collect_fn, &c,
			     NULL) == -EBADMSG);
	collect_release(&c);

	/* Verify only. */
	covered = 0;
	CHECK(bc_hint_load(&bc_io_posix, dirfd_, NAME, FILE_ID, UINT64_MAX, NULL, NULL, &covered) ==
	      0);
	CHECK(covered == SMALL_COVERED);

	/* A data file shorter than what the hint covers makes the hint unusable. */
	CHECK(bc_hint_load(&bc_io_posix, dirfd_, NAME, FILE_ID, SMALL_COVERED, NULL, NULL, NULL) ==
	      0);
	CHECK(bc_hint_load(&bc_io_posix, dirfd_, NAME, FILE_ID, SMALL_COVERED - 1, collect_fn, &c,
			   NULL) == -EBADMSG);
	CHECK(c.n == 0);

	/* The file is exactly header, entries, trailer; the header says kind hint, our id. */
	char *p = path_of(NAME);
	size_t len;
	uint8_t *b = tu_read_file(p, &len);
	CHECK(b != NULL);
	CHECK(len == small_hint_size());
	struct bc_file_header h;
	CHECK(bc_file_header_decode(b, &h) == 0);
	CHECK(h.kind == BC_KIND_HINT && h.id == FILE_ID && h.next_object == 9);
	const uint8_t *t = b + len - BC_HINT_TRAILER_SIZE;
	CHECK(memcmp(t, "hintend\0", 8) == 0);
	CHECK(bc_le64(t + BC_HT_COVERED) == SMALL_COVERED);
	CHECK(bc_le32(t + BC_HT_COUNT) == NSMALL);
	CHECK(bc_le32(t + BC_HT_CRC) == bc_crc32c(0, b, len - 4));
	free(b);
	free(p);
	dir_done();
}
END_TEST

START_TEST(empty_hint)
{
	struct bc_hint_writer *w;
	struct collect c = {0};
	uint64_t covered = 0;

	dir_setup();
	CHECK(bc_hint_writer_open(&bc_io_posix, dirfd_, NAME, FILE_ID, 1, &w) == 0);
	CHECK(bc_hint_writer_finish(w, BC_FILE_HEADER_SIZE) == 0);
	CHECK(bc_hint_load(&bc_io_posix, dirfd_, NAME, FILE_ID, UINT64_MAX, collect_fn, &c,
			   &covered) == 0);
	CHECK(c.n == 0 && covered == BC_FILE_HEADER_SIZE);
	dir_done();
}
END_TEST

/* Entries for a big hint: every type, keys of many lengths, some of the longest, and
 * offsets advancing as records would (with gaps where BATCH records would be). */
static int gen_entries(struct tu_rng *r, struct bc_hint_entry *out, int n, uint8_t *keys,
		       uint64_t *end)
{
	uint64_t off = BC_FILE_HEADER_SIZE;
	for (int i = 0; i < n; i++) {
		struct bc_hint_entry *e = &out[i];
		memset(e, 0, sizeof(*e));
		e->offset = (uint32_t)off;
		e->type = (uint8_t)(1 + tu_below(r, 5));
		switch (e->type) {
		case BC_REC_PUT:
			e->klen = (uint16_t)(i % 500 == 7 ? BC_MAX_KEY : 1 + tu_below(r, 200));
			e->mlen = (uint16_t)tu_below(r, 100);
			e->vlen = (uint32_t)tu_below(r, BC_MAX_INLINE + 1);
			e->expire_s = tu_below(r, 3) ? 0 : tu_rand(r);
			e->space = (uint8_t)tu_rand(r);
			break;
		case BC_REC_DELETE:
			e->klen = (uint16_t)(1 + tu_below(r, 60));
			e->space = (uint8_t)tu_rand(r);
			break;
		case BC_REC_LINK:
			e->klen = (uint16_t)(i % 700 == 3 ? BC_MAX_KEY : 1 + tu_below(r, 60));
			e->mlen = (uint16_t)tu_below(r, 1000);
			e->vlen = 16;
			e->object = tu_rand(r);
			e->size = tu_below(r, BC_MAX_VALUE + 1);
			break;
		case BC_REC_CHUNK:
			e->dlen = (uint32_t)(1 + tu_below(r, BC_CHUNK_SIZE));
			e->vlen = 16 + e->dlen;
			e->object = tu_rand(r);
			e->index = (uint32_t)tu_rand(r);
			break;
		default:
			e->vlen = 16;
			e->object = tu_rand(r);
			e->size = tu_below(r, BC_MAX_VALUE + 1);
			break;
		}
		e->key = keys + tu_below(r, 1000);
		off += bc_record_size(e->klen, e->mlen, e->vlen);
		if (tu_below(r, 10) == 0)
			off += BC_REC_HEADER_SIZE + 16; /* a BATCH record, not in the hint */
	}
	*end = off;
	return n;
}

/* n entries from gen_entries and the key bytes they point into; the caller frees both. */
static struct bc_hint_entry *big_entries(struct tu_rng *r, int n, uint8_t **keys, uint64_t *end)
{
	struct bc_hint_entry *es = calloc((size_t)n, sizeof(*es));
	*keys = malloc(1000 + BC_MAX_KEY);
	ck_assert_ptr_nonnull(es);
	ck_assert_ptr_nonnull(*keys);
	tu_fill(r, *keys, 1000 + BC_MAX_KEY);
	gen_entries(r, es, n, *keys, end);
	return es;
}

static void big_round_trip(const struct bc_io *wio, const struct bc_io *rio)
{
	enum { N = 4000 };
	struct tu_rng r = {tu_seed(0x41)};
	uint8_t *keys;
	uint64_t end, covered = 0;
	struct bc_hint_entry *es = big_entries(&r, N, &keys, &end);
	struct bc_hint_writer *w;
	struct collect c = {0};

	dir_setup();
	CHECK(bc_hint_writer_open(wio, dirfd_, NAME, FILE_ID, 1, &w) == 0);
	for (int i = 0; i < N; i++)
		CHECK(bc_hint_writer_add(w, &es[i]) == 0);
	CHECK(bc_hint_writer_finish(w, end + 5) == 0);
	CHECK(bc_hint_load(rio, dirfd_, NAME, FILE_ID, UINT64_MAX, collect_fn, &c, &covered) == 0);
	CHECK(covered == end + 5);
	CHECK(c.n == N);
	for (int i = 0; i < N; i++)
		assert_entry_eq(&c.e[i], &es[i]);
	collect_release(&c);
	dir_done();
	free(keys);
	free(es);
}

START_TEST(big_round_trip_posix)
{
	big_round_trip(&bc_io_posix, &bc_io_posix);
}
END_TEST

/*
 * Write the big entries in one go, and again as a hint of the first k followed by a writer
 * resumed from it that adds the rest: the two files are the same bytes, and load gives
 * every entry. k = 0 resumes an empty hint; wio does the resumed writing.
 */
static void resumed_matches_one_go(const struct bc_io *wio, int k)
{
	enum { N = 4000 };
	struct tu_rng r = {tu_seed(0x52)};
	uint8_t *keys;
	uint64_t end, covered = 0;
	struct bc_hint_entry *es = big_entries(&r, N, &keys, &end);
	struct bc_hint_writer *w;
	struct collect c = {0};
	size_t len1, len2;

	dir_setup();
	char *p = path_of(NAME);

	CHECK(bc_hint_writer_open(&bc_io_posix, dirfd_, NAME, FILE_ID, 77, &w) == 0);
	CHECK(bc_hint_writer_set_created(w, 1234) == 0);
	for (int i = 0; i < N; i++)
		CHECK(bc_hint_writer_add(w, &es[i]) == 0);
	CHECK(bc_hint_writer_finish(w, end) == 0);
	uint8_t *one = tu_read_file(p, &len1);
	CHECK(one != NULL);

	/* The first k, covering up to where entry k's record starts. */
	CHECK(bc_hint_writer_open(&bc_io_posix, dirfd_, NAME, FILE_ID, 77, &w) == 0);
	CHECK(bc_hint_writer_set_created(w, 1234) == 0);
	for (int i = 0; i < k; i++)
		CHECK(bc_hint_writer_add(w, &es[i]) == 0);
	CHECK(bc_hint_writer_finish(w, es[k].offset) == 0);

	CHECK(bc_hint_writer_resume(wio, dirfd_, NAME, FILE_ID, &w) == 0);
	CHECK(exists(NAME ".tmp"));
	CHECK(bc_hint_writer_set_created(w, 1) == -EINVAL);
	/* Only records from covered on can follow. */
	struct bc_hint_entry early = es[k];
	early.offset--;
	CHECK(bc_hint_writer_add(w, &early) == -EINVAL);
	for (int i = k; i < N; i++)
		CHECK(bc_hint_writer_add(w, &es[i]) == 0);
	CHECK(bc_hint_writer_finish(w, end) == 0);
	CHECK(!exists(NAME ".tmp"));
	uint8_t *two = tu_read_file(p, &len2);
	CHECK(two != NULL);
	CHECK(len1 == len2 && memcmp(one, two, len1) == 0);

	CHECK(bc_hint_load(&bc_io_posix, dirfd_, NAME, FILE_ID, UINT64_MAX, collect_fn, &c,
			   &covered) == 0);
	CHECK(covered == end && c.n == N);
	for (int i = 0; i < N; i++)
		assert_entry_eq(&c.e[i], &es[i]);
	collect_release(&c);
	free(one);
	free(two);
	free(p);
	dir_done();
	free(keys);
	free(es);
}

START_TEST(resume_continues)
{
	static const int ks[] = {0, 1, 1999, 3999};
	resumed_matches_one_go(&bc_io_posix, ks[_i]);
}
END_TEST

/* An I/O layer that moves at most 7 bytes per call, and can fail a chosen call. */
static int io_calls, io_fail_at = -1, io_fail_rc;

static ssize_t short_preadv(void *ctx, int fd, const struct iovec *iov, int n, off_t off)
{
	if (io_calls++ == io_fail_at)
		return io_fail_rc;
	struct iovec v = {iov->iov_base, iov->iov_len < 7 ? iov->iov_len : 7};
	(void)n;
	return bc_io_posix.preadv(ctx, fd, &v, 1, off);
}

static ssize_t short_pwritev(void *ctx, int fd, const struct iovec *iov, int n, off_t off)
{
	if (io_calls++ == io_fail_at)
		return io_fail_rc;
	struct iovec v = {iov->iov_base, iov->iov_len < 7 ? iov->iov_len : 7};
	(void)n;
	return bc_io_posix.pwritev(ctx, fd, &v, 1, off);
}

static struct bc_io short_io(void)
{
	struct bc_io io = bc_io_posix;
	io.preadv = short_preadv;
	io.pwritev = short_pwritev;
	return io;
}

START_TEST(big_round_trip_short_io)
{
	struct bc_io io = short_io();
	big_round_trip(&io, &io);
}
END_TEST

START_TEST(resume_short_io)
{
	struct bc_io io = short_io();
	resumed_matches_one_go(&io, 2500);
}
END_TEST

/* Fail the _i-th I/O call of a resume of the small hint: the error comes back, no tmp file
 * is left and the hint is unchanged. */
START_TEST(resume_io_failure_leaves_hint)
{
	struct bc_io io = short_io();

	dir_setup();
	CHECK(write_small(&bc_io_posix) == 0);
	io_calls = 0;
	io_fail_at = _i * 7;
	io_fail_rc = -EIO;
	struct bc_hint_writer *w;
	int rc = bc_hint_writer_resume(&io, dirfd_, NAME, FILE_ID, &w);
	if (io_calls > io_fail_at) {
		io_fail_at = -1;
		ck_assert_msg(rc == -EIO, "call %d failed, resume returned %d", _i * 7, rc);
		CHECK(w == NULL && !exists(NAME ".tmp"));
	} else {
		io_fail_at = -1;
		CHECK(rc == 0);
		CHECK(bc_hint_writer_finish(w, SMALL_COVERED) == 0);
	}
	struct collect c = {0};
	uint64_t covered = 0;
	CHECK(bc_hint_load(&bc_io_posix, dirfd_, NAME, FILE_ID, UINT64_MAX, collect_fn, &c,
			   &covered) == 0);
	expect_small(&c, covered);
	dir_done();
}
END_TEST

START_TEST(missing_is_enoent)
{
	dir_setup();
	assert_load_fails(-ENOENT);
	assert_resume_fails(&bc_io_posix, -ENOENT);
	dir_done();
}
END_TEST

START_TEST(other_file_id_rejected)
{
	struct collect c = {0};

	dir_setup();
	CHECK(write_small(&bc_io_posix) == 0);
	CHECK(bc_hint_load(&bc_io_posix, dirfd_, NAME, FILE_ID + 1, UINT64_MAX, collect_fn, &c,
			   NULL) == -EBADMSG);
	CHECK(c.n == 0);
	struct bc_hint_writer *w;
	CHECK(bc_hint_writer_resume(&bc_io_posix, dirfd_, NAME, FILE_ID + 1, &w) == -EBADMSG);
	CHECK(!exists(NAME ".tmp"));
	dir_done();
}
END_TEST

START_TEST(callback_stop_is_returned)
{
	struct collect c = {.stop_at = 2};

	dir_setup();
	CHECK(write_small(&bc_io_posix) == 0);
	CHECK(bc_hint_load(&bc_io_posix, dirfd_, NAME, FILE_ID, UINT64_MAX, collect_fn, &c, NULL) ==
	      123);
	CHECK(c.n == 2);
	collect_release(&c);
	dir_done();
}
END_TEST

/* Flip byte _i of the small hint (two masks): the whole hint is refused. */
START_TEST(flipped_byte_rejected)
{
	static const uint8_t masks[] = {0x01, 0xff};

	dir_setup();
	CHECK(write_small(&bc_io_posix) == 0);
	char *p = path_of(NAME);
	size_t len;
	uint8_t *b = tu_read_file(p, &len);
	CHECK(b != NULL && (size_t)_i < len);
	for (size_t m = 0; m < sizeof(masks); m++) {
		b[_i] ^= masks[m];
		CHECK(tu_write_file(p, b, len) == 0);
		assert_load_fails(-EBADMSG);
		assert_resume_fails(&bc_io_posix, -EBADMSG);
		b[_i] ^= masks[m];
	}
	free(b);
	free(p);
	dir_done();
}
END_TEST

/* Cut the small hint to _i bytes, or add one byte: refused. */
START_TEST(truncated_rejected)
{
	dir_setup();
	CHECK(write_small(&bc_io_posix) == 0);
	char *p = path_of(NAME);
	size_t len;
	uint8_t *b = tu_read_file(p, &len);
	CHECK(b != NULL && (size_t)_i < len);
	CHECK(truncate(p, _i) == 0);
	assert_load_fails(-EBADMSG);
	assert_resume_fails(&bc_io_posix, -EBADMSG);
	if (_i == 0) {
		uint8_t *more = calloc(1, len + 1);
		ck_assert_ptr_nonnull(more);
		memcpy(more, b, len);
		CHECK(tu_write_file(p, more, len + 1) == 0);
		assert_load_fails(-EBADMSG);
		free(more);
	}
	free(b);
	free(p);
	dir_done();
}
END_TEST

/* ---- Hand-built hints: correct CRC, wrong structure ---- */

struct craft {
	const char *name;
	uint16_t version;
	uint16_t kind;
	int nentries; /* of small[], in order */
	int swap; /* swap entries swap-1 and swap (1-based), 0 = no */
	uint32_t offset0; /* replace the first entry's offset when nonzero */
	uint64_t covered;
	int count_delta; /* added to the true count */
	int junk; /* bytes of zeros between the entries and the trailer */
	int want;
};

static const struct craft crafts[] = {
	{"as written", 0, BC_KIND_HINT, NSMALL, 0, 0, SMALL_COVERED, 0, 0, 0},
	{"newer version", 2, BC_KIND_HINT, NSMALL, 0, 0, SMALL_COVERED, 0, 0, -EPROTONOSUPPORT},
	{"data kind", 0, BC_KIND_DATA, NSMALL, 0, 0, SMALL_COVERED, 0, 0, -EBADMSG},
	{"record before header end", 0, BC_KIND_HINT, NSMALL, 0, 47, SMALL_COVERED, 0, 0, -EBADMSG},
	{"records overlap", 0, BC_KIND_HINT, NSMALL, 0, 60, SMALL_COVERED, 0, 0, -EBADMSG},
	{"offsets decrease", 0, BC_KIND_HINT, NSMALL, 3, 0, SMALL_COVERED, 0, 0, -EBADMSG},
	{"record past covered", 0, BC_KIND_HINT, NSMALL, 0, 0, SMALL_COVERED - 1, 0, 0, -EBADMSG},
	{"covered inside header", 0, BC_KIND_HINT, 0, 0, 0, BC_FILE_HEADER_SIZE - 1, 0, 0,
	 -EBADMSG},
	{"count too big", 0, BC_KIND_HINT, NSMALL, 0, 0, SMALL_COVERED, 1, 0, -EBADMSG},
	{"count too small", 0, BC_KIND_HINT, NSMALL, 0, 0, SMALL_COVERED, -1, 0, -EBADMSG},
	{"partial entry before trailer", 0, BC_KIND_HINT, NSMALL, 0, 0, SMALL_COVERED, 0, 10,
	 -EBADMSG},
	{"zero entry before trailer", 0, BC_KIND_HINT, NSMALL, 0, 0, SMALL_COVERED, 0, 24,
	 -EBADMSG},
	{"no entries", 0, BC_KIND_HINT, 0, 0, 0, BC_FILE_HEADER_SIZE, 0, 0, 0},
};
#define NCRAFTS (int)(sizeof(crafts) / sizeof(crafts[0]))

static size_t build_hint(uint8_t *out, const struct craft *cr)
{
	struct bc_file_header h = {.version = cr->version,
				   .kind = cr->kind,
				   .id = FILE_ID,
				   .next_object = 1,
				   .created_ns = T0};
	struct bc_hint_entry es[NSMALL];
	size_t n = BC_FILE_HEADER_SIZE;

	memcpy(es, small, sizeof(es));
	if (cr->offset0)
		es[0].offset = cr->offset0;
	if (cr->swap) {
		struct bc_hint_entry t = es[cr->swap - 1];
		es[cr->swap - 1] = es[cr->swap];
		es[cr->swap] = t;
	}
	bc_file_header_encode(out, &h);
	for (int i = 0; i < cr->nentries; i++)
		n += bc_hint_entry_encode(out + n, &es[i]);
	memset(out + n, 0, (size_t)cr->junk);
	n += (size_t)cr->junk;
	memcpy(out + n, "hintend\0", 8);
	bc_put64(out + n + BC_HT_COVERED, cr->covered);
	bc_put32(out + n + BC_HT_COUNT, (uint32_t)(cr->nentries + cr->count_delta));
	bc_put32(out + n + BC_HT_CRC, bc_crc32c(0, out, n + BC_HT_CRC));
	return n + BC_HINT_TRAILER_SIZE;
}

START_TEST(crafted_structure)
{
	const struct craft *cr = &crafts[_i];
	uint8_t b[1024];
	struct collect c = {0};

	dir_setup();
	size_t len = build_hint(b, cr);
	char *p = path_of(NAME);
	CHECK(tu_write_file(p, b, len) == 0);
	int rc =
		bc_hint_load(&bc_io_posix, dirfd_, NAME, FILE_ID, UINT64_MAX, collect_fn, &c, NULL);
	ck_assert_msg(rc == cr->want, "%s: %d", cr->name, rc);
	if (rc)
		ck_assert_msg(c.n == 0, "%s: callback called", cr->name);
	else
		ck_assert_int_eq(c.n, cr->nentries);
	collect_release(&c);
	free(p);
	dir_done();
}
END_TEST

/* ---- Writer contract ---- */

START_TEST(writer_rejects_out_of_order)
{
	struct bc_hint_writer *w;
	struct bc_hint_entry e = small[0];

	dir_setup();
	CHECK(bc_hint_writer_open(&bc_io_posix, dirfd_, NAME, FILE_ID, 1, &w) == 0);
	e.offset = BC_FILE_HEADER_SIZE - 1;
	CHECK(bc_hint_writer_add(w, &e) == -EINVAL);
	e.offset = BC_FILE_HEADER_SIZE;
	CHECK(bc_hint_writer_add(w, &e) == 0);
	CHECK(bc_hint_writer_set_created(w, 5) == -EINVAL);
	/* Inside the previous record. */
	e.offset = BC_FILE_HEADER_SIZE + 1;
	CHECK(bc_hint_writer_add(w, &e) == -EINVAL);
	/* Right after it is fine. */
	e.offset = BC_FILE_HEADER_SIZE + bc_record_size(e.klen, e.mlen, e.vlen);
	CHECK(bc_hint_writer_add(w, &e) == 0);
	/* covered must include the last record. */
	CHECK(bc_hint_writer_finish(w, e.offset + 1) == -EINVAL);
	CHECK(!exists(NAME));
	CHECK(!exists(NAME ".tmp"));
	dir_done();
}
END_TEST

START_TEST(writer_abort_removes_tmp)
{
	struct bc_hint_writer *w;

	dir_setup();
	CHECK(bc_hint_writer_open(&bc_io_posix, dirfd_, NAME, FILE_ID, 1, &w) == 0);
	CHECK(exists(NAME ".tmp"));
	CHECK(bc_hint_writer_add(w, &small[0]) == 0);
	bc_hint_writer_abort(w);
	bc_hint_writer_abort(NULL);
	CHECK(!exists(NAME ".tmp"));
	CHECK(!exists(NAME));
	dir_done();
}
END_TEST

/* Fail the _i-th I/O call of writing the big hint: no hint and no tmp file remain. */
START_TEST(writer_io_failure_leaves_nothing)
{
	enum { N = 3000 };
	struct tu_rng r = {7};
	uint8_t *keys;
	uint64_t end;
	struct bc_hint_entry *es = big_entries(&r, N, &keys, &end);
	struct bc_io io = short_io();
	struct bc_hint_writer *w;
	int rc = 0;

	dir_setup();
	io_calls = 0;
	io_fail_at = _i * 4001; /* spread over the ~100k write calls */
	io_fail_rc = -ENOSPC;
	CHECK(bc_hint_writer_open(&io, dirfd_, NAME, FILE_ID, 1, &w) == 0);
	for (int i = 0; i < N && !rc; i++)
		rc = bc_hint_writer_add(w, &es[i]);
	if (rc) {
		CHECK(rc == -ENOSPC);
		/* Sticky: finish reports it and cleans up. */
		CHECK(bc_hint_writer_finish(w, end) == -ENOSPC);
	} else {
		rc = bc_hint_writer_finish(w, end);
		CHECK(rc == -ENOSPC || (rc == 0 && io_calls <= io_fail_at));
	}
	if (rc) {
		CHECK(!exists(NAME));
		CHECK(!exists(NAME ".tmp"));
	}
	io_fail_at = -1;
	dir_done();
	free(keys);
	free(es);
}
END_TEST

/* A read error during load is passed through, and the callback never ran. */
START_TEST(load_io_failure_passed_through)
{
	struct bc_io io = short_io();
	struct collect c = {0};

	dir_setup();
	CHECK(write_small(&bc_io_posix) == 0);
	io_calls = 0;
	io_fail_at = _i;
	io_fail_rc = -EIO;
	int rc = bc_hint_load(&io, dirfd_, NAME, FILE_ID, UINT64_MAX, collect_fn, &c, NULL);
	if (io_calls > io_fail_at)
		ck_assert_msg(rc == -EIO, "read call %d failed, load returned %d", _i, rc);
	else
		CHECK(rc == 0);
	/* Errors in the first pass mean no calls; in the second they stop the calls. */
	CHECK(rc == 0 || c.n < NSMALL);
	collect_release(&c);

	/* In one pass, the same. */
	io_calls = 0;
	rc = bc_hint_stream(&io, dirfd_, NAME, FILE_ID, UINT64_MAX, collect_fn, &c, NULL);
	if (io_calls > io_fail_at)
		ck_assert_msg(rc == -EIO, "read call %d failed, stream returned %d", _i, rc);
	else
		CHECK(rc == 0 && c.n == NSMALL);
	io_fail_at = -1;
	collect_release(&c);
	dir_done();
}
END_TEST

static Suite *hint_suite(void)
{
	Suite *s = suite_create("hint");
	TCase *tc;
	int hint_size = (int)small_hint_size();

	tc = tcase_create("entry codec");
	tcase_add_loop_test(tc, entry_round_trip, 0, NSMALL);
	tcase_add_test(tc, entry_longest_key);
	tcase_add_loop_test(tc, entry_rule_rejected, 0, NBAD);
	tcase_add_test(tc, entry_reserved_rejected);
	suite_add_tcase(s, tc);

	tc = tcase_create("write then load");
	tcase_add_test(tc, small_round_trip);
	tcase_add_test(tc, empty_hint);
	tcase_add_test(tc, big_round_trip_posix);
	tcase_add_test(tc, big_round_trip_short_io);
	tcase_add_test(tc, callback_stop_is_returned);
	suite_add_tcase(s, tc);

	tc = tcase_create("resume");
	tcase_add_loop_test(tc, resume_continues, 0, 4);
	tcase_add_test(tc, resume_short_io);
	tcase_add_loop_test(tc, resume_io_failure_leaves_hint, 0, 40);
	suite_add_tcase(s, tc);

	tc = tcase_create("load rejects");
	tcase_add_test(tc, missing_is_enoent);
	tcase_add_test(tc, other_file_id_rejected);
	tcase_add_loop_test(tc, flipped_byte_rejected, 0, hint_size);
	tcase_add_loop_test(tc, truncated_rejected, 0, hint_size);
	tcase_add_loop_test(tc, crafted_structure, 0, NCRAFTS);
	tcase_add_loop_test(tc, load_io_failure_passed_through, 0, 40);
	suite_add_tcase(s, tc);

	tc = tcase_create("writer contract");
	tcase_add_test(tc, writer_rejects_out_of_order);
	tcase_add_test(tc, writer_abort_removes_tmp);
	tcase_add_loop_test(tc, writer_io_failure_leaves_nothing, 0, 30);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hint_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
