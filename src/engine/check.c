// SPDX-License-Identifier: MIT
/*
 * Offline inspection of a store directory without opening it as a store (no lock, nothing
 * written): bc_check verifies every record, batch and hint file and reports each problem
 * with file and offset, and after damage replays the store read-only to name the keys
 * whose holes may hide lost chunks; bc_dump walks every record in replay order. Both read
 * through the same scanner as recovery, so they see exactly what open would.
 */
#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "record.h"
#include "scan.h"

static const char *type_name(uint8_t t)
{
	static const char *const names[] = {"?",     "put",	 "delete", "link",
					    "chunk", "truncate", "batch"};
	return t <= BC_REC_TYPE_MAX ? names[t] : "?";
}

struct walk {
	const struct bc_io *io;
	int dirfd;
	char name[BC_FILE_NAME_MAX];
	int fd;
	uint64_t size;
	bool newest;
	/* check */
	bc_check_fn report;
	void *ctx;
	uint64_t problems;
	/* dump */
	bc_dump_fn dump;
	void *dctx;
};

static void problem(struct walk *w, const char *file, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void problem(struct walk *w, const char *file, uint64_t off, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	w->problems++;
	if (w->report)
		w->report(w->ctx, file, off, msg);
}

static void emit(struct walk *w, const struct bc_record *rec, uint64_t off, bool damaged,
		 uint64_t dlen)
{
	if (!w->dump)
		return;
	struct bc_dump_record d = {.file = w->name, .offset = off};
	char why[64];
	if (damaged) {
		snprintf(why, sizeof(why), "%" PRIu64 " bytes hold no valid record", dlen);
		d.type = "damage";
		d.damage = why;
		d.value_len = dlen;
	} else {
		d.type = type_name(rec->type);
		d.in_batch = rec->flags & BC_RF_BATCH;
		d.space = rec->space;
		d.timestamp_ns = rec->time_ns;
		d.expire_s = rec->expire_s;
		d.key = rec->key;
		d.klen = rec->klen;
		d.meta_len = rec->mlen;
		d.object = rec->object;
		d.chunk = rec->index;
		switch (rec->type) {
		case BC_REC_PUT:
			d.value_len = rec->vlen;
			break;
		case BC_REC_CHUNK:
			d.value_len = rec->dlen;
			break;
		case BC_REC_LINK:
		case BC_REC_TRUNC:
			d.value_len = rec->size;
			break;
		case BC_REC_BATCH:
			d.value_len = rec->count;
			break;
		default:
			break;
		}
	}
	w->dump(w->dctx, &d);
}

/* Walk one data file's records, reporting damage and incomplete batches. */
static int walk_records(struct walk *w)
{
	struct bc_scan s;
	int rc = bc_scan_init(&s, w->io, w->fd, BC_FILE_HEADER_SIZE, w->size);
	if (rc)
		return rc;
	uint64_t batch_at = 0;
	uint32_t want = 0, have = 0;
	for (;;) {
		struct bc_record rec;
		uint64_t off, len;
		bool at_end;
		rc = bc_scan_next(&s, &rec, &off, &len, &at_end);
		if (rc <= 0)
			break;
		if (rc == BC_SCAN_DAMAGE) {
			emit(w, NULL, off, true, len);
			if (want)
				problem(w, w->name, batch_at, "incomplete batch (%u of %u members)",
					have, want);
			want = 0;
			problem(w, w->name, off, "%s: %" PRIu64 " bytes hold no valid record",
				at_end && w->newest ? "torn tail" : "damaged", len);
			continue;
		}
		emit(w, &rec, off, false, 0);
		if (rec.type == BC_REC_BATCH) {
			if (want)
				problem(w, w->name, batch_at, "incomplete batch (%u of %u members)",
					have, want);
			batch_at = off;
			want = rec.count;
			have = 0;
			continue;
		}
		if (rec.flags & BC_RF_BATCH) {
			if (!want)
				problem(w, w->name, off, "batch member outside a batch");
			else if (++have == want)
				want = 0;
			continue;
		}
		if (want) {
			problem(w, w->name, batch_at, "incomplete batch (%u of %u members)", have,
				want);
			want = 0;
		}
	}
	if (rc == 0 && want)
		problem(w, w->name, batch_at, "incomplete batch (%u of %u members) at end of file",
			have, want);
	bc_scan_release(&s);
	return rc < 0 ? rc : 0;
}

struct hint_check {
	struct walk *w;
	char hname[BC_FILE_NAME_MAX];
	uint8_t *buf;
	bool bad;
};

/* Each hint entry must describe the record at its offset. */
static int hint_entry(void *ctx, const struct bc_hint_entry *e)
{
	struct hint_check *h = ctx;
	uint32_t size = BC_REC_HEADER_SIZE + e->klen + e->mlen + e->vlen;
	struct bc_record rec;
	size_t used;
	int rc = bc_io_pread_full(h->w->io, h->w->fd, h->buf, size, e->offset);
	if (!rc)
		rc = bc_record_decode(h->buf, size, &rec, &used);
	if (rc || rec.type != e->type || rec.space != e->space || rec.klen != e->klen ||
	    memcmp(rec.key, e->key, e->klen) || rec.object != e->object) {
		problem(h->w, h->hname, e->offset, "hint entry does not match the data file");
		h->bad = true;
		return 1; /* one report per hint file is enough */
	}
	return 0;
}

static int check_hint(struct walk *w, uint64_t id)
{
	struct hint_check h = {.w = w};
	bc_file_name(h.hname, id, BC_HINT_SUFFIX);
	h.buf = malloc(BC_MAX_RECORD);
	if (!h.buf)
		return -ENOMEM;
	uint64_t covered;
	int rc = bc_hint_load(w->io, w->dirfd, h.hname, id, UINT64_MAX, hint_entry, &h, &covered);
	free(h.buf);
	if (rc == -ENOENT || rc == 1)
		return 0;
	if (rc == -EBADMSG) {
		problem(w, h.hname, 0, "hint file fails verification (open will scan the data)");
		return 0;
	}
	if (!rc && covered > w->size)
		problem(w, h.hname, 0, "hint covers %" PRIu64 " bytes, data file has %" PRIu64,
			covered, w->size);
	return rc;
}

/* A hint whose data file is gone is a leftover (open ignores it): say so. */
static int orphan_hint(void *arg, const char *name)
{
	struct walk *w = arg;
	size_t n = strlen(name), sl = strlen(BC_HINT_SUFFIX);
	if (n != 16 + sl || strcmp(name + 16, BC_HINT_SUFFIX))
		return 0;
	char data[BC_FILE_NAME_MAX];
	snprintf(data, sizeof(data), "%.16s%s", name, BC_DATA_SUFFIX);
	if (faccessat(w->dirfd, data, F_OK, 0) < 0 && errno == ENOENT)
		problem(w, name, 0, "hint file without its data file");
	return 0;
}

static int walk_dir(const char *dir, struct walk *w, bool hints)
{
	w->io = &bc_io_posix;
	w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd < 0)
		return -errno;
	struct bc_found fd;
	int rc = bc_dir_list(w->io, w->dirfd, &fd);
	for (size_t i = 0; !rc && i < fd.n; i++) {
		bc_file_name(w->name, fd.ids[i], BC_DATA_SUFFIX);
		w->newest = i + 1 == fd.n;
		w->fd = openat(w->dirfd, w->name, O_RDONLY | O_CLOEXEC);
		if (w->fd < 0) {
			rc = errno == ENOENT ? 0 : -errno; /* merged away meanwhile */
			continue;
		}
		rc = bc_io_fsize(w->io, w->fd, &w->size);
		uint8_t hdr[BC_FILE_HEADER_SIZE];
		struct bc_file_header fh;
		int hrc = -ENODATA;
		if (!rc && w->size >= BC_FILE_HEADER_SIZE)
			hrc = bc_io_pread_full(w->io, w->fd, hdr, sizeof(hdr), 0);
		if (!hrc)
			hrc = bc_file_header_decode(hdr, &fh);
		if (!hrc && (fh.kind != BC_KIND_DATA || fh.id != fd.ids[i]))
			hrc = -EBADMSG;
		if (!rc && hrc) {
			/* Open still recovers the records after a bad header: walk them too. */
			problem(w, w->name, 0, "bad file header (%s)", bc_strerror(hrc));
			emit(w, NULL, 0, true, BC_FILE_HEADER_SIZE);
			if (w->size >= BC_FILE_HEADER_SIZE)
				rc = walk_records(w);
		} else if (!rc) {
			rc = walk_records(w);
			if (!rc && hints)
				rc = check_hint(w, fd.ids[i]);
		}
		close(w->fd);
	}
	if (!rc && hints)
		rc = bc_io_listdir(w->io, w->dirfd, orphan_hint, w);
	bc_found_release(&fd);
	close(w->dirfd);
	return rc;
}

