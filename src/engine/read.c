// SPDX-License-Identifier: MIT
/*
 * Reads: whole values, partial reads, stat, metadata, and ordered iteration. A read holds
 * the keydir lock only to copy a location and pin its file, then reads without any lock;
 * every byte returned comes from a record that passed its CRC. A location can go stale
 * when a merge retires its file between lookup and read; the read then looks again.
 */
#include "db.h"
#include "grow.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "record.h"

/* A value replaced while it is read is read again, this many times at most. */
#define REREADS 1000

/*
 * Reads of at most this many bytes copy from the file's mapping. Larger ones (chunks of
 * big values) use pread: its system call is small beside the copy, and each mapped page
 * read stays in the reader's RSS until the file is unmapped, so streaming a big value
 * through the mapping would swell RSS by the value's size.
 */
#define MAP_READ_MAX 16384

/* Whether [off, off + len) of f is read from its mapping. */
static bool read_mapped(const struct bc_file *f, uint64_t off, uint64_t len)
{
	return len <= MAP_READ_MAX && off + len <= f->map_len;
}

/* Copy len bytes at off of f: from its mapping when they lie inside it, else with pread. */
static int file_read(struct bc_db *db, struct bc_file *f, void *buf, size_t len, uint64_t off)
{
	if (read_mapped(f, off, len)) {
		memcpy(buf, f->map + off, len);
		return 0;
	}
	int rc = bc_io_pread_full(db->io, f->fd, buf, len, off);
	return rc == -ENODATA ? -EBADMSG : rc;
}

/* Count and log a record that failed its check on read; returns -EBADMSG. */
static int bad_record(struct bc_db *db, const struct bc_file *f, const struct bc_loc *loc)
{
	atomic_fetch_add(&db->n_read_err, 1);
	bc_log(db, BC_LOG_ERROR,
	       "%s/%016" PRIx64 ".data: offset %" PRIu32 ": record failed its check on read",
	       db->dir, f->id, loc->offset);
	return -EBADMSG;
}

/* Decode the record of loc from bytes p (read or mapped); counts and logs a failure. */
static int check_record(struct bc_db *db, struct bc_file *f, const struct bc_loc *loc,
			const uint8_t *p, struct bc_record *rec)
{
	size_t used;
	int rc = bc_record_decode(p, loc->size, rec, &used);
	if (!rc && used != loc->size)
		rc = -EBADMSG;
	return rc == -EBADMSG ? bad_record(db, f, loc) : rc;
}

int bc_read_record(struct bc_db *db, struct bc_file *f, const struct bc_loc *loc, uint8_t *buf,
		   struct bc_record *rec)
{
	int rc = file_read(db, f, buf, loc->size, loc->offset);
	return rc ? rc : check_record(db, f, loc, buf, rec);
}

static int check_key(struct bc_db *db, unsigned space, const void *key, size_t klen)
{
	if (!db || space > 255 || !klen || !key)
		return -EINVAL;
	return klen > BC_MAX_KEY ? -ENAMETOOLONG : 0;
}

/*
 * Look up a live key and, in the same critical section, pin its record's file (*f) and
 * copy an object's size (*size, 0 for a plain value). -ENOENT if absent or expired.
 */
static int pin(struct bc_db *db, unsigned space, const void *key, size_t klen, struct bc_kval *v,
	       struct bc_file **f, uint64_t *size)
{
	*f = NULL;
	*size = 0;
	bc_kd_rdlock(db);
	bool found = bc_keydir_get(db->kd, space, key, klen, v);
	if (found) {
		*f = bc_file_get(db, v->loc.file);
		if (v->flags & BC_KV_OBJECT)
			*size = v->obj->size;
	}
	bc_kd_unlock(db);
	if (!found || !*f || bc_expired_now(v->expire_s)) {
		bc_file_put(db, *f);
		*f = NULL;
		return -ENOENT;
	}
	return 0;
}

int bc_pin_key(struct bc_db *db, unsigned space, const void *key, size_t klen, struct bc_kval *v,
	       struct bc_file **f)
{
	uint64_t size;
	return pin(db, space, key, klen, v, f, &size);
}

/* Read the record at v->loc in the pinned file f and unpin it; *buf owns the record. */
static int read_pinned(struct bc_db *db, struct bc_file *f, const struct bc_kval *v, uint8_t **buf,
		       struct bc_record *rec)
{
	uint8_t *b = malloc(v->loc.size);
	int rc = b ? bc_read_record(db, f, &v->loc, b, rec) : -ENOMEM;
	bc_file_put(db, f);
	if (rc) {
		free(b);
		return rc;
	}
	*buf = b;
	return 0;
}

