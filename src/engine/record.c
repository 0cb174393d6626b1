// SPDX-License-Identifier: MIT
/*
 * The record and file-header codec (docs/FORMAT.md "Records", "File header"). Encoding
 * trusts its caller; decoding trusts nothing: a record is accepted if and only if every
 * header field is in range for its type, its value field is well formed and its CRC
 * matches, which is exactly the validity rule of FORMAT.md. Every read stays inside the
 * buffer handed in, and lengths are checked before they are used.
 */
#include "record.h"

#include <errno.h>
#include <string.h>

#include "crc32c.h"

/*
 * The rules that need only the header (FORMAT.md "Validity"). A BATCH is never a member
 * itself, so its flags must be 0; the object records carry no key, metadata, space or
 * expiry.
 */
int bc_record_check_header(const uint8_t *hdr, uint32_t *total)
{
	uint8_t type = hdr[BC_RH_TYPE];
	uint8_t flags = hdr[BC_RH_FLAGS];
	uint8_t space = hdr[BC_RH_SPACE];
	uint64_t expire = bc_le64(hdr + BC_RH_EXPIRE);
	uint32_t klen = bc_le16(hdr + BC_RH_KLEN);
	uint32_t mlen = bc_le16(hdr + BC_RH_MLEN);
	uint32_t vlen = bc_le32(hdr + BC_RH_VLEN);
	bool bare = klen == 0 && mlen == 0 && space == 0 && expire == 0;

	if (flags & ~BC_RF_KNOWN || hdr[BC_RH_RESERVED] != 0)
		return -EBADMSG;
	switch (type) {
	case BC_REC_PUT:
		if (klen < 1 || vlen > BC_MAX_INLINE)
			return -EBADMSG;
		break;
	case BC_REC_DELETE:
		if (klen < 1 || mlen != 0 || vlen != 0 || expire != 0)
			return -EBADMSG;
		break;
	case BC_REC_LINK:
		if (klen < 1 || vlen != BC_OBJ_VALUE_SIZE)
			return -EBADMSG;
		break;
	case BC_REC_CHUNK:
		if (!bare || vlen <= BC_CHUNK_PREFIX || vlen > BC_CHUNK_PREFIX + BC_CHUNK_SIZE)
			return -EBADMSG;
		break;
	case BC_REC_TRUNC:
		if (!bare || vlen != BC_OBJ_VALUE_SIZE)
			return -EBADMSG;
		break;
	case BC_REC_BATCH:
		if (!bare || flags != 0 || vlen != BC_BATCH_VALUE_SIZE)
			return -EBADMSG;
		break;
	default:
		return -EBADMSG;
	}
	/* At most BC_MAX_RECORD: klen and mlen are u16, vlen was bounded above. */
	*total = bc_record_size(klen, mlen, vlen);
	return 0;
}

/* Decode the typed value field into rec; the value rules of FORMAT.md "Validity". */
static int decode_value(struct bc_record *rec)
{
	const uint8_t *v = rec->value;

	switch (rec->type) {
	case BC_REC_PUT:
		rec->data = v;
		rec->dlen = rec->vlen;
		break;
	case BC_REC_DELETE:
		break;
	case BC_REC_LINK:
	case BC_REC_TRUNC:
		rec->object = bc_le64(v);
		rec->size = bc_le64(v + 8);
		if (rec->size > BC_MAX_VALUE)
			return -EBADMSG;
		break;
	case BC_REC_CHUNK:
		rec->object = bc_le64(v);
		rec->index = bc_le32(v + 8);
		if (bc_le32(v + 12) != 0)
			return -EBADMSG;
		rec->data = v + BC_CHUNK_PREFIX;
		rec->dlen = rec->vlen - BC_CHUNK_PREFIX;
		break;
	case BC_REC_BATCH:
		rec->count = bc_le32(v);
		rec->size = bc_le64(v + 8);
		if (rec->count < 1 || rec->count > BC_MAX_BATCH_RECORDS || bc_le32(v + 4) != 0)
			return -EBADMSG;
		break;
	default:
		return -EBADMSG;
	}
	return 0;
}