static void quiet(void *ctx, enum bc_log_level level, const char *msg)
{
	(void)ctx;
	(void)level;
	(void)msg;
}

/* Up to 64 bytes of a key, printable ASCII as is, other bytes as \xHH. */
static void key_text(char *out, size_t cap, const uint8_t *key, size_t klen)
{
	size_t o = 0;
	for (size_t i = 0; i < klen && i < 64 && o + 5 < cap; i++) {
		if (key[i] >= 0x20 && key[i] < 0x7f && key[i] != '\\' && key[i] != '"')
			out[o++] = (char)key[i];
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", key[i]);
	}
	if (klen > 64 && o + 4 < cap)
		o += (size_t)snprintf(out + o, cap - o, "...");
	out[o] = 0;
}

struct suspects {
	struct walk *w;
	struct bc_db *db;
};

static int suspect_key(void *ctx, unsigned space, const uint8_t *key, size_t klen,
		       const struct bc_kval *v)
{
	struct suspects *sp = ctx;
	const struct bc_object *o = v->obj;
	if (!(v->flags & BC_KV_OBJECT) || !bc_object_suspect(sp->db, o) ||
	    o->count >= (o->size + BC_CHUNK_SIZE - 1) / BC_CHUNK_SIZE)
		return 0;
	char name[BC_FILE_NAME_MAX], text[300];
	const struct bc_file *f = sp->db->files[v->loc.file];
	bc_file_name(name, f ? f->id : 0, BC_DATA_SUFFIX);
	key_text(text, sizeof(text), key, klen);
	problem(sp->w, name, v->loc.offset,
		"key \"%s\" (space %u): object %" PRIu64 " may have lost chunks to damage; its "
		"holes read as errors",
		text, space, o->id);
	return 0;
}

