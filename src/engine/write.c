// SPDX-License-Identifier: MIT
/*
 * Every operation that changes the store: put, delete, partial write, truncate, metadata,
 * batches and streams. Each one plans its records against the current state under the
 * writer lock, encodes them into one buffer, appends that buffer with one write, and then
 * publishes the records' effects through bc_apply, the same code replay uses. Large values
 * are chunked objects (docs/DESIGN.md "Small values inline, large values as chunked
 * objects"); multi-record changes of existing state go out as batches.
 */
#include "db.h"
#include "grow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "crc32c.h"
#include "record.h"

/* ---- the record builder ---- */

/*
 * A record is encoded into wb.buf, except that chunk data of WB_REF_MIN bytes or more may
 * stay where the caller has it (ext): the append gathers buf and those pieces with one
 * pwritev, so a large write is copied once, by the kernel, instead of twice.
 */
struct wrec {
	size_t off; /* in the bytes appended */
	size_t boff; /* in wb.buf: the record, or all of it but its last elen bytes */
	const uint8_t *ext; /* the record's last elen bytes, not copied; NULL if none */
	size_t elen;
	bc_effect e;
};

/* Small writes (one put of a few KiB) never touch the heap: the builder starts with
 * buffers of its own and moves to the heap only when they are outgrown. */
#define WB_INLINE 4096
#define WB_INLINE_RECS 4
#define WB_REF_MIN 4096
/* Records left in the caller's memory per append: a pwritev takes at most 2 * this + 1
 * pieces (IOV_MAX is 1024). An append of BC_WRITE_ATOMIC bytes has 128 chunks. */
#define WB_MAX_EXT 256

struct wb {
	uint8_t *buf;
	size_t blen, cap; /* bytes in buf */
	size_t len; /* bytes to append: blen and the ext pieces */
	struct wrec *v;
	size_t n, cap_v;
	size_t next; /* records with an ext piece */
	bool batch; /* members flagged; a BATCH record is put in front at commit */
	uint64_t now;
	uint8_t ibuf[WB_INLINE];
	struct wrec iv[WB_INLINE_RECS];
};

static void wb_init(struct wb *w, bool batch)
{
	w->buf = w->ibuf;
	w->cap = sizeof(w->ibuf);
	w->blen = w->len = 0;
	w->v = w->iv;
	w->cap_v = WB_INLINE_RECS;
	w->n = w->next = 0;
	w->batch = batch;
	w->now = bc_now_ns();
	if (batch) /* room for the header */
		w->blen = w->len = BC_REC_HEADER_SIZE + BC_BATCH_VALUE_SIZE;
}

static void wb_release(struct wb *w)
{
	if (w->buf != w->ibuf)
		free(w->buf);
	if (w->v != w->iv)
		free(w->v);
}

static int wb_reserve(struct wb *w, size_t more)
{
	if (w->blen + more <= w->cap)
		return 0;
	size_t cap = w->cap * 2;
	while (cap < w->blen + more)
		cap *= 2;
	uint8_t *b = w->buf == w->ibuf ? malloc(cap) : realloc(w->buf, cap);
	if (!b)
		return -ENOMEM;
	if (w->buf == w->ibuf)
		memcpy(b, w->ibuf, w->blen);
	w->buf = b;
	w->cap = cap;
	return 0;
}

/*
 * Append one record. value is the value field in up to two pieces (a 16-byte prefix and
 * data for object records), so chunk data need not be copied twice. With ref, v2 stays
 * valid and unchanged until the commit, and a large one is not copied at all.
 */