/*
 * The value of a plain record lying inside f's mapping (f pinned): the record is checked
 * where it lies and only the value is copied out, one pass over the bytes fewer than
 * copying the record and then moving its value (4 KiB values: memmove was 39% of a get).
 * The bytes cannot change under the check: a data file is only ever appended to.
 * Returns 1 when the record is not inside the mapping.
 */
static int get_mapped(struct bc_db *db, struct bc_file *f, const struct bc_loc *loc, size_t max_len,
		      void **val, size_t *vlen)
{
	if (!read_mapped(f, loc->offset, loc->size))
		return 1;
	struct bc_record rec;
	int rc = check_record(db, f, loc, f->map + loc->offset, &rec);
	if (rc)
		return rc;
	if (max_len && rec.vlen > max_len)
		return -EFBIG;
	void *b = malloc(rec.vlen ? rec.vlen : 1);
	if (!b)
		return -ENOMEM;
	memcpy(b, rec.value, rec.vlen);
	*val = b;
	*vlen = rec.vlen;
	return 0;
}

/* Read a key's own record (PUT or LINK); *buf owns it. */
static int key_record(struct bc_db *db, unsigned space, const void *key, size_t klen,
		      struct bc_kval *v, uint8_t **buf, struct bc_record *rec)
{
	*buf = NULL;
	int rc = check_key(db, space, key, klen);
	if (rc)
		return rc;
	struct bc_file *f;
	rc = bc_pin_key(db, space, key, klen, v, &f);
	return rc ? rc : read_pinned(db, f, v, buf, rec);
}

int bc_chunk_load(struct bc_db *db, struct bc_file *f, const struct bc_chunk *c, uint8_t *dst)
{
	const struct bc_loc *loc = &c->loc;
	struct bc_record rec;
	if (loc->size != BC_CHUNK_HEAD + (uint64_t)c->dlen)
		return bad_record(db, f, loc);
	if (read_mapped(f, loc->offset, loc->size)) {
		const uint8_t *p = f->map + loc->offset;
		if (bc_record_decode_chunk(p, p + BC_CHUNK_HEAD, c->dlen, &rec))
			return bad_record(db, f, loc);
		memcpy(dst, rec.data, c->dlen);
		return 0;
	}
	uint8_t head[BC_CHUNK_HEAD];
	struct iovec iov[2] = {{head, sizeof(head)}, {dst, c->dlen}};
	int rc = bc_io_preadv_full(db->io, f->fd, iov, 2, loc->offset);
	if (rc)
		return rc == -ENODATA ? -EBADMSG : rc;
	return bc_record_decode_chunk(head, dst, c->dlen, &rec) ? bad_record(db, f, loc) : 0;
}

/*
 * Copy bytes [off, off+len) of chunk idx of object *id (0: whichever the key links to
 * now, and set *id) into dst (zeros for holes and past the chunk's data). -ENOENT if the
 * key is gone or no longer an object; -EAGAIN if it links another object than *id;
 * -EBADMSG for a hole that may be a chunk lost to damage (bc_object_suspect).
 */