/*
 * After damage, replay the store as a read-only open does and name every key whose value
 * has holes that may be chunks lost in the damage (docs/FORMAT.md "Recovery").
 */
static void check_suspects(const char *dir, struct walk *w)
{
	struct bc_options o = {.read_only = true, .log = quiet};
	struct bc_db *db;
	int rc = bc_open(dir, &o, &db);
	if (rc) {
		problem(w, ".", 0, "the store does not open read-only: %s", bc_strerror(rc));
		return;
	}
	struct suspects sp = {.w = w, .db = db};
	bc_kd_rdlock(db);
	if (db->suspect_below)
		bc_keydir_scan_all(db->kd, suspect_key, &sp);
	bc_kd_unlock(db);
	bc_close(db);
}

int bc_check(const char *dir, bc_check_fn report, void *ctx, uint64_t *problems)
{
	struct walk w = {.report = report, .ctx = ctx};
	if (!dir)
		return -EINVAL;
	int rc = walk_dir(dir, &w, true);
	if (!rc && w.problems)
		check_suspects(dir, &w);
	if (problems)
		*problems = w.problems;
	return rc;
}

int bc_dump(const char *dir, bc_dump_fn fn, void *ctx)
{
	struct walk w = {.dump = fn, .dctx = ctx};
	if (!dir || !fn)
		return -EINVAL;
	return walk_dir(dir, &w, false);
}
