// SPDX-License-Identifier: MIT
/*
 * Record-by-record reading of a data file through a sliding buffer. A record is accepted
 * only when bc_record_decode accepts it (header rules and CRC); after an invalid byte
 * the scanner looks for the next offset where a valid record starts. See scan.h.
 */
#include "scan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SCAN_BUF (UINT64_C(4) << 20)

int bc_scan_init(struct bc_scan *s, const struct bc_io *io, int fd, uint64_t start, uint64_t size)
{
	memset(s, 0, sizeof(*s));
	s->io = io;
	s->fd = fd;
	s->size = size;
	s->pos = start;
	s->data_end = UINT64_MAX;
	s->tail = size;
	s->cap = SCAN_BUF;
	s->buf = malloc(s->cap);
	return s->buf ? 0 : -ENOMEM;
}

void bc_scan_release(struct bc_scan *s)
{
	free(s->buf);
	s->buf = NULL;
}

/* Make [off, off + want) available in the buffer as far as the file allows. */
static int fill(struct bc_scan *s, uint64_t off, size_t want)
{
	if (off >= s->buf_off && off + want <= s->buf_off + s->buf_len)
		return 0;
	if (off >= s->buf_off && s->buf_off + s->buf_len >= s->size)
		return 0; /* the buffer already reaches the end */
	size_t n = s->size - off < s->cap ? (size_t)(s->size - off) : s->cap;
	size_t got;
	int rc = bc_io_pread(s->io, s->fd, s->buf, n, off, &got);
	if (rc)
		return rc;
	s->buf_off = off;
	s->buf_len = got;
	if (got < n)
		s->size = off + got; /* the file shrank under us */
	return 0;
}

/* Try to decode at off: 1 valid, 0 not, negative error. */
static int try_at(struct bc_scan *s, uint64_t off, struct bc_record *rec, size_t *used)
{
	if (off + BC_REC_HEADER_SIZE > s->size)
		return 0;
	int rc = fill(s, off, BC_REC_HEADER_SIZE);
	if (rc)
		return rc;
	uint32_t total;
	if (bc_record_check_header(s->buf + (off - s->buf_off), &total))
		return 0;
	if (off + total > s->size)
		return 0;
	rc = fill(s, off, total);
	if (rc)
		return rc;
	if (off + total > s->buf_off + s->buf_len)
		return 0;
	rc = bc_record_decode(s->buf + (off - s->buf_off), s->buf_len - (size_t)(off - s->buf_off),
			      rec, used);
	return rc == 0 ? 1 : 0;
}

/* Bytes read per step of find_data_end: a data file's last record ends in its last few. */
#define DATA_END_STEP 65536

/*
 * Find where the zero bytes at the end of the file begin (no lower than s->pos): one
 * backward read for a file that ends in data, one per 64 KiB of a zero-filled tail. Only
 * called once a record fails to decode, so a clean file never pays for it.
 */
static int find_data_end(struct bc_scan *s)
{
	uint64_t end = s->size;
	while (end > s->pos) {
		size_t n = end - s->pos < DATA_END_STEP ? (size_t)(end - s->pos) : DATA_END_STEP;
		size_t got;
		int rc = bc_io_pread(s->io, s->fd, s->buf, n, end - n, &got);
		s->buf_off = s->buf_len = 0; /* the buffer no longer holds what it did */
		if (rc)
			return rc;
		if (got < n) {
			/* The file shrank under us: scan what is left. */
			s->size = end - n + got;
			end = s->size;
			continue;
		}
		size_t i = n;
		while (i > 0 && !s->buf[i - 1])
			i--;
		if (i > 0) {
			end -= n - i;
			break;
		}
		end -= n;
	}
	s->data_end = end;
	return 0;
}

int bc_scan_next(struct bc_scan *s, struct bc_record *rec, uint64_t *off, uint64_t *len,
		 bool *at_end)
{
	size_t used;
	*at_end = false;
	if (s->pos >= s->size) {
		if (s->tail > s->size)
			s->tail = s->size;
		return BC_SCAN_END;
	}
	int rc = try_at(s, s->pos, rec, &used);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		*off = s->pos;
		*len = used;
		s->pos += used;
		return BC_SCAN_RECORD;
	}
	if (s->data_end == UINT64_MAX && (rc = find_data_end(s)))
		return rc;
	if (s->pos >= s->data_end) {
		/* Every byte from here on is zero: a zero-filled tail. A record's header has a
		 * non-zero type byte, so none can start in it. */
		s->tail = s->pos;
		s->pos = s->size;
		return BC_SCAN_END;
	}
	/*
	 * Damage. When the header is plausible the record's own extent is the likeliest
	 * damage: skip it whole if a valid record follows it (or the data ends there), so
	 * bytes inside a damaged value are never mistaken for records; a plausible header
	 * running past the end of the data is a torn tail. Otherwise search byte by byte,
	 * no further than the data's end: no record starts among the zeros after it.
	 */
	uint64_t start = s->pos, end = s->data_end < s->size ? s->data_end : s->size;
	uint32_t total;
	s->dmg_plausible = false;
	rc = fill(s, start, BC_REC_HEADER_SIZE);
	if (rc)
		return rc;
	if (start + BC_REC_HEADER_SIZE <= s->size &&
	    !bc_record_check_header(s->buf + (start - s->buf_off), &total)) {
		uint64_t next = start + total;
		int ok = next < end ? try_at(s, next, rec, &used) : 0;
		if (ok < 0)
			return ok;
		if (next >= end || ok == 1) {
			if (next <= s->size) {
				rc = fill(s, start, sizeof(s->dmg));
				if (rc)
					return rc;
				size_t have = s->buf_off + s->buf_len - start;
				if (have >= sizeof(s->dmg)) {
					memcpy(s->dmg, s->buf + (start - s->buf_off),
					       sizeof(s->dmg));
					s->dmg_plausible = true;
				}
			}
			*off = start;
			*len = (next < end ? next : end) - start;
			*at_end = next >= end;
			s->pos = next < end ? next : end;
			if (*at_end)
				s->tail = end;
			return BC_SCAN_DAMAGE;
		}
	}
	for (uint64_t q = start + 1; q < end; q++) {
		rc = try_at(s, q, rec, &used);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			*off = start;
			*len = q - start;
			s->pos = q;
			return BC_SCAN_DAMAGE;
		}
	}
	*off = start;
	*len = end - start;
	*at_end = true;
	s->pos = end;
	s->tail = end;
	return BC_SCAN_DAMAGE;
}

bool bc_scan_damaged_chunk(const struct bc_scan *s, uint64_t *object, uint32_t *index,
			   uint32_t *size)
{
	const uint8_t *h = s->dmg;
	if (!s->dmg_plausible || h[BC_RH_TYPE] != BC_REC_CHUNK || (h[BC_RH_FLAGS] & BC_RF_BATCH))
		return false;
	*object = bc_le64(h + BC_REC_HEADER_SIZE);
	*index = bc_le32(h + BC_REC_HEADER_SIZE + 8);
	*size = bc_record_size(0, 0, bc_le32(h + BC_RH_VLEN));
	return true;
}
