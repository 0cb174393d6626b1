// SPDX-License-Identifier: MIT
/*
 * Hint files (docs/FORMAT.md "Hint files"): the entry codec, a buffered writer that
 * checksums every byte it writes and renames the finished file into place, and a loader
 * that trusts a hint only as a whole. The loader reads the file in fixed-size blocks; a pass
 * checks the header, trailer, CRC and the structure of every entry. bc_hint_load calls no
 * one in that pass and hands the entries out in a second; bc_hint_stream hands them out
 * during the first, to a caller that only stages them until the verdict. Nothing is
 * allocated from a length read from disk, and no entry can make the loader read outside
 * its block buffer.
 * All I/O goes through the bc_io seam.
 */
#include "hint.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crc32c.h"
#include "record.h"

#define HINT_EXTRA_SIZE 16
#define HINT_MAX_ENTRY (BC_HINT_ENTRY_SIZE + HINT_EXTRA_SIZE + BC_MAX_KEY)
/* Writes and reads move about this many bytes at a time; buffers hold one block plus the
 * largest entry, so an entry never has to be split across a flush and a partial entry left
 * at the end of a read block always fits beside the next block. */
#define HINT_BLOCK 65536u
#define HINT_BUF_SIZE (HINT_BLOCK + HINT_MAX_ENTRY)

_Static_assert(HINT_MAX_ENTRY >= BC_HINT_TRAILER_SIZE, "trailer fits after a flush");
_Static_assert(HINT_BLOCK >= BC_FILE_HEADER_SIZE, "header fits the first block");

static bool has_extra(uint8_t type)
{
	return type == BC_REC_LINK || type == BC_REC_CHUNK || type == BC_REC_TRUNC;
}

/* The entry rules that need only the fixed 24 bytes (FORMAT.md "Hint files"). */
static int check_fixed(const struct bc_hint_entry *e)
{
	bool bare = e->klen == 0 && e->mlen == 0 && e->space == 0 && e->expire_s == 0;
	bool ok;

	switch (e->type) {
	case BC_REC_PUT:
		ok = e->klen >= 1 && e->vlen <= BC_MAX_INLINE;
		break;
	case BC_REC_DELETE:
		ok = e->klen >= 1 && e->mlen == 0 && e->vlen == 0 && e->expire_s == 0;
		break;
	case BC_REC_LINK:
		ok = e->klen >= 1 && e->vlen == BC_OBJ_VALUE_SIZE;
		break;
	case BC_REC_CHUNK:
		ok = bare && e->vlen > BC_CHUNK_PREFIX &&
			e->vlen <= BC_CHUNK_PREFIX + BC_CHUNK_SIZE;
		break;
	case BC_REC_TRUNC:
		ok = bare && e->vlen == BC_OBJ_VALUE_SIZE;
		break;
	default:
		/* Unknown types, and BATCH: a hint lists effects, and a batch has none. */
		ok = false;
		break;
	}
	return ok ? 0 : -EBADMSG;
}

/* The rules on the 16 extra bytes of LINK, CHUNK and TRUNC entries. */
static int check_extra(const struct bc_hint_entry *e)
{
	bool ok = true;

	switch (e->type) {
	case BC_REC_LINK:
	case BC_REC_TRUNC:
		ok = e->size <= BC_MAX_VALUE;
		break;
	case BC_REC_CHUNK:
		ok = e->dlen >= 1 && e->dlen <= BC_CHUNK_SIZE &&
			e->vlen == BC_CHUNK_PREFIX + e->dlen;
		break;
	default:
		break;
	}
	return ok ? 0 : -EBADMSG;
}

size_t bc_hint_entry_size(const struct bc_hint_entry *e)
{
	return BC_HINT_ENTRY_SIZE + (has_extra(e->type) ? HINT_EXTRA_SIZE : 0) + e->klen;
}

size_t bc_hint_entry_encode(uint8_t *out, const struct bc_hint_entry *e)
{
	uint8_t *p = out + BC_HINT_ENTRY_SIZE;

	bc_put32(out + BC_HE_OFFSET, e->offset);
	out[BC_HE_TYPE] = e->type;
	out[BC_HE_SPACE] = e->space;
	bc_put16(out + BC_HE_KLEN, e->klen);
	bc_put16(out + BC_HE_MLEN, e->mlen);
	bc_put16(out + BC_HE_RESERVED, 0);
	bc_put32(out + BC_HE_VLEN, e->vlen);
	bc_put64(out + BC_HE_EXPIRE, e->expire_s);
	if (has_extra(e->type)) {
		bc_put64(p, e->object);
		if (e->type == BC_REC_CHUNK) {
			bc_put32(p + 8, e->index);
			bc_put32(p + 12, e->dlen);
		} else {
			bc_put64(p + 8, e->size);
		}
		p += HINT_EXTRA_SIZE;
	}
	if (e->klen)
		memcpy(p, e->key, e->klen);
	return (size_t)(p - out) + e->klen;
}

