// SPDX-License-Identifier: MIT
/*
 * Golden files: tests/data/v1/ holds a tiny store written by format version 1 (see
 * tests/data/README.md for its contents). These tests pin the format: re-encoding the same
 * records must give the checked-in bytes exactly, and decoding the checked-in bytes must
 * give the expected fields. A change that breaks either is a format change (FORMAT.md
 * "Versioning").
 *
 * With BC_GOLDEN_WRITE=1 in the environment the encode tests first (re)write the files;
 * do that only on purpose, together with a version bump.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hint.h"
#include "record.h"
#include "testutil.h"

#define GOLDEN_DIR BC_TEST_DATA_DIR "/v1"
#define DATA_NAME "0000000000010000.data"
#define HINT_NAME "0000000000010000.hint"
#define FILE_ID UINT64_C(0x10000)
#define NEXT_OBJECT 1
#define T0 UINT64_C(1700000000000000000)
#define DATA_SIZE 70438

/* The records of the golden data file, in order. */
struct gold {
	uint8_t type, flags;
	const char *key, *meta, *value; /* PUT value */
	uint64_t object, size; /* LINK; BATCH: size = member bytes */
	uint32_t index, count, dlen; /* CHUNK: index, dlen data bytes of fill */
	uint8_t fill;
	uint32_t offset; /* where it must sit in the file */
};

static const struct gold golds[] = {
	{BC_REC_PUT, 0, "alpha", "", "one", .offset = 48},
	{BC_REC_PUT, 0, "beta", "m", "two", .offset = 88},
	{BC_REC_DELETE, 0, "alpha", "", "", .offset = 128},
	{BC_REC_BATCH, 0, "", "", "", .count = 2, .size = 78, .offset = 165},
	{BC_REC_PUT, BC_RF_BATCH, "gamma", "", "three", .offset = 213},
	{BC_REC_DELETE, BC_RF_BATCH, "beta", "", "", .offset = 255},
	{BC_REC_CHUNK, 0, "", "", "", .object = 1, .index = 0, .dlen = 65536, .fill = 'a',
	 .offset = 291},
	{BC_REC_CHUNK, 0, "", "", "", .object = 1, .index = 1, .dlen = 4464, .fill = 'b',
	 .offset = 65875},
	{BC_REC_LINK, 0, "big", "", "", .object = 1, .size = 70000, .offset = 70387},
};
#define NGOLDS (int)(sizeof(golds) / sizeof(golds[0]))

static bool write_mode(void)
{
	const char *e = getenv("BC_GOLDEN_WRITE");
	return e && !strcmp(e, "1");
}

/* Encode golds[i] at out; returns its size. */
static uint32_t encode_gold(const struct gold *g, uint8_t *out)
{
	static uint8_t value[BC_CHUNK_PREFIX + BC_CHUNK_SIZE];
	uint32_t vlen = 0;

	switch (g->type) {
	case BC_REC_PUT:
		vlen = (uint32_t)strlen(g->value);
		memcpy(value, g->value, vlen);
		break;
	case BC_REC_LINK:
		bc_record_obj_value(value, g->object, g->size);
		vlen = BC_OBJ_VALUE_SIZE;
		break;
	case BC_REC_CHUNK:
		bc_record_chunk_prefix(value, g->object, g->index);
		memset(value + BC_CHUNK_PREFIX, g->fill, g->dlen);
		vlen = BC_CHUNK_PREFIX + g->dlen;
		break;
	case BC_REC_BATCH:
		bc_record_batch_value(value, g->count, g->size);
		vlen = BC_BATCH_VALUE_SIZE;
		break;
	default:
		break;
	}
	return bc_record_encode(out, g->type, g->flags, 0, T0, 0, g->key, (uint32_t)strlen(g->key),
				g->meta, (uint32_t)strlen(g->meta), value, vlen);
}

static uint8_t *build_data(size_t *len)
{
	uint8_t *buf = malloc(DATA_SIZE);
	struct bc_file_header h = {
		.kind = BC_KIND_DATA, .id = FILE_ID, .next_object = NEXT_OBJECT, .created_ns = T0};
	size_t off = BC_FILE_HEADER_SIZE;

	ck_assert_ptr_nonnull(buf);
	bc_file_header_encode(buf, &h);
	for (int i = 0; i < NGOLDS; i++) {
		uint8_t *rec = malloc(BC_MAX_RECORD);
		ck_assert_ptr_nonnull(rec);
		uint32_t n = encode_gold(&golds[i], rec);
		ck_assert_uint_eq(off, golds[i].offset);
		ck_assert_uint_le(off + n, DATA_SIZE);
		memcpy(buf + off, rec, n);
		off += n;
		free(rec);
	}
	ck_assert_uint_eq(off, DATA_SIZE);
	*len = off;
	return buf;
}

