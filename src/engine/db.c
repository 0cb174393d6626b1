// SPDX-License-Identifier: MIT
/*
 * The store's lifecycle: options, the directory lock, the file table, appends to the
 * active file with rotation, group commit under the sync policies, the background thread
 * (interval sync and automatic merge), and close. Replay lives in recover.c, the write
 * operations in write.c, reads in read.c, merge in merge.c. See docs/DESIGN.md.
 */
#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "ahead.h"
#include "record.h"

#define DEFAULT_MAX_FILE (UINT64_C(256) << 20)
#define DEFAULT_SYNC_MS 1000
#define DEFAULT_MERGE_CHECK_MS 60000
#define DEFAULT_FRAG_PERCENT 50
#define DEFAULT_DEAD_BYTES (UINT64_C(128) << 20)
#define DEFAULT_SMALL_FILE (UINT64_C(8) << 20)

const char *bc_strerror(int rc)
{
	switch (rc) {
	case 0:
		return "success";
	case -ENOENT:
		return "not found";
	case -EBADMSG:
		return "corrupt record (checksum or format mismatch)";
	case -ENAMETOOLONG:
		return "key too long";
	case -EFBIG:
		return "value, metadata or offset too large";
	case -EROFS:
		return "store is open read-only";
	case -EWOULDBLOCK:
		return "store is locked by another process";
	case -EINVAL:
		return "invalid argument";
	case -EBUSY:
		return "a merge is already running";
	case -EPROTONOSUPPORT:
		return "unsupported format version";
	default:
		return strerror(rc < 0 ? -rc : rc);
	}
}

void bc_log(struct bc_db *db, enum bc_log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (db && db->opt.log) {
		db->opt.log(db->opt.log_ctx, level, msg);
		return;
	}
	if (level <= BC_LOG_WARN)
		fprintf(stderr, "bitcask: %s\n", msg);
}

uint64_t bc_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint32_t bc_expire32(uint64_t expire_s)
{
	return expire_s > UINT32_MAX ? UINT32_MAX : (uint32_t)expire_s;
}

bool bc_expired(uint32_t expire_s, uint64_t now_s)
{
	return expire_s && expire_s != UINT32_MAX && now_s >= expire_s;
}

void bc_file_name(char out[BC_FILE_NAME_MAX], uint64_t id, const char *suffix)
{
	snprintf(out, BC_FILE_NAME_MAX, "%016" PRIx64 "%s", id, suffix);
}

/* ---- file table ---- */