int bc_hint_entry_decode(const uint8_t *buf, size_t len, struct bc_hint_entry *e, size_t *used)
{
	memset(e, 0, sizeof(*e));
	if (len < BC_HINT_ENTRY_SIZE)
		return -ENODATA;
	e->offset = bc_le32(buf + BC_HE_OFFSET);
	e->type = buf[BC_HE_TYPE];
	e->space = buf[BC_HE_SPACE];
	e->klen = bc_le16(buf + BC_HE_KLEN);
	e->mlen = bc_le16(buf + BC_HE_MLEN);
	e->vlen = bc_le32(buf + BC_HE_VLEN);
	e->expire_s = bc_le64(buf + BC_HE_EXPIRE);
	if (bc_le16(buf + BC_HE_RESERVED) != 0 || check_fixed(e))
		goto out_bad;

	size_t size = bc_hint_entry_size(e);
	if (len < size)
		return -ENODATA;
	const uint8_t *p = buf + BC_HINT_ENTRY_SIZE;
	if (has_extra(e->type)) {
		e->object = bc_le64(p);
		if (e->type == BC_REC_CHUNK) {
			e->index = bc_le32(p + 8);
			e->dlen = bc_le32(p + 12);
		} else {
			e->size = bc_le64(p + 8);
		}
		p += HINT_EXTRA_SIZE;
	}
	if (check_extra(e))
		goto out_bad;
	e->key = p;
	*used = size;
	return 0;

out_bad:
	memset(e, 0, sizeof(*e));
	return -EBADMSG;
}

/* ---- Writer ---- */

struct bc_hint_writer {
	const struct bc_io *io;
	int dirfd;
	int fd;
	char *name;
	char *tmp;
	uint8_t *buf; /* HINT_BUF_SIZE bytes */
	size_t len; /* bytes buffered */
	uint64_t off; /* file offset of buf[0] */
	uint32_t crc; /* over every byte before off */
	uint32_t count;
	uint64_t rec_end; /* end of the last entry's record in the data file */
	struct bc_file_header hdr;
	int err; /* first write error; sticky */
};

static char *dup_str(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	char *p = malloc(n + m + 1);
	if (p) {
		memcpy(p, s, n);
		memcpy(p + n, suffix, m + 1);
	}
	return p;
}

static void writer_free(struct bc_hint_writer *w)
{
	free(w->buf);
	free(w->tmp);
	free(w->name);
	free(w);
}