/* The header's fields into rec (a header bc_record_check_header accepted). */
static void header_fields(const uint8_t *hdr, struct bc_record *rec)
{
	rec->type = hdr[BC_RH_TYPE];
	rec->flags = hdr[BC_RH_FLAGS];
	rec->space = hdr[BC_RH_SPACE];
	rec->time_ns = bc_le64(hdr + BC_RH_TIME);
	rec->expire_s = bc_le64(hdr + BC_RH_EXPIRE);
	rec->klen = bc_le16(hdr + BC_RH_KLEN);
	rec->mlen = bc_le16(hdr + BC_RH_MLEN);
	rec->vlen = bc_le32(hdr + BC_RH_VLEN);
}

int bc_record_decode(const uint8_t *buf, size_t len, struct bc_record *rec, size_t *used)
{
	uint32_t total;
	int rc;

	memset(rec, 0, sizeof(*rec));
	if (len < BC_REC_HEADER_SIZE)
		return -ENODATA;
	rc = bc_record_check_header(buf, &total);
	if (rc)
		return rc;
	if (len < total)
		return -ENODATA;
	if (bc_crc32c(0, buf + 4, total - 4) != bc_le32(buf + BC_RH_CRC))
		return -EBADMSG;

	header_fields(buf, rec);
	rec->key = buf + BC_REC_HEADER_SIZE;
	rec->meta = rec->key + rec->klen;
	rec->value = rec->meta + rec->mlen;
	rc = decode_value(rec);
	if (rc) {
		memset(rec, 0, sizeof(*rec));
		return rc;
	}
	*used = total;
	return 0;
}

int bc_record_decode_chunk(const uint8_t head[BC_CHUNK_HEAD], const uint8_t *data, uint32_t dlen,
			   struct bc_record *rec)
{
	uint32_t total;

	memset(rec, 0, sizeof(*rec));
	if (bc_record_check_header(head, &total) || head[BC_RH_TYPE] != BC_REC_CHUNK ||
	    total != BC_CHUNK_HEAD + (uint64_t)dlen)
		return -EBADMSG;
	uint32_t crc = bc_crc32c(bc_crc32c(0, head + 4, BC_CHUNK_HEAD - 4), data, dlen);
	if (crc != bc_le32(head + BC_RH_CRC))
		return -EBADMSG;
	header_fields(head, rec);
	rec->value = head + BC_REC_HEADER_SIZE; /* klen and mlen are 0 */
	if (decode_value(rec)) {
		memset(rec, 0, sizeof(*rec));
		return -EBADMSG;
	}
	rec->data = data;
	return 0;
}

/* The header fields, everything but the CRC. */
static void put_fields(uint8_t *out, uint8_t type, uint8_t flags, uint8_t space, uint64_t time_ns,
		       uint64_t expire_s, uint32_t klen, uint32_t mlen, uint32_t vlen)
{
	out[BC_RH_TYPE] = type;
	out[BC_RH_FLAGS] = flags;
	out[BC_RH_SPACE] = space;
	out[BC_RH_RESERVED] = 0;
	bc_put64(out + BC_RH_TIME, time_ns);
	bc_put64(out + BC_RH_EXPIRE, expire_s);
	bc_put16(out + BC_RH_KLEN, (uint16_t)klen);
	bc_put16(out + BC_RH_MLEN, (uint16_t)mlen);
	bc_put32(out + BC_RH_VLEN, vlen);
}

static uint8_t *put_bytes(uint8_t *p, const void *src, uint32_t len)
{
	if (len)
		memcpy(p, src, len);
	return p + len;
}

uint32_t bc_record_encode(uint8_t *out, uint8_t type, uint8_t flags, uint8_t space,
			  uint64_t time_ns, uint64_t expire_s, const void *key, uint32_t klen,
			  const void *meta, uint32_t mlen, const void *value, uint32_t vlen)
{
	uint32_t total = bc_record_size(klen, mlen, vlen);
	uint8_t *p = out + BC_REC_HEADER_SIZE;

	put_fields(out, type, flags, space, time_ns, expire_s, klen, mlen, vlen);
	p = put_bytes(p, key, klen);
	p = put_bytes(p, meta, mlen);
	put_bytes(p, value, vlen);
	bc_put32(out + BC_RH_CRC, bc_crc32c(0, out + 4, total - 4));
	return total;
}