int bc_files_add(struct bc_db *db, struct bc_file *f)
{
	for (uint32_t i = 0; i < db->nslots; i++) {
		if (!db->files[i]) {
			db->files[i] = f;
			return (int)i;
		}
	}
	uint32_t n = db->nslots ? db->nslots * 2 : 16;
	struct bc_file **v = realloc(db->files, n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memset(v + db->nslots, 0, (n - db->nslots) * sizeof(*v));
	db->files = v;
	uint32_t slot = db->nslots;
	db->nslots = n;
	db->files[slot] = f;
	return (int)slot;
}

struct bc_file *bc_file_get(struct bc_db *db, uint32_t slot)
{
	if (slot >= db->nslots || !db->files[slot])
		return NULL;
	struct bc_file *f = db->files[slot];
	atomic_fetch_add(&f->refs, 1);
	return f;
}

void bc_file_map(struct bc_db *db, struct bc_file *f, uint64_t len, bool writable)
{
	if (db->opt.mmap_disable || f->map)
		return;
	/* Only unsynced appends go through the mapping ("Room ahead" below). */
	if (db->opt.sync == BC_SYNC_ALWAYS)
		writable = false;
	uint8_t *p = writable ? bc_io_map(db->io, f->fd, len, true) : NULL;
	f->wmap = p;
	if (!p)
		p = bc_io_map(db->io, f->fd, len, false);
	f->map = p;
	f->map_len = p ? len : 0;
}

void bc_file_free(struct bc_db *db, struct bc_file *f)
{
	bc_io_unmap(db->io, f->map, f->map_len);
	bc_io_close(db->io, f->fd);
	free(f);
}

void bc_file_put(struct bc_db *db, struct bc_file *f)
{
	if (f && atomic_fetch_sub(&f->refs, 1) == 1)
		bc_file_free(db, f);
}

void bc_files_retire(struct bc_db *db, uint32_t slot)
{
	struct bc_file *f = db->files[slot];
	db->files[slot] = NULL;
	f->retired = true;
	bc_file_put(db, f);
}

struct bc_file *bc_active_file(struct bc_db *db)
{
	bc_kd_rdlock(db);
	struct bc_file *f = db->files[db->active];
	bc_kd_unlock(db);
	return f;
}

uint64_t bc_next_object(struct bc_db *db)
{
	bc_kd_rdlock(db);
	uint64_t n = db->next_object;
	bc_kd_unlock(db);
	return n;
}

uint64_t bc_files_max_id(struct bc_db *db)
{
	uint64_t m = 0;
	for (uint32_t i = 0; i < db->nslots; i++)
		if (db->files[i] && db->files[i]->id > m)
			m = db->files[i]->id;
	return m;
}

int bc_file_create(struct bc_db *db, uint64_t id, bool tmp, struct bc_file **out)
{
	char name[BC_FILE_NAME_MAX + 8];
	char base[BC_FILE_NAME_MAX];
	bc_file_name(base, id, BC_DATA_SUFFIX);
	snprintf(name, sizeof(name), "%s%s", base, tmp ? BC_TMP_SUFFIX : "");
	*out = NULL;
	int fd = bc_io_openat(db->io, db->dirfd, name, O_RDWR | O_CREAT | O_EXCL, 0644);
	if (fd < 0) {
		bc_log(db, BC_LOG_ERROR, "%s/%s: create: %s", db->dir, name, strerror(-fd));
		return fd;
	}
	struct bc_file_header h = {
		.version = BC_FORMAT_VERSION,
		.kind = BC_KIND_DATA,
		.chunk_size = BC_CHUNK_SIZE,
		.id = id,
		.next_object = bc_next_object(db),
		.created_ns = bc_now_ns(),
	};
	uint8_t hdr[BC_FILE_HEADER_SIZE];
	bc_file_header_encode(hdr, &h);
	int rc = bc_io_pwrite_full(db->io, fd, hdr, sizeof(hdr), 0);
	if (rc)
		goto out_unlink;
	struct bc_file *f = calloc(1, sizeof(*f));
	if (!f) {
		rc = -ENOMEM;
		goto out_unlink;
	}
	f->id = id;
	f->fd = fd;
	f->size = BC_FILE_HEADER_SIZE;
	atomic_init(&f->refs, 1);
	/* New files are appended to (the active file, a merge output) and read meanwhile;
	 * merge writes its outputs with pwritev. */
	bc_file_map(db, f, db->opt.max_file_size, !tmp);
	*out = f;
	return 0;

out_unlink:
	bc_log(db, BC_LOG_ERROR, "%s/%s: write header: %s", db->dir, name, strerror(-rc));
	bc_io_close(db->io, fd);
	bc_io_unlinkat(db->io, db->dirfd, name);
	return rc;
}

/* ---- the active file ---- */

static int hint_open_for(struct bc_db *db, struct bc_file *f)
{
	char name[BC_FILE_NAME_MAX];
	bc_file_name(name, f->id, BC_HINT_SUFFIX);
	return bc_hint_writer_open(db->io, db->dirfd, name, f->id, bc_next_object(db),
				   &db->active_hint);
}

/* Finish f's hint w, covering all of f (after a data sync of f). */
static int hint_finish(struct bc_db *db, struct bc_file *f, struct bc_hint_writer *w)
{
	if (!w)
		return 0;
	int rc = bc_hint_writer_finish(w, f->size);
	if (rc)
		bc_log(db, BC_LOG_WARN, "%s: hint for %016" PRIx64 ": %s (open will scan it)",
		       db->dir, f->id, bc_strerror(rc));
	else
		atomic_store(&f->has_hint, true);
	return rc;
}

/* Finish the active file's hint covering everything appended (after a data sync). */
static int hint_finish_active(struct bc_db *db)
{
	struct bc_hint_writer *w = db->active_hint;
	db->active_hint = NULL;
	return hint_finish(db, bc_active_file(db), w);
}

/*
 * Room ahead of the appends: the active file is kept filled a little past its records, up
 * to the next FILL_STEP boundary (never past max_file_size, where it rotates), in one of
 * three ways.
 *
 * - Reserved (NONE and INTERVAL, appends of at most MAP_WRITE_MAX bytes to a file with a
 *   writable mapping): fallocate takes the blocks and grows the file, and the appends are
 *   copied into the mapping. That spares a pwritev per put (1M x 100-byte random puts:
 *   1.7 to 1.1 us each in scripts/bench's full runs before and after), and the reserved
 *   blocks mean a full disk shows as a failed fallocate, after which appends go back to
 *   pwritev, not as SIGBUS on a store. Reserved room is kept a whole step ahead, and the
 *   append helper (ahead.h) faults in each new step while the writer fills the one
 *   before, so the copies find their pages mapped: in a profile of kvbench's 1M x 100-byte
 *   run, those faults (the kernel reading each page in as zeros from unwritten blocks)
 *   were 15% of the samples. Larger appends use pwritev: the first store to each page
 *   faults, and a fault costs about what the system call does (kvbench, 200k puts: even
 *   at 1 KiB and 2 KiB values, and 4 KiB ones 10-20% slower through the mapping; with
 *   the helper faulting ahead, 4 KiB values were still no faster, 0.91x and 1.05x on
 *   sequential and random fill in 3 alternating rounds).
 * - Prepared (NONE and INTERVAL, appends with pwritev: larger ones, and every one to a
 *   file not mapped for writing, as under bitcaskfs): ftruncate grows the file a whole
 *   step ahead, with no blocks, and the helper brings each new step into the page cache
 *   (willneed), which for a hole is zeroed pages and no disk I/O. Otherwise the write
 *   itself allocates each page, zeroes the part of it past the record, and copies into
 *   memory nobody has touched lately: in a profile of kvbench's 100k x 4 KiB run that was
 *   29% of the samples (the copy 24%, the zeroing 6%), 7% once the pages were there.
 *   Not fallocate: writes into unwritten blocks leave the conversion to the writeback,
 *   and the fills ran no faster than without any room (4 alternating rounds).
 * - Zeros (ALWAYS): an fdatasync after an append that grew the file must also commit the
 *   new size through the filesystem's journal; after one that wrote over bytes already in
 *   the file it need not (ext4 on this project's machines: 195-205 us per 130-byte append
 *   and fdatasync, 130-150 us into zeros written and synced before). Written zeros, not
 *   fallocate: the first write to each block of an unwritten extent converts it, which
 *   costs as much.
 *
 * Either way the file ends in zeros, which recovery takes as the end of its records
 * (docs/FORMAT.md "Recovery"), and every file is cut back to its records when it stops
 * being the active one. Failing to fill costs only speed, so it stops being tried until
 * the next file.
 */
#define FILL_STEP (UINT64_C(1) << 20)
#define MAP_WRITE_MAX 1024
#define PREPARE_MAX (16u << 10)

static int write_zeros(struct bc_db *db, struct bc_file *f, uint64_t at, uint64_t to)
{
	static const uint8_t zeros[64 * 1024];

	while (at < to) {
		size_t n = to - at < sizeof(zeros) ? (size_t)(to - at) : sizeof(zeros);
		int rc = bc_io_pwrite_full(db->io, f->fd, zeros, n, at);
		if (rc)
			return rc;
		at += n;
	}
	return 0;
}

/* Where room that must reach end + lead and now reaches have should end: a step boundary
 * past end + lead, at most max_file_size; 0 when no more room is needed. */
static uint64_t room_to(const struct bc_db *db, uint64_t end, uint64_t lead, uint64_t have)
{
	if (db->fill_failed || end + lead <= have)
		return 0;
	uint64_t to = ((end + lead) / FILL_STEP + 1) * FILL_STEP;
	if (to > db->opt.max_file_size)
		to = db->opt.max_file_size;
	return to <= end || to <= have ? 0 : to; /* 0: the file's last step is filled already */
}

/* Before a mapped append ending at end: reserve room a step past it, fault it in ahead. */
static void reserve_ahead(struct bc_db *db, struct bc_file *f, uint64_t end)
{
	uint64_t to = room_to(db, end, FILL_STEP, db->reserve_end);
	if (!to)
		return;
	uint64_t from = db->reserve_end > end ? db->reserve_end : end;
	int rc = bc_io_fallocate(db->io, f->fd, f->size, to - f->size);
	/* On failure too, so that fill_cut removes whatever part was filled. */
	if (db->fill_end < to)
		db->fill_end = to;
	if (rc) {
		db->fill_failed = true;
		return;
	}
	db->reserve_end = to;
	bc_ahead_post(db, f, BC_AHEAD_FAULT, from, to);
}

/* Before a pwritev append ending at end: grow the file a step past it, have it prepared. */
static void prepare_ahead(struct bc_db *db, struct bc_file *f, uint64_t end)
{
	if (!db->ahead || !db->io->willneed)
		return; /* nobody to prepare the room: growing the file gains nothing */
	uint64_t to = room_to(db, end, FILL_STEP, db->fill_end);
	if (!to)
		return;
	uint64_t from = db->fill_end > end ? db->fill_end : end;
	int rc = bc_io_ftruncate(db->io, f->fd, to);
	db->fill_end = to;
	if (rc)
		db->fill_failed = true;
	else
		bc_ahead_post(db, f, BC_AHEAD_PREPARE, from, to);
}

/* After an append under ALWAYS that ended at end: write zeros up to the next step. */
static void zeros_ahead(struct bc_db *db, struct bc_file *f, uint64_t end)
{
	uint64_t to = room_to(db, end, 0, db->fill_end);
	if (!to)
		return;
	int rc = write_zeros(db, f, end, to);
	db->fill_end = to;
	if (rc)
		db->fill_failed = true;
}

/* Cut the room ahead of the active file's records, before it stops being active. */
static void fill_cut(struct bc_db *db, struct bc_file *f)
{
	if (db->fill_end > f->size && bc_io_ftruncate(db->io, f->fd, f->size))
		bc_log(db, BC_LOG_WARN,
		       "%s: cannot cut the filled tail of %016" PRIx64 " (the next open will)",
		       db->dir, f->id);
	db->fill_end = db->reserve_end = 0;
	db->fill_failed = false;
}

/*
 * Write-behind (NONE and INTERVAL): each time the active file's records pass a multiple
 * of WRITEBACK_STEP, start writing the bytes before it to the disk, without waiting.
 * Otherwise the kernel holds a whole file of dirty pages until the rotation's sync (a
 * quarter of a second of disk writes for 256 MiB, then done all at once) or its own
 * writeback 30 s later, and a bc_sync or fsync waits for all of it. Spread out, the disk
 * writes overlap the appends: in alternating rounds, 1M x 100-byte overwrites (one
 * rotation) ran at 1.08-1.20M/s against 0.80-0.92M/s without, and a 1 GiB sequential
 * write through bitcaskfs 1.13x faster at 1 MiB blocks (docs/BENCHMARKS.md, tenth
 * session). The pages written are whole and never written again: appends only go on
 * past them. Nothing is made durable here; a failed write shows at the next fdatasync.
 * When the file is mapped for appends, the append helper (ahead.h) drops the range from
 * the mapping and starts the writes, so the writer does not wait while the kernel queues
 * 4 MiB of them. Unmapped (bitcaskfs, mmap_disable), the writer starts them itself: moved
 * to the helper, a 1 GiB write through bitcaskfs pinned to one CPU ran at 0.90x (5
 * alternating rounds, each slower), and unpinned within the noise.
 */
#define WRITEBACK_STEP (UINT64_C(4) << 20)

static void write_behind(struct bc_db *db, struct bc_file *f, uint64_t end)
{
	uint64_t to = end / WRITEBACK_STEP * WRITEBACK_STEP;
	if (to <= db->wb_from)
		return;
	bc_ahead_post(db, f, BC_AHEAD_WRITEBACK, db->wb_from, to);
	db->wb_from = to;
}

/* Sync the file a rotation left, then write its hint (retire_* set by bc_rotate). */
static void *retire_main(void *arg)
{
	struct bc_db *db = arg;
	struct bc_file *f = db->retire_f;

	pthread_setname_np(pthread_self(), "bc-retire");
	int rc = bc_io_fdatasync(db->io, f->fd);
	if (rc)
		bc_hint_writer_abort(db->retire_hint);
	else
		hint_finish(db, f, db->retire_hint);
	db->retire_hint = NULL;
	db->retire_rc = rc;
	return NULL;
}

/* After retire_main (retire_mu held): take its result; an error stops writes. */
static int retire_done(struct bc_db *db)
{
	int rc = db->retire_rc;
	if (rc) {
		db->write_error = rc;
		bc_log(db, BC_LOG_ERROR,
		       "%s: fdatasync of %016" PRIx64
		       " after rotation: %s; the store accepts no more writes",
		       db->dir, db->retire_f->id, strerror(-rc));
	}
	bc_file_put(db, db->retire_f);
	db->retire_f = NULL;
	return rc;
}

int bc_retire_wait(struct bc_db *db)
{
	int rc = 0;
	pthread_mutex_lock(&db->retire_mu);
	if (db->retire_f) {
		pthread_join(db->retire_th, NULL);
		rc = retire_done(db);
	}
	pthread_mutex_unlock(&db->retire_mu);
	return rc;
}

/*
 * Hand the old active file and its hint writer to a thread that syncs the file and then
 * finishes the hint (a hint may only describe durable records). Where no thread can be
 * started, do both here.
 */
static void retire(struct bc_db *db, struct bc_file *old, struct bc_hint_writer *w)
{
	pthread_mutex_lock(&db->retire_mu);
	atomic_fetch_add(&old->refs, 1);
	db->retire_f = old;
	db->retire_hint = w;
	if (pthread_create(&db->retire_th, NULL, retire_main, db)) {
		retire_main(db);
		retire_done(db);
	}
	pthread_mutex_unlock(&db->retire_mu);
}

int bc_rotate(struct bc_db *db)
{
	struct bc_file *old = bc_active_file(db);
	fill_cut(db, old);
	bool always = db->opt.sync == BC_SYNC_ALWAYS;
	/* Unsynced writes leave the sync to retire(); one file at a time. */
	int rc = always ? bc_io_fdatasync(db->io, old->fd) : bc_retire_wait(db);
	if (rc) {
		db->write_error = rc;
		if (always)
			bc_log(db, BC_LOG_ERROR, "%s: fdatasync before rotation: %s", db->dir,
			       strerror(-rc));
		return rc;
	}
	if (always) {
		pthread_mutex_lock(&db->sync_mu);
		db->synced = db->appended;
		pthread_mutex_unlock(&db->sync_mu);
		hint_finish_active(db);
	}

	bc_kd_rdlock(db);
	uint64_t id = (bc_files_max_id(db) / BC_ID_STEP + 1) * BC_ID_STEP;
	bc_kd_unlock(db);
	struct bc_file *f;
	rc = bc_file_create(db, id, false, &f);
	if (rc)
		return rc;
	if (always) {
		rc = bc_io_fdatasync(db->io, f->fd);
		if (!rc)
			rc = bc_io_fsync(db->io, db->dirfd);
		if (rc)
			goto out_drop;
	} else {
		/* The new name is durable only after a directory fsync: bc_sync does it. */
		atomic_store(&db->dir_dirty, true);
	}
	bc_kd_wrlock(db);
	int slot = bc_files_add(db, f);
	if (slot >= 0)
		db->active = (uint32_t)slot;
	bc_kd_unlock(db);
	db->wb_from = 0;
	if (slot < 0) {
		rc = slot;
		goto out_drop;
	}
	if (!always) {
		retire(db, old, db->active_hint);
		db->active_hint = NULL;
	}
	if (hint_open_for(db, f))
		db->active_hint = NULL; /* no hint for this file: open will scan it */
	return 0;

out_drop:;
	char name[BC_FILE_NAME_MAX];
	bc_file_name(name, id, BC_DATA_SUFFIX);
	bc_file_free(db, f);
	bc_io_unlinkat(db->io, db->dirfd, name);
	return rc;
}

int bc_append(struct bc_db *db, struct iovec *iov, int niov, size_t len, uint32_t *slot,
	      uint64_t *offset, uint64_t *mark)
{
	if (db->write_error)
		return db->write_error;
	struct bc_file *f = bc_active_file(db);
	if (f->size > BC_FILE_HEADER_SIZE && f->size + len > db->opt.max_file_size) {
		int rc = bc_rotate(db);
		if (rc)
			return rc;
		f = bc_active_file(db);
	}
	if (f->size + len > BC_MAX_FILE_SIZE + BC_MAX_RECORD)
		return -EFBIG;
	uint64_t off = f->size;
	bool mapped = false;
	if (f->wmap && len <= MAP_WRITE_MAX && off + len <= f->map_len) {
		reserve_ahead(db, f, off + len);
		mapped = off + len <= db->reserve_end;
	}
	if (!mapped && len <= PREPARE_MAX)
		prepare_ahead(db, f, off + len);
	int rc = 0;
	if (mapped) {
		uint8_t *to = f->wmap + off;
		for (int i = 0; i < niov; i++) {
			memcpy(to, iov[i].iov_base, iov[i].iov_len);
			to += iov[i].iov_len;
		}
	} else {
		rc = bc_io_pwritev_full(db->io, f->fd, iov, niov, off);
	}
	if (rc) {
		/* Take back whatever part reached the file so the next append starts clean;
		 * if even that fails the file's tail is unknown and writing must stop. */
		int trc = bc_io_ftruncate(db->io, f->fd, off);
		db->fill_end = db->reserve_end = 0;
		if (trc) {
			db->write_error = rc;
			bc_log(db, BC_LOG_ERROR,
			       "%s: append failed (%s) and the tail could not be cut back (%s); "
			       "the store accepts no more writes until reopened",
			       db->dir, strerror(-rc), strerror(-trc));
		}
		return rc;
	}
	if (db->opt.sync == BC_SYNC_ALWAYS)
		zeros_ahead(db, f, off + len);
	else
		write_behind(db, f, off + len);
	pthread_mutex_lock(&db->sync_mu);
	db->appended += len;
	*mark = db->appended;
	pthread_mutex_unlock(&db->sync_mu);
	*slot = db->active;
	*offset = off;
	return 0;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Before a writer leads a sync, let its group gather. Writers released by one sync come
 * back with their next write at about the same time, but one of them finds nobody syncing
 * and leads at once, so groups alternate between most of the writers and a few of them
 * (four synced writers averaged 2.2 writes per fdatasync). When the last sync covered
 * several writers, the leader waits until as many are waiting again, or for half the
 * last sync's duration at most; a lone writer (last group of one) never waits.
 */
static void gather(struct bc_db *db)
{
	if (db->last_group < 2 || db->arrived - db->arrived_synced >= db->last_group)
		return;
	uint64_t until = mono_ns() + db->last_sync_ns / 2;
	struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u),
			      .tv_nsec = (long)(until % 1000000000u)};
	while (db->arrived - db->arrived_synced < db->last_group && !db->write_error)
		if (pthread_cond_timedwait(&db->lead_cv, &db->sync_mu, &ts) == ETIMEDOUT)
			break;
}