/* The hint entry each record leaves (BATCH records leave none). */
static bool gold_entry(const struct gold *g, struct bc_hint_entry *e)
{
	if (g->type == BC_REC_BATCH)
		return false;
	memset(e, 0, sizeof(*e));
	e->offset = g->offset;
	e->type = g->type;
	e->klen = (uint16_t)strlen(g->key);
	e->mlen = (uint16_t)strlen(g->meta);
	e->key = (const uint8_t *)g->key;
	switch (g->type) {
	case BC_REC_PUT:
		e->vlen = (uint32_t)strlen(g->value);
		break;
	case BC_REC_LINK:
		e->vlen = BC_OBJ_VALUE_SIZE;
		e->object = g->object;
		e->size = g->size;
		break;
	case BC_REC_CHUNK:
		e->vlen = BC_CHUNK_PREFIX + g->dlen;
		e->object = g->object;
		e->index = g->index;
		e->dlen = g->dlen;
		break;
	default:
		break;
	}
	return true;
}

static int write_hint(int dirfd)
{
	struct bc_hint_writer *w;
	struct bc_hint_entry e;
	int rc = bc_hint_writer_open(&bc_io_posix, dirfd, HINT_NAME, FILE_ID, NEXT_OBJECT, &w);
	if (rc)
		return rc;
	rc = bc_hint_writer_set_created(w, T0);
	for (int i = 0; i < NGOLDS && !rc; i++) {
		if (gold_entry(&golds[i], &e))
			rc = bc_hint_writer_add(w, &e);
	}
	if (rc) {
		bc_hint_writer_abort(w);
		return rc;
	}
	return bc_hint_writer_finish(w, DATA_SIZE);
}

START_TEST(encode_matches_golden_data)
{
	size_t len, glen;
	uint8_t *buf = build_data(&len);

	if (write_mode()) {
		mkdir(BC_TEST_DATA_DIR, 0755);
		mkdir(GOLDEN_DIR, 0755);
		ck_assert_int_eq(tu_write_file(GOLDEN_DIR "/" DATA_NAME, buf, len), 0);
		fprintf(stderr, "wrote %s/%s\n", GOLDEN_DIR, DATA_NAME);
	}
	uint8_t *golden = tu_read_file(GOLDEN_DIR "/" DATA_NAME, &glen);
	ck_assert_msg(golden != NULL, "missing %s/%s", GOLDEN_DIR, DATA_NAME);
	ck_assert_uint_eq(glen, len);
	for (size_t i = 0; i < len; i++)
		ck_assert_msg(buf[i] == golden[i], "data differs at byte %zu", i);
	free(golden);
	free(buf);
}
END_TEST

START_TEST(writer_matches_golden_hint)
{
	char *dir = write_mode() ? NULL : tu_tmpdir("golden");
	const char *where = dir ? dir : GOLDEN_DIR;
	int dirfd = open(where, O_RDONLY | O_DIRECTORY);
	size_t len, glen;

	ck_assert_int_ge(dirfd, 0);
	ck_assert_int_eq(write_hint(dirfd), 0);
	close(dirfd);
	if (!dir)
		fprintf(stderr, "wrote %s/%s\n", GOLDEN_DIR, HINT_NAME);

	size_t n = strlen(where) + sizeof(HINT_NAME) + 2;
	char *path = malloc(n);
	ck_assert_ptr_nonnull(path);
	snprintf(path, n, "%s/%s", where, HINT_NAME);
	uint8_t *buf = tu_read_file(path, &len);
	uint8_t *golden = tu_read_file(GOLDEN_DIR "/" HINT_NAME, &glen);
	ck_assert_ptr_nonnull(buf);
	ck_assert_msg(golden != NULL, "missing %s/%s", GOLDEN_DIR, HINT_NAME);
	ck_assert_uint_eq(glen, len);
	for (size_t i = 0; i < len; i++)
		ck_assert_msg(buf[i] == golden[i], "hint differs at byte %zu (ours in %s)", i,
			      where);
	free(golden);
	free(buf);
	free(path);
	tu_tmpdir_done(dir, 1);
}
END_TEST

static void check_gold(const struct gold *g, const struct bc_record *r)
{
	ck_assert_uint_eq(r->type, g->type);
	ck_assert_uint_eq(r->flags, g->flags);
	ck_assert_uint_eq(r->space, 0);
	ck_assert_uint_eq(r->time_ns, T0);
	ck_assert_uint_eq(r->expire_s, 0);
	ck_assert_uint_eq(r->klen, strlen(g->key));
	ck_assert_int_eq(memcmp(r->key, g->key, r->klen), 0);
	ck_assert_uint_eq(r->mlen, strlen(g->meta));
	ck_assert_int_eq(memcmp(r->meta, g->meta, r->mlen), 0);
	switch (g->type) {
	case BC_REC_PUT:
		ck_assert_uint_eq(r->dlen, strlen(g->value));
		ck_assert_int_eq(memcmp(r->data, g->value, r->dlen), 0);
		break;
	case BC_REC_DELETE:
		ck_assert_uint_eq(r->vlen, 0);
		break;
	case BC_REC_LINK:
		ck_assert_uint_eq(r->object, g->object);
		ck_assert_uint_eq(r->size, g->size);
		break;
	case BC_REC_CHUNK:
		ck_assert_uint_eq(r->object, g->object);
		ck_assert_uint_eq(r->index, g->index);
		ck_assert_uint_eq(r->dlen, g->dlen);
		for (uint32_t i = 0; i < r->dlen; i++)
			ck_assert_uint_eq(r->data[i], g->fill);
		break;
	case BC_REC_BATCH:
		ck_assert_uint_eq(r->count, g->count);
		ck_assert_uint_eq(r->size, g->size);
		break;
	default:
		ck_abort_msg("unexpected type %u", r->type);
	}
}

