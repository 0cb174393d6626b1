// SPDX-License-Identifier: MIT
/*
 * Merge (compaction): select immutable files by the basho-style triggers, group them into
 * runs that are contiguous in id order, and rewrite each run's live records into new files
 * whose ids follow the run's last id, switching the keydir to the copies with
 * compare-and-swap while readers and writers go on. Outputs are written as .tmp files,
 * synced, given hints and renamed into place before the run's files are unlinked, so a
 * crash at any point leaves a store that opens with every live key. The protocol and what
 * a crash leaves at each step: docs/DESIGN.md "Merge", docs/FORMAT.md "Merge protocol".
 */
#include "db.h"
#include "grow.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "record.h"
#include "scan.h"

#define OUT_BUF (UINT64_C(1) << 20)
#define PUBLISH_STEP 2 /* moves published per hold of kd_lock (see CHECK_STEP) */

struct mfile {
	uint32_t slot;
	uint64_t id, size, live;
	bool damaged; /* bc_file.damaged */
};

/* A copied record waiting for its output bytes to reach the file before the keydir moves. */
struct moved {
	uint8_t type;
	uint32_t from_slot, from_off, size;
	uint32_t to_off;
	uint64_t object;
	uint32_t index;
	size_t key; /* offset of the key in the output buffer's key store */
	uint16_t klen;
	uint8_t space;
	bc_effect hint;
};

struct out {
	struct bc_db *db;
	struct bc_file *f; /* current output file (tmp name) */
	uint32_t slot;
	struct bc_hint_writer *hint;
	uint64_t next_id, limit_id; /* ids still free: [next_id, limit_id) */
	uint8_t *buf;
	size_t len;
	struct moved *mv;
	size_t nmv, capmv;
	uint8_t *keys;
	size_t klen, kcap;
	struct bc_file **done; /* finished outputs waiting to be installed */
	struct bc_hint_writer **hints; /* their hint writers (NULL: none) */
	size_t ndone;
	uint64_t written;
	bool stuck; /* a record could not be moved (out of memory, or a chunk that points at
		       damaged bytes): keep the run's files */
};

static int out_flush(struct out *o);

/* Move the current output to the finished list (its hint is finished at install, after
 * the data is synced and renamed). */