/* Sync whatever is appended; caller holds sync_mu and has set syncing. */
static int sync_leader(struct bc_db *db, bool patient)
{
	if (patient)
		gather(db);
	/* Every writer that has arrived appended before it did: this sync covers them all. */
	uint64_t target = db->appended;
	uint64_t group = db->arrived - db->arrived_synced;
	db->arrived_synced = db->arrived;
	bc_kd_rdlock(db);
	struct bc_file *f = bc_file_get(db, db->active);
	bc_kd_unlock(db);
	pthread_mutex_unlock(&db->sync_mu);
	/* The file the last rotation left may hold some of the bytes too. */
	int retire_rc = bc_retire_wait(db);
	uint64_t t0 = mono_ns();
	int rc = retire_rc ? retire_rc : f ? bc_io_fdatasync(db->io, f->fd) : 0;
	uint64_t took = mono_ns() - t0;
	bc_file_put(db, f);
	atomic_fetch_add(&db->n_sync, 1);
	pthread_mutex_lock(&db->sync_mu);
	db->syncing = false;
	db->last_group = group;
	db->last_sync_ns = took;
	if (rc) {
		db->write_error = rc;
		if (!retire_rc)
			bc_log(db, BC_LOG_ERROR,
			       "%s: fdatasync: %s; the store accepts no more writes", db->dir,
			       strerror(-rc));
	} else if (target > db->synced) {
		db->synced = target;
	}
	pthread_cond_broadcast(&db->sync_cv);
	return rc;
}