START_TEST(decode_golden_data)
{
	size_t len;
	uint8_t *buf = tu_read_file(GOLDEN_DIR "/" DATA_NAME, &len);
	struct bc_file_header h;
	struct bc_record rec;
	size_t off = BC_FILE_HEADER_SIZE, used;
	uint64_t batch_bytes = 0;

	ck_assert_msg(buf != NULL, "missing %s/%s", GOLDEN_DIR, DATA_NAME);
	ck_assert_uint_eq(len, DATA_SIZE);
	ck_assert_int_ge(len, BC_FILE_HEADER_SIZE);
	ck_assert_int_eq(bc_file_header_decode(buf, &h), 0);
	ck_assert_uint_eq(h.version, 1);
	ck_assert_uint_eq(h.kind, BC_KIND_DATA);
	ck_assert_uint_eq(h.chunk_size, 65536);
	ck_assert_uint_eq(h.id, FILE_ID);
	ck_assert_uint_eq(h.next_object, NEXT_OBJECT);
	ck_assert_uint_eq(h.created_ns, T0);

	for (int i = 0; i < NGOLDS; i++) {
		ck_assert_uint_eq(off, golds[i].offset);
		ck_assert_int_eq(bc_record_decode(buf + off, len - off, &rec, &used), 0);
		check_gold(&golds[i], &rec);
		if (rec.flags & BC_RF_BATCH)
			batch_bytes += used;
		off += used;
	}
	ck_assert_uint_eq(off, len);
	/* The BATCH record's byte count is the sum of its members' sizes. */
	ck_assert_uint_eq(batch_bytes, golds[3].size);
	free(buf);
}
END_TEST

struct seen {
	int n;
	int bad;
};

static int expect_fn(void *ctx, const struct bc_hint_entry *e)
{
	struct seen *s = ctx;
	struct bc_hint_entry want;
	int i = 0, k = 0;

	/* The s->n-th entry is the s->n-th non-BATCH record. */
	for (; i < NGOLDS; i++) {
		if (gold_entry(&golds[i], &want) && k++ == s->n)
			break;
	}
	s->n++;
	if (i == NGOLDS || e->offset != want.offset || e->type != want.type ||
	    e->space != want.space || e->klen != want.klen || e->mlen != want.mlen ||
	    e->vlen != want.vlen || e->expire_s != want.expire_s || e->object != want.object ||
	    e->size != want.size || e->index != want.index || e->dlen != want.dlen ||
	    memcmp(e->key, want.key, e->klen) != 0)
		s->bad++;
	return 0;
}

START_TEST(load_golden_hint)
{
	int dirfd = open(GOLDEN_DIR, O_RDONLY | O_DIRECTORY);
	struct seen s = {0};
	uint64_t covered = 0;
	size_t len;

	ck_assert_int_ge(dirfd, 0);
	ck_assert_int_eq(bc_hint_load(&bc_io_posix, dirfd, HINT_NAME, FILE_ID, UINT64_MAX,
				      expect_fn, &s, &covered),
			 0);
	close(dirfd);
	ck_assert_int_eq(s.bad, 0);
	ck_assert_int_eq(s.n, NGOLDS - 1);
	ck_assert_uint_eq(covered, DATA_SIZE);

	uint8_t *buf = tu_read_file(GOLDEN_DIR "/" HINT_NAME, &len);
	struct bc_file_header h;
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(bc_file_header_decode(buf, &h), 0);
	ck_assert_uint_eq(h.kind, BC_KIND_HINT);
	ck_assert_uint_eq(h.id, FILE_ID);
	ck_assert_uint_eq(h.next_object, NEXT_OBJECT);
	ck_assert_uint_eq(h.created_ns, T0);
	free(buf);
}
END_TEST

static Suite *golden_suite(void)
{
	Suite *s = suite_create("golden");
	TCase *tc;

	/* Encoding first: in write mode they produce the files the decode tests read. */
	tc = tcase_create("encode matches golden v1");
	tcase_add_test(tc, encode_matches_golden_data);
	tcase_add_test(tc, writer_matches_golden_hint);
	suite_add_tcase(s, tc);

	tc = tcase_create("decode golden v1");
	tcase_add_test(tc, decode_golden_data);
	tcase_add_test(tc, load_golden_hint);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(golden_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