/* A writer with its buffer and "<name>.tmp" created empty (a stale one truncated). */
static int writer_new(const struct bc_io *io, int dirfd, const char *name,
		      struct bc_hint_writer **out)
{
	struct bc_hint_writer *w = calloc(1, sizeof(*w));
	int rc = -ENOMEM;

	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->io = io;
	w->dirfd = dirfd;
	w->fd = -1;
	w->name = dup_str(name, "");
	w->tmp = dup_str(name, BC_TMP_SUFFIX);
	w->buf = malloc(HINT_BUF_SIZE);
	if (!w->name || !w->tmp || !w->buf)
		goto out_free;
	rc = bc_io_openat(io, dirfd, w->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (rc < 0)
		goto out_free;
	w->fd = rc;
	*out = w;
	return 0;

out_free:
	writer_free(w);
	return rc;
}

int bc_hint_writer_open(const struct bc_io *io, int dirfd, const char *name, uint64_t file_id,
			uint64_t next_object, struct bc_hint_writer **out)
{
	struct bc_hint_writer *w;
	struct timespec ts;
	int rc = writer_new(io, dirfd, name, &w);

	*out = NULL;
	if (rc)
		return rc;
	clock_gettime(CLOCK_REALTIME, &ts);
	w->hdr.version = BC_FORMAT_VERSION;
	w->hdr.kind = BC_KIND_HINT;
	w->hdr.chunk_size = BC_CHUNK_SIZE;
	w->hdr.id = file_id;
	w->hdr.next_object = next_object;
	w->hdr.created_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	bc_file_header_encode(w->buf, &w->hdr);
	w->len = BC_FILE_HEADER_SIZE;
	w->rec_end = BC_FILE_HEADER_SIZE;
	*out = w;
	return 0;
}

/*
 * Copy [0, H - 24) of the hint at fd (length H) to w's file, checking the trailer and the
 * CRC over the bytes copied, and take up where the hint's writer left off.
 */
static int resume_copy(struct bc_hint_writer *w, int fd, uint64_t file_id)
{
	uint8_t tr[BC_HINT_TRAILER_SIZE];
	uint64_t size, body, off = 0;
	uint32_t crc = 0;
	int rc = bc_io_fsize(w->io, fd, &size);

	if (rc)
		return rc;
	if (size < BC_FILE_HEADER_SIZE + BC_HINT_TRAILER_SIZE)
		return -EBADMSG;
	body = size - BC_HINT_TRAILER_SIZE;
	while (off < body) {
		size_t n = body - off < HINT_BLOCK ? (size_t)(body - off) : HINT_BLOCK;
		rc = bc_io_pread_full(w->io, fd, w->buf, n, off);
		if (!rc && off == 0)
			rc = bc_file_header_decode(w->buf, &w->hdr);
		if (!rc && off == 0 && (w->hdr.kind != BC_KIND_HINT || w->hdr.id != file_id))
			rc = -EBADMSG;
		if (!rc)
			rc = bc_io_pwrite_full(w->io, w->fd, w->buf, n, off);
		if (rc)
			return rc == -ENODATA ? -EBADMSG : rc;
		crc = bc_crc32c(crc, w->buf, n);
		off += n;
	}
	rc = bc_io_pread_full(w->io, fd, tr, sizeof(tr), body);
	if (rc)
		return rc == -ENODATA ? -EBADMSG : rc;
	if (memcmp(tr + BC_HT_MAGIC, BC_HINT_END_MAGIC, 8) != 0 ||
	    bc_crc32c(crc, tr, BC_HT_CRC) != bc_le32(tr + BC_HT_CRC))
		return -EBADMSG;
	w->off = body;
	w->crc = crc;
	w->count = bc_le32(tr + BC_HT_COUNT);
	/* Every record the hint lists ends by covered; what is added next starts there. */
	w->rec_end = bc_le64(tr + BC_HT_COVERED);
	return w->rec_end < BC_FILE_HEADER_SIZE ? -EBADMSG : 0;
}

int bc_hint_writer_resume(const struct bc_io *io, int dirfd, const char *name, uint64_t file_id,
			  struct bc_hint_writer **out)
{
	struct bc_hint_writer *w;
	int rc, fd;

