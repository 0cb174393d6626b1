// SPDX-License-Identifier: MIT
/*
 * Unit tests for record.c. One table of raw record specs drives everything: the valid ones
 * round-trip, are cut at every offset and have every byte flipped; the invalid ones break
 * one rule each of FORMAT.md "Validity" and must be rejected with a correct CRC, so the
 * rule itself is what rejects them. A CHUNK record decoded from two pieces (the direct read
 * of read.c) agrees with the whole. File headers get the same treatment.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "record.h"
#include "testutil.h"

#define T0 UINT64_C(1700000000000000000)
#define MAXV BC_MAX_VALUE

/*
 * A record as raw fields. The value field is vlen bytes: when vlen >= 16 its first 16 are
 * v0 and v1 (u64 little-endian each), the rest (and all of a shorter one) come from the
 * pattern. reserved is patched in after encoding. rule: for invalid specs, whether the
 * broken rule is one bc_record_check_header sees (1) or only the value decoder (0).
 */
struct raw {
	const char *name;
	bool valid;
	int rule;
	uint8_t type, flags, space, reserved;
	uint64_t expire;
	uint32_t klen, mlen, vlen;
	uint64_t v0, v1;
};

#define U32PAIR(lo, hi) ((uint64_t)(lo) | (uint64_t)(hi) << 32)