int bc_commit_wait(struct bc_db *db, uint64_t mark)
{
	if (db->opt.sync != BC_SYNC_ALWAYS)
		return 0;
	int rc = 0;
	pthread_mutex_lock(&db->sync_mu);
	if (++db->arrived - db->arrived_synced >= db->last_group)
		pthread_cond_signal(&db->lead_cv);
	while (db->synced < mark && !db->write_error) {
		if (!db->syncing) {
			db->syncing = true;
			rc = sync_leader(db, true);
		} else {
			pthread_cond_wait(&db->sync_cv, &db->sync_mu);
		}
	}
	if (db->synced < mark)
		rc = db->write_error ? db->write_error : -EIO;
	pthread_mutex_unlock(&db->sync_mu);
	return rc;
}

/* Make the names of files created since the last directory fsync durable. */
static int sync_dir(struct bc_db *db)
{
	if (!atomic_exchange(&db->dir_dirty, false))
		return 0;
	int rc = bc_io_fsync(db->io, db->dirfd);
	if (rc) {
		atomic_store(&db->dir_dirty, true);
		bc_log(db, BC_LOG_ERROR, "%s: fsync of the directory: %s", db->dir, strerror(-rc));
	}
	return rc;
}

int bc_sync_all(struct bc_db *db)
{
	if (db->opt.read_only)
		return 0;
	pthread_mutex_lock(&db->sync_mu);
	uint64_t mark = db->appended;
	int rc = 0;
	while (db->synced < mark && !db->write_error) {
		if (!db->syncing) {
			db->syncing = true;
			rc = sync_leader(db, false);
		} else {
			pthread_cond_wait(&db->sync_cv, &db->sync_mu);
		}
	}
	if (db->write_error)
		rc = db->write_error;
	pthread_mutex_unlock(&db->sync_mu);
	if (!rc)
		rc = sync_dir(db);
	return rc;
}