static int wb_add(struct wb *w, const bc_effect *e, const void *meta, const void *v1, size_t l1,
		  const void *v2, size_t l2, bool ref)
{
	size_t total = BC_REC_HEADER_SIZE + e->klen + e->mlen + l1 + l2;
	bool ext = ref && l2 >= WB_REF_MIN && w->next < WB_MAX_EXT;
	if (w->n == w->cap_v) {
		size_t cap = w->cap_v * 2;
		struct wrec *v =
			w->v == w->iv ? malloc(cap * sizeof(*v)) : realloc(w->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		if (w->v == w->iv)
			memcpy(v, w->iv, sizeof(w->iv));
		w->v = v;
		w->cap_v = cap;
	}
	size_t inbuf = total - (ext ? l2 : 0);
	int rc = wb_reserve(w, inbuf);
	if (rc)
		return rc;
	uint8_t *p = w->buf + w->blen;
	uint8_t *body = p + BC_REC_HEADER_SIZE;
	if (e->klen)
		memcpy(body, e->key, e->klen);
	if (e->mlen && meta)
		memcpy(body + e->klen, meta, e->mlen);
	if (l1)
		memcpy(body + e->klen + e->mlen, v1, l1);
	uint8_t flags = w->batch ? BC_RF_BATCH : 0;
	if (ext) {
		uint32_t crc = bc_crc32c(0, body, inbuf - BC_REC_HEADER_SIZE);
		bc_record_encode_header_crc(p, e->type, flags, e->space, w->now, e->expire_s,
					    e->klen, e->mlen, (uint32_t)(l1 + l2),
					    bc_crc32c(crc, v2, l2));
	} else {
		if (l2)
			memcpy(body + e->klen + e->mlen + l1, v2, l2);
		bc_record_encode_header(p, e->type, flags, e->space, w->now, e->expire_s, e->klen,
					e->mlen, (uint32_t)(l1 + l2), body,
					total - BC_REC_HEADER_SIZE);
	}
	struct wrec *r = &w->v[w->n++];
	r->off = w->len;
	r->boff = w->blen;
	r->ext = ext ? v2 : NULL;
	r->elen = ext ? l2 : 0;
	r->e = *e;
	r->e.vlen = (uint32_t)(l1 + l2);
	w->len += total;
	w->blen += inbuf;
	w->next += ext;
	return 0;
}

/* The pieces to append, in order: runs of buf between the records' ext pieces. */
static int wb_gather(const struct wb *w, struct iovec *iov)
{
	size_t from = 0;
	int n = 0;
	for (size_t i = 0; i < w->n; i++) {
		const struct wrec *r = &w->v[i];
		if (!r->ext)
			continue;
		size_t end =
			r->boff + BC_REC_HEADER_SIZE + r->e.klen + r->e.mlen + r->e.vlen - r->elen;
		iov[n++] = (struct iovec){w->buf + from, end - from};
		iov[n++] = (struct iovec){(void *)r->ext, r->elen};
		from = end;
	}
	if (from < w->blen)
		iov[n++] = (struct iovec){w->buf + from, w->blen - from};
	return n;
}

/*
 * Append everything built and publish it. Caller holds wlock. *mark receives the append
 * position to wait on for durability.
 */
static int wb_commit(struct bc_db *db, struct wb *w, uint64_t *mark)
{
	*mark = 0;
	if (!w->n)
		return 0;
	if (w->batch) {
		uint8_t val[BC_BATCH_VALUE_SIZE];
		size_t hdr = BC_REC_HEADER_SIZE + BC_BATCH_VALUE_SIZE;
		bc_record_batch_value(val, (uint32_t)w->n, w->len - hdr);
		bc_record_encode(w->buf, BC_REC_BATCH, 0, 0, w->now, 0, NULL, 0, NULL, 0, val,
				 sizeof(val));
	}
	struct iovec iov[2 * WB_MAX_EXT + 1];
	int niov = wb_gather(w, iov);
	uint32_t slot;
	uint64_t base;
	int rc = bc_append(db, iov, niov, w->len, &slot, &base, mark);
	if (rc)
		return rc;
	struct bc_dropped dropped = {0};
	bc_kd_wrlock(db);
	db->files[slot]->size = base + w->len;
	for (size_t i = 0; i < w->n && !rc; i++) {
		bc_effect *e = &w->v[i].e;
		e->offset = (uint32_t)(base + w->v[i].off);
		e->key = w->buf + w->v[i].boff + BC_REC_HEADER_SIZE;
		rc = bc_apply(db, slot, e, &dropped);
	}
	bc_objects_release(db, &dropped);
	bc_kd_unlock(db);
	/* The hint writer may write to its file: keep that out of the keydir lock. */
	for (size_t i = 0; i < w->n && !rc && db->active_hint; i++) {
		if (bc_hint_writer_add(db->active_hint, &w->v[i].e)) {
			bc_hint_writer_abort(db->active_hint);
			db->active_hint = NULL;
		}
	}
	if (rc) {
		/* Out of memory after the records reached the file: the keydir no longer
		 * matches the log, so stop writing; a reopen rebuilds it. */
		db->write_error = rc;
		bc_log(db, BC_LOG_ERROR, "%s: cannot publish a write (%s); reopen the store",
		       db->dir, bc_strerror(rc));
		return rc;
	}
	return 0;
}

/* ---- argument checks ---- */

static int check_key(unsigned space, const void *key, size_t klen)
{
	if (space > 255 || (!key && klen) || !klen)
		return -EINVAL;
	if (klen > BC_MAX_KEY)
		return -ENAMETOOLONG;
	return 0;
}

static int check_writable(struct bc_db *db)
{
	if (!db)
		return -EINVAL;
	if (db->opt.read_only)
		return -EROFS;
	return 0;
}

static uint64_t default_expiry(struct bc_db *db)
{
	if (!db->opt.default_ttl_s)
		return 0;
	return bc_now_ns() / 1000000000u + db->opt.default_ttl_s;
}

/* ---- the current value of a key (caller holds wlock) ---- */

struct cur {
	bool present;
	bool object;
	uint64_t size;
	uint64_t object_id;
	struct bc_object *obj; /* stable while wlock is held */
	uint64_t expire_s;
	const uint8_t *meta;
	uint32_t mlen;
	const uint8_t *value; /* inline value */
	uint8_t *rbuf; /* owns meta and value */
	bool relink; /* meta was replaced: the key's record must be rewritten */
};

static void cur_release(struct cur *c)
{
	free(c->rbuf);
	memset(c, 0, sizeof(*c));
}

/* Load a key's newest record (meta and inline value). -ENOENT if absent or expired. */
static int cur_load(struct bc_db *db, unsigned space, const void *key, size_t klen, struct cur *c)
{
	memset(c, 0, sizeof(*c));
	struct bc_kval v;
	struct bc_file *f;
	int rc = bc_pin_key(db, space, key, klen, &v, &f);
	if (rc)
		return rc;
	struct bc_record rec;
	c->rbuf = malloc(v.loc.size);
	rc = c->rbuf ? bc_read_record(db, f, &v.loc, c->rbuf, &rec) : -ENOMEM;
	bc_file_put(db, f);
	if (rc)
		goto out_fail;
	if ((rec.type != BC_REC_PUT && rec.type != BC_REC_LINK) || rec.space != space ||
	    rec.klen != klen || memcmp(rec.key, key, klen)) {
		rc = -EIO; /* the keydir points at another record: a bug, not damage */
		bc_log(db, BC_LOG_ERROR, "%s: keydir points at the wrong record", db->dir);
		goto out_fail;
	}
	c->present = true;
	c->expire_s = rec.expire_s;
	c->meta = rec.meta;
	c->mlen = rec.mlen;
	if (rec.type == BC_REC_LINK) {
		c->object = true;
		c->object_id = rec.object;
		c->size = rec.size;
		c->obj = v.obj;
	} else {
		c->value = rec.value;
		c->size = rec.vlen;
	}
	return 0;
out_fail:
	free(c->rbuf);
	c->rbuf = NULL;
	return rc;
}

/* ---- effects ---- */

static bc_effect eff(uint8_t type, unsigned space, const void *key, size_t klen, size_t mlen,
		     uint64_t expire_s)
{
	bc_effect e = {0};
	e.type = type;
	e.space = (uint8_t)space;
	e.key = key;
	e.klen = (uint16_t)klen;
	e.mlen = (uint16_t)mlen;
	e.expire_s = expire_s;
	return e;
}

static int add_put(struct wb *w, unsigned space, const void *key, size_t klen, const void *val,
		   size_t vlen, const void *meta, size_t mlen, uint64_t expire_s)
{
	bc_effect e = eff(BC_REC_PUT, space, key, klen, mlen, expire_s);
	e.dlen = (uint32_t)vlen;
	return wb_add(w, &e, meta, val, vlen, NULL, 0, false);
}

static int add_link(struct wb *w, unsigned space, const void *key, size_t klen, const void *meta,
		    size_t mlen, uint64_t expire_s, uint64_t object, uint64_t size)
{
	uint8_t v[BC_OBJ_VALUE_SIZE];
	bc_record_obj_value(v, object, size);
	bc_effect e = eff(BC_REC_LINK, space, key, klen, mlen, expire_s);
	e.object = object;
	e.size = size;
	return wb_add(w, &e, meta, v, sizeof(v), NULL, 0, false);
}

/* With ref, data stays valid and unchanged until the commit (wb_add). */
static int add_chunk(struct wb *w, uint64_t object, uint32_t index, const void *data, size_t dlen,
		     bool ref)
{
	uint8_t v[BC_CHUNK_PREFIX];
	bc_record_chunk_prefix(v, object, index);
	bc_effect e = eff(BC_REC_CHUNK, 0, NULL, 0, 0, 0);
	e.object = object;
	e.index = index;
	e.dlen = (uint32_t)dlen;
	return wb_add(w, &e, NULL, v, sizeof(v), data, dlen, ref);
}

static int add_trunc(struct wb *w, uint64_t object, uint64_t size)
{
	uint8_t v[BC_OBJ_VALUE_SIZE];
	bc_record_obj_value(v, object, size);
	bc_effect e = eff(BC_REC_TRUNC, 0, NULL, 0, 0, 0);
	e.object = object;
	e.size = size;
	return wb_add(w, &e, NULL, v, sizeof(v), NULL, 0, false);
}

static int add_delete(struct wb *w, unsigned space, const void *key, size_t klen)
{
	bc_effect e = eff(BC_REC_DELETE, space, key, klen, 0, 0);
	return wb_add(w, &e, NULL, NULL, 0, NULL, 0, false);
}

/*
 * Read chunk idx of obj (wlock held) into buf[0..C), zero-filled; *dlen = data bytes.
 * -EBADMSG for a hole that may be a chunk lost to damage: a partial rewrite of it would
 * turn the loss into zeros.
 */
static int chunk_load(struct bc_db *db, struct bc_object *obj, uint64_t idx, uint8_t *buf,
		      uint32_t *dlen)
{
	memset(buf, 0, BC_CHUNK_SIZE);
	*dlen = 0;
	bc_kd_rdlock(db);
	struct bc_chunk *c = bc_object_chunk(obj, idx);
	struct bc_chunk cc = c ? *c : (struct bc_chunk){0};
	struct bc_file *f = c ? bc_file_get(db, cc.loc.file) : NULL;
	bool lost = !c && bc_object_suspect(db, obj);
	bc_kd_unlock(db);
	if (lost)
		return -EBADMSG;
	if (!f)
		return 0;
	int rc = bc_chunk_load(db, f, &cc, buf);
	bc_file_put(db, f);
	if (!rc)
		*dlen = cc.dlen;
	return rc;
}

/* ---- streams of fresh-object chunks (put of a large value, streams, conversions) ---- */

static uint64_t new_object(struct bc_db *db)
{
	bc_kd_wrlock(db);
	uint64_t id = db->next_object++;
	bc_kd_unlock(db);
	return id;
}

/* Forget a fresh object whose LINK was never written (wlock held). */
static void object_abandon(struct bc_db *db, uint64_t id)
{
	bc_kd_wrlock(db);
	struct bc_object *o = bc_objtab_find(db->objs, id);
	if (o && !o->links)
		bc_object_drop(db, o);
	bc_kd_unlock(db);
}

/* Write data as chunks first..first+n of a fresh object, in appends of bounded size. */
static int write_fresh_chunks(struct bc_db *db, uint64_t object, uint64_t first,
			      const uint8_t *data, size_t len)
{
	while (len) {
		struct wb w;
		wb_init(&w, false);
		int rc = 0;
		size_t piece = 0;
		while (len && piece < BC_WRITE_ATOMIC && !rc) {
			size_t n = len < BC_CHUNK_SIZE ? len : BC_CHUNK_SIZE;
			rc = add_chunk(&w, object, (uint32_t)first, data, n, true);
			first++;
			data += n;
			len -= n;
			piece += n;
		}
		uint64_t mark;
		if (!rc)
			rc = wb_commit(db, &w, &mark);
		wb_release(&w);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- put and delete ---- */

static int put_locked(struct bc_db *db, unsigned space, const void *key, size_t klen,
		      const void *val, size_t vlen, const void *meta, size_t mlen,
		      uint64_t expire_s, uint64_t *mark)
{
	struct wb w;
	int rc;
	if (vlen <= BC_MAX_INLINE) {
		wb_init(&w, false);
		rc = add_put(&w, space, key, klen, val, vlen, meta, mlen, expire_s);
		if (!rc)
			rc = wb_commit(db, &w, mark);
		wb_release(&w);
		return rc;
	}
	uint64_t object = new_object(db);
	rc = write_fresh_chunks(db, object, 0, val, vlen);
	if (!rc) {
		wb_init(&w, false);
		rc = add_link(&w, space, key, klen, meta, mlen, expire_s, object, vlen);
		if (!rc)
			rc = wb_commit(db, &w, mark);
		wb_release(&w);
	}
	if (rc)
		object_abandon(db, object);
	return rc;
}

int bc_put_ex(struct bc_db *db, unsigned space, const void *key, size_t klen, const void *val,
	      size_t vlen, const void *meta, size_t mlen, uint64_t expire_s)
{
	int rc = check_writable(db);
	if (!rc)
		rc = check_key(space, key, klen);
	if (rc)
		return rc;
	if ((!val && vlen) || (!meta && mlen))
		return -EINVAL;
	if (mlen > BC_MAX_META || vlen > BC_MAX_VALUE)
		return -EFBIG;
	uint64_t mark = 0;
	pthread_mutex_lock(&db->wlock);
	rc = put_locked(db, space, key, klen, val, vlen, meta, mlen, expire_s, &mark);
	pthread_mutex_unlock(&db->wlock);
	atomic_fetch_add(&db->n_put, 1);
	return rc ? rc : bc_commit_wait(db, mark);
}

int bc_put(struct bc_db *db, unsigned space, const void *key, size_t klen, const void *val,
	   size_t vlen)
{
	if (!db)
		return -EINVAL;
	return bc_put_ex(db, space, key, klen, val, vlen, NULL, 0, default_expiry(db));
}

int bc_delete(struct bc_db *db, unsigned space, const void *key, size_t klen)
{
	int rc = check_writable(db);
	if (!rc)
		rc = check_key(space, key, klen);
	if (rc)
		return rc;
	uint64_t mark = 0;
	pthread_mutex_lock(&db->wlock);
	struct bc_kval v;
	bc_kd_rdlock(db);
	bool found = bc_keydir_get(db->kd, space, key, klen, &v);
	bc_kd_unlock(db);
	if (!found || bc_expired_now(v.expire_s)) {
		rc = -ENOENT;
	} else {
		struct wb w;
		wb_init(&w, false);
		rc = add_delete(&w, space, key, klen);
		if (!rc)
			rc = wb_commit(db, &w, &mark);
		wb_release(&w);
	}
	pthread_mutex_unlock(&db->wlock);
	atomic_fetch_add(&db->n_del, 1);
	return rc ? rc : bc_commit_wait(db, mark);
}

/* ---- partial writes and truncation ---- */

/* Write buf at off into an object (wlock held), as one batch. */
static int object_write(struct bc_db *db, unsigned space, const void *key, size_t klen,
			struct cur *c, uint64_t off, const uint8_t *buf, size_t len, uint64_t *mark)
{
	uint64_t old = c->size, nsize = off + len > old ? off + len : old;
	uint64_t first = off / BC_CHUNK_SIZE, last = (off + len - 1) / BC_CHUNK_SIZE;
	uint8_t *cbuf = NULL;
	struct wb w;
	wb_init(&w, true);
	int rc = 0;
	for (uint64_t i = first; i <= last && !rc; i++) {
		uint64_t cstart = i * BC_CHUNK_SIZE;
		uint64_t ws = off > cstart ? off - cstart : 0;
		uint64_t we =
			off + len - cstart < BC_CHUNK_SIZE ? off + len - cstart : BC_CHUNK_SIZE;
		const uint8_t *src = buf + (cstart + ws - off);
		uint64_t old_end = old > cstart
			? (old - cstart < BC_CHUNK_SIZE ? old - cstart : BC_CHUNK_SIZE)
			: 0;
		if (ws == 0 && we >= old_end) {
			/* The write covers all old data of this chunk: no read needed. */
			rc = add_chunk(&w, c->object_id, (uint32_t)i, src, we, true);
			continue;
		}
		if (!cbuf) {
			cbuf = malloc(BC_CHUNK_SIZE);
			if (!cbuf) {
				rc = -ENOMEM;
				break;
			}
		}
		uint32_t dlen = 0;
		if (old_end)
			rc = chunk_load(db, c->obj, i, cbuf, &dlen);
		else
			memset(cbuf, 0, BC_CHUNK_SIZE); /* past the old end: zeros, nothing lost */
		if (rc)
			break;
		/* Bytes past the old end must read as zeros after an extension. */
		if (dlen > old_end) {
			memset(cbuf + old_end, 0, dlen - old_end);
			dlen = (uint32_t)old_end;
		}
		memcpy(cbuf + ws, src, we - ws);
		uint64_t dl = we > dlen ? we : dlen;
		/* Copied: cbuf takes the next partial chunk (the range's other end). */
		rc = add_chunk(&w, c->object_id, (uint32_t)i, cbuf, dl, false);
	}
	if (!rc && (nsize != old || c->relink))
		rc = add_link(&w, space, key, klen, c->meta, c->mlen, c->expire_s, c->object_id,
			      nsize);
	if (!rc && w.n == 1) {
		/* A single chunk is atomic on its own; no batch header needed. */
		struct wb s;
		wb_init(&s, false);
		bc_effect e = w.v[0].e;
		const uint8_t *body = w.buf + w.v[0].boff + BC_REC_HEADER_SIZE;
		const uint8_t *data = w.v[0].ext ? w.v[0].ext : body + BC_CHUNK_PREFIX;
		rc = wb_add(&s, &e, NULL, body, BC_CHUNK_PREFIX, data, e.vlen - BC_CHUNK_PREFIX,
			    true);
		if (!rc)
			rc = wb_commit(db, &s, mark);
		wb_release(&s);
	} else if (!rc) {
		rc = wb_commit(db, &w, mark);
	}
	wb_release(&w);
	free(cbuf);
	return rc;
}

/*
 * Turn an inline value into a fresh object of size nsize holding the old bytes, with
 * buf (len bytes at off; len may be 0) written over them. Chunks first, LINK last.
 */
static int convert_write(struct bc_db *db, unsigned space, const void *key, size_t klen,
			 struct cur *c, uint64_t nsize, uint64_t off, const uint8_t *buf,
			 size_t len, uint64_t *mark)
{
	uint64_t object = new_object(db);
	int rc = 0;
	uint8_t *cbuf = malloc(BC_CHUNK_SIZE);
	if (!cbuf)
		return -ENOMEM;
	/* Chunk 0 carries the old inline bytes (at most one chunk's worth). */
	if (c->size) {
		memset(cbuf, 0, BC_CHUNK_SIZE);
		memcpy(cbuf, c->value, c->size);
		uint64_t dl = c->size;
		if (len && off < BC_CHUNK_SIZE) {
			uint64_t we = off + len < BC_CHUNK_SIZE ? off + len : BC_CHUNK_SIZE;
			memcpy(cbuf + off, buf, we - off);
			if (we > dl)
				dl = we;
		}
		rc = write_fresh_chunks(db, object, 0, cbuf, dl);
	}
	/* The rest of the write, chunk by chunk (chunk 0 is done if it had old bytes). */
	uint64_t pos = off;
	if (c->size && len && off < BC_CHUNK_SIZE)
		pos = BC_CHUNK_SIZE;
	while (!rc && len && pos < off + len) {
		uint64_t i = pos / BC_CHUNK_SIZE, cstart = i * BC_CHUNK_SIZE;
		uint64_t ws = pos - cstart;
		uint64_t we =
			off + len - cstart < BC_CHUNK_SIZE ? off + len - cstart : BC_CHUNK_SIZE;
		if (ws == 0) {
			/* Whole chunks straight from the caller's buffer. */
			uint64_t full = (off + len - pos) / BC_CHUNK_SIZE * BC_CHUNK_SIZE;
			if (!full)
				full = off + len - pos;
			rc = write_fresh_chunks(db, object, i, buf + (pos - off), full);
			pos += full;
			continue;
		}
		memset(cbuf, 0, BC_CHUNK_SIZE);
		memcpy(cbuf + ws, buf + (pos - off), we - ws);
		rc = write_fresh_chunks(db, object, i, cbuf, we);
		pos = cstart + we;
	}
	free(cbuf);
	if (!rc) {
		struct wb w;
		wb_init(&w, false);
		rc = add_link(&w, space, key, klen, c->meta, c->mlen, c->expire_s, object, nsize);
		if (!rc)
			rc = wb_commit(db, &w, mark);
		wb_release(&w);
	}
	if (rc)
		object_abandon(db, object);
	return rc;
}

/* Rewrite an inline value resized/patched, keeping meta and expiry. */
static int inline_write(struct bc_db *db, unsigned space, const void *key, size_t klen,
			struct cur *c, uint64_t nsize, uint64_t off, const uint8_t *buf, size_t len,
			uint64_t *mark)
{
	uint8_t *v = calloc(1, nsize ? nsize : 1);
	if (!v)
		return -ENOMEM;
	if (c->size && nsize)
		memcpy(v, c->value, c->size < nsize ? c->size : nsize);
	if (len)
		memcpy(v + off, buf, len);
	struct wb w;
	wb_init(&w, false);
	int rc = add_put(&w, space, key, klen, v, nsize, c->meta, c->mlen, c->expire_s);
	if (!rc)
		rc = wb_commit(db, &w, mark);
	wb_release(&w);
	free(v);
	return rc;
}

static int add_remeta(struct wb *w, unsigned space, const void *key, size_t klen,
		      const struct cur *c, const void *meta, size_t mlen);

/* New metadata for a write, or none (keep the key's). */
struct newmeta {
	bool set;
	const void *meta;
	size_t mlen;
};

static int write_piece(struct bc_db *db, unsigned space, const void *key, size_t klen, uint64_t off,
		       const uint8_t *buf, size_t len, const struct newmeta *nm, uint64_t *mark)
{
	struct cur c;
	int rc = cur_load(db, space, key, klen, &c);
	if (rc == -ENOENT) {
		memset(&c, 0, sizeof(c));
		c.expire_s = default_expiry(db);
		rc = 0;
	}
	if (rc)
		return rc;
	if (nm->set) {
		c.meta = nm->meta;
		c.mlen = (uint32_t)nm->mlen;
		c.relink = true;
	}
	uint64_t nsize = off + len > c.size ? off + len : c.size;
	if (!len)
		nsize = c.size; /* an empty write creates the key but never extends it */
	if (!len && c.present && !c.relink) {
		rc = 0;
	} else if (!len && c.present) {
		struct wb w;
		wb_init(&w, false);
		rc = add_remeta(&w, space, key, klen, &c, c.meta, c.mlen);
		if (!rc)
			rc = wb_commit(db, &w, mark);
		wb_release(&w);
	} else if (c.object) {
		rc = object_write(db, space, key, klen, &c, off, buf, len, mark);
	} else if (nsize <= BC_MAX_INLINE) {
		rc = inline_write(db, space, key, klen, &c, nsize, off, buf, len, mark);
	} else {
		rc = convert_write(db, space, key, klen, &c, nsize, off, buf, len, mark);
	}
	cur_release(&c);
	return rc;
}

static int write_common(struct bc_db *db, unsigned space, const void *key, size_t klen,
			uint64_t off, const void *buf, size_t len, const struct newmeta *nm)
{
	int rc = check_writable(db);
	if (!rc)
		rc = check_key(space, key, klen);
	if (rc)
		return rc;
	if ((!buf && len) || (nm->set && !nm->meta && nm->mlen))
		return -EINVAL;
	if (off > BC_MAX_VALUE || len > BC_MAX_VALUE - off || nm->mlen > BC_MAX_META)
		return -EFBIG;
	const uint8_t *p = buf;
	uint64_t mark = 0;
	do {
		/* Pieces end on chunk boundaries so no chunk is read twice. */
		size_t n = len;
		if (n > BC_WRITE_ATOMIC)
			n = (size_t)(BC_WRITE_ATOMIC - off % BC_CHUNK_SIZE);
		pthread_mutex_lock(&db->wlock);
		rc = write_piece(db, space, key, klen, off, p, n, nm, &mark);
		pthread_mutex_unlock(&db->wlock);
		off += n;
		p += n;
		len -= n;
	} while (!rc && len);
	atomic_fetch_add(&db->n_put, 1);
	return rc ? rc : bc_commit_wait(db, mark);
}

int bc_write(struct bc_db *db, unsigned space, const void *key, size_t klen, uint64_t off,
	     const void *buf, size_t len)
{
	struct newmeta nm = {0};
	return write_common(db, space, key, klen, off, buf, len, &nm);
}

int bc_write_meta(struct bc_db *db, unsigned space, const void *key, size_t klen, uint64_t off,
		  const void *buf, size_t len, const void *meta, size_t mlen)
{
	struct newmeta nm = {.set = true, .meta = meta, .mlen = mlen};
	return write_common(db, space, key, klen, off, buf, len, &nm);
}

static int truncate_locked(struct bc_db *db, unsigned space, const void *key, size_t klen,
			   uint64_t size, uint64_t *mark)
{
	struct cur c;
	int rc = cur_load(db, space, key, klen, &c);
	if (rc)
		return rc;
	if (size == c.size) {
		rc = 0;
	} else if (!c.object && size <= BC_MAX_INLINE) {
		rc = inline_write(db, space, key, klen, &c, size, 0, NULL, 0, mark);
	} else if (!c.object) {
		rc = convert_write(db, space, key, klen, &c, size, 0, NULL, 0, mark);
	} else if (size > c.size) {
		struct wb w;
		wb_init(&w, false);
		rc = add_link(&w, space, key, klen, c.meta, c.mlen, c.expire_s, c.object_id, size);
		if (!rc)
			rc = wb_commit(db, &w, mark);
		wb_release(&w);
	} else {
		/* Shrink: cut whole chunks, shorten the chunk the new end falls in, relink. */
		struct wb w;
		wb_init(&w, true);
		rc = add_trunc(&w, c.object_id, size);
		uint64_t idx = size / BC_CHUNK_SIZE, in = size % BC_CHUNK_SIZE;
		uint8_t *cbuf = NULL;
		if (!rc && in) {
			cbuf = malloc(BC_CHUNK_SIZE);
			uint32_t dlen = 0;
			rc = cbuf ? chunk_load(db, c.obj, idx, cbuf, &dlen) : -ENOMEM;
			if (!rc && dlen > in)
				rc = add_chunk(&w, c.object_id, (uint32_t)idx, cbuf, in, true);
		}
		if (!rc)
			rc = add_link(&w, space, key, klen, c.meta, c.mlen, c.expire_s, c.object_id,
				      size);
		if (!rc)
			rc = wb_commit(db, &w, mark);
		wb_release(&w);
		free(cbuf);
	}
	cur_release(&c);
	return rc;
}

int bc_truncate(struct bc_db *db, unsigned space, const void *key, size_t klen, uint64_t size)
{
	int rc = check_writable(db);
	if (!rc)
		rc = check_key(space, key, klen);
	if (rc)
		return rc;
	if (size > BC_MAX_VALUE)
		return -EFBIG;
	uint64_t mark = 0;
	pthread_mutex_lock(&db->wlock);
	rc = truncate_locked(db, space, key, klen, size, &mark);
	pthread_mutex_unlock(&db->wlock);
	atomic_fetch_add(&db->n_put, 1);
	return rc ? rc : bc_commit_wait(db, mark);
}

/* Re-emit a key's record with new metadata into w (caller holds wlock). */
static int add_remeta(struct wb *w, unsigned space, const void *key, size_t klen,
		      const struct cur *c, const void *meta, size_t mlen)
{
	if (c->object)
		return add_link(w, space, key, klen, meta, mlen, c->expire_s, c->object_id,
				c->size);
	return add_put(w, space, key, klen, c->value, c->size, meta, mlen, c->expire_s);
}

int bc_set_meta(struct bc_db *db, unsigned space, const void *key, size_t klen, const void *meta,
		size_t mlen)
{
	int rc = check_writable(db);
	if (!rc)
		rc = check_key(space, key, klen);
	if (rc)
		return rc;
	if (!meta && mlen)
		return -EINVAL;
	if (mlen > BC_MAX_META)
		return -EFBIG;
	uint64_t mark = 0;
	pthread_mutex_lock(&db->wlock);
	struct cur c;
	rc = cur_load(db, space, key, klen, &c);
	if (!rc) {
		struct wb w;
		wb_init(&w, false);
		rc = add_remeta(&w, space, key, klen, &c, meta, mlen);
		if (!rc)
			rc = wb_commit(db, &w, &mark);
		wb_release(&w);
		cur_release(&c);
	}
	pthread_mutex_unlock(&db->wlock);
	atomic_fetch_add(&db->n_put, 1);
	return rc ? rc : bc_commit_wait(db, mark);
}

/* ---- batches ---- */

enum bop { OP_PUT, OP_DELETE, OP_RENAME, OP_META };

struct bc_batch_op {
	enum bop kind;
	uint8_t space, space2;
	size_t key, klen; /* offsets into the batch's byte store */
	size_t key2, klen2; /* rename target */
	size_t val, vlen;
	size_t meta, mlen;
	uint64_t expire_s;
	uint64_t object; /* large put: its fresh object, written before the batch */
};

struct bc_batch {
	struct bc_batch_op *ops;
	size_t n, cap;
	uint8_t *bytes;
	size_t len, bcap;
};

int bc_batch_new(struct bc_batch **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void bc_batch_free(struct bc_batch *b)
{
	if (!b)
		return;
	free(b->ops);
	free(b->bytes);
	free(b);
}

void bc_batch_reset(struct bc_batch *b)
{
	b->n = 0;
	b->len = 0;
}

size_t bc_batch_count(const struct bc_batch *b)
{
	return b->n;
}

static int bstore(struct bc_batch *b, const void *p, size_t n, size_t *at)
{
	uint8_t *v = bc_grow(b->bytes, &b->bcap, b->len + n, 1, 4096);
	if (!v)
		return -ENOMEM;
	b->bytes = v;
	if (n)
		memcpy(b->bytes + b->len, p, n);
	*at = b->len;
	b->len += n;
	return 0;
}

static int bpush(struct bc_batch *b, struct bc_batch_op *op)
{
	if (b->n >= BC_MAX_BATCH_RECORDS / 2)
		return -EFBIG;
	struct bc_batch_op *v = bc_grow(b->ops, &b->cap, b->n + 1, sizeof(*v), 16);
	if (!v)
		return -ENOMEM;
	b->ops = v;
	b->ops[b->n++] = *op;
	return 0;
}

/* Bytes one operation copies into the batch, and where the copy's offset goes. */
struct bpiece {
	const void *p;
	size_t n;
	size_t *at;
};

/* Copy an operation's pieces and add it, or leave the batch as it was. */
static int badd(struct bc_batch *b, struct bc_batch_op *op, const struct bpiece *pc, size_t npc)
{
	size_t keep = b->len;
	int rc = 0;
	for (size_t i = 0; i < npc && !rc; i++)
		rc = bstore(b, pc[i].p, pc[i].n, pc[i].at);
	if (!rc)
		rc = bpush(b, op);
	if (rc)
		b->len = keep;
	return rc;
}

int bc_batch_put(struct bc_batch *b, unsigned space, const void *key, size_t klen, const void *val,
		 size_t vlen, const void *meta, size_t mlen, uint64_t expire_s)
{
	int rc = b ? check_key(space, key, klen) : -EINVAL;
	if (rc)
		return rc;
	if ((!val && vlen) || (!meta && mlen))
		return -EINVAL;
	if (mlen > BC_MAX_META || vlen > BC_MAX_VALUE)
		return -EFBIG;
	struct bc_batch_op op = {.kind = OP_PUT,
				 .space = (uint8_t)space,
				 .klen = klen,
				 .vlen = vlen,
				 .mlen = mlen,
				 .expire_s = expire_s};
	struct bpiece pc[] = {{key, klen, &op.key}, {val, vlen, &op.val}, {meta, mlen, &op.meta}};
	return badd(b, &op, pc, 3);
}

int bc_batch_delete(struct bc_batch *b, unsigned space, const void *key, size_t klen)
{
	int rc = b ? check_key(space, key, klen) : -EINVAL;
	if (rc)
		return rc;
	struct bc_batch_op op = {.kind = OP_DELETE, .space = (uint8_t)space, .klen = klen};
	struct bpiece pc[] = {{key, klen, &op.key}};
	return badd(b, &op, pc, 1);
}

int bc_batch_rename(struct bc_batch *b, unsigned from_space, const void *from, size_t flen,
		    unsigned to_space, const void *to, size_t tlen)
{
	int rc = b ? check_key(from_space, from, flen) : -EINVAL;
	if (!rc)
		rc = check_key(to_space, to, tlen);
	if (rc)
		return rc;
	struct bc_batch_op op = {.kind = OP_RENAME,
				 .space = (uint8_t)from_space,
				 .klen = flen,
				 .space2 = (uint8_t)to_space,
				 .klen2 = tlen};
	struct bpiece pc[] = {{from, flen, &op.key}, {to, tlen, &op.key2}};
	return badd(b, &op, pc, 2);
}

int bc_batch_set_meta(struct bc_batch *b, unsigned space, const void *key, size_t klen,
		      const void *meta, size_t mlen)
{
	int rc = b ? check_key(space, key, klen) : -EINVAL;
	if (rc)
		return rc;
	if (!meta && mlen)
		return -EINVAL;
	if (mlen > BC_MAX_META)
		return -EFBIG;
	struct bc_batch_op op = {
		.kind = OP_META, .space = (uint8_t)space, .klen = klen, .mlen = mlen};
	struct bpiece pc[] = {{key, klen, &op.key}, {meta, mlen, &op.meta}};
	return badd(b, &op, pc, 2);
}

/*
 * The overlay: what earlier operations of the batch being planned did to each key, so a
 * later operation sees them. Open addressing on a hash of (space, key).
 */
struct ov_ent {
	bool used;
	bool loaded; /* c holds the key's state as the batch sees it */
	uint8_t space;
	const uint8_t *key;
	size_t klen;
	struct cur c; /* present == false: absent (or deleted by the batch) */
};

struct overlay {
	struct ov_ent *v;
	size_t cap, n;
};

static uint64_t ov_hash(unsigned space, const uint8_t *k, size_t n)
{
	uint64_t h = 1469598103934665603u ^ space;
	for (size_t i = 0; i < n; i++)
		h = (h ^ k[i]) * 1099511628211u;
	return h;
}

static int ov_grow(struct overlay *o)
{
	size_t cap = o->cap ? o->cap * 2 : 64;
	struct ov_ent *v = calloc(cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < o->cap; i++) {
		if (!o->v[i].used)
			continue;
		size_t j = ov_hash(o->v[i].space, o->v[i].key, o->v[i].klen) & (cap - 1);
		while (v[j].used)
			j = (j + 1) & (cap - 1);
		v[j] = o->v[i];
	}
	free(o->v);
	o->v = v;
	o->cap = cap;
	return 0;
}

/* Find or create the entry of (space, k). Pointers to entries die at the next call. */
static struct ov_ent *ov_get(struct overlay *o, unsigned space, const uint8_t *k, size_t n)
{
	if ((o->n + 1) * 2 > o->cap && ov_grow(o))
		return NULL;
	size_t j = ov_hash(space, k, n) & (o->cap - 1);
	while (o->v[j].used) {
		struct ov_ent *e = &o->v[j];
		if (e->space == space && e->klen == n && !memcmp(e->key, k, n))
			return e;
		j = (j + 1) & (o->cap - 1);
	}
	struct ov_ent *e = &o->v[j];
	e->used = true;
	e->space = (uint8_t)space;
	e->key = k;
	e->klen = n;
	o->n++;
	return e;
}

static void ov_release(struct overlay *o)
{
	for (size_t i = 0; i < o->cap; i++)
		if (o->v[i].used)
			cur_release(&o->v[i].c);
	free(o->v);
}

/*
 * Copy the state of a key as the batch sees it (overlay first, then the store) into *out,
 * whose pointers stay valid until the key's entry changes. *present says whether it is.
 */
static int ov_state(struct bc_db *db, struct overlay *o, unsigned space, const uint8_t *k, size_t n,
		    struct cur *out)
{
	struct ov_ent *e = ov_get(o, space, k, n);
	if (!e)
		return -ENOMEM;
	if (!e->loaded) {
		int rc = cur_load(db, space, k, n, &e->c);
		if (rc && rc != -ENOENT)
			return rc;
		e->loaded = true;
	}
	*out = e->c;
	/* A put earlier in the batch may carry an expiry already past: gone, as outside. */
	if (out->present && bc_expired_now(bc_expire32(out->expire_s)))
		out->present = false;
	return 0;
}

/* Make (space, k) present with the given state (copies value and meta). */
static int ov_set(struct overlay *o, unsigned space, const uint8_t *k, size_t n,
		  const struct cur *src)
{
	struct cur c = *src;
	size_t vlen = c.object ? 0 : (size_t)c.size;
	c.present = true;
	c.rbuf = malloc(vlen + c.mlen + 1);
	if (!c.rbuf)
		return -ENOMEM;
	if (vlen)
		memcpy(c.rbuf, src->value, vlen);
	if (c.mlen)
		memcpy(c.rbuf + vlen, src->meta, c.mlen);
	c.value = c.rbuf;
	c.meta = c.rbuf + vlen;
	struct ov_ent *e = ov_get(o, space, k, n);
	if (!e) {
		free(c.rbuf);
		return -ENOMEM;
	}
	cur_release(&e->c);
	e->c = c;
	e->loaded = true;
	return 0;
}

static int ov_clear(struct overlay *o, unsigned space, const uint8_t *k, size_t n)
{
	struct ov_ent *e = ov_get(o, space, k, n);
	if (!e)
		return -ENOMEM;
	cur_release(&e->c);
	e->loaded = true;
	return 0;
}

static int plan_op(struct bc_db *db, const struct bc_batch *b, const struct bc_batch_op *op,
		   struct wb *w, struct overlay *o)
{
	const uint8_t *k = b->bytes + op->key;
	const uint8_t *meta = b->bytes + op->meta;
	struct cur c;
	int rc;
	switch (op->kind) {
	case OP_PUT: {
		struct cur n = {.present = true,
				.size = op->vlen,
				.expire_s = op->expire_s,
				.meta = meta,
				.mlen = (uint32_t)op->mlen};
		if (op->object) {
			n.object = true;
			n.object_id = op->object;
			rc = add_link(w, op->space, k, op->klen, meta, op->mlen, op->expire_s,
				      op->object, op->vlen);
		} else {
			n.value = b->bytes + op->val;
			rc = add_put(w, op->space, k, op->klen, n.value, op->vlen, meta, op->mlen,
				     op->expire_s);
		}
		return rc ? rc : ov_set(o, op->space, k, op->klen, &n);
	}
	case OP_DELETE:
		rc = ov_state(db, o, op->space, k, op->klen, &c);
		if (!rc && c.present)
			rc = add_delete(w, op->space, k, op->klen);
		return rc ? rc : ov_clear(o, op->space, k, op->klen);
	case OP_META:
		rc = ov_state(db, o, op->space, k, op->klen, &c);
		if (!rc && !c.present)
			rc = -ENOENT;
		if (!rc)
			rc = add_remeta(w, op->space, k, op->klen, &c, meta, op->mlen);
		if (rc)
			return rc;
		c.meta = meta;
		c.mlen = (uint32_t)op->mlen;
		return ov_set(o, op->space, k, op->klen, &c);
	case OP_RENAME: {
		const uint8_t *k2 = b->bytes + op->key2;
		rc = ov_state(db, o, op->space, k, op->klen, &c);
		if (!rc && !c.present)
			rc = -ENOENT;
		if (rc)
			return rc;
		if (op->space == op->space2 && op->klen == op->klen2 && !memcmp(k, k2, op->klen))
			return 0; /* rename onto itself changes nothing */
		/* New name first, then the delete: the object never loses its last link. */
		rc = add_remeta(w, op->space2, k2, op->klen2, &c, c.meta, c.mlen);
		if (!rc)
			rc = add_delete(w, op->space, k, op->klen);
		if (!rc)
			rc = ov_set(o, op->space2, k2, op->klen2, &c);
		return rc ? rc : ov_clear(o, op->space, k, op->klen);
	}
	}
	return -EINVAL;
}

static int plan_batch(struct bc_db *db, struct bc_batch *b, struct wb *w, struct overlay *o)
{
	int rc = 0;
	for (size_t i = 0; i < b->n && !rc; i++)
		rc = plan_op(db, b, &b->ops[i], w, o);
	return rc;
}

int bc_batch_commit(struct bc_db *db, struct bc_batch *b)
{
	int rc = check_writable(db);
	if (rc)
		return rc;
	if (!b)
		return -EINVAL;
	if (!b->n)
		return 0;
	uint64_t mark = 0;
	pthread_mutex_lock(&db->wlock);
	/* Large values first, as fresh objects nothing links yet. */
	for (size_t i = 0; i < b->n && !rc; i++) {
		struct bc_batch_op *op = &b->ops[i];
		op->object = 0;
		if (op->kind != OP_PUT || op->vlen <= BC_MAX_INLINE)
			continue;
		op->object = new_object(db);
		rc = write_fresh_chunks(db, op->object, 0, b->bytes + op->val, op->vlen);
	}
	struct wb w;
	struct overlay o = {0};
	wb_init(&w, true);
	if (!rc)
		rc = plan_batch(db, b, &w, &o);
	if (!rc)
		rc = wb_commit(db, &w, &mark);
	wb_release(&w);
	ov_release(&o);
	if (rc) {
		for (size_t i = 0; i < b->n; i++)
			if (b->ops[i].object)
				object_abandon(db, b->ops[i].object);
	}
	pthread_mutex_unlock(&db->wlock);
	atomic_fetch_add(&db->n_batch, 1);
	return rc ? rc : bc_commit_wait(db, mark);
}

/* ---- streams ---- */

#define STREAM_BUF (UINT64_C(1) << 20)

struct bc_stream {
	struct bc_db *db;
	uint8_t space;
	uint8_t *key;
	size_t klen;
	uint8_t *buf; /* STREAM_BUF bytes */
	size_t len; /* buffered */
	uint64_t written; /* bytes already out as chunks */
	uint64_t object; /* 0 until the first flush */
	int err;
};

int bc_stream_open(struct bc_db *db, unsigned space, const void *key, size_t klen,
		   struct bc_stream **out)
{
	*out = NULL;
	int rc = check_writable(db);
	if (!rc)
		rc = check_key(space, key, klen);
	if (rc)
		return rc;
	struct bc_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->db = db;
	s->space = (uint8_t)space;
	s->key = malloc(klen);
	s->buf = malloc(STREAM_BUF);
	if (!s->key || !s->buf) {
		bc_stream_abort(s);
		return -ENOMEM;
	}
	memcpy(s->key, key, klen);
	s->klen = klen;
	*out = s;
	return 0;
}

static int stream_flush(struct bc_stream *s, bool all)
{
	size_t n = all ? s->len : s->len / BC_CHUNK_SIZE * BC_CHUNK_SIZE;
	if (!n)
		return 0;
	if (!s->object)
		s->object = new_object(s->db);
	pthread_mutex_lock(&s->db->wlock);
	int rc = write_fresh_chunks(s->db, s->object, s->written / BC_CHUNK_SIZE, s->buf, n);
	pthread_mutex_unlock(&s->db->wlock);
	if (rc)
		return rc;
	memmove(s->buf, s->buf + n, s->len - n);
	s->len -= n;
	s->written += n;
	return 0;
}

int bc_stream_write(struct bc_stream *s, const void *buf, size_t len)
{
	if (!s || (!buf && len))
		return -EINVAL;
	if (s->err)
		return s->err;
	if (len > BC_MAX_VALUE - s->written - s->len)
		return s->err = -EFBIG;
	const uint8_t *p = buf;
	while (len) {
		size_t n = STREAM_BUF - s->len < len ? STREAM_BUF - s->len : len;
		memcpy(s->buf + s->len, p, n);
		s->len += n;
		p += n;
		len -= n;
		if (s->len == STREAM_BUF) {
			int rc = stream_flush(s, false);
			if (rc)
				return s->err = rc;
		}
	}
	return 0;
}

int bc_stream_commit(struct bc_stream *s, const void *meta, size_t mlen, uint64_t expire_s)
{
	if (!s)
		return -EINVAL;
	struct bc_db *db = s->db;
	int rc = s->err;
	if (!rc && ((!meta && mlen) || mlen > BC_MAX_META))
		rc = mlen > BC_MAX_META ? -EFBIG : -EINVAL;
	uint64_t mark = 0;
	if (!rc && !s->object && s->len <= BC_MAX_INLINE) {
		pthread_mutex_lock(&db->wlock);
		rc = put_locked(db, s->space, s->key, s->klen, s->buf, s->len, meta, mlen, expire_s,
				&mark);
		pthread_mutex_unlock(&db->wlock);
	} else if (!rc) {
		rc = stream_flush(s, true);
		if (!rc) {
			struct wb w;
			pthread_mutex_lock(&db->wlock);
			wb_init(&w, false);
			rc = add_link(&w, s->space, s->key, s->klen, meta, mlen, expire_s,
				      s->object, s->written);
			if (!rc)
				rc = wb_commit(db, &w, &mark);
			wb_release(&w);
			pthread_mutex_unlock(&db->wlock);
		}
		if (!rc)
			s->object = 0; /* linked: abort must not drop it */
	}
	if (!rc) {
		atomic_fetch_add(&db->n_put, 1);
		rc = bc_commit_wait(db, mark);
	}
	bc_stream_abort(s);
	return rc;
}

void bc_stream_abort(struct bc_stream *s)
{
	if (!s)
		return;
	if (s->object) {
		pthread_mutex_lock(&s->db->wlock);
		object_abandon(s->db, s->object);
		pthread_mutex_unlock(&s->db->wlock);
	}
	free(s->key);
	free(s->buf);
	free(s);
}
