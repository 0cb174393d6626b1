// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the record and file-header codec (src/engine/record.c) on arbitrary
 * bytes. Decoding must never read outside its input, and whatever it accepts must obey the
 * validity rules of docs/FORMAT.md "Records" and re-encode to the same bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Decode from a private copy of exactly size bytes, so reads past it are caught. */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);

	uint32_t total;
	int hrc = size >= BC_REC_HEADER_SIZE ? bc_record_check_header(buf, &total) : -1;
	struct bc_record rec;
	size_t used = 0;
	int rc = bc_record_decode(buf, size, &rec, &used);
	if (rc == 0) {
		/* Accepted: the header rules held, the size is the header's, and it re-encodes. */
		if (hrc != 0 || used != total || used > size || used < BC_REC_HEADER_SIZE)
			abort();
		if (bc_record_size(rec.klen, rec.mlen, rec.vlen) != used)
			abort();
		uint8_t *out = malloc(used);
		if (!out)
			abort();
		uint32_t n = bc_record_encode(out, rec.type, rec.flags, rec.space, rec.time_ns,
					      rec.expire_s, rec.key, rec.klen, rec.meta, rec.mlen,
					      rec.value, rec.vlen);
		if (n != used || memcmp(out, buf, used))
			abort();
		free(out);
	} else if (rc == -ENODATA) {
		/* A prefix of a plausible record: the header passes and claims more than size. */
		if (hrc == 0 && total <= size)
			abort();
	}

	if (size >= BC_FILE_HEADER_SIZE) {
		struct bc_file_header h;
		if (bc_file_header_decode(buf, &h) == 0) {
			uint8_t again[BC_FILE_HEADER_SIZE];
			bc_file_header_encode(again, &h);
			if (memcmp(again, buf, BC_FILE_HEADER_SIZE))
				abort();
		}
	}
	free(buf);
	return 0;
}