void bc_record_encode_header(uint8_t out[BC_REC_HEADER_SIZE], uint8_t type, uint8_t flags,
			     uint8_t space, uint64_t time_ns, uint64_t expire_s, uint32_t klen,
			     uint32_t mlen, uint32_t vlen, const void *body, size_t body_len)
{
	put_fields(out, type, flags, space, time_ns, expire_s, klen, mlen, vlen);
	uint32_t crc = bc_crc32c(0, out + 4, BC_REC_HEADER_SIZE - 4);
	if (body_len)
		crc = bc_crc32c(crc, body, body_len);
	bc_put32(out + BC_RH_CRC, crc);
}

void bc_record_encode_header_crc(uint8_t out[BC_REC_HEADER_SIZE], uint8_t type, uint8_t flags,
				 uint8_t space, uint64_t time_ns, uint64_t expire_s, uint32_t klen,
				 uint32_t mlen, uint32_t vlen, uint32_t body_crc)
{
	put_fields(out, type, flags, space, time_ns, expire_s, klen, mlen, vlen);
	uint32_t crc = bc_crc32c(0, out + 4, BC_REC_HEADER_SIZE - 4);
	uint64_t body_len = (uint64_t)klen + mlen + vlen;
	bc_put32(out + BC_RH_CRC, bc_crc32c_combine(crc, body_crc, body_len));
}

void bc_record_obj_value(uint8_t out[16], uint64_t object, uint64_t size)
{
	bc_put64(out, object);
	bc_put64(out + 8, size);
}

void bc_record_chunk_prefix(uint8_t out[16], uint64_t object, uint32_t index)
{
	bc_put64(out, object);
	bc_put32(out + 8, index);
	bc_put32(out + 12, 0);
}

void bc_record_batch_value(uint8_t out[16], uint32_t count, uint64_t bytes)
{
	bc_put32(out, count);
	bc_put32(out + 4, 0);
	bc_put64(out + 8, bytes);
}

void bc_file_header_encode(uint8_t out[BC_FILE_HEADER_SIZE], const struct bc_file_header *h)
{
	memcpy(out + BC_FH_MAGIC, BC_FILE_MAGIC, BC_FILE_MAGIC_LEN);
	bc_put16(out + BC_FH_VERSION, h->version ? h->version : BC_FORMAT_VERSION);
	bc_put16(out + BC_FH_KIND, h->kind);
	bc_put32(out + BC_FH_CHUNK, h->chunk_size ? h->chunk_size : BC_CHUNK_SIZE);
	bc_put64(out + BC_FH_ID, h->id);
	bc_put64(out + BC_FH_NEXT_OBJ, h->next_object);
	bc_put64(out + BC_FH_CREATED, h->created_ns);
	bc_put32(out + BC_FH_RESERVED, 0);
	bc_put32(out + BC_FH_CRC, bc_crc32c(0, out, BC_FH_CRC));
}

int bc_file_header_decode(const uint8_t in[BC_FILE_HEADER_SIZE], struct bc_file_header *h)
{
	memset(h, 0, sizeof(*h));
	if (memcmp(in + BC_FH_MAGIC, BC_FILE_MAGIC, BC_FILE_MAGIC_LEN) != 0)
		return -EBADMSG;
	if (bc_crc32c(0, in, BC_FH_CRC) != bc_le32(in + BC_FH_CRC))
		return -EBADMSG;

	/* The header layout and its CRC are the same in every version (FORMAT.md
	 * "Versioning"), so a newer file is recognised as such rather than as damage. */
	uint16_t version = bc_le16(in + BC_FH_VERSION);
	if (version == 0)
		return -EBADMSG;
	if (version > BC_FORMAT_VERSION)
		return -EPROTONOSUPPORT;
	if (bc_le32(in + BC_FH_CHUNK) != BC_CHUNK_SIZE)
		return -EPROTONOSUPPORT;

	uint16_t kind = bc_le16(in + BC_FH_KIND);
	if ((kind != BC_KIND_DATA && kind != BC_KIND_HINT) || bc_le32(in + BC_FH_RESERVED) != 0)
		return -EBADMSG;

	h->version = version;
	h->kind = kind;
	h->chunk_size = BC_CHUNK_SIZE;
	h->id = bc_le64(in + BC_FH_ID);
	h->next_object = bc_le64(in + BC_FH_NEXT_OBJ);
	h->created_ns = bc_le64(in + BC_FH_CREATED);
	return 0;
}
