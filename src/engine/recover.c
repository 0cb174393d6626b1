// SPDX-License-Identifier: MIT
/*
 * Open-time replay: list the directory, load every data file in id order (from its hint
 * when the hint verifies, then by scanning whatever the hint does not cover), truncate a
 * torn tail of the newest file, skip and count damage elsewhere, apply batches only when
 * complete, drop unlinked objects, and pick or create the active file. The rules are
 * docs/FORMAT.md "Recovery"; the mechanisms docs/DESIGN.md "Recovery (open)".
 */
#include "db.h"
#include "grow.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "scan.h"

static bool parse_id(const char *name, const char *suffix, uint64_t *id)
{
	size_t n = strlen(name), sl = strlen(suffix);
	if (n != 16 + sl || strcmp(name + 16, suffix))
		return false;
	uint64_t v = 0;
	for (int i = 0; i < 16; i++) {
		char c = name[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*id = v;
	return true;
}

static int on_name(void *arg, const char *name)
{
	struct bc_found *f = arg;
	uint64_t id;
	size_t n = strlen(name);
	if (n > 4 && !strcmp(name + n - 4, BC_TMP_SUFFIX)) {
		char **v = bc_grow(f->tmps, &f->tmpcap, f->ntmp + 1, sizeof(*v), 8);
		if (!v)
			return -ENOMEM;
		f->tmps = v;
		f->tmps[f->ntmp] = strdup(name);
		if (!f->tmps[f->ntmp])
			return -ENOMEM;
		f->ntmp++;
		return 0;
	}
	if (!parse_id(name, BC_DATA_SUFFIX, &id))
		return 0;
	uint64_t *v = bc_grow(f->ids, &f->cap, f->n + 1, sizeof(*v), 16);
	if (!v)
		return -ENOMEM;
	f->ids = v;
	f->ids[f->n++] = id;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int bc_dir_list(const struct bc_io *io, int dirfd, struct bc_found *out)
{
	memset(out, 0, sizeof(*out));
	int rc = bc_io_listdir(io, dirfd, on_name, out);
	if (rc) {
		bc_found_release(out);
		return rc;
	}
	if (out->n)
		qsort(out->ids, out->n, sizeof(*out->ids), cmp_u64);
	return 0;
}

void bc_found_release(struct bc_found *f)
{
	for (size_t i = 0; i < f->ntmp; i++)
		free(f->tmps[i]);
	free(f->tmps);
	free(f->ids);
	memset(f, 0, sizeof(*f));
}

/* A batch being collected during a scan: its members wait until all have arrived. */
struct pending {
	uint64_t start; /* offset of the BATCH record */
	uint32_t want; /* members announced */
	bc_effect *v;
	size_t n, cap;
	uint8_t *keys; /* copies of member keys */
	size_t klen, kcap;
};

/*
 * What replay carries from file to file: hint entries waiting to be applied in bulk, the
 * stage of the hint being read, and the continuation of the active file's hint while a
 * thread prepares it (file: the data file it belongs to).
 */
struct recovery {
	struct bc_bulk bulk, stage;
	struct bc_hint_resume *resume;
	uint64_t resume_file;
};

struct replay {
	struct bc_db *db;
	uint32_t slot;
	const char *name;
	int err;
};

/*
 * Give an applied effect to the active file's hint writer, which exists only while the
 * active file (loaded last) is replayed; a continuation being prepared must have been
 * joined first (active_hint_join).
 */
static void feed_hint(struct replay *r, const bc_effect *e)
{
	if (r->db->active_hint && e->type != BC_REC_BATCH) {
		if (bc_hint_writer_add(r->db->active_hint, e)) {
			bc_hint_writer_abort(r->db->active_hint);
			r->db->active_hint = NULL;
		}
	}
}

static int apply_one(struct replay *r, const bc_effect *e)
{
	int rc = bc_apply(r->db, r->slot, e, NULL);
	if (rc)
		return rc;
	feed_hint(r, e);
	return 0;
}

/*
 * Hint entries go through bc_bulk: their key sides wait, and apply sorted when a scan is
 * about to apply records (or replay ends), so a store whose files all have hints builds its
 * keydir in one sorted pass. A hint is read once (bc_hint_stream), its entries staged in
 * a second bulk that is committed only if the hint verifies.
 */
struct hint_replay {
	struct replay *r;
	struct bc_bulk *stage;
};

static int on_stage(void *ctx, const struct bc_hint_entry *e)
{
	struct hint_replay *h = ctx;

	return bc_bulk_stage(h->stage, h->r->slot, e);
}

static void resume_failed(struct bc_db *db, uint64_t id, int rc)
{
	char name[BC_FILE_NAME_MAX], hname[BC_FILE_NAME_MAX];

	bc_file_name(name, id, BC_DATA_SUFFIX);
	bc_file_name(hname, id, BC_HINT_SUFFIX);
	bc_log(db, BC_LOG_WARN, "%s/%s: hint not continued: %s (open will scan %s past it)",
	       db->dir, hname, bc_strerror(rc), name);
}

/*
 * The active file's hint writer continues the file's hint when that verifies (a copy of
 * its bytes, not its entries decoded and written again), else starts afresh; the scan
 * then feeds it every record past what the hint covered. The copy is made in a thread
 * while the hint is read and the keydir built (a hint is a good part of its file's size
 * when values are small): started before the hint is verified, it is dropped if the hint
 * fails; active_hint_join waits for it.
 */
static void active_hint_copy(struct recovery *rv, struct bc_db *db, uint64_t id, const char *hname)
{
	int rc = bc_hint_resume_start(db->io, db->dirfd, hname, id, &rv->resume);

	if (rc)
		resume_failed(db, id, rc);
	rv->resume_file = id;
}

/* Wait for the active file's hint continuation, if one is being prepared. */
static void active_hint_join(struct recovery *rv, struct bc_db *db)
{
	if (!rv->resume)
		return;
	int rc = bc_hint_resume_join(rv->resume, &db->active_hint);
	rv->resume = NULL;
	if (rc)
		resume_failed(db, rv->resume_file, rc);
}

/* The hint being copied did not verify (or is not there): wait for the copy and drop it. */
static void active_hint_drop(struct recovery *rv)
{
	struct bc_hint_writer *w;

	if (!rv->resume)
		return;
	bc_hint_resume_join(rv->resume, &w);
	rv->resume = NULL;
	bc_hint_writer_abort(w);
}

static void effect_from(bc_effect *e, const struct bc_record *rec, uint64_t off)
{
	memset(e, 0, sizeof(*e));
	e->offset = (uint32_t)off;
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
	e->key = rec->key;
}

static void pending_drop(struct pending *p)
{
	p->want = 0;
	p->n = 0;
	p->klen = 0;
}

static int pending_add(struct pending *p, const bc_effect *e)
{
	bc_effect *v = bc_grow(p->v, &p->cap, p->n + 1, sizeof(*v), 16);
	if (!v)
		return -ENOMEM;
	p->v = v;
	uint8_t *k = bc_grow(p->keys, &p->kcap, p->klen + e->klen, 1, 4096);
	if (!k)
		return -ENOMEM;
	p->keys = k;
	if (e->klen)
		memcpy(p->keys + p->klen, e->key, e->klen);
	p->v[p->n] = *e;
	p->v[p->n].key = (const uint8_t *)(uintptr_t)p->klen; /* fixed up when applied */
	p->klen += e->klen;
	p->n++;
	return 0;
}

static int pending_apply(struct replay *r, struct pending *p)
{
	for (size_t i = 0; i < p->n; i++) {
		bc_effect e = p->v[i];
		e.key = p->keys + (uintptr_t)p->v[i].key;
		int rc = apply_one(r, &e);
		if (rc)
			return rc;
	}
	pending_drop(p);
	return 0;
}

static void note_damage(struct bc_db *db, const char *name, uint64_t off, uint64_t len,
			const char *what)
{
	db->damaged_records++;
	db->damaged_bytes += len;
	bc_log(db, BC_LOG_WARN, "%s/%s: offset %" PRIu64 ": %s (%" PRIu64 " bytes skipped)",
	       db->dir, name, off, what, len);
}

/*
 * A chunk whose record is damaged must not turn into a hole that reads as zeros: when the
 * damage is one chunk record with a plausible header, point the chunk at those bytes, so a
 * read of it fails its CRC (-EBADMSG) until the value is rewritten, and merge keeps the
 * file (merge.c). A later valid record for the same chunk replaces it as usual.
 * Returns 1 when the span was such a chunk, 0 when it was not, or a negative error.
 */
static int keep_damaged_chunk(struct replay *r, const struct bc_scan *s, uint64_t off)
{
	bc_effect e = {0};
	uint32_t size;
	if (!bc_scan_damaged_chunk(s, &e.object, &e.index, &size))
		return 0;
	e.type = BC_REC_CHUNK;
	e.offset = (uint32_t)off;
	e.vlen = size - BC_REC_HEADER_SIZE;
	e.dlen = e.vlen - BC_CHUNK_PREFIX;
	/* Not fed to the active hint: a hint lists only valid records. */
	int rc = bc_apply(r->db, r->slot, &e, NULL);
	return rc ? rc : 1;
}

/*
 * Was the damaged span one record with a plausible header of a type that holds no chunk?
 * (A chunk header cannot pass as another type with one byte changed: klen or vlen rules.)
 */
static bool damaged_non_chunk(const struct bc_scan *s)
{
	return s->dmg_plausible && s->dmg[BC_RH_TYPE] != BC_REC_CHUNK;
}

/*
 * The first id no object in file id can have: the next_object of the first later data
 * file with a valid header (every file made after id was complete, and a merge output only
 * copies records of files before it), or UINT64_MAX when there is none: then the counter
 * at the end of replay (bc_apply_sweep).
 */
static uint64_t objects_bound(struct bc_db *db, uint64_t id)
{
	struct bc_found found;
	uint64_t bound = UINT64_MAX;
	if (bc_dir_list(db->io, db->dirfd, &found))
		return bound;
	for (size_t i = 0; i < found.n && bound == UINT64_MAX; i++) {
		if (found.ids[i] <= id)
			continue;
		char name[BC_FILE_NAME_MAX];
		uint8_t hdr[BC_FILE_HEADER_SIZE];
		struct bc_file_header h;
		bc_file_name(name, found.ids[i], BC_DATA_SUFFIX);
		int fd = bc_io_openat(db->io, db->dirfd, name, O_RDONLY, 0);
		if (fd < 0)
			continue;
		if (!bc_io_pread_full(db->io, fd, hdr, sizeof(hdr), 0) &&
		    !bc_file_header_decode(hdr, &h) && h.kind == BC_KIND_DATA &&
		    h.id == found.ids[i])
			bound = h.next_object;
		bc_io_close(db->io, fd);
	}
	bc_found_release(&found);
	return bound;
}

/*
 * Damaged bytes that are not one identifiable record may have held a chunk of any object
 * that existed while the file was written: a chunk of a fresh object (its LINK comes later)
 * or an in-place overwrite of a linked one (no LINK follows it). Such an object would show
 * the lost chunk as a hole, which reads as zeros; so every object older than the file's
 * end (objects_bound) becomes suspect: its holes read as -EBADMSG (read.c) and bc_check
 * names its key. Merge keeps this file and the one after it (merge.c), so the evidence and
 * the bound survive. A genuinely sparse object of that age reports its holes too.
 */
static void suspect_objects(struct replay *r, struct bc_file *f)
{
	struct bc_db *db = r->db;
	if (f->damaged)
		return; /* this file's bound is in already */
	f->damaged = true;
	uint64_t bound = objects_bound(db, f->id);
	if (bound > db->suspect_below)
		db->suspect_below = bound;
	if (bound == UINT64_MAX)
		bc_log(db, BC_LOG_WARN,
		       "%s/%s: damaged bytes may have held chunks: holes of every object read as "
		       "errors",
		       db->dir, r->name);
	else
		bc_log(db, BC_LOG_WARN,
		       "%s/%s: damaged bytes may have held chunks: holes of objects below %" PRIu64
		       " read as errors",
		       db->dir, r->name, bound);
}

/*
 * Damage before the end of the newest file: stop appending to it and drop its hint, so
 * every open scans the damage again (a hint cannot express it: a kept damaged chunk would
 * become a hole) and a new active file records where the file ended.
 */
static void retire_active(struct replay *r)
{
	struct bc_db *db = r->db;
	if (db->active != r->slot)
		return;
	if (db->active_hint) {
		bc_hint_writer_abort(db->active_hint);
		db->active_hint = NULL;
	}
	db->active = UINT32_MAX;
}

/*
 * Scan [start, size) of a file. *valid_end: where its records end, the start of a torn
 * tail or of a zero-filled tail (so the caller can cut the file there), else size.
 * *zeros: where a zero-filled tail begins (valid_end <= *zeros <= size).
 */
static int scan_file(struct replay *r, struct bc_file *f, uint64_t start, bool newest,
		     uint64_t *valid_end, uint64_t *zeros)
{
	struct bc_db *db = r->db;
	struct bc_scan s;
	struct pending p = {0};
	int rc = bc_scan_init(&s, db->io, f->fd, start, f->size);
	if (rc)
		return rc;
	*valid_end = f->size;
	for (;;) {
		struct bc_record rec;
		uint64_t off, len;
		bool at_end;
		rc = bc_scan_next(&s, &rec, &off, &len, &at_end);
		if (rc < 0)
			goto out;
		if (rc == BC_SCAN_END)
			break;
		if (rc == BC_SCAN_DAMAGE) {
			if (p.want) {
				if (at_end && newest)
					off = p.start; /* the torn tail starts with the batch */
				else
					note_damage(db, r->name, p.start, 0,
						    "incomplete batch dropped");
				pending_drop(&p);
			}
			if (at_end && newest) {
				*valid_end = off;
				break;
			}
			note_damage(db, r->name, off, len, "damaged bytes");
			retire_active(r);
			rc = keep_damaged_chunk(r, &s, off);
			if (rc < 0)
				goto out;
			if (!rc && !damaged_non_chunk(&s))
				suspect_objects(r, f);
			rc = 0;
			continue;
		}
		bc_effect e;
		effect_from(&e, &rec, off);
		if (rec.type == BC_REC_BATCH) {
			if (p.want) {
				note_damage(db, r->name, p.start, 0, "incomplete batch dropped");
				pending_drop(&p);
			}
			p.start = off;
			p.want = rec.count;
			continue;
		}
		if (rec.flags & BC_RF_BATCH) {
			if (!p.want) {
				note_damage(db, r->name, off, len,
					    "batch member without its batch");
				continue;
			}
			rc = pending_add(&p, &e);
			if (rc)
				goto out;
			if (p.n == p.want) {
				rc = pending_apply(r, &p);
				if (rc)
					goto out;
			}
			continue;
		}
		if (p.want) {
			note_damage(db, r->name, p.start, off - p.start,
				    "incomplete batch dropped");
			pending_drop(&p);
		}
		rc = apply_one(r, &e);
		if (rc)
			goto out;
	}
	*zeros = s.tail < f->size ? s.tail : f->size;
	if (*zeros < *valid_end)
		*valid_end = *zeros;
	if (p.want) {
		/* The file ends inside a batch: a torn tail in the newest file. */
		if (newest)
			*valid_end = p.start;
		else
			note_damage(db, r->name, p.start, *zeros - p.start,
				    "incomplete batch at end of file");
	}
	rc = 0;
out:
	free(p.v);
	free(p.keys);
	bc_scan_release(&s);
	return rc;
}

/* Load one data file into the table and replay it (its hint's key sides into rv's bulk). */
static int load_file(struct bc_db *db, uint64_t id, bool newest, bool will_be_active,
		     struct recovery *rv)
{
	char name[BC_FILE_NAME_MAX], hname[BC_FILE_NAME_MAX];
	bc_file_name(name, id, BC_DATA_SUFFIX);
	bc_file_name(hname, id, BC_HINT_SUFFIX);
	bool rw = !db->opt.read_only && newest;
	int fd = bc_io_openat(db->io, db->dirfd, name, rw ? O_RDWR : O_RDONLY, 0);
	if (fd == -ENOENT && db->opt.read_only)
		return 0; /* merged away while we listed; its output replays instead */
	if (fd < 0) {
		bc_log(db, BC_LOG_ERROR, "%s/%s: open: %s", db->dir, name, strerror(-fd));
		return fd;
	}
	uint64_t size;
	int rc = bc_io_fsize(db->io, fd, &size);
	if (rc)
		goto out_close;
	uint8_t hdr[BC_FILE_HEADER_SIZE];
	struct bc_file_header h;
	bool bad_header = false;
	rc = size >= BC_FILE_HEADER_SIZE ? bc_io_pread_full(db->io, fd, hdr, sizeof(hdr), 0)
					 : -ENODATA;
	if (!rc)
		rc = bc_file_header_decode(hdr, &h);
	if (rc == -EPROTONOSUPPORT) {
		bc_log(db, BC_LOG_ERROR, "%s/%s: format version %u or chunk size is not supported",
		       db->dir, name, (unsigned)bc_le16(hdr + BC_FH_VERSION));
		goto out_close;
	}
	if (!rc && (h.kind != BC_KIND_DATA || h.id != id)) {
		/* A valid header naming another file: a copy or a misplaced file, whose records
		 * would replay out of order here. */
		bc_log(db, BC_LOG_WARN, "%s/%s: header says file %016" PRIx64 "; file ignored",
		       db->dir, name, h.id);
		db->damaged_records++;
		bc_io_close(db->io, fd);
		return 0;
	}
	if (rc) {
		if (newest && size < BC_FILE_HEADER_SIZE + BC_REC_HEADER_SIZE) {
			/* A file created just before a crash: nothing in it was acknowledged. */
			db->torn_bytes += size;
			bc_io_close(db->io, fd);
			if (!db->opt.read_only)
				bc_io_unlinkat(db->io, db->dirfd, name);
			return 0;
		}
		if (size < BC_FILE_HEADER_SIZE + BC_REC_HEADER_SIZE) {
			note_damage(db, name, 0, size, "bad file header; file ignored");
			bc_io_close(db->io, fd);
			return 0;
		}
		/* Records carry their own checks: recover them, trust no hint, and never
		 * append to this file again. */
		note_damage(db, name, 0, BC_FILE_HEADER_SIZE, "bad file header; records scanned");
		bad_header = true;
		will_be_active = false;
	} else if (h.next_object > db->next_object) {
		db->next_object = h.next_object;
	}

	struct bc_file *f = calloc(1, sizeof(*f));
	if (!f) {
		rc = -ENOMEM;
		goto out_close;
	}
	f->id = id;
	f->fd = fd;
	f->size = size;
	atomic_init(&f->refs, 1);
	rc = bc_files_add(db, f);
	if (rc < 0) {
		free(f);
		goto out_close;
	}
	struct replay r = {.db = db, .slot = (uint32_t)rc, .name = name};
	if (will_be_active)
		db->active = r.slot;

	uint64_t covered = BC_FILE_HEADER_SIZE;
	struct hint_replay hr = {.r = &r, .stage = &rv->stage};
	if (bad_header) {
		rc = -ENOENT;
	} else {
		if (will_be_active)
			active_hint_copy(rv, db, id, hname);
		rc = bc_hint_stream(db->io, db->dirfd, hname, id, size, on_stage, &hr, &covered);
		if (rc == 0)
			rc = bc_bulk_commit(&rv->bulk, &rv->stage);
		else
			bc_bulk_drop(&rv->stage);
	}
	if (rc == 0) {
		f->has_hint = true;
	} else if (rc == -EBADMSG) {
		active_hint_drop(rv);
		db->hint_fallbacks++;
		bc_log(db, BC_LOG_WARN, "%s/%s: hint failed verification; scanning %s", db->dir,
		       hname, name);
		covered = BC_FILE_HEADER_SIZE;
		/* Remove it: once the data file grows past what it claims to cover (a cut torn
		 * tail, then new appends) it would verify again and describe the wrong bytes. */
		if (!db->opt.read_only)
			bc_io_unlinkat(db->io, db->dirfd, hname);
	} else if (rc == -ENOENT) {
		active_hint_drop(rv);
		covered = BC_FILE_HEADER_SIZE;
	} else {
		return rc; /* the file is in the table; bc_close frees it */
	}
	if (will_be_active && !f->has_hint && bc_active_hint_open(db))
		db->active_hint = NULL;
	/* The scan applies records one by one: everything before them first; and feeds the
	 * active file's hint. */
	if (covered < f->size) {
		rc = bc_bulk_finish(&rv->bulk);
		active_hint_join(rv, db);
		if (rc)
			return rc;
	}
	uint64_t end, zeros;
	rc = scan_file(&r, f, covered, newest, &end, &zeros);
	if (rc)
		return rc;
	if (end < f->size) {
		/* Room filled ahead of appends ("Room ahead" in db.c) is zeros and no damage. Only
		 * the newest file is open for writing: an older one keeps its zeros until a
		 * merge rewrites it. Anything else past the records is a torn tail. */
		if (zeros > end) {
			db->torn_bytes += zeros - end;
			bc_log(db, BC_LOG_WARN,
			       "%s/%s: torn tail of %" PRIu64 " bytes at offset %" PRIu64 "%s",
			       db->dir, name, zeros - end, end,
			       db->opt.read_only ? " ignored" : " truncated");
		}
		if (rw) {
			rc = bc_io_ftruncate(db->io, fd, end);
			if (rc)
				return rc;
		}
		f->size = end;
	}
	return 0;

out_close:
	bc_io_close(db->io, fd);
	return rc;
}

/* Map every file loaded; the newest, if appends are to continue in it, up to the size at
 * which it rotates and for writing. */
static void map_files(struct bc_db *db)
{
	for (uint32_t i = 0; i < db->nslots; i++) {
		struct bc_file *f = db->files[i];
		if (!f)
			continue;
		uint64_t len = f->size;
		bool active = i == db->active && !db->opt.read_only;
		if (active && len < db->opt.max_file_size)
			len = db->opt.max_file_size;
		bc_file_map(db, f, len, active);
	}
}

int bc_recover(struct bc_db *db)
{
	struct bc_found fd;
	int rc = bc_dir_list(db->io, db->dirfd, &fd);
	if (rc)
		return rc;
	if (!db->opt.read_only) {
		for (size_t i = 0; i < fd.ntmp; i++) {
			bc_log(db, BC_LOG_INFO, "%s/%s: removing a temporary file left by a crash",
			       db->dir, fd.tmps[i]);
			bc_io_unlinkat(db->io, db->dirfd, fd.tmps[i]);
		}
	}
	struct recovery rv = {0};
	bc_bulk_init(&rv.bulk, db);
	bc_bulk_init(&rv.stage, db);
	for (size_t i = 0; i < fd.n && !rc; i++) {
		bool newest = i + 1 == fd.n;
		bool active = newest && !db->opt.read_only;
		rc = load_file(db, fd.ids[i], newest, active, &rv);
	}
	bc_bulk_release(&rv.stage);
	if (!rc)
		rc = bc_bulk_finish(&rv.bulk);
	bc_bulk_release(&rv.bulk);
	active_hint_join(&rv, db);
	if (rc)
		goto out;
	bc_apply_sweep(db);
	map_files(db);
	if (db->opt.read_only)
		goto out;

	/* Continue the newest file if it loaded and has room, else start a new one. */
	if (db->active != UINT32_MAX) {
		struct bc_file *last = db->files[db->active];
		if (last->size < db->opt.max_file_size)
			goto out;
		if (db->active_hint) {
			if (!bc_hint_writer_finish(db->active_hint, last->size))
				last->has_hint = true;
			db->active_hint = NULL;
		}
	}
	uint64_t id = (bc_files_max_id(db) / BC_ID_STEP + 1) * BC_ID_STEP;
	if (fd.n && fd.ids[fd.n - 1] >= id)
		id = (fd.ids[fd.n - 1] / BC_ID_STEP + 1) * BC_ID_STEP;
	struct bc_file *f;
	rc = bc_file_create(db, id, false, &f);
	if (rc)
		goto out;
	rc = bc_files_add(db, f);
	if (rc < 0) {
		bc_file_free(db, f);
		goto out;
	}
	db->active = (uint32_t)rc;
	rc = bc_io_fsync(db->io, db->dirfd);
	if (bc_active_hint_open(db))
		db->active_hint = NULL;
out:
	bc_found_release(&fd);
	return rc;
}
