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
	uint64_t size;    /* scan ends here */
	uint64_t pos;     /* next offset to decode */
	uint8_t *buf;
	size_t cap;
	uint64_t buf_off; /* file offset of buf[0] */
	size_t buf_len;
};

enum bc_scan_item { BC_SCAN_END = 0, BC_SCAN_RECORD = 1, BC_SCAN_DAMAGE = 2 };

int bc_scan_init(struct bc_scan *s, const struct bc_io *io, int fd, uint64_t start,
		 uint64_t size);
void bc_scan_release(struct bc_scan *s);

/*
 * Next item from s->pos on. BC_SCAN_RECORD: *rec (valid until the next call) at *off,
 * *len its size. BC_SCAN_DAMAGE: bytes [*off, *off + *len) hold no valid record; the next
 * call continues at the next valid record, or ends if the damage runs to the end (then
 * *at_end is true). BC_SCAN_END: done. Negative: an I/O error.
 */
int bc_scan_next(struct bc_scan *s, struct bc_record *rec, uint64_t *off, uint64_t *len,
		 bool *at_end);

#endif /* BC_ENGINE_SCAN_H */