int bc_sync(struct bc_db *db)
{
	if (!db)
		return -EINVAL;
	return bc_sync_all(db);
}

/* ---- background thread ---- */

static void *bg_main(void *arg)
{
	struct bc_db *db = arg;

	pthread_setname_np(pthread_self(), "bc-background");
	uint64_t now = bc_now_ns();
	uint64_t next_sync = now + (uint64_t)db->opt.sync_interval_ms * 1000000u;
	uint64_t next_merge = now + (uint64_t)db->opt.merge_check_ms * 1000000u;
	pthread_mutex_lock(&db->bg_mu);
	while (!db->stopping) {
		uint64_t wake = UINT64_MAX;
		if (db->opt.sync == BC_SYNC_INTERVAL)
			wake = next_sync;
		if (!db->opt.merge_disable_auto && next_merge < wake)
			wake = next_merge;
		if (wake == UINT64_MAX) {
			pthread_cond_wait(&db->bg_cv, &db->bg_mu);
			continue;
		}
		struct timespec ts = {.tv_sec = (time_t)(wake / 1000000000u),
				      .tv_nsec = (long)(wake % 1000000000u)};
		pthread_cond_timedwait(&db->bg_cv, &db->bg_mu, &ts);
		if (db->stopping)
			break;
		now = bc_now_ns();
		pthread_mutex_unlock(&db->bg_mu);
		if (db->opt.sync == BC_SYNC_INTERVAL && now >= next_sync) {
			bc_sync_all(db);
			next_sync = now + (uint64_t)db->opt.sync_interval_ms * 1000000u;
		}
		if (!db->opt.merge_disable_auto && now >= next_merge) {
			int rc = bc_merge_run(db, false);
			if (rc && rc != -EBUSY && rc != -ENOENT)
				bc_log(db, BC_LOG_WARN, "%s: automatic merge: %s", db->dir,
				       bc_strerror(rc));
			next_merge = bc_now_ns() + (uint64_t)db->opt.merge_check_ms * 1000000u;
		}
		pthread_mutex_lock(&db->bg_mu);
	}
	pthread_mutex_unlock(&db->bg_mu);
	return NULL;
}

