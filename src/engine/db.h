/* SPDX-License-Identifier: MIT */
/*
 * The engine's internal state shared by db.c (open, close, files, rotation, sync),
 * recover.c (replay at open), write.c, read.c, merge.c and stats.c. Locking:
 *
 *   wlock   serializes writers (append to the active file) and merges' installs;
 *   kd_lock (rwlock) guards keydir, object table, file table and byte accounting:
 *           readers share it while they copy a location, writers take it to publish;
 *   sync_mu guards the group-commit state.
 *
 * Lock order: wlock, then kd_lock, then sync_mu. No lock is held across a read of a value.
 */
#ifndef BC_ENGINE_DB_H
#define BC_ENGINE_DB_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <bitcask/bitcask.h>

#include "format.h"
#include "hint.h"
#include "io.h"
#include "keydir.h"
#include "record.h"

/* One data file. Lives in db->files[slot]; bc_loc.file is the slot. */
struct bc_file {
	uint64_t id;
	int fd;
	uint64_t size; /* bytes of valid records (the append position for the active file) */
	uint64_t live; /* bytes of records the keydir or object table points at */
	atomic_bool has_hint; /* set under wlock or by merge, read by stats */
	bool retired; /* merged away: closed when the last reader lets go */
	bool damaged; /* holds damage that may have been a chunk (recover.c): merge keeps it,
			 and the file after it, whose header bounds the objects at risk */
	atomic_uint refs; /* the table's own reference plus readers in flight */
	/* A read-only shared mapping of [0, map_len) (NULL: none); reads inside it copy from
	 * it instead of calling pread. Set before any reader can reach the file (at creation,
	 * or at the end of recovery), never changed. */
	const uint8_t *map;
	uint64_t map_len;
	/* The same mapping when it is writable (the active file without BC_SYNC_ALWAYS, on a
	 * filesystem where that is safe, io.h), else NULL: small appends are copied into it
	 * (db.c, "Room ahead"). */
	uint8_t *wmap;
};

/* A record's effect: what replay, hints and the write path apply to the keydir. */
typedef struct bc_hint_entry bc_effect;

struct bc_db {
	char *dir;
	int dirfd;
	int lockfd;
	struct bc_options opt;
	const struct bc_io *io;

	pthread_mutex_t wlock;
	pthread_rwlock_t kd_lock;
	atomic_uint kd_waiting; /* foreground threads that found kd_lock taken and wait */
	struct bc_keydir *kd;
	struct bc_objtab *objs;
	struct bc_file **files; /* by slot; NULL = free slot */
	uint32_t nslots;
	uint32_t active; /* slot of the active file (read-write opens) */
	uint64_t next_object;

	struct bc_hint_writer *active_hint;
	bool opened; /* bc_open finished: close may write the active file's hint */
	/* Sticky: once a write or sync fails half-way, writes stop. Set under wlock or
	 * sync_mu, read under either or none. */
	_Atomic int write_error;
	/* The active file is filled ahead of its appends (grown, space reserved, or zeros
	 * written) up to fill_end, and reserved up to reserve_end (wlock; see "Room ahead" in
	 * db.c); fill_failed: filling failed, stop trying and copying into the mapping until
	 * the next file. */
	uint64_t fill_end;
	uint64_t reserve_end;
	bool fill_failed;
	/* Where the active file's bytes not yet handed to write-behind start (wlock). */
	uint64_t wb_from;
	/* The append helper (ahead.c): faults in or prepares the room ahead, writes behind.
	 * NULL: none (read-only, BC_SYNC_ALWAYS, or no thread); then no room is prepared, the
	 * writer faults pages in as it copies and starts the write-behind itself. */
	struct bc_ahead *ahead;

	/* Group commit (sync_mu). */
	pthread_mutex_t sync_mu;
	pthread_cond_t sync_cv;
	pthread_cond_t lead_cv; /* a leader waiting for its group to gather (CLOCK_MONOTONIC) */
	uint64_t appended; /* total bytes appended since open, all files */
	uint64_t synced; /* appended bytes known durable */
	bool syncing;
	uint64_t arrived; /* writers that have entered bc_commit_wait since open */
	uint64_t arrived_synced; /* arrived when the last sync started: all covered by it */
	uint64_t last_group; /* writers the last sync covered */
	uint64_t last_sync_ns; /* how long the last fdatasync took */
	atomic_bool dir_dirty; /* a file was created and the directory not yet fsynced */

	/*
	 * The file the last rotation left, when writes are not synced one by one: its
	 * fdatasync and then its hint run in a thread of their own (retire_main in db.c), so
	 * the writer that rotated goes on in the new file. bc_retire_wait joins it.
	 */
	pthread_mutex_t retire_mu;
	pthread_t retire_th;
	struct bc_file *retire_f; /* a reference the thread holds; NULL: no thread */
	struct bc_hint_writer *retire_hint; /* the file's hint, finished after the sync */
	int retire_rc;

