/* SPDX-License-Identifier: MIT */
/*
 * Hint files (docs/FORMAT.md "Hint files"): for a data file, the list of its records'
 * effects without values, so open can rebuild the keydir without reading values. A hint
 * is valid only as a whole (trailer CRC over the entire file); a hint that fails is
 * ignored and the data file is scanned instead. A hint covers a prefix of its data file
 * (covered bytes in the trailer); open scans any data past that prefix.
 */
#ifndef BC_ENGINE_HINT_H
#define BC_ENGINE_HINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "io.h"

/* One entry: one record's effect. key points into the decoded buffer. */
struct bc_hint_entry {
	uint32_t offset; /* of the record in the data file */
	uint8_t type; /* PUT, DELETE, LINK, CHUNK or TRUNC (never BATCH) */
	uint8_t space;
	uint16_t klen;
	uint16_t mlen;
	uint32_t vlen; /* the record's value field length */
	uint64_t expire_s;
	uint64_t object; /* LINK, CHUNK, TRUNC */
	uint64_t size; /* LINK, TRUNC */
	uint32_t index; /* CHUNK */
	uint32_t dlen; /* CHUNK data length */
	const uint8_t *key;
};

/* Bytes bc_hint_entry_encode writes for e. */
size_t bc_hint_entry_size(const struct bc_hint_entry *e);
size_t bc_hint_entry_encode(uint8_t *out, const struct bc_hint_entry *e);
/*
 * Decode one entry from buf[0..len). Returns 0 and *used; -ENODATA if buf holds only a
 * prefix; -EBADMSG if a field is impossible (unknown type, reserved bits, lengths that
 * break the record rules of FORMAT.md).
 */
int bc_hint_entry_decode(const uint8_t *buf, size_t len, struct bc_hint_entry *e, size_t *used);

/*
 * Writing a hint for a data file: entries are buffered and appended to "<name>.tmp";
 * finish writes the trailer and renames it to name (no fsync needed: a torn hint fails
 * its CRC and is ignored). The caller adds entries in record order.
 */
struct bc_hint_writer;
/*
 * Create "<name>.tmp" in dirfd (truncating a stale one) and buffer the file header: kind
 * hint, the data file's id and next_object, created now. Caller owns *out; release with
 * bc_hint_writer_finish or bc_hint_writer_abort. Returns -ENOMEM or an I/O error.
 */
int bc_hint_writer_open(const struct bc_io *io, int dirfd, const char *name, uint64_t file_id,
			uint64_t next_object, struct bc_hint_writer **out);
/*
 * Open a writer that continues the hint name of data file file_id: "<name>.tmp" (a stale
 * one truncated) starts as a copy of the hint without its trailer, and what is added
 * follows its entries; finish replaces the hint with one that covers the old entries and
 * the new. Only the header, the trailer and the CRC are checked, over the bytes copied: the
 * caller has verified the entries (bc_hint_stream). The first entry added must describe a
 * record at or after the hint's covered. Returns -ENOENT if there is no hint, -EBADMSG if
 * it fails those checks, -ENOMEM or an I/O error; the old hint is never changed.
 */
int bc_hint_writer_resume(const struct bc_io *io, int dirfd, const char *name, uint64_t file_id,
			  struct bc_hint_writer **out);
/*
 * bc_hint_writer_resume in a thread of its own, so that the caller goes on meanwhile (open
 * builds the keydir while the active file's hint is copied). start returns 0, or -ENOMEM
 * with nothing started; without a thread the work is done before it returns. join waits
 * and gives what bc_hint_writer_resume would (-ENOENT for a NULL r); it releases r, and
 * every started r must be joined.
 */
struct bc_hint_resume;
int bc_hint_resume_start(const struct bc_io *io, int dirfd, const char *name, uint64_t file_id,
			 struct bc_hint_resume **out);
int bc_hint_resume_join(struct bc_hint_resume *r, struct bc_hint_writer **out);
/*
 * Replace the header's created time (reproducible output, e.g. golden files). Only before
 * the first bc_hint_writer_add; -EINVAL after.
 */
int bc_hint_writer_set_created(struct bc_hint_writer *w, uint64_t created_ns);
/*
 * Append one entry (copies it). Returns -EINVAL if the entry breaks the rules of FORMAT.md
 * "Hint files" or its record does not start at or after the end of the previous entry's
 * record (nor at or after BC_FILE_HEADER_SIZE); -EOVERFLOW past UINT32_MAX entries; an
 * I/O error from flushing, after which only finish (which then fails) or abort remain.
 */
int bc_hint_writer_add(struct bc_hint_writer *w, const struct bc_hint_entry *e);
/* Write the trailer saying the hint covers covered bytes of the data file, rename into
 * place, release w. On failure the temporary file is removed and w released; covered
 * smaller than the end of the last entry's record is -EINVAL. */
int bc_hint_writer_finish(struct bc_hint_writer *w, uint64_t covered);
/* Remove the temporary file and release w. Accepts NULL. */
void bc_hint_writer_abort(struct bc_hint_writer *w);

/* Called for each entry of a verified hint, in order; nonzero stops the walk. */
typedef int (*bc_hint_fn)(void *ctx, const struct bc_hint_entry *e);

/*
 * Load the hint file name (for data file file_id): verify the whole file (header kind,
 * id, trailer, CRC, every entry parses, each entry's record inside [BC_FILE_HEADER_SIZE,
 * covered) and after the previous one), and only then call fn for each entry (fn may be
 * NULL to verify only). A hint covering more than data_size bytes (the data file's length
 * now) fails verification. *covered (may be NULL) receives the trailer's covered length.
 * Returns 0; -ENOENT if there is no hint;
 * -EBADMSG if it fails verification (fn was not called); -EPROTONOSUPPORT if its header
 * says a newer format version; fn's nonzero return; or an I/O error.
 */
int bc_hint_load(const struct bc_io *io, int dirfd, const char *name, uint64_t file_id,
		 uint64_t data_size, bc_hint_fn fn, void *ctx, uint64_t *covered);
/*
 * As bc_hint_load, in one pass over the file: fn sees each entry as it is read, before the
 * hint is known to be valid. So fn may only stage what it is given (copy it), and the
 * caller must drop everything staged unless this returns 0. Returns as bc_hint_load,
 * except that fn may have been called before -EBADMSG or an I/O error.
 */
int bc_hint_stream(const struct bc_io *io, int dirfd, const char *name, uint64_t file_id,
		   uint64_t data_size, bc_hint_fn fn, void *ctx, uint64_t *covered);

#endif /* BC_ENGINE_HINT_H */
