/* SPDX-License-Identifier: MIT */
/*
 * Record and file-header codec: bytes <-> structs, with every validity check of
 * docs/FORMAT.md "Records" and "File header". No I/O: callers hand in buffers.
 * Decoding treats its input as untrusted; it never reads outside [buf, buf+len).
 */
#ifndef BC_ENGINE_RECORD_H
#define BC_ENGINE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"

/* A decoded record. Pointers point into the decoded buffer (valid while it is). */
struct bc_record {
	uint8_t type; /* enum bc_rec_type */
	uint8_t flags; /* BC_RF_* */
	uint8_t space;
	uint64_t time_ns;
	uint64_t expire_s;
	const uint8_t *key;
	uint32_t klen;
	const uint8_t *meta;
	uint32_t mlen;
	const uint8_t *value; /* the whole value field, vlen bytes */
	uint32_t vlen;
	/* Decoded from the value field by type: */
	uint64_t object; /* LINK, CHUNK, TRUNC */
	uint64_t size; /* LINK, TRUNC: object size; BATCH: member bytes */
	uint32_t index; /* CHUNK */
	uint32_t count; /* BATCH: members */
	const uint8_t *data; /* CHUNK: data (value + 16), PUT: = value */
	uint32_t dlen; /* CHUNK: data length, PUT: = vlen */
};

/* Total encoded size of a record with these field lengths. */
static inline uint32_t bc_record_size(uint32_t klen, uint32_t mlen, uint32_t vlen)
{
	return BC_REC_HEADER_SIZE + klen + mlen + vlen;
}

/*
 * Check a header's fields (not the CRC) from 32 bytes at hdr: type known, flags known,
 * reserved zero, per-type length rules. Returns 0 and sets *total to the record size,
 * or -EBADMSG. Used by scans to reject garbage before reading the body.
 */
int bc_record_check_header(const uint8_t *hdr, uint32_t *total);

/*
 * Decode one record from buf[0..len).
 * Returns 0 and fills *rec (pointing into buf) and *used; -ENODATA if buf holds only a
 * prefix of a record whose header is plausible; -EBADMSG if the header is impossible or
 * the CRC does not match.
 */
int bc_record_decode(const uint8_t *buf, size_t len, struct bc_record *rec, size_t *used);

/* Bytes of a CHUNK record before its data: the header and the 16-byte prefix. */
#define BC_CHUNK_HEAD (BC_REC_HEADER_SIZE + BC_CHUNK_PREFIX)

/*
 * Decode a CHUNK record read in two pieces: its first BC_CHUNK_HEAD bytes at head and its
 * dlen data bytes at data (read straight into a caller's buffer). The same checks as
 * bc_record_decode; rec->data points at data and rec->value at the prefix in head.
 * -EBADMSG if it is not a CHUNK record of BC_CHUNK_HEAD + dlen bytes or the CRC does not
 * match.
 */
int bc_record_decode_chunk(const uint8_t head[BC_CHUNK_HEAD], const uint8_t *data, uint32_t dlen,
			   struct bc_record *rec);

/*
 * Encode a record with the given fields into out, which must hold
 * bc_record_size(klen, mlen, vlen) bytes; the value field is given as the caller's bytes
 * (for PUT the value; for LINK, CHUNK, TRUNC and BATCH build it with the helpers below).
 * Computes the CRC. Returns the number of bytes written.
 */
uint32_t bc_record_encode(uint8_t *out, uint8_t type, uint8_t flags, uint8_t space,
			  uint64_t time_ns, uint64_t expire_s, const void *key, uint32_t klen,
			  const void *meta, uint32_t mlen, const void *value, uint32_t vlen);

/*
 * Encode only the 32-byte header for a record whose body (key, meta, value) the caller
 * writes separately (vectored I/O of large data). body holds the body_len =
 * klen + mlen + vlen body bytes in order (body may be NULL when body_len is 0); the CRC
 * covers header bytes [4,32) followed by the body.
 */
void bc_record_encode_header(uint8_t out[BC_REC_HEADER_SIZE], uint8_t type, uint8_t flags,
			     uint8_t space, uint64_t time_ns, uint64_t expire_s, uint32_t klen,
			     uint32_t mlen, uint32_t vlen, const void *body, size_t body_len);

/*
 * bc_record_encode_header for a body that is not contiguous: body_crc is bc_crc32c started
 * from 0 over the klen + mlen + vlen body bytes in order (extend it piece by piece).
 */
void bc_record_encode_header_crc(uint8_t out[BC_REC_HEADER_SIZE], uint8_t type, uint8_t flags,
				 uint8_t space, uint64_t time_ns, uint64_t expire_s, uint32_t klen,
				 uint32_t mlen, uint32_t vlen, uint32_t body_crc);

/* Value fields of the object records (out holds 16 bytes). */
void bc_record_obj_value(uint8_t out[16], uint64_t object, uint64_t size);
void bc_record_chunk_prefix(uint8_t out[16], uint64_t object, uint32_t index);
void bc_record_batch_value(uint8_t out[16], uint32_t count, uint64_t bytes);

/* A decoded file header. */
struct bc_file_header {
	uint16_t version;
	uint16_t kind; /* enum bc_file_kind */
	uint32_t chunk_size;
	uint64_t id;
	uint64_t next_object;
	uint64_t created_ns;
};

/* A version or chunk_size of 0 encodes as BC_FORMAT_VERSION or BC_CHUNK_SIZE. */
void bc_file_header_encode(uint8_t out[BC_FILE_HEADER_SIZE], const struct bc_file_header *h);
/*
 * Returns 0; -EBADMSG if magic or CRC is wrong, the version is 0, the kind unknown or a
 * reserved field is set; -EPROTONOSUPPORT if the version is newer than this code knows or
 * the chunk size differs (both only when the CRC matches). The caller checks kind and id.
 */
int bc_file_header_decode(const uint8_t in[BC_FILE_HEADER_SIZE], struct bc_file_header *h);

#endif /* BC_ENGINE_RECORD_H */