static int out_retire(struct out *o)
{
	struct bc_file **v = realloc(o->done, (o->ndone + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	o->done = v;
	struct bc_hint_writer **h = realloc(o->hints, (o->ndone + 1) * sizeof(*h));
	if (!h)
		return -ENOMEM;
	o->hints = h;
	o->done[o->ndone] = o->f;
	o->hints[o->ndone] = o->hint;
	o->ndone++;
	o->f = NULL;
	o->hint = NULL;
	return 0;
}

static int out_finish_file(struct out *o)
{
	if (!o->f)
		return 0;
	int rc = out_flush(o);
	if (rc)
		return rc;
	return out_retire(o);
}

static int out_open(struct out *o)
{
	struct bc_db *db = o->db;
	if (o->next_id >= o->limit_id) {
		bc_log(db, BC_LOG_WARN, "%s: no free file id after %016" PRIx64 " for merge output",
		       db->dir, o->next_id - 1);
		return -EOVERFLOW;
	}
	struct bc_file *f;
	int rc = bc_file_create(db, o->next_id, true, &f);
	if (rc)
		return rc;
	char hname[BC_FILE_NAME_MAX];
	bc_file_name(hname, o->next_id, BC_HINT_SUFFIX);
	o->next_id++;
	bc_kd_lock_bg(db, true);
	int slot = bc_files_add(db, f);
	bc_kd_unlock(db);
	if (slot < 0) {
		bc_file_free(db, f);
		return slot;
	}
	o->f = f;
	o->slot = (uint32_t)slot;
	/* Hints live in a list parallel to done[]; keep one writer per output. */
	struct bc_hint_writer *h = NULL;
	if (bc_hint_writer_open(db->io, db->dirfd, hname, f->id, bc_next_object(db), &h))
		h = NULL;
	o->hint = h;
	return 0;
}

/* Switch the keydir to the copies just written (their bytes are in the file now). */
static void out_publish(struct out *o)
{
	struct bc_db *db = o->db;
	for (size_t i = 0; i < o->nmv; i++) {
		/* A few records per hold: a foreground get or put never waits for a whole
		 * buffer's worth of moves. */
		if (i % PUBLISH_STEP == 0) {
			if (i)
				bc_kd_unlock(db);
			bc_kd_lock_bg(db, true);
		} else {
			bc_kd_yield_bg(db, true);
		}
		struct moved *m = &o->mv[i];
		struct bc_loc from = {m->from_slot, m->from_off, m->size};
		struct bc_loc to = {o->slot, m->to_off, m->size};
		bool moved = false;
		if (m->type == BC_REC_CHUNK) {
			struct bc_object *ob = bc_objtab_find(db->objs, m->object);
			struct bc_chunk *c = ob ? bc_object_chunk(ob, m->index) : NULL;
			if (c && bc_loc_eq(&c->loc, &from)) {
				c->loc = to;
				moved = true;
			}
		} else if (m->type == BC_REC_PUT || m->type == BC_REC_LINK) {
			const uint8_t *k = o->keys + m->key;
			if (bc_keydir_move(db->kd, m->space, k, m->klen, &from, &to, &moved))
				o->stuck = true; /* the run's file must stay */
		}
		if (moved) {
			struct bc_file *src = db->files[m->from_slot];
			if (src)
				src->live = src->live >= m->size ? src->live - m->size : 0;
			o->f->live += m->size;
		}
	}
	if (o->nmv)
		bc_kd_unlock(db);
	for (size_t i = 0; i < o->nmv && o->hint; i++) {
		bc_effect e = o->mv[i].hint;
		e.key = o->keys + o->mv[i].key;
		if (bc_hint_writer_add(o->hint, &e)) {
			bc_hint_writer_abort(o->hint);
			o->hint = NULL;
		}
	}
	o->nmv = 0;
	o->klen = 0;
}

static int out_flush(struct out *o)
{
	if (!o->len)
		return 0;
	struct bc_db *db = o->db;
	int rc = bc_io_pwrite_full(db->io, o->f->fd, o->buf, o->len, o->f->size);
	if (rc) {
		bc_io_ftruncate(db->io, o->f->fd, o->f->size);
		return rc;
	}
	bc_kd_lock_bg(db, true);
	o->f->size += o->len;
	bc_kd_unlock(db);
	o->written += o->len;
	o->len = 0;
	out_publish(o);
	return 0;
}

/* Copy one record into the output (clearing any batch flag). */
static int out_copy(struct out *o, const struct bc_record *rec, uint32_t from_slot,
		    uint64_t from_off)
{
	struct bc_db *db = o->db;
	uint32_t size = bc_record_size(rec->klen, rec->mlen, rec->vlen);
	if (o->f && o->f->size + o->len + size > db->opt.max_file_size &&
	    o->f->size + o->len > BC_FILE_HEADER_SIZE) {
		int rc = out_finish_file(o);
		if (rc)
			return rc;
	}
	if (!o->f) {
		int rc = out_open(o);
		if (rc)
			return rc;
	}
	if (o->len + size > OUT_BUF) {
		int rc = out_flush(o);
		if (rc)
			return rc;
	}
	struct moved *mv = bc_grow(o->mv, &o->capmv, o->nmv + 1, sizeof(*mv), 256);
	if (!mv)
		return -ENOMEM;
	o->mv = mv;
	uint8_t *k = bc_grow(o->keys, &o->kcap, o->klen + rec->klen, 1, 65536);
	if (!k)
		return -ENOMEM;
	o->keys = k;
	uint32_t to_off = (uint32_t)(o->f->size + o->len);
	bc_record_encode(o->buf + o->len, rec->type, 0, rec->space, rec->time_ns, rec->expire_s,
			 rec->key, rec->klen, rec->meta, rec->mlen, rec->value, rec->vlen);
	o->len += size;
	if (rec->klen)
		memcpy(o->keys + o->klen, rec->key, rec->klen);
	struct moved *m = &o->mv[o->nmv++];
	memset(m, 0, sizeof(*m));
	m->type = rec->type;
	m->from_slot = from_slot;
	m->from_off = (uint32_t)from_off;
	m->size = size;
	m->to_off = to_off;
	m->object = rec->object;
	m->index = rec->index;
	m->key = o->klen;
	m->klen = (uint16_t)rec->klen;
	m->space = rec->space;
	bc_effect *e = &m->hint;
	e->offset = to_off;
	e->type = rec->type;
	e->space = rec->space;
	e->klen = (uint16_t)rec->klen;
	e->mlen = (uint16_t)rec->mlen;
	e->vlen = rec->vlen;
	e->expire_s = rec->expire_s;
	e->object = rec->object;
	e->size = rec->size;
	e->index = rec->index;
	e->dlen = rec->dlen;
	o->klen += rec->klen;
	return 0;
}

/* Is the batch at off (count members in bytes after it) complete and valid? */
static int batch_complete(struct bc_db *db, struct bc_file *f, uint64_t off, uint32_t count,
			  uint64_t bytes, bool *ok)
{
	struct bc_scan s;
	uint64_t start = off + BC_REC_HEADER_SIZE + BC_BATCH_VALUE_SIZE;
	*ok = false;
	if (bytes > f->size - start)
		return 0;
	int rc = bc_scan_init(&s, db->io, f->fd, start, start + bytes);
	if (rc)
		return rc;
	uint32_t n = 0;
	for (;;) {
		struct bc_record rec;
		uint64_t o, l;
		bool end;
		rc = bc_scan_next(&s, &rec, &o, &l, &end);
		if (rc <= 0 || rc == BC_SCAN_DAMAGE || !(rec.flags & BC_RF_BATCH))
			break;
		n++;
	}
	bc_scan_release(&s);
	if (rc < 0)
		return rc;
	*ok = rc == BC_SCAN_END && n == count;
	return 0;
}

/*
 * Records of a run file waiting for their liveness check, which takes kd_lock shared for
 * CHECK_STEP records at a time: fewer lock round trips than one per record, and a hold
 * short enough (a few lookups, about a microsecond) that a foreground put waiting for it
 * spins instead of sleeping. Longer holds raised the put p99 during a merge (8 records
 * per hold: 6x the idle p99; 4: 2.4x). A foreground thread that waits anyway is let in
 * between two records (bc_kd_yield_bg); a decision made before that is no less valid,
 * since publishing moves only what still points where the merge read it. The records'
 * bytes are copied out of the scan's buffer, which the next read may replace.
 */
#define CHECK_STEP 4

struct check {
	struct bc_record rec[CHECK_STEP]; /* key, meta, value and data point into bytes */
	uint64_t off[CHECK_STEP];
	size_t n;
	uint8_t *bytes; /* CHECK_STEP * BC_MAX_RECORD */
	size_t used;
};

enum fate { DROP, COPY, KEEP, EXPIRE };

static const uint8_t *stash(struct check *c, const uint8_t *p, uint32_t len)
{
	uint8_t *to = c->bytes + c->used;
	if (len)
		memcpy(to, p, len);
	c->used += len;
	return to;
}

static void check_add(struct check *c, const struct bc_record *rec, uint64_t off)
{
	struct bc_record *r = &c->rec[c->n];
	*r = *rec;
	c->off[c->n++] = off;
	r->key = stash(c, rec->key, rec->klen);
	r->meta = stash(c, rec->meta, rec->mlen);
	r->value = stash(c, rec->value, rec->vlen);
	if (rec->data)
		r->data = r->value + (rec->data - rec->value);
}

/* What becomes of one record of a run file (kd_lock held). */
static enum fate decide(struct bc_db *db, const struct bc_record *rec, struct bc_loc here,
			bool older_outside, uint64_t now_s)
{
	struct bc_kval v;
	switch (rec->type) {
	case BC_REC_PUT:
	case BC_REC_LINK:
		if (!bc_keydir_get(db->kd, rec->space, rec->key, rec->klen, &v) ||
		    !bc_loc_eq(&v.loc, &here))
			return DROP;
		return bc_expired(v.expire_s, now_s) ? EXPIRE : COPY;
	case BC_REC_CHUNK: {
		struct bc_object *ob = bc_objtab_find(db->objs, rec->object);
		struct bc_chunk *c = ob ? bc_object_chunk(ob, rec->index) : NULL;
		return c && bc_loc_eq(&c->loc, &here) ? COPY : DROP;
	}
	case BC_REC_DELETE:
		return older_outside && !bc_keydir_get(db->kd, rec->space, rec->key, rec->klen, &v)
			? KEEP
			: DROP;
	case BC_REC_TRUNC:
		return older_outside && bc_objtab_find(db->objs, rec->object) ? KEEP : DROP;
	default:
		return DROP;
	}
}

/* Drop an expired key now; leave a delete only where older versions may hide. */
static int expire(struct out *o, const struct bc_record *rec, struct bc_loc here,
		  bool older_outside)
{
	struct bc_db *db = o->db;
	struct bc_dropped dropped = {0};
	bc_kd_lock_bg(db, true);
	struct bc_kval cur;
	if (bc_keydir_get(db->kd, rec->space, rec->key, rec->klen, &cur) &&
	    bc_loc_eq(&cur.loc, &here)) {
		bc_effect e = {.type = BC_REC_DELETE,
			       .space = rec->space,
			       .klen = (uint16_t)rec->klen,
			       .key = rec->key};
		bc_apply(db, here.file, &e, &dropped);
	}
	bc_objects_release(db, &dropped);
	bc_kd_unlock(db);
	if (!older_outside)
		return 0;
	struct bc_record del = *rec;
	del.type = BC_REC_DELETE;
	del.mlen = 0;
	del.vlen = 0;
	del.expire_s = 0;
	return out_copy(o, &del, UINT32_MAX, 0);
}

/* Decide the waiting records under one hold of kd_lock, then copy the ones that stay. */
static int check_run(struct out *o, struct check *c, uint32_t slot, bool older_outside,
		     uint64_t now_s)
{
	struct bc_db *db = o->db;
	enum fate fate[CHECK_STEP];
	struct bc_loc here[CHECK_STEP];
	int rc = 0;

	if (!c->n)
		return 0;
	for (size_t i = 0; i < c->n; i++) {
		const struct bc_record *r = &c->rec[i];
		here[i] = (struct bc_loc){slot, (uint32_t)c->off[i],
					  bc_record_size(r->klen, r->mlen, r->vlen)};
	}
	bc_kd_lock_bg(db, false);
	for (size_t i = 0; i < c->n; i++) {
		if (i)
			bc_kd_yield_bg(db, false);
		fate[i] = decide(db, &c->rec[i], here[i], older_outside, now_s);
	}
	bc_kd_unlock(db);
	for (size_t i = 0; i < c->n && !rc; i++) {
		if (fate[i] == EXPIRE)
			rc = expire(o, &c->rec[i], here[i], older_outside);
		else if (fate[i] == COPY)
			rc = out_copy(o, &c->rec[i], slot, c->off[i]);
		else if (fate[i] == KEEP)
			rc = out_copy(o, &c->rec[i], UINT32_MAX, c->off[i]);
	}
	c->n = 0;
	c->used = 0;
	return rc;
}

static int merge_file(struct out *o, struct check *c, const struct mfile *mf, bool older_outside)
{
	struct bc_db *db = o->db;
	bc_kd_lock_bg(db, false);
	struct bc_file *f = bc_file_get(db, mf->slot);
	bc_kd_unlock(db);
	if (!f)
		return -ESTALE;
	struct bc_scan s;
	int rc = bc_scan_init(&s, db->io, f->fd, BC_FILE_HEADER_SIZE, f->size);
	if (rc)
		goto out;
	uint64_t now_s = bc_now_ns() / 1000000000u;
	bool in_batch = false, batch_ok = false;
	for (;;) {
		struct bc_record rec;
		uint64_t off, len;
		bool at_end;
		rc = bc_scan_next(&s, &rec, &off, &len, &at_end);
		if (rc <= 0)
			break;
		if (rc == BC_SCAN_DAMAGE) {
			in_batch = false;
			/* A chunk kept pointing at damaged bytes (recover.c) cannot be copied:
			 * keep this file rather than turn the chunk into zeros. */
			uint64_t obj;
			uint32_t idx, size;
			if (bc_scan_damaged_chunk(&s, &obj, &idx, &size)) {
				struct bc_loc here = {mf->slot, (uint32_t)off, size};
				bc_kd_lock_bg(db, false);
				struct bc_object *ob = bc_objtab_find(db->objs, obj);
				struct bc_chunk *ch = ob ? bc_object_chunk(ob, idx) : NULL;
				if (ch && bc_loc_eq(&ch->loc, &here))
					o->stuck = true;
				bc_kd_unlock(db);
			}
			continue;
		}
		atomic_fetch_add(&db->merge_done, len);
		if (rec.type == BC_REC_BATCH) {
			in_batch = true;
			rc = batch_complete(db, f, off, rec.count, rec.size, &batch_ok);
			if (rc)
				break;
			continue;
		}
		if (rec.flags & BC_RF_BATCH) {
			if (!in_batch || !batch_ok)
				continue; /* never applied at replay: never copied */
		} else {
			in_batch = false;
		}
		if (c->n == CHECK_STEP) {
			rc = check_run(o, c, mf->slot, older_outside, now_s);
			if (rc)
				break;
		}
		check_add(c, &rec, off);
	}
	if (rc >= 0)
		rc = check_run(o, c, mf->slot, older_outside, now_s);
	c->n = 0;
	c->used = 0;
	bc_scan_release(&s);
out:
	bc_file_put(db, f);
	return rc;
}

/* Sync, rename and hint every finished output; then the directory. */
static int install_outputs(struct out *o)
{
	struct bc_db *db = o->db;
	int rc = 0;
	for (size_t i = 0; i < o->ndone && !rc; i++) {
		struct bc_file *f = o->done[i];
		char name[BC_FILE_NAME_MAX], tmp[BC_FILE_NAME_MAX + 8];
		bc_file_name(name, f->id, BC_DATA_SUFFIX);
		snprintf(tmp, sizeof(tmp), "%s%s", name, BC_TMP_SUFFIX);
		rc = bc_io_fdatasync(db->io, f->fd);
		if (!rc)
			rc = bc_io_renameat(db->io, db->dirfd, tmp, name);
	}
	if (!rc)
		rc = bc_io_fsync(db->io, db->dirfd);
	return rc;
}

/* Finish (installed) or abort the outputs' hint writers. */
static void hint_outputs(struct out *o, bool installed)
{
	for (size_t i = 0; i < o->ndone; i++) {
		if (!o->hints[i])
			continue;
		if (!installed)
			bc_hint_writer_abort(o->hints[i]);
		else if (!bc_hint_writer_finish(o->hints[i], o->done[i]->size))
			o->done[i]->has_hint = true;
		o->hints[i] = NULL;
	}
}

/* Remove outputs of a failed merge: they hold copies only, the run is intact. */
static void discard_outputs(struct bc_db *db, struct bc_file **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char name[BC_FILE_NAME_MAX], tmp[BC_FILE_NAME_MAX + 8];
		bc_file_name(name, v[i]->id, BC_DATA_SUFFIX);
		snprintf(tmp, sizeof(tmp), "%s%s", name, BC_TMP_SUFFIX);
		/* The keydir may point at copies already: keep the file (renamed into place)
		 * rather than lose them; a later merge reclaims the duplicates. */
		if (bc_io_fdatasync(db->io, v[i]->fd) ||
		    bc_io_renameat(db->io, db->dirfd, tmp, name))
			bc_log(db, BC_LOG_ERROR, "%s/%s: could not keep a partial merge output",
			       db->dir, tmp);
	}
}

static int merge_run(struct bc_db *db, struct mfile *run, size_t n, bool older_outside,
		     uint64_t limit_id)
{
	uint64_t live = 0, total = 0;
	for (size_t i = 0; i < n; i++) {
		live += run[i].live;
		total += run[i].size;
	}
	struct statvfs sv;
	if (statvfs(db->dir, &sv) == 0 &&
	    (uint64_t)sv.f_bavail * sv.f_frsize < live + live / 8 + (UINT64_C(1) << 20)) {
		bc_log(db, BC_LOG_ERROR,
		       "%s: merge needs about %" PRIu64 " free bytes, the disk has %" PRIu64,
		       db->dir, live + live / 8, (uint64_t)sv.f_bavail * sv.f_frsize);
		return -ENOSPC;
	}
	struct out o = {.db = db, .next_id = run[n - 1].id + 1, .limit_id = limit_id};
	struct check *c = calloc(1, sizeof(*c));
	o.buf = malloc(OUT_BUF + BC_MAX_RECORD);
	if (c)
		c->bytes = malloc(CHECK_STEP * BC_MAX_RECORD);
	if (!o.buf || !c || !c->bytes) {
		free(o.buf);
		if (c)
			free(c->bytes);
		free(c);
		return -ENOMEM;
	}
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++)
		rc = merge_file(&o, c, &run[i], older_outside);
	free(c->bytes);
	free(c);
	if (!rc)
		rc = out_finish_file(&o);
	if (rc) {
		if (o.f && (out_flush(&o) || out_retire(&o))) {
			bc_hint_writer_abort(o.hint);
			o.hint = NULL;
		}
		hint_outputs(&o, false);
		discard_outputs(db, o.done, o.ndone);
		goto out;
	}
	rc = install_outputs(&o);
	hint_outputs(&o, rc == 0);
	if (rc) {
		bc_log(db, BC_LOG_ERROR, "%s: merge install: %s", db->dir, bc_strerror(rc));
		goto out;
	}
	if (o.stuck) {
		bc_log(db, BC_LOG_WARN,
		       "%s: merge could not move every record (out of memory, or "
		       "a damaged chunk still in use); the old files stay",
		       db->dir);
		goto out;
	}
	/* Every live record of the run is in the outputs: retire and unlink the run. */
	bc_kd_lock_bg(db, true);
	for (size_t i = 0; i < n; i++)
		if (db->files[run[i].slot] && db->files[run[i].slot]->id == run[i].id)
			bc_files_retire(db, run[i].slot);
	bc_kd_unlock(db);
	for (size_t i = 0; i < n; i++) {
		char name[BC_FILE_NAME_MAX];
		bc_file_name(name, run[i].id, BC_HINT_SUFFIX);
		bc_io_unlinkat(db->io, db->dirfd, name);
		bc_file_name(name, run[i].id, BC_DATA_SUFFIX);
		bc_io_unlinkat(db->io, db->dirfd, name);
	}
	bc_io_fsync(db->io, db->dirfd);
	atomic_fetch_add(&db->merges, 1);
	atomic_fetch_add(&db->merge_reclaimed, total > o.written ? total - o.written : 0);
	bc_log(db, BC_LOG_INFO,
	       "%s: merged %zu files (%" PRIu64 " bytes) into %zu (%" PRIu64 " bytes)", db->dir, n,
	       total, o.ndone, o.written);
out:
	free(o.buf);
	free(o.mv);
	free(o.keys);
	free(o.done);
	free(o.hints);
	return rc;
}