/* ---- open and close ---- */

static int check_options(struct bc_db *db, const struct bc_options *in)
{
	if (in)
		db->opt = *in;
	struct bc_options *o = &db->opt;
	if (o->sync > BC_SYNC_INTERVAL)
		return -EINVAL;
	if (!o->sync_interval_ms)
		o->sync_interval_ms = DEFAULT_SYNC_MS;
	if (!o->max_file_size)
		o->max_file_size = DEFAULT_MAX_FILE;
	if (o->max_file_size > BC_MAX_FILE_SIZE || o->max_file_size < 4096) {
		bc_log(db, BC_LOG_ERROR, "max_file_size %llu is outside [4096, %llu]",
		       (unsigned long long)o->max_file_size, (unsigned long long)BC_MAX_FILE_SIZE);
		return -EINVAL;
	}
	if (!o->merge_check_ms)
		o->merge_check_ms = DEFAULT_MERGE_CHECK_MS;
	if (!o->merge_frag_percent)
		o->merge_frag_percent = DEFAULT_FRAG_PERCENT;
	if (o->merge_frag_percent > 100)
		return -EINVAL;
	if (!o->merge_dead_bytes)
		o->merge_dead_bytes = DEFAULT_DEAD_BYTES;
	if (!o->merge_small_file)
		o->merge_small_file = DEFAULT_SMALL_FILE;
	if (o->read_only)
		o->merge_disable_auto = true;
	return 0;
}

