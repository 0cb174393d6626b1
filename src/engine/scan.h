/* SPDX-License-Identifier: MIT */
/*
 * Sequential reading of a data file record by record, with resynchronisation past damage
 * (docs/FORMAT.md "Recovery"): used by open, merge, bc_check and bc_dump. The scanner
 * never trusts a length it has not validated and reads through a bounded buffer.
 */
#ifndef BC_ENGINE_SCAN_H
#define BC_ENGINE_SCAN_H

#include <stdbool.h>
#include <stdint.h>

#include "io.h"
#include "record.h"

struct bc_scan {
	const struct bc_io *io;
	int fd;
	uint64_t size; /* scan ends here */
	uint64_t pos; /* next offset to decode */
	/* Where the file's zero-filled tail begins: bytes from there to size are all zero
	 * (UINT64_MAX until the scanner first needs it). tail: where such a tail begins,
	 * once the scan has reached it (after BC_SCAN_END, or damage *at_end), else size. */
	uint64_t data_end;
	uint64_t tail;
	uint8_t *buf;
	size_t cap;
	uint64_t buf_off; /* file offset of buf[0] */
	size_t buf_len;
	/* After BC_SCAN_DAMAGE: the damaged span is one record whose header is plausible
	 * (its data is what failed the CRC); its first bytes, unverified, are in dmg. */
	bool dmg_plausible;
	uint8_t dmg[BC_REC_HEADER_SIZE + BC_CHUNK_PREFIX];
};

/*
 * After a damaged span: if it is one CHUNK record outside a batch whose header is
 * plausible, its (unverified) object and index, so the chunk can be kept pointing at the
 * damaged bytes and read as an error rather than as a hole. Returns whether it is.
 */
bool bc_scan_damaged_chunk(const struct bc_scan *s, uint64_t *object, uint32_t *index,
			   uint32_t *size);

enum bc_scan_item { BC_SCAN_END = 0, BC_SCAN_RECORD = 1, BC_SCAN_DAMAGE = 2 };

int bc_scan_init(struct bc_scan *s, const struct bc_io *io, int fd, uint64_t start, uint64_t size);
void bc_scan_release(struct bc_scan *s);

/*
 * Next item from s->pos on. BC_SCAN_RECORD: *rec (valid until the next call) at *off,
 * *len its size. BC_SCAN_DAMAGE: bytes [*off, *off + *len) hold no valid record; the next
 * call continues at the next valid record, or ends if the damage runs to the end of the
 * data (then *at_end is true). BC_SCAN_END: done; zero bytes where a record should start,
 * running to the end of the file, are a zero-filled tail (docs/FORMAT.md "Recovery"), not
 * damage, and s->tail says where it begins. Negative: an I/O error.
 */
int bc_scan_next(struct bc_scan *s, struct bc_record *rec, uint64_t *off, uint64_t *len,
		 bool *at_end);

#endif /* BC_ENGINE_SCAN_H */