static int chunk_read(struct bc_db *db, unsigned space, const void *key, size_t klen, uint64_t idx,
		      uint32_t off, uint32_t len, uint8_t *dst, uint8_t **tmp, uint64_t *want)
{
	struct bc_kval v;
	bc_kd_rdlock(db);
	bool found = bc_keydir_get(db->kd, space, key, klen, &v);
	struct bc_chunk c = {0};
	struct bc_file *f = NULL;
	uint64_t id = 0;
	bool lost = false;
	if (found && (v.flags & BC_KV_OBJECT)) {
		struct bc_chunk *p = bc_object_chunk(v.obj, idx);
		if (p) {
			c = *p;
			f = bc_file_get(db, c.loc.file);
		} else {
			lost = bc_object_suspect(db, v.obj);
		}
		id = v.obj->id;
	}
	bc_kd_unlock(db);
	int rc = 0;
	if (!found || !(v.flags & BC_KV_OBJECT))
		rc = -ENOENT;
	else if (*want && id != *want)
		rc = -EAGAIN;
	if (!rc && lost) {
		/* A hole of an object that may have lost this chunk to damage (recover.c). */
		atomic_fetch_add(&db->n_read_err, 1);
		bc_log(db, BC_LOG_ERROR,
		       "%s: object %" PRIu64 " chunk %" PRIu64
		       " may have been lost to damage; read as an error",
		       db->dir, id, idx);
		rc = -EBADMSG;
	}
	if (rc || !f || off >= c.dlen) {
		bc_file_put(db, f);
		if (!rc)
			memset(dst, 0, len);
		*want = id;
		return rc;
	}
	*want = id;
	if (off == 0 && len >= c.dlen) {
		/* The whole chunk is wanted: its data goes straight to dst, not through a
		 * buffer (a sequential read of a big file costs one copy less). */
		rc = bc_chunk_load(db, f, &c, dst);
		bc_file_put(db, f);
		if (!rc)
			memset(dst + c.dlen, 0, len - c.dlen);
		return rc;
	}
	if (!*tmp)
		*tmp = malloc(BC_CHUNK_SIZE);
	rc = *tmp ? bc_chunk_load(db, f, &c, *tmp) : -ENOMEM;
	bc_file_put(db, f);
	if (rc)
		return rc;
	uint32_t have = c.dlen - off < len ? c.dlen - off : len;
	memcpy(dst, *tmp + off, have);
	memset(dst + have, 0, len - have);
	return 0;
}

int bc_read(struct bc_db *db, unsigned space, const void *key, size_t klen, uint64_t off, void *buf,
	    size_t len, size_t *got)
{
	*got = 0;
	if (!buf && len)
		return -EINVAL;
	int rc = check_key(db, space, key, klen);
	if (rc)
		return rc;
	struct bc_kval v;
	struct bc_file *f;
	uint64_t size;
	rc = pin(db, space, key, klen, &v, &f, &size);
	if (rc)
		return rc;
	atomic_fetch_add(&db->n_get, 1);
	if (!(v.flags & BC_KV_OBJECT)) {
		uint8_t *rb;
		struct bc_record rec;
		rc = read_pinned(db, f, &v, &rb, &rec);
		if (rc)
			return rc;
		if (off < rec.vlen) {
			size_t n = rec.vlen - off < len ? (size_t)(rec.vlen - off) : len;
			memcpy(buf, rec.value + off, n);
			*got = n;
		}
		free(rb);
		return 0;
	}
	bc_file_put(db, f);
	uint8_t *tmp = NULL;
	uint8_t *dst = buf;
	size_t done = 0;
	uint64_t object = 0;
	for (int restarts = 0; done < len;) {
		/* The size may change between chunks; take it fresh each time. */
		bc_kd_rdlock(db);
		bool found = bc_keydir_get(db->kd, space, key, klen, &v);
		size = found && (v.flags & BC_KV_OBJECT) ? v.obj->size : 0;
		bc_kd_unlock(db);
		uint64_t pos = off + done;
		if (!found || pos >= size)
			break;
		uint64_t idx = pos / BC_CHUNK_SIZE;
		uint32_t in = (uint32_t)(pos % BC_CHUNK_SIZE);
		uint64_t n = BC_CHUNK_SIZE - in;
		if (n > len - done)
			n = len - done;
		if (n > size - pos)
			n = size - pos;
		rc = chunk_read(db, space, key, klen, idx, in, (uint32_t)n, dst + done, &tmp,
				&object);
		if (rc == -EAGAIN && restarts++ < 1000) {
			/* Replaced by a new value mid-read: start over on the new one, so a
			 * read never mixes two values. */
			done = 0;
			object = 0;
			rc = 0;
			continue;
		}
		if (rc)
			break;
		done += n;
	}
	free(tmp);
	/* A key deleted mid-read is gone: never hand out part of a value. */
	*got = rc ? 0 : done;
	return rc;
}