static int take_lock(struct bc_db *db)
{
	int fd = bc_io_openat(db->io, db->dirfd, BC_LOCK_NAME, O_RDWR | O_CREAT, 0644);
	if (fd < 0) {
		bc_log(db, BC_LOG_ERROR, "%s/%s: %s", db->dir, BC_LOCK_NAME, strerror(-fd));
		return fd;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int rc = errno == EWOULDBLOCK ? -EWOULDBLOCK : -errno;
		char buf[32] = "";
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = 0;
		long pid = strtol(buf, NULL, 10);
		if (rc == -EWOULDBLOCK)
			bc_log(db, BC_LOG_ERROR, "%s: locked by pid %ld", db->dir, pid);
		else
			bc_log(db, BC_LOG_ERROR, "%s/%s: flock: %s", db->dir, BC_LOCK_NAME,
			       strerror(-rc));
		close(fd);
		return rc;
	}
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	bc_io_ftruncate(db->io, fd, 0);
	bc_io_pwrite_full(db->io, fd, buf, (size_t)len, 0);
	db->lockfd = fd;
	return 0;
}

int bc_open_io(const char *dir, const struct bc_options *opts, const struct bc_io *io,
	       struct bc_db **out)
{
	*out = NULL;
	if (!dir || !*dir)
		return -EINVAL;
	struct bc_db *db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	db->io = io ? io : &bc_io_posix;
	db->dirfd = -1;
	db->lockfd = -1;
	db->next_object = 1;
	db->active = UINT32_MAX;
	pthread_mutex_init(&db->wlock, NULL);
	pthread_rwlock_init(&db->kd_lock, NULL);
	pthread_mutex_init(&db->sync_mu, NULL);
	pthread_cond_init(&db->sync_cv, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&db->lead_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&db->retire_mu, NULL);
	pthread_mutex_init(&db->bg_mu, NULL);
	pthread_cond_init(&db->bg_cv, NULL);
	pthread_mutex_init(&db->merge_mu, NULL);
	pthread_cond_init(&db->merge_cv, NULL);
	int rc = check_options(db, opts);
	if (rc)
		goto out_free;
	db->dir = strdup(dir);
	if (!db->dir) {
		rc = -ENOMEM;
		goto out_free;
	}
	if (!db->opt.read_only && mkdir(dir, 0755) < 0 && errno != EEXIST) {
		rc = -errno;
		bc_log(db, BC_LOG_ERROR, "%s: mkdir: %s", dir, strerror(errno));
		goto out_free;
	}
	db->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (db->dirfd < 0) {
		rc = -errno;
		bc_log(db, BC_LOG_ERROR, "%s: %s", dir, strerror(errno));
		goto out_free;
	}
	if (!db->opt.read_only) {
		rc = take_lock(db);
		if (rc)
			goto out_free;
	}
	rc = bc_keydir_new(&db->kd);
	if (!rc)
		rc = bc_objtab_new(&db->objs);
	if (rc)
		goto out_free;
	rc = bc_recover(db);
	if (rc)
		goto out_free;
	if (!db->opt.read_only &&
	    (db->opt.sync == BC_SYNC_INTERVAL || !db->opt.merge_disable_auto)) {
		if (pthread_create(&db->bg, NULL, bg_main, db) == 0)
			db->bg_started = true;
		else
			bc_log(db, BC_LOG_WARN, "%s: no background thread: %s", dir,
			       strerror(errno));
	}
	if (!db->opt.read_only && db->opt.sync != BC_SYNC_ALWAYS) {
		/* The bytes of the continued active file were handed to writeback by the
		 * process that wrote them, or the kernel's flusher has them. */
		db->wb_from = db->files[db->active]->size / WRITEBACK_STEP * WRITEBACK_STEP;
		bc_ahead_start(db);
	}
	db->opened = true;
	*out = db;
	return 0;

out_free:
	bc_close(db);
	return rc;
}