	/* Background thread: interval sync and automatic merge. */
	pthread_t bg;
	bool bg_started;
	pthread_mutex_t bg_mu;
	pthread_cond_t bg_cv;
	bool stopping;

	/* Merge progress (merge_mu guards running). */
	pthread_mutex_t merge_mu;
	pthread_cond_t merge_cv; /* signalled when merge_running drops */
	bool merge_running;
	atomic_uint_fast64_t merge_total, merge_done, merges, merge_reclaimed;

	/*
	 * Objects with an id below this may have lost a chunk in damaged bytes that recovery
	 * could not attribute (recover.c): their holes read as -EBADMSG, not zeros. 0: none.
	 * Set during replay only (UINT64_MAX there means "the counter at its end").
	 */
	uint64_t suspect_below;

	/* Counters. */
	atomic_uint_fast64_t n_put, n_get, n_del, n_batch, n_sync, n_read_err;
	uint64_t torn_bytes, damaged_records, damaged_bytes, hint_fallbacks;
};

/* Log a formatted line through the options' callback (or stderr). */
void bc_log(struct bc_db *db, enum bc_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

uint64_t bc_now_ns(void);
uint32_t bc_expire32(uint64_t expire_s);
bool bc_expired(uint32_t expire_s, uint64_t now_s);
/* bc_expired as of now; reads the clock only for an entry that has an expiry. */
static inline bool bc_expired_now(uint32_t expire_s)
{
	return expire_s && bc_expired(expire_s, bc_now_ns() / 1000000000u);
}

void bc_file_name(char out[BC_FILE_NAME_MAX], uint64_t id, const char *suffix);

/*
 * Map f for reading (unless mmap_disable is set, the io layer cannot, or the mapping
 * fails, which leaves reads to pread): len bytes, which may run past the end of a file
 * still being appended to; only bytes below its size are ever read. With writable (the
 * active file), for appends as well when the io layer allows it (f->wmap).
 */
void bc_file_map(struct bc_db *db, struct bc_file *f, uint64_t len, bool writable);
/* Unmap, close and free a file no one else references. */
void bc_file_free(struct bc_db *db, struct bc_file *f);
/* Add a file to the table (kd_lock held for writing); returns its slot or -ENOMEM. */
int bc_files_add(struct bc_db *db, struct bc_file *f);
/* Drop a reference taken under kd_lock; closes and frees a retired file at zero. */
void bc_file_put(struct bc_db *db, struct bc_file *f);
/* Take a reference on files[slot] (kd_lock held). */
struct bc_file *bc_file_get(struct bc_db *db, uint32_t slot);
/* Mark retired, remove from the table and drop the table's reference (kd_lock held for
 * writing). */
void bc_files_retire(struct bc_db *db, uint32_t slot);

/* Create a new, empty data file with the given id (header written). */
int bc_file_create(struct bc_db *db, uint64_t id, bool tmp, struct bc_file **out);
/* The active file (takes kd_lock briefly; the file itself stays valid while it is
 * active, and its retirement needs wlock). */
struct bc_file *bc_active_file(struct bc_db *db);
/* The object id counter, read under kd_lock. */
uint64_t bc_next_object(struct bc_db *db);
/* Largest id of any file in the table (kd_lock held, or single-threaded). */
uint64_t bc_files_max_id(struct bc_db *db);

/*
 * Apply one record's effect at (slot, e->offset) to keydir, objects and accounting
 * (kd_lock held for writing). Objects whose last link went away are collected in *dropped
 * (caller frees them with bc_objects_release when the whole batch is applied).
 */
struct bc_dropped {
	struct bc_object **v;
	size_t n, cap;
};
int bc_apply(struct bc_db *db, uint32_t slot, const bc_effect *e, struct bc_dropped *dropped);
/*
 * bc_apply in two halves that commute (apply.c says why): the object side of a LINK, CHUNK
 * or TRUNC (*obj receives a LINK's object, else NULL), and the key side of a PUT, DELETE or
 * LINK (obj: what bc_apply_object gave for it). Same returns as bc_apply.
 */
int bc_apply_object(struct bc_db *db, uint32_t slot, const bc_effect *e, struct bc_object **obj);
int bc_apply_key(struct bc_db *db, uint32_t slot, const bc_effect *e, struct bc_object *obj,
		 struct bc_dropped *dropped);
/*
 * The key side of a PUT or LINK whose key is greater than every key in the keydir, through
 * bc_keydir_append: 0; -ERANGE when it is not (nothing changed); -ENOMEM.
 */
int bc_apply_append(struct bc_db *db, uint32_t slot, const bc_effect *e, struct bc_object *obj);

/*
 * Applying many effects at once (bulk.c), as bc_apply would one by one in the order added
 * but several times faster: the object sides at once, the key sides sorted by key at
 * finish, so the keydir is built mostly by appends. For replay only (no dropped list:
 * unlinked objects wait for the sweep). Anything else that changes the state in between
 * (a scan) must come after a finish.
 */
struct bc_bulk_bucket;
struct bc_bulk_pend;
struct bc_bulk {
	struct bc_db *db;
	struct bc_bulk_bucket *bk; /* key sides waiting, packed, by one byte of their key */
	size_t q; /* that byte: every entry shares composite key bytes [0, q) */
	const uint8_t *first; /* the first entry */
	size_t used; /* bytes waiting */
	size_t n; /* entries waiting */
	struct bc_bulk_pend *pend; /* staged: object sides waiting for the hint's verdict */
	size_t npend, cpend;
};
void bc_bulk_init(struct bc_bulk *b, struct bc_db *db);
/* Apply the object side of e (at slot) now, keep its key side (copies). As bc_apply. */
int bc_bulk_add(struct bc_bulk *b, uint32_t slot, const bc_effect *e);
/* Apply every key side kept: 0 or -ENOMEM. */
int bc_bulk_finish(struct bc_bulk *b);
/* Free the buffer (key sides not finished are lost). */
void bc_bulk_release(struct bc_bulk *b);
/*
 * Staging the entries of a hint not yet verified (bc_hint_stream) in a second bulk st:
 * stage copies e and applies nothing; commit applies the object sides staged, in order,
 * and moves the key sides to the end of b (0 or -ENOMEM; st is empty after either);
 * drop forgets them. st is initialised and released as any bulk.
 */
int bc_bulk_stage(struct bc_bulk *st, uint32_t slot, const bc_effect *e);
int bc_bulk_commit(struct bc_bulk *b, struct bc_bulk *st);
void bc_bulk_drop(struct bc_bulk *st);
void bc_objects_release(struct bc_db *db, struct bc_dropped *d);
/* Account an object's chunks as dead and remove it (kd_lock held for writing). */
void bc_object_drop(struct bc_db *db, struct bc_object *o);
uint32_t bc_effect_record_size(const bc_effect *e);

/*
 * kd_lock is held for a keydir lookup or a short publish, a microsecond or two, while a
 * thread that sleeps on it takes tens to hundreds of microseconds to wake on a busy
 * machine. Worse, glibc hands a released rwlock to the sleeper, so until the sleeper runs
 * nobody else can take it: a merge beside one writer fell into a convoy where each record
 * paid a sleep and a wake (a 1M-key merge took 96 to 248 s instead of 2, and puts waited
 * 120 us at p99). So foreground threads try the lock for about 15 us before they sleep,
 * and the merge (bc_kd_lock_bg) rarely sleeps on it: it backs off and yields, so
 * the lock is never handed to a merge thread that is not running.
 *
 * Spinning alone is not fair either: a merge that unlocks and locks again at once keeps
 * the lock's cache line and wins nearly every race, so a reader spun through whole
 * publishes and slept (get p99 went 1.7 -> 12 us during a merge). A foreground thread
 * that finds the lock taken counts itself in kd_waiting, and the merge lets it go first
 * before each take, for up to BC_KD_SPIN pauses, so no steady stream of waiters stalls
 * a merge.
 */
#define BC_KD_SPIN 1024
#define BC_KD_SPIN_BG 64
#define BC_KD_YIELDS 1000

static inline void bc_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* Try kd_lock up to spin times; returns whether it is held now. */
static inline bool bc_kd_spin(struct bc_db *db, bool write, int spin)
{
	for (int i = 0; i < spin; i++) {
		int rc = write ? pthread_rwlock_trywrlock(&db->kd_lock)
			       : pthread_rwlock_tryrdlock(&db->kd_lock);
		if (!rc)
			return true;
		bc_cpu_relax();
	}
	return false;
}

static inline void bc_kd_block(struct bc_db *db, bool write)
{
	if (write)
		pthread_rwlock_wrlock(&db->kd_lock);
	else
		pthread_rwlock_rdlock(&db->kd_lock);
}

static inline void bc_kd_lock(struct bc_db *db, bool write)
{
	if (bc_kd_spin(db, write, 1))
		return;
	atomic_fetch_add(&db->kd_waiting, 1);
	if (!bc_kd_spin(db, write, BC_KD_SPIN))
		bc_kd_block(db, write);
	atomic_fetch_sub(&db->kd_waiting, 1);
}

/* The merge's form: let waiting foreground threads go first, back off to the scheduler
 * instead of queueing on the lock, and queue only when the lock has stayed busy through
 * BC_KD_YIELDS rounds. */
static inline void bc_kd_lock_bg(struct bc_db *db, bool write)
{
	for (int round = 0; round < BC_KD_YIELDS; round++) {
		for (int i = 0; i < BC_KD_SPIN && atomic_load(&db->kd_waiting); i++)
			bc_cpu_relax();
		if (bc_kd_spin(db, write, BC_KD_SPIN_BG))
			return;
		sched_yield();
	}
	bc_kd_block(db, write);
}

static inline void bc_kd_rdlock(struct bc_db *db)
{
	bc_kd_lock(db, false);
}

static inline void bc_kd_wrlock(struct bc_db *db)
{
	bc_kd_lock(db, true);
}

static inline void bc_kd_unlock(struct bc_db *db)
{
	pthread_rwlock_unlock(&db->kd_lock);
}

/* Inside a merge's hold of kd_lock: when a foreground thread waits for it, release it and
 * take it again behind that thread. */
static inline void bc_kd_yield_bg(struct bc_db *db, bool write)
{
	if (!atomic_load_explicit(&db->kd_waiting, memory_order_relaxed))
		return;
	bc_kd_unlock(db);
	bc_kd_lock_bg(db, write);
}

/* May a hole of o be a chunk lost to damage (so it must read as -EBADMSG, not zeros)? */
static inline bool bc_object_suspect(const struct bc_db *db, const struct bc_object *o)
{
	return o->id < db->suspect_below;
}

/* After replay: drop unlinked objects and chunks past each object's end (apply.c). */
void bc_apply_sweep(struct bc_db *db);
/* The data files (sorted ids) and leftover .tmp names of a store directory. */
struct bc_found {
	uint64_t *ids;
	size_t n, cap;
	char **tmps;
	size_t ntmp, tmpcap;
};
int bc_dir_list(const struct bc_io *io, int dirfd, struct bc_found *out);
void bc_found_release(struct bc_found *f);
/* Replay every file (recover.c). */
int bc_recover(struct bc_db *db);
/* Open the hint writer of the active file (db.c). */
int bc_active_hint_open(struct bc_db *db);
/* bc_open with an explicit I/O layer (tests inject faults through it). */
int bc_open_io(const char *dir, const struct bc_options *opts, const struct bc_io *io,
	       struct bc_db **out);

/*
 * Append the len bytes of iov[0..niov) at the end of the active file (wlock held),
 * rotating first when they would push it past max_file_size; iov may be advanced. *slot
 * and *offset receive where they went, *mark the position to wait on for durability. The
 * caller sets the file's size to offset + len when it publishes the records (under
 * kd_lock, with their keydir entries).
 */
int bc_append(struct bc_db *db, struct iovec *iov, int niov, size_t len, uint32_t *slot,
	      uint64_t *offset, uint64_t *mark);
/* Wait until everything appended so far up to mark is durable per the sync policy. */
int bc_commit_wait(struct bc_db *db, uint64_t mark);
/*
 * Rotate the active file now (wlock held). With BC_SYNC_ALWAYS the old file is synced
 * and its hint written before it returns; otherwise a thread does both (bc_retire_wait).
 */
int bc_rotate(struct bc_db *db);
/*
 * Wait for the file the last rotation left to be synced and its hint written. Returns 0,
 * or the sync's error, which also stops writes (write_error). Any lock but retire_mu may
 * be held.
 */
int bc_retire_wait(struct bc_db *db);
/* fdatasync the active file and everything appended (any policy). */
int bc_sync_all(struct bc_db *db);

/*
 * Read and verify the whole record at loc in f (a reference the caller took under kd_lock
 * together with loc) into buf (loc->size bytes), decoded into *rec (pointing into buf).
 * -EBADMSG on a bad CRC (logged, counted).
 */
int bc_read_record(struct bc_db *db, struct bc_file *f, const struct bc_loc *loc, uint8_t *buf,
		   struct bc_record *rec);
/*
 * Read chunk c of f (a reference taken under kd_lock with c) and check it: its c->dlen data
 * bytes go straight into dst, the record's head to a local buffer (preadv), so the data is
 * copied once. -EBADMSG (logged, counted) if the record there is not a CHUNK record of
 * BC_CHUNK_HEAD + c->dlen bytes or fails its CRC.
 */
int bc_chunk_load(struct bc_db *db, struct bc_file *f, const struct bc_chunk *c, uint8_t *dst);
/*
 * Look up a live key and take a reference on its record's file in one critical section,
 * so the location cannot go stale. -ENOENT if absent or expired; release with bc_file_put.
 */
int bc_pin_key(struct bc_db *db, unsigned space, const void *key, size_t klen, struct bc_kval *v,
	       struct bc_file **f);

/* Merge (merge.c): select by the triggers (full: every immutable file with dead bytes)
 * and run. */
int bc_merge_run(struct bc_db *db, bool full);

#endif /* BC_ENGINE_DB_H */