int bc_get(struct bc_db *db, unsigned space, const void *key, size_t klen, size_t max_len,
	   void **val, size_t *vlen)
{
	*val = NULL;
	*vlen = 0;
	int rc = check_key(db, space, key, klen);
	if (rc)
		return rc;
	for (int tries = 0; tries < REREADS; tries++) {
		struct bc_kval v;
		struct bc_file *f;
		uint64_t size;
		rc = pin(db, space, key, klen, &v, &f, &size);
		if (rc)
			return rc;
		if (!(v.flags & BC_KV_OBJECT)) {
			rc = get_mapped(db, f, &v.loc, max_len, val, vlen);
			if (rc != 1) {
				bc_file_put(db, f);
				if (!rc)
					atomic_fetch_add(&db->n_get, 1);
				return rc;
			}
			uint8_t *rb;
			struct bc_record rec;
			rc = read_pinned(db, f, &v, &rb, &rec);
			if (rc)
				return rc;
			atomic_fetch_add(&db->n_get, 1);
			if (max_len && rec.vlen > max_len) {
				free(rb);
				return -EFBIG;
			}
			/* Hand back the record buffer itself with the value moved to its front. */
			memmove(rb, rec.value, rec.vlen);
			*val = rb;
			*vlen = rec.vlen;
			return 0;
		}
		bc_file_put(db, f);
		if ((max_len && size > max_len) || size > SIZE_MAX - 1)
			return -EFBIG;
		uint8_t *b = malloc(size ? size : 1);
		if (!b)
			return -ENOMEM;
		size_t got;
		rc = bc_read(db, space, key, klen, 0, b, size, &got);
		if (!rc && got != size)
			rc = -EAGAIN; /* resized meanwhile: read the new value whole */
		if (rc) {
			free(b);
			if (rc == -EAGAIN)
				continue;
			return rc;
		}
		*val = b;
		*vlen = got;
		return 0;
	}
	return -EAGAIN;
}

int bc_stat(struct bc_db *db, unsigned space, const void *key, size_t klen, struct bc_stat *st)
{
	memset(st, 0, sizeof(*st));
	int rc = check_key(db, space, key, klen);
	if (rc)
		return rc;
	struct bc_kval v;
	struct bc_file *f;
	uint64_t size;
	rc = pin(db, space, key, klen, &v, &f, &size);
	if (rc)
		return rc;
	st->size = size;
	/* The header alone: times without reading the value. */
	uint8_t hdr[BC_REC_HEADER_SIZE];
	uint32_t total;
	rc = file_read(db, f, hdr, sizeof(hdr), v.loc.offset);
	bc_file_put(db, f);
	if (rc)
		return rc;
	if (bc_record_check_header(hdr, &total) || total != v.loc.size ||
	    bc_le16(hdr + BC_RH_KLEN) != klen)
		return -EBADMSG;
	st->mtime_ns = bc_le64(hdr + BC_RH_TIME);
	st->expire_s = bc_le64(hdr + BC_RH_EXPIRE);
	st->meta_len = bc_le16(hdr + BC_RH_MLEN);
	if (v.flags & BC_KV_OBJECT)
		st->chunked = true;
	else
		st->size = bc_le32(hdr + BC_RH_VLEN);
	return 0;
}

int bc_get_meta(struct bc_db *db, unsigned space, const void *key, size_t klen, void *buf,
		size_t cap, size_t *mlen)
{
	struct bc_kval v;
	uint8_t *rb;
	struct bc_record rec;
	*mlen = 0;
	if (!buf && cap)
		return -EINVAL;
	int rc = key_record(db, space, key, klen, &v, &rb, &rec);
	if (rc)
		return rc;
	memcpy(buf, rec.meta, rec.mlen < cap ? rec.mlen : cap);
	*mlen = rec.mlen;
	free(rb);
	return 0;
}

int bc_stat_meta(struct bc_db *db, unsigned space, const void *key, size_t klen, struct bc_stat *st,
		 void *buf, size_t cap, size_t *mlen)
{
	struct bc_kval v;
	uint8_t *rb;
	struct bc_record rec;
	memset(st, 0, sizeof(*st));
	*mlen = 0;
	if (!buf && cap)
		return -EINVAL;
	int rc = key_record(db, space, key, klen, &v, &rb, &rec);
	if (rc)
		return rc;
	st->mtime_ns = rec.time_ns;
	st->expire_s = rec.expire_s;
	st->meta_len = rec.mlen;
	st->chunked = rec.type == BC_REC_LINK;
	st->size = rec.type == BC_REC_LINK ? rec.size : rec.vlen;
	if (cap && rec.mlen)
		memcpy(buf, rec.meta, rec.mlen < cap ? rec.mlen : cap);
	*mlen = rec.mlen;
	free(rb);
	return 0;
}

/* ---- iteration ---- */

#define ITER_BATCH 64

struct it_key {
	size_t off, len;
	struct bc_stat st;
};