static const struct raw raws[] = {
	/* Valid. */
	{"put minimal", true, 0, BC_REC_PUT, 0, 0, 0, 0, 1, 0, 0, 0, 0},
	{"put typical", true, 0, BC_REC_PUT, 0, 0, 0, 12345, 5, 3, 10, 0, 0},
	{"put member space 255", true, 0, BC_REC_PUT, BC_RF_BATCH, 255, 0, 0, 2, 0, 20, 7, 8},
	{"put largest", true, 0, BC_REC_PUT, 0, 7, 0, UINT64_MAX, BC_MAX_KEY, BC_MAX_META,
	 BC_MAX_INLINE, 1, 2},
	{"delete", true, 0, BC_REC_DELETE, 0, 0, 0, 0, 5, 0, 0, 0, 0},
	{"delete member space 1", true, 0, BC_REC_DELETE, BC_RF_BATCH, 1, 0, 0, 9, 0, 0, 0, 0},
	{"link", true, 0, BC_REC_LINK, 0, 0, 0, 99, 3, 20, 16, 7, 70000},
	{"link empty object", true, 0, BC_REC_LINK, BC_RF_BATCH, 3, 0, 0, 1, 0, 16, 1, 0},
	{"link largest", true, 0, BC_REC_LINK, 0, 0, 0, 0, 1, 0, 16, UINT64_MAX, MAXV},
	{"chunk one byte", true, 0, BC_REC_CHUNK, 0, 0, 0, 0, 0, 0, 17, 1, U32PAIR(0, 0)},
	{"chunk member", true, 0, BC_REC_CHUNK, BC_RF_BATCH, 0, 0, 0, 0, 0, 100, 5, U32PAIR(3, 0)},
	{"chunk full", true, 0, BC_REC_CHUNK, 0, 0, 0, 0, 0, 0, 16 + BC_CHUNK_SIZE, 2,
	 U32PAIR(UINT32_MAX, 0)},
	{"trunc", true, 0, BC_REC_TRUNC, 0, 0, 0, 0, 0, 0, 16, 9, 0},
	{"trunc member largest", true, 0, BC_REC_TRUNC, BC_RF_BATCH, 0, 0, 0, 0, 0, 16, 9, MAXV},
	{"batch", true, 0, BC_REC_BATCH, 0, 0, 0, 0, 0, 0, 16, U32PAIR(1, 0), 40},
	{"batch largest", true, 0, BC_REC_BATCH, 0, 0, 0, 0, 0, 0, 16,
	 U32PAIR(BC_MAX_BATCH_RECORDS, 0), UINT64_MAX},

	/* Invalid: one broken rule each. */
	{"type 0", false, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0},
	{"type 7", false, 1, 7, 0, 0, 0, 0, 1, 0, 0, 0, 0},
	{"type 255", false, 1, 255, 0, 0, 0, 0, 0, 0, 16, 0, 0},
	{"unknown flag 0x02", false, 1, BC_REC_PUT, 0x02, 0, 0, 0, 1, 0, 1, 0, 0},
	{"unknown flag 0x80", false, 1, BC_REC_DELETE, 0x80, 0, 0, 0, 1, 0, 0, 0, 0},
	{"reserved set", false, 1, BC_REC_PUT, 0, 0, 1, 0, 1, 0, 1, 0, 0},
	{"put empty key", false, 1, BC_REC_PUT, 0, 0, 0, 0, 0, 0, 1, 0, 0},
	{"put value too long", false, 1, BC_REC_PUT, 0, 0, 0, 0, 1, 0, BC_MAX_INLINE + 1, 0, 0},
	{"delete empty key", false, 1, BC_REC_DELETE, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	{"delete with meta", false, 1, BC_REC_DELETE, 0, 0, 0, 0, 1, 1, 0, 0, 0},
	{"delete with value", false, 1, BC_REC_DELETE, 0, 0, 0, 0, 1, 0, 1, 0, 0},
	{"delete with expiry", false, 1, BC_REC_DELETE, 0, 0, 0, 1, 1, 0, 0, 0, 0},
	{"link empty key", false, 1, BC_REC_LINK, 0, 0, 0, 0, 0, 0, 16, 1, 1},
	{"link value 15", false, 1, BC_REC_LINK, 0, 0, 0, 0, 1, 0, 15, 0, 0},
	{"link value 17", false, 1, BC_REC_LINK, 0, 0, 0, 0, 1, 0, 17, 1, 1},
	{"link size too big", false, 0, BC_REC_LINK, 0, 0, 0, 0, 1, 0, 16, 1, MAXV + 1},
	{"chunk with key", false, 1, BC_REC_CHUNK, 0, 0, 0, 0, 1, 0, 17, 1, 0},
	{"chunk with meta", false, 1, BC_REC_CHUNK, 0, 0, 0, 0, 0, 1, 17, 1, 0},
	{"chunk in space 1", false, 1, BC_REC_CHUNK, 0, 1, 0, 0, 0, 0, 17, 1, 0},
	{"chunk with expiry", false, 1, BC_REC_CHUNK, 0, 0, 0, 1, 0, 0, 17, 1, 0},
	{"chunk without data", false, 1, BC_REC_CHUNK, 0, 0, 0, 0, 0, 0, 16, 1, 0},
	{"chunk data too long", false, 1, BC_REC_CHUNK, 0, 0, 0, 0, 0, 0, 16 + BC_CHUNK_SIZE + 1, 1,
	 0},
	{"chunk zero field set", false, 0, BC_REC_CHUNK, 0, 0, 0, 0, 0, 0, 17, 1, U32PAIR(0, 1)},
	{"trunc with key", false, 1, BC_REC_TRUNC, 0, 0, 0, 0, 1, 0, 16, 1, 0},
	{"trunc with meta", false, 1, BC_REC_TRUNC, 0, 0, 0, 0, 0, 1, 16, 1, 0},
	{"trunc in space 2", false, 1, BC_REC_TRUNC, 0, 2, 0, 0, 0, 0, 16, 1, 0},
	{"trunc with expiry", false, 1, BC_REC_TRUNC, 0, 0, 0, 5, 0, 0, 16, 1, 0},
	{"trunc value 15", false, 1, BC_REC_TRUNC, 0, 0, 0, 0, 0, 0, 15, 0, 0},
	{"trunc value 17", false, 1, BC_REC_TRUNC, 0, 0, 0, 0, 0, 0, 17, 1, 0},
	{"trunc size too big", false, 0, BC_REC_TRUNC, 0, 0, 0, 0, 0, 0, 16, 1, UINT64_MAX},
	{"batch with key", false, 1, BC_REC_BATCH, 0, 0, 0, 0, 1, 0, 16, 1, 40},
	{"batch with meta", false, 1, BC_REC_BATCH, 0, 0, 0, 0, 0, 1, 16, 1, 40},
	{"batch in space 1", false, 1, BC_REC_BATCH, 0, 1, 0, 0, 0, 0, 16, 1, 40},
	{"batch with expiry", false, 1, BC_REC_BATCH, 0, 0, 0, 1, 0, 0, 16, 1, 40},
	{"batch as member", false, 1, BC_REC_BATCH, BC_RF_BATCH, 0, 0, 0, 0, 0, 16, 1, 40},
	{"batch value 15", false, 1, BC_REC_BATCH, 0, 0, 0, 0, 0, 0, 15, 0, 0},
	{"batch value 17", false, 1, BC_REC_BATCH, 0, 0, 0, 0, 0, 0, 17, 1, 40},
	{"batch count 0", false, 0, BC_REC_BATCH, 0, 0, 0, 0, 0, 0, 16, U32PAIR(0, 0), 0},
	{"batch count too big", false, 0, BC_REC_BATCH, 0, 0, 0, 0, 0, 0, 16,
	 U32PAIR(BC_MAX_BATCH_RECORDS + 1, 0), 40},
	{"batch zero field set", false, 0, BC_REC_BATCH, 0, 0, 0, 0, 0, 0, 16, U32PAIR(1, 0x100),
	 40},
};
#define NRAWS (int)(sizeof(raws) / sizeof(raws[0]))

/* Key, meta and value bytes come from here; big enough for the largest value field. */
#define PAT_SIZE (BC_CHUNK_PREFIX + BC_CHUNK_SIZE + 64)
static uint8_t pat[PAT_SIZE];

static const uint8_t *pat_key(void)
{
	return pat;
}

static const uint8_t *pat_meta(void)
{
	return pat + 7;
}

static void fill_pattern(void)
{
	for (size_t i = 0; i < sizeof(pat); i++)
		pat[i] = (uint8_t)(i * 131 + (i >> 8) * 7 + 1);
}

/* Encode raws[i] into a malloc'd buffer (extra spare bytes zeroed after it). */
static uint8_t *encode_raw(int i, size_t extra, uint32_t *total)
{
	const struct raw *r = &raws[i];
	uint8_t *value = malloc(r->vlen + 1);
	uint32_t size = bc_record_size(r->klen, r->mlen, r->vlen);
	uint8_t *buf = calloc(1, size + extra);

	ck_assert_ptr_nonnull(value);
	ck_assert_ptr_nonnull(buf);
	memcpy(value, pat + 13, r->vlen);
	if (r->vlen >= 16) {
		bc_put64(value, r->v0);
		bc_put64(value + 8, r->v1);
	}
	uint32_t n = bc_record_encode(buf, r->type, r->flags, r->space, T0 + (uint64_t)i, r->expire,
				      pat_key(), r->klen, pat_meta(), r->mlen, value, r->vlen);
	ck_assert_uint_eq(n, size);
	if (r->reserved) {
		buf[BC_RH_RESERVED] = r->reserved;
		bc_put32(buf, bc_crc32c(0, buf + 4, size - 4));
	}
	free(value);
	*total = size;
	return buf;
}

static void check_fields(int i, const uint8_t *buf, const struct bc_record *rec)
{
	const struct raw *r = &raws[i];

	ck_assert_uint_eq(rec->type, r->type);
	ck_assert_uint_eq(rec->flags, r->flags);
	ck_assert_uint_eq(rec->space, r->space);
	ck_assert_uint_eq(rec->time_ns, T0 + (uint64_t)i);
	ck_assert_uint_eq(rec->expire_s, r->expire);
	ck_assert_uint_eq(rec->klen, r->klen);
	ck_assert_uint_eq(rec->mlen, r->mlen);
	ck_assert_uint_eq(rec->vlen, r->vlen);
	ck_assert_ptr_eq(rec->key, buf + BC_REC_HEADER_SIZE);
	ck_assert_int_eq(memcmp(rec->key, pat_key(), r->klen), 0);
	ck_assert_ptr_eq(rec->meta, buf + BC_REC_HEADER_SIZE + r->klen);
	ck_assert_int_eq(memcmp(rec->meta, pat_meta(), r->mlen), 0);
	ck_assert_ptr_eq(rec->value, buf + BC_REC_HEADER_SIZE + r->klen + r->mlen);

	switch (r->type) {
	case BC_REC_PUT:
		ck_assert_ptr_eq(rec->data, rec->value);
		ck_assert_uint_eq(rec->dlen, r->vlen);
		break;
	case BC_REC_LINK:
	case BC_REC_TRUNC:
		ck_assert_uint_eq(rec->object, r->v0);
		ck_assert_uint_eq(rec->size, r->v1);
		break;
	case BC_REC_CHUNK:
		ck_assert_uint_eq(rec->object, r->v0);
		ck_assert_uint_eq(rec->index, (uint32_t)r->v1);
		ck_assert_ptr_eq(rec->data, rec->value + 16);
		ck_assert_uint_eq(rec->dlen, r->vlen - 16);
		ck_assert_int_eq(memcmp(rec->data, pat + 13 + 16, rec->dlen), 0);
		break;
	case BC_REC_BATCH:
		ck_assert_uint_eq(rec->count, (uint32_t)r->v0);
		ck_assert_uint_eq(rec->size, r->v1);
		break;
	default:
		break;
	}
}

START_TEST(round_trip)
{
	struct bc_record rec;
	uint32_t total, hdr_total;
	size_t used = 0;

	if (!raws[_i].valid)
		return;
	uint8_t *buf = encode_raw(_i, 100, &total);
	ck_assert_int_eq(bc_record_check_header(buf, &hdr_total), 0);
	ck_assert_uint_eq(hdr_total, total);
	/* Exact length, and with bytes to spare: decode takes only its record. */
	ck_assert_int_eq(bc_record_decode(buf, total, &rec, &used), 0);
	ck_assert_uint_eq(used, total);
	check_fields(_i, buf, &rec);
	ck_assert_int_eq(bc_record_decode(buf, total + 100, &rec, &used), 0);
	ck_assert_uint_eq(used, total);
	check_fields(_i, buf, &rec);
	free(buf);
}
END_TEST

/* The header-only encoders agree with the whole-record encoder. */
START_TEST(encode_header_matches)
{
	const struct raw *r = &raws[_i];
	uint8_t hdr[BC_REC_HEADER_SIZE];
	uint32_t total;

	if (!r->valid || r->reserved)
		return;
	uint8_t *buf = encode_raw(_i, 0, &total);
	const uint8_t *body = buf + BC_REC_HEADER_SIZE;
	uint64_t t = T0 + (uint64_t)_i;

	bc_record_encode_header(hdr, r->type, r->flags, r->space, t, r->expire, r->klen, r->mlen,
				r->vlen, body, total - BC_REC_HEADER_SIZE);
	ck_assert_int_eq(memcmp(hdr, buf, sizeof(hdr)), 0);

	/* Body CRC built piece by piece: key, meta, value. */
	uint32_t c = bc_crc32c(0, body, r->klen);
	c = bc_crc32c(c, body + r->klen, r->mlen);
	c = bc_crc32c(c, body + r->klen + r->mlen, r->vlen);
	memset(hdr, 0, sizeof(hdr));
	bc_record_encode_header_crc(hdr, r->type, r->flags, r->space, t, r->expire, r->klen,
				    r->mlen, r->vlen, c);
	ck_assert_int_eq(memcmp(hdr, buf, sizeof(hdr)), 0);
	free(buf);
}
END_TEST

/* A valid record cut anywhere is a prefix: -ENODATA, never a success or a false alarm. */
START_TEST(truncated_is_nodata)
{
	struct bc_record rec;
	uint32_t total;
	size_t used;

	if (!raws[_i].valid)
		return;
	uint8_t *buf = encode_raw(_i, 0, &total);
	for (uint32_t cut = 0; cut < total; cut++) {
		/* Near the ends decode a copy of exactly cut bytes, so ASan catches a read past
		 * the end; in the middle of big records copying every prefix costs too much. */
		bool copy = cut < 4096 || total - cut < 4096;
		uint8_t *part = copy ? malloc(cut ? cut : 1) : buf;
		ck_assert_ptr_nonnull(part);
		if (copy)
			memcpy(part, buf, cut);
		int rc = bc_record_decode(part, cut, &rec, &used);
		ck_assert_msg(rc == -ENODATA, "%s cut at %u: rc %d", raws[_i].name, cut, rc);
		if (copy)
			free(part);
	}
	free(buf);
}
END_TEST

/*
 * Every byte of a small valid record flipped (three masks): -EBADMSG, or -ENODATA when a
 * length field now claims more bytes than the buffer holds; never a success.
 */
START_TEST(flipped_byte_rejected)
{
	static const uint8_t masks[] = {0x01, 0x80, 0xff};
	struct bc_record rec;
	uint32_t total;
	size_t used;

	if (!raws[_i].valid)
		return;
	uint8_t *buf = encode_raw(_i, 0, &total);
	if (total > 4096) {
		free(buf);
		return;
	}
	for (uint32_t pos = 0; pos < total; pos++) {
		for (size_t m = 0; m < sizeof(masks); m++) {
			buf[pos] ^= masks[m];
			int rc = bc_record_decode(buf, total, &rec, &used);
			buf[pos] ^= masks[m];
			if (rc == -ENODATA) {
				ck_assert_msg(pos >= BC_RH_KLEN && pos < BC_REC_HEADER_SIZE,
					      "%s byte %u: -ENODATA outside the lengths",
					      raws[_i].name, pos);
				continue;
			}
			ck_assert_msg(rc == -EBADMSG, "%s byte %u mask %02x: rc %d", raws[_i].name,
				      pos, masks[m], rc);
		}
	}
	free(buf);
}
END_TEST

/* Each invalid spec is rejected although its CRC is right. */
START_TEST(rule_rejected)
{
	const struct raw *r = &raws[_i];
	struct bc_record rec;
	uint32_t total, hdr_total = 0;
	size_t used;

	if (r->valid)
		return;
	uint8_t *buf = encode_raw(_i, 0, &total);
	int hrc = bc_record_check_header(buf, &hdr_total);
	if (r->rule)
		ck_assert_msg(hrc == -EBADMSG, "%s: check_header %d", r->name, hrc);
	else
		ck_assert_msg(hrc == 0 && hdr_total == total, "%s: check_header %d", r->name, hrc);
	int rc = bc_record_decode(buf, total, &rec, &used);
	ck_assert_msg(rc == -EBADMSG, "%s: decode %d", r->name, rc);
	/* A rejected decode leaves nothing behind. */
	ck_assert_ptr_null(rec.key);
	ck_assert_uint_eq(rec.type, 0);
	free(buf);
}
END_TEST

START_TEST(bad_crc_rejected)
{
	struct bc_record rec;
	uint32_t total;
	size_t used;

	uint8_t *buf = encode_raw(1, 0, &total);
	bc_put32(buf, bc_le32(buf) ^ 1);
	ck_assert_int_eq(bc_record_decode(buf, total, &rec, &used), -EBADMSG);
	free(buf);
}
END_TEST

/*
 * A record read in two pieces (head, then data into a buffer elsewhere) decodes exactly
 * when the whole record decodes as a CHUNK, with the same fields; any byte flipped in
 * either piece, or a data length one short, is rejected.
 */
START_TEST(split_chunk_agrees)
{
	static const uint8_t masks[] = {0x01, 0x80};
	struct bc_record whole, split;
	uint32_t total;
	size_t used;

	uint8_t *buf = encode_raw(_i, 0, &total);
	if (total < BC_CHUNK_HEAD) {
		free(buf);
		return;
	}
	uint32_t dlen = total - BC_CHUNK_HEAD;
	uint8_t *data = malloc(dlen + 1);
	ck_assert_ptr_nonnull(data);
	memcpy(data, buf + BC_CHUNK_HEAD, dlen);
	int rc = bc_record_decode(buf, total, &whole, &used);
	bool chunk = rc == 0 && whole.type == BC_REC_CHUNK;
	int src = bc_record_decode_chunk(buf, data, dlen, &split);
	ck_assert_msg(chunk ? src == 0 : src == -EBADMSG, "%s: whole %d, split %d", raws[_i].name,
		      rc, src);
	if (chunk) {
		ck_assert_uint_eq(split.type, whole.type);
		ck_assert_uint_eq(split.flags, whole.flags);
		ck_assert_uint_eq(split.space, whole.space);
		ck_assert_uint_eq(split.time_ns, whole.time_ns);
		ck_assert_uint_eq(split.expire_s, whole.expire_s);
		ck_assert_uint_eq(split.vlen, whole.vlen);
		ck_assert_uint_eq(split.object, whole.object);
		ck_assert_uint_eq(split.index, whole.index);
		ck_assert_uint_eq(split.dlen, whole.dlen);
		ck_assert_ptr_eq(split.data, data);
		ck_assert_int_eq(bc_record_decode_chunk(buf, data, dlen - 1, &split), -EBADMSG);
		for (uint32_t pos = 0; pos < total && total <= 4096; pos++)
			for (size_t m = 0; m < sizeof(masks); m++) {
				uint8_t *p = pos < BC_CHUNK_HEAD ? buf + pos
								 : data + pos - BC_CHUNK_HEAD;
				*p ^= masks[m];
				src = bc_record_decode_chunk(buf, data, dlen, &split);
				*p ^= masks[m];
				ck_assert_msg(src == -EBADMSG, "%s byte %u mask %02x: %d",
					      raws[_i].name, pos, masks[m], src);
			}
	}
	free(data);
	free(buf);
}
END_TEST

START_TEST(back_to_back)
{
	uint8_t buf[256];
	struct bc_record rec;
	size_t used, off = 0;
	uint8_t ov[16];

	bc_record_obj_value(ov, 4, 100000);
	off += bc_record_encode(buf, BC_REC_PUT, 0, 0, 1, 0, "a", 1, NULL, 0, "xyz", 3);
	off += bc_record_encode(buf + off, BC_REC_LINK, 0, 0, 2, 0, "b", 1, "mm", 2, ov, 16);
	off += bc_record_encode(buf + off, BC_REC_DELETE, 0, 0, 3, 0, "a", 1, NULL, 0, NULL, 0);

	size_t pos = 0;
	ck_assert_int_eq(bc_record_decode(buf + pos, off - pos, &rec, &used), 0);
	ck_assert_uint_eq(rec.type, BC_REC_PUT);
	ck_assert_uint_eq(used, 36);
	pos += used;
	ck_assert_int_eq(bc_record_decode(buf + pos, off - pos, &rec, &used), 0);
	ck_assert_uint_eq(rec.type, BC_REC_LINK);
	ck_assert_uint_eq(rec.object, 4);
	ck_assert_uint_eq(rec.size, 100000);
	ck_assert_int_eq(memcmp(rec.meta, "mm", 2), 0);
	pos += used;
	ck_assert_int_eq(bc_record_decode(buf + pos, off - pos, &rec, &used), 0);
	ck_assert_uint_eq(rec.type, BC_REC_DELETE);
	ck_assert_uint_eq(rec.time_ns, 3);
	pos += used;
	ck_assert_uint_eq(pos, off);
	ck_assert_int_eq(bc_record_decode(buf + pos, off - pos, &rec, &used), -ENODATA);
}
END_TEST

START_TEST(value_helpers)
{
	uint8_t v[16];

	bc_record_obj_value(v, 0x0102030405060708u, 0x1112131415161718u);
	ck_assert_uint_eq(v[0], 0x08);
	ck_assert_uint_eq(bc_le64(v), 0x0102030405060708u);
	ck_assert_uint_eq(bc_le64(v + 8), 0x1112131415161718u);
	memset(v, 0xee, sizeof(v));
	bc_record_chunk_prefix(v, 5, 0xa0b0c0d0u);
	ck_assert_uint_eq(bc_le64(v), 5);
	ck_assert_uint_eq(bc_le32(v + 8), 0xa0b0c0d0u);
	ck_assert_uint_eq(bc_le32(v + 12), 0);
	memset(v, 0xee, sizeof(v));
	bc_record_batch_value(v, 3, 999);
	ck_assert_uint_eq(bc_le32(v), 3);
	ck_assert_uint_eq(bc_le32(v + 4), 0);
	ck_assert_uint_eq(bc_le64(v + 8), 999);
}
END_TEST

/* ---- File header ---- */

static void header_sample(uint8_t out[BC_FILE_HEADER_SIZE], uint16_t kind)
{
	struct bc_file_header h = {
		.kind = kind,
		.id = 0x10000,
		.next_object = 42,
		.created_ns = T0,
	};
	bc_file_header_encode(out, &h);
}

/* Patch a field and make the CRC right again. */
static void header_patch(uint8_t *b, size_t off, const void *bytes, size_t n)
{
	memcpy(b + off, bytes, n);
	bc_put32(b + BC_FH_CRC, bc_crc32c(0, b, BC_FH_CRC));
}

START_TEST(file_header_round_trip)
{
	uint8_t b[BC_FILE_HEADER_SIZE];
	struct bc_file_header h;

	for (uint16_t kind = BC_KIND_DATA; kind <= BC_KIND_HINT; kind++) {
		header_sample(b, kind);
		ck_assert_int_eq(memcmp(b, "bitcask\0", 8), 0);
		ck_assert_uint_eq(bc_le16(b + BC_FH_VERSION), BC_FORMAT_VERSION);
		ck_assert_uint_eq(bc_le32(b + BC_FH_CHUNK), BC_CHUNK_SIZE);
		ck_assert_int_eq(bc_file_header_decode(b, &h), 0);
		ck_assert_uint_eq(h.version, BC_FORMAT_VERSION);
		ck_assert_uint_eq(h.kind, kind);
		ck_assert_uint_eq(h.chunk_size, BC_CHUNK_SIZE);
		ck_assert_uint_eq(h.id, 0x10000);
		ck_assert_uint_eq(h.next_object, 42);
		ck_assert_uint_eq(h.created_ns, T0);
	}
}
END_TEST

struct hdr_damage {
	const char *name;
	size_t off;
	uint8_t bytes[8];
	size_t n;
	bool fix_crc;
	int want;
};

static const struct hdr_damage hdr_damages[] = {
	{"bad magic", 0, {'B'}, 1, true, -EBADMSG},
	{"bad crc", BC_FH_CRC, {0}, 1, false, -EBADMSG},
	{"version 0", BC_FH_VERSION, {0, 0}, 2, true, -EBADMSG},
	{"newer version", BC_FH_VERSION, {2, 0}, 2, true, -EPROTONOSUPPORT},
	{"much newer version", BC_FH_VERSION, {0, 1}, 2, true, -EPROTONOSUPPORT},
	{"other chunk size", BC_FH_CHUNK, {0, 0x10, 0, 0}, 4, true, -EPROTONOSUPPORT},
	{"kind 0", BC_FH_KIND, {0, 0}, 2, true, -EBADMSG},
	{"kind 3", BC_FH_KIND, {3, 0}, 2, true, -EBADMSG},
	{"reserved set", BC_FH_RESERVED, {0, 0, 0, 0x80}, 4, true, -EBADMSG},
};
#define NHDR_DAMAGES (int)(sizeof(hdr_damages) / sizeof(hdr_damages[0]))

START_TEST(file_header_rejects)
{
	const struct hdr_damage *d = &hdr_damages[_i];
	uint8_t b[BC_FILE_HEADER_SIZE];
	struct bc_file_header h;

	header_sample(b, BC_KIND_DATA);
	if (d->fix_crc) {
		header_patch(b, d->off, d->bytes, d->n);
	} else {
		b[d->off] ^= 0x01;
	}
	int rc = bc_file_header_decode(b, &h);
	ck_assert_msg(rc == d->want, "%s: %d", d->name, rc);
}
END_TEST

START_TEST(file_header_flipped_byte_rejected)
{
	uint8_t b[BC_FILE_HEADER_SIZE];
	struct bc_file_header h;

	header_sample(b, BC_KIND_HINT);
	for (size_t pos = 0; pos < sizeof(b); pos++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			b[pos] ^= (uint8_t)(1u << bit);
			ck_assert_int_eq(bc_file_header_decode(b, &h), -EBADMSG);
			b[pos] ^= (uint8_t)(1u << bit);
		}
	}
	ck_assert_int_eq(bc_file_header_decode(b, &h), 0);
}
END_TEST