static int cmp_mfile(const void *a, const void *b)
{
	const struct mfile *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static bool triggered(struct bc_db *db, const struct mfile *f, bool full, size_t nsmall)
{
	uint64_t payload = f->size > BC_FILE_HEADER_SIZE ? f->size - BC_FILE_HEADER_SIZE : 0;
	uint64_t dead = payload > f->live ? payload - f->live : 0;
	if (full)
		return dead > 0;
	if (payload && dead * 100 >= payload * db->opt.merge_frag_percent)
		return true;
	if (dead >= db->opt.merge_dead_bytes)
		return true;
	return nsmall >= 2 && f->size < db->opt.merge_small_file;
}

int bc_merge_run(struct bc_db *db, bool full)
{
	if (db->opt.read_only)
		return -EROFS;
	pthread_mutex_lock(&db->merge_mu);
	if (db->merge_running) {
		pthread_mutex_unlock(&db->merge_mu);
		return -EBUSY;
	}
	db->merge_running = true;
	pthread_mutex_unlock(&db->merge_mu);

	/*
	 * Snapshot the file table: every file but the active one and one a rotation left
	 * that is still being synced (its hint must not land after a merge removed it), in
	 * id order. Such a file is waited for first, outside wlock, so there rarely is one.
	 */
	int rc = bc_retire_wait(db);
	pthread_mutex_lock(&db->wlock);
	pthread_mutex_lock(&db->retire_mu);
	const struct bc_file *retiring = db->retire_f;
	pthread_mutex_unlock(&db->retire_mu);
	bc_kd_lock_bg(db, false);
	size_t n = 0;
	struct mfile *all = calloc(db->nslots + 1, sizeof(*all));
	uint64_t active_id = db->files[db->active]->id;
	for (uint32_t i = 0; all && i < db->nslots; i++) {
		struct bc_file *f = db->files[i];
		if (!f || i == db->active || f == retiring)
			continue;
		all[n++] = (struct mfile){i, f->id, f->size, f->live, f->damaged};
	}
	bc_kd_unlock(db);
	pthread_mutex_unlock(&db->wlock);
	if (!rc && !all)
		rc = -ENOMEM;
	if (rc)
		goto out;
	qsort(all, n, sizeof(*all), cmp_mfile);
	size_t nsmall = 0;
	for (size_t i = 0; i < n; i++)
		if (all[i].size < db->opt.merge_small_file)
			nsmall++;
	uint64_t total = 0;
	bool *pick = calloc(n + 1, sizeof(*pick));
	if (!pick) {
		rc = -ENOMEM;
		goto out;
	}
	/* Damage that may have held chunks is the evidence that the holes of older objects
	 * are lost, and the header of the file after it says which objects are older
	 * (recover.c, suspect_objects): neither is ever merged away. */
	for (size_t i = 0; i < n; i++)
		if (all[i].damaged || (i > 0 && all[i - 1].damaged))
			pick[i] = false;
		else
			pick[i] = triggered(db, &all[i], full, nsmall);
	/* An output needs a free id after its run: absorb a following file that sits on
	 * the very next id (an earlier merge's output), or, when that file must stay, leave
	 * the run's last file out too. */
	for (size_t i = 0; i + 1 < n; i++)
		if (pick[i] && !pick[i + 1] && all[i + 1].id == all[i].id + 1 &&
		    !all[i + 1].damaged && !all[i].damaged)
			pick[i + 1] = true;
	for (size_t i = n; i-- > 1;)
		if (pick[i - 1] && !pick[i] && all[i].id == all[i - 1].id + 1)
			pick[i - 1] = false;
	for (size_t i = 0; i < n; i++)
		if (pick[i])
			total += all[i].size;
	atomic_store(&db->merge_total, total);
	atomic_store(&db->merge_done, 0);
	for (size_t i = 0; i < n && !rc;) {
		if (!pick[i]) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < n && pick[j])
			j++;
		uint64_t limit = j < n ? all[j].id : active_id;
		rc = merge_run(db, all + i, j - i, i > 0, limit);
		i = j;
	}
	free(pick);
out:
	free(all);
	pthread_mutex_lock(&db->merge_mu);
	db->merge_running = false;
	pthread_cond_broadcast(&db->merge_cv);
	pthread_mutex_unlock(&db->merge_mu);
	return rc;
}

int bc_merge(struct bc_db *db, bool full)
{
	if (!db)
		return -EINVAL;
	return bc_merge_run(db, full);
}