int bc_open(const char *dir, const struct bc_options *opts, struct bc_db **out)
{
	return bc_open_io(dir, opts, NULL, out);
}

int bc_close(struct bc_db *db)
{
	if (!db)
		return 0;
	int rc = 0;
	if (db->bg_started) {
		pthread_mutex_lock(&db->bg_mu);
		db->stopping = true;
		pthread_cond_broadcast(&db->bg_cv);
		pthread_mutex_unlock(&db->bg_mu);
		pthread_join(db->bg, NULL);
	}
	bc_ahead_stop(db);
	rc = bc_retire_wait(db);
	/* A hint is written only for a store that opened: after a failed open the active
	 * file's hint writer has not seen every record, and a hint lacking some would hide
	 * them at the next open. */
	if (db->opened && db->files && !db->opt.read_only && db->active != UINT32_MAX) {
		pthread_mutex_lock(&db->wlock);
		if (!db->write_error) {
			fill_cut(db, db->files[db->active]);
			rc = bc_io_fdatasync(db->io, db->files[db->active]->fd);
			if (!rc)
				rc = sync_dir(db);
			if (!rc)
				hint_finish_active(db);
		}
		pthread_mutex_unlock(&db->wlock);
	}
	bc_hint_writer_abort(db->active_hint);
	for (uint32_t i = 0; i < db->nslots; i++)
		if (db->files[i])
			bc_file_put(db, db->files[i]);
	free(db->files);
	bc_keydir_free(db->kd);
	bc_objtab_free(db->objs);
	if (db->lockfd >= 0) {
		bc_io_ftruncate(db->io, db->lockfd, 0);
		close(db->lockfd); /* releases the flock */
	}
	if (db->dirfd >= 0)
		close(db->dirfd);
	pthread_mutex_destroy(&db->wlock);
	pthread_rwlock_destroy(&db->kd_lock);
	pthread_mutex_destroy(&db->sync_mu);
	pthread_cond_destroy(&db->sync_cv);
	pthread_cond_destroy(&db->lead_cv);
	pthread_mutex_destroy(&db->retire_mu);
	pthread_mutex_destroy(&db->bg_mu);
	pthread_cond_destroy(&db->bg_cv);
	pthread_mutex_destroy(&db->merge_mu);
	pthread_cond_destroy(&db->merge_cv);
	free(db->dir);
	free(db);
	return rc;
}

int bc_active_hint_open(struct bc_db *db)
{
	return hint_open_for(db, bc_active_file(db));
}