static Suite *record_suite(void)
{
	Suite *s = suite_create("record");
	TCase *tc;

	tc = tcase_create("round trip");
	tcase_add_loop_test(tc, round_trip, 0, NRAWS);
	tcase_add_loop_test(tc, encode_header_matches, 0, NRAWS);
	tcase_add_test(tc, back_to_back);
	tcase_add_test(tc, value_helpers);
	suite_add_tcase(s, tc);

	tc = tcase_create("decode rejects damage");
	tcase_add_loop_test(tc, truncated_is_nodata, 0, NRAWS);
	tcase_add_loop_test(tc, flipped_byte_rejected, 0, NRAWS);
	tcase_add_loop_test(tc, split_chunk_agrees, 0, NRAWS);
	tcase_add_test(tc, bad_crc_rejected);
	suite_add_tcase(s, tc);

	tc = tcase_create("decode rejects broken rules");
	tcase_add_loop_test(tc, rule_rejected, 0, NRAWS);
	suite_add_tcase(s, tc);

	tc = tcase_create("file header");
	tcase_add_test(tc, file_header_round_trip);
	tcase_add_loop_test(tc, file_header_rejects, 0, NHDR_DAMAGES);
	tcase_add_test(tc, file_header_flipped_byte_rejected);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	fill_pattern();
	SRunner *sr = srunner_create(record_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