	*out = NULL;
	fd = bc_io_openat(io, dirfd, name, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	rc = writer_new(io, dirfd, name, &w);
	if (!rc)
		rc = resume_copy(w, fd, file_id);
	bc_io_close(io, fd);
	if (rc) {
		bc_hint_writer_abort(w);
		return rc;
	}
	*out = w;
	return 0;
}

struct bc_hint_resume {
	const struct bc_io *io;
	int dirfd;
	char *name;
	uint64_t file_id;
	pthread_t thread;
	bool threaded;
	struct bc_hint_writer *w;
	int rc;
};

static void *resume_main(void *arg)
{
	struct bc_hint_resume *r = arg;

	pthread_setname_np(pthread_self(), "bc-hint-copy");
	r->rc = bc_hint_writer_resume(r->io, r->dirfd, r->name, r->file_id, &r->w);
	return NULL;
}

int bc_hint_resume_start(const struct bc_io *io, int dirfd, const char *name, uint64_t file_id,
			 struct bc_hint_resume **out)
{
	struct bc_hint_resume *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r || !(r->name = dup_str(name, ""))) {
		free(r);
		return -ENOMEM;
	}
	r->io = io;
	r->dirfd = dirfd;
	r->file_id = file_id;
	r->threaded = pthread_create(&r->thread, NULL, resume_main, r) == 0;
	if (!r->threaded)
		resume_main(r);
	*out = r;
	return 0;
}

int bc_hint_resume_join(struct bc_hint_resume *r, struct bc_hint_writer **out)
{
	int rc;

	*out = NULL;
	if (!r)
		return -ENOENT;
	if (r->threaded)
		pthread_join(r->thread, NULL);
	*out = r->w;
	rc = r->rc;
	free(r->name);
	free(r);
	return rc;
}

int bc_hint_writer_set_created(struct bc_hint_writer *w, uint64_t created_ns)
{
	if (w->count != 0 || w->off != 0)
		return -EINVAL;
	w->hdr.created_ns = created_ns;
	bc_file_header_encode(w->buf, &w->hdr);
	return 0;
}

static int writer_flush(struct bc_hint_writer *w)
{
	int rc = bc_io_pwrite_full(w->io, w->fd, w->buf, w->len, w->off);
	if (rc) {
		w->err = rc;
		return rc;
	}
	w->crc = bc_crc32c(w->crc, w->buf, w->len);
	w->off += w->len;
	w->len = 0;
	return 0;
}

int bc_hint_writer_add(struct bc_hint_writer *w, const struct bc_hint_entry *e)
{
	if (w->err)
		return w->err;
	if (check_fixed(e) || check_extra(e) || e->offset < w->rec_end)
		return -EINVAL;
	if (w->count == UINT32_MAX)
		return -EOVERFLOW;

	/* len < HINT_BLOCK here, so the entry fits. */
	w->len += bc_hint_entry_encode(w->buf + w->len, e);
	w->count++;
	w->rec_end = (uint64_t)e->offset + bc_record_size(e->klen, e->mlen, e->vlen);
	if (w->len >= HINT_BLOCK)
		return writer_flush(w);
	return 0;
}

int bc_hint_writer_finish(struct bc_hint_writer *w, uint64_t covered)
{
	int rc = w->err;

	if (rc)
		goto out_abort;
	rc = -EINVAL;
	if (covered < w->rec_end)
		goto out_abort;

	uint8_t *t = w->buf + w->len;
	memcpy(t + BC_HT_MAGIC, BC_HINT_END_MAGIC, 8);
	bc_put64(t + BC_HT_COVERED, covered);
	bc_put32(t + BC_HT_COUNT, w->count);
	w->len += BC_HINT_TRAILER_SIZE;
	bc_put32(t + BC_HT_CRC, bc_crc32c(w->crc, w->buf, w->len - 4));
	rc = bc_io_pwrite_full(w->io, w->fd, w->buf, w->len, w->off);
	if (rc)
		goto out_abort;
	rc = bc_io_close(w->io, w->fd);
	w->fd = -1;
	if (rc)
		goto out_abort;
	rc = bc_io_renameat(w->io, w->dirfd, w->tmp, w->name);
	if (rc)
		goto out_abort;
	writer_free(w);
	return 0;

out_abort:
	bc_hint_writer_abort(w);
	return rc;
}

void bc_hint_writer_abort(struct bc_hint_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		bc_io_close(w->io, w->fd);
	bc_io_unlinkat(w->io, w->dirfd, w->tmp);
	writer_free(w);
}

/* ---- Loader ---- */

struct hint_load {
	const struct bc_io *io;
	int fd;
	uint64_t size; /* file length */
	uint64_t covered; /* from the trailer */
	uint32_t count; /* from the trailer */
	uint8_t *buf; /* HINT_BUF_SIZE bytes */
};

/*
 * Walk the entries between the header and the trailer, checking the structure rules. With
 * crc, extend *crc over every byte read; with fn, call it per entry.
 */
static int walk(struct hint_load *l, uint32_t *crc, bc_hint_fn fn, void *ctx)
{
	const uint64_t end = l->size - BC_HINT_TRAILER_SIZE;
	uint64_t pos = BC_FILE_HEADER_SIZE; /* file offset of buf[0] */
	uint64_t rec_end = BC_FILE_HEADER_SIZE;
	size_t have = 0, start = 0;
	uint32_t n = 0;
	int rc;

	for (;;) {
		struct bc_hint_entry e;
		size_t used;

		rc = bc_hint_entry_decode(l->buf + start, have - start, &e, &used);
		if (rc == 0) {
			uint64_t rsize = bc_record_size(e.klen, e.mlen, e.vlen);
			if (e.offset < rec_end || e.offset + rsize > l->covered || n == l->count)
				return -EBADMSG;
			rec_end = e.offset + rsize;
			n++;
			start += used;
			if (fn) {
				rc = fn(ctx, &e);
				if (rc)
					return rc;
			}
			continue;
		}
		if (rc != -ENODATA)
			return -EBADMSG;

		uint64_t next = pos + have; /* file offset of the first byte not yet read */
		if (next == end) {
			if (start != have)
				return -EBADMSG; /* an entry cut by the trailer */
			break;
		}
		/* What is left is a strict prefix of one entry: less than HINT_MAX_ENTRY. */
		memmove(l->buf, l->buf + start, have - start);
		pos += start;
		have -= start;
		start = 0;
		size_t want = HINT_BUF_SIZE - have;
		if (end - next < want)
			want = (size_t)(end - next);
		rc = bc_io_pread_full(l->io, l->fd, l->buf + have, want, next);
		if (rc)
			return rc == -ENODATA ? -EBADMSG : rc;
		if (crc)
			*crc = bc_crc32c(*crc, l->buf + have, want);
		have += want;
	}
	return n == l->count ? 0 : -EBADMSG;
}

/* Check everything, calling fn (when not NULL) as entries are read. */
static int verify(struct hint_load *l, uint64_t file_id, uint64_t data_size, bc_hint_fn fn,
		  void *ctx)
{
	uint8_t hdr[BC_FILE_HEADER_SIZE], tr[BC_HINT_TRAILER_SIZE];
	struct bc_file_header h;
	uint32_t crc;
	int rc;

	if (l->size < BC_FILE_HEADER_SIZE + BC_HINT_TRAILER_SIZE)
		return -EBADMSG;
	rc = bc_io_pread_full(l->io, l->fd, hdr, sizeof(hdr), 0);
	if (!rc)
		rc = bc_io_pread_full(l->io, l->fd, tr, sizeof(tr), l->size - sizeof(tr));
	if (rc)
		return rc == -ENODATA ? -EBADMSG : rc;

	rc = bc_file_header_decode(hdr, &h);
	if (rc)
		return rc;
	if (h.kind != BC_KIND_HINT || h.id != file_id)
		return -EBADMSG;
	if (memcmp(tr + BC_HT_MAGIC, BC_HINT_END_MAGIC, 8) != 0)
		return -EBADMSG;
	l->covered = bc_le64(tr + BC_HT_COVERED);
	l->count = bc_le32(tr + BC_HT_COUNT);
	if (l->covered < BC_FILE_HEADER_SIZE)
		return -EBADMSG;
	if (l->covered > data_size)
		return -EBADMSG; /* describes bytes the data file no longer has */

	crc = bc_crc32c(0, hdr, sizeof(hdr));
	rc = walk(l, &crc, fn, ctx);
	if (rc)
		return rc;
	crc = bc_crc32c(crc, tr, BC_HT_CRC);
	return crc == bc_le32(tr + BC_HT_CRC) ? 0 : -EBADMSG;
}

static int load(const struct bc_io *io, int dirfd, const char *name, uint64_t file_id,
		uint64_t data_size, bc_hint_fn fn, void *ctx, bool early, uint64_t *covered)
{
	struct hint_load l = {.io = io, .fd = -1};
	int rc;

	rc = bc_io_openat(io, dirfd, name, O_RDONLY, 0);
	if (rc < 0)
		return rc;
	l.fd = rc;
	rc = bc_io_fsize(io, l.fd, &l.size);
	if (rc)
		goto out_close;
	rc = -ENOMEM;
	l.buf = malloc(HINT_BUF_SIZE);
	if (!l.buf)
		goto out_close;

	rc = verify(&l, file_id, data_size, early ? fn : NULL, ctx);
	if (rc)
		goto out_free;
	if (covered)
		*covered = l.covered;
	/* The second pass re-reads what the first verified; it can only fail now if the file
	 * changed underneath (hints are replaced by rename, never rewritten in place). */
	if (fn && !early)
		rc = walk(&l, NULL, fn, ctx);

out_free:
	free(l.buf);
out_close:
	bc_io_close(io, l.fd);
	return rc;
}

int bc_hint_load(const struct bc_io *io, int dirfd, const char *name, uint64_t file_id,
		 uint64_t data_size, bc_hint_fn fn, void *ctx, uint64_t *covered)
{
	return load(io, dirfd, name, file_id, data_size, fn, ctx, false, covered);
}

int bc_hint_stream(const struct bc_io *io, int dirfd, const char *name, uint64_t file_id,
		   uint64_t data_size, bc_hint_fn fn, void *ctx, uint64_t *covered)
{
	return load(io, dirfd, name, file_id, data_size, fn, ctx, true, covered);
}