struct bc_iter {
	struct bc_db *db;
	uint8_t space;
	uint8_t *prefix;
	size_t plen;
	uint8_t *last; /* resume after this key (or at it, when !exclusive) */
	size_t llen, lcap;
	bool started, exclusive, done;
	struct it_key keys[ITER_BATCH];
	size_t n, pos;
	uint8_t *kbuf;
	size_t klen, kcap;
	uint64_t now_s;
};

int bc_iter_new(struct bc_db *db, unsigned space, const void *prefix, size_t plen,
		struct bc_iter **out)
{
	*out = NULL;
	if (!db || space > 255 || (!prefix && plen))
		return -EINVAL;
	struct bc_iter *it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->db = db;
	it->space = (uint8_t)space;
	it->prefix = malloc(plen ? plen : 1);
	if (!it->prefix) {
		free(it);
		return -ENOMEM;
	}
	if (plen)
		memcpy(it->prefix, prefix, plen);
	it->plen = plen;
	*out = it;
	return 0;
}

void bc_iter_free(struct bc_iter *it)
{
	if (!it)
		return;
	free(it->prefix);
	free(it->last);
	free(it->kbuf);
	free(it);
}

static int set_last(struct bc_iter *it, const void *key, size_t klen)
{
	if (klen > it->lcap) {
		uint8_t *p = realloc(it->last, klen);
		if (!p)
			return -ENOMEM;
		it->last = p;
		it->lcap = klen;
	}
	memcpy(it->last, key, klen);
	it->llen = klen;
	return 0;
}

int bc_iter_seek(struct bc_iter *it, const void *key, size_t klen)
{
	if (!it || (!key && klen))
		return -EINVAL;
	int rc = set_last(it, key, klen);
	if (rc)
		return rc;
	it->started = true;
	it->exclusive = false;
	it->done = false;
	it->n = it->pos = 0;
	return 0;
}

static int collect(void *ctx, unsigned space, const uint8_t *key, size_t klen,
		   const struct bc_kval *v)
{
	struct bc_iter *it = ctx;
	if (space != it->space || klen < it->plen || memcmp(key, it->prefix, it->plen)) {
		it->done = true;
		return 1;
	}
	if (it->n == ITER_BATCH)
		return 1;
	if (bc_expired(v->expire_s, it->now_s))
		return 0;
	uint8_t *kb = bc_grow(it->kbuf, &it->kcap, it->klen + klen, 1, 4096);
	if (!kb)
		return -ENOMEM;
	it->kbuf = kb;
	struct it_key *k = &it->keys[it->n++];
	memcpy(it->kbuf + it->klen, key, klen);
	k->off = it->klen;
	k->len = klen;
	it->klen += klen;
	memset(&k->st, 0, sizeof(k->st));
	k->st.expire_s = v->expire_s == UINT32_MAX ? 0 : v->expire_s;
	if (v->flags & BC_KV_OBJECT) {
		k->st.size = v->obj->size;
		k->st.chunked = true;
	} else {
		k->st.size = v->loc.size - BC_REC_HEADER_SIZE - klen - v->mlen;
	}
	k->st.meta_len = 0;
	return 0;
}

static int refill(struct bc_iter *it)
{
	it->n = it->pos = 0;
	it->klen = 0;
	it->now_s = bc_now_ns() / 1000000000u;
	const void *start = it->started ? it->last : it->prefix;
	size_t slen = it->started ? it->llen : it->plen;
	bool excl = it->started && it->exclusive;
	bc_kd_rdlock(it->db);
	int rc = bc_keydir_scan(it->db->kd, it->space, start, slen, excl, collect, it);
	bc_kd_unlock(it->db);
	if (rc < 0)
		return rc;
	if (rc == 0)
		it->done = true; /* the space ended */
	return 0;
}

int bc_iter_next(struct bc_iter *it, const void **key, size_t *klen, struct bc_stat *st)
{
	if (!it)
		return -EINVAL;
	if (it->pos == it->n) {
		if (it->done)
			return -ENOENT;
		int rc = refill(it);
		if (rc)
			return rc;
		if (!it->n)
			return -ENOENT;
	}
	struct it_key *k = &it->keys[it->pos++];
	int rc = set_last(it, it->kbuf + k->off, k->len);
	if (rc)
		return rc;
	it->started = true;
	it->exclusive = true;
	*key = it->kbuf + k->off;
	*klen = k->len;
	if (st)
		*st = k->st;
	return 0;
}
