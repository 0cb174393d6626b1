/* SPDX-License-Identifier: MIT */
/*
 * libbitcask: an embeddable, persistent key-value engine after Riak's Bitcask.
 *
 * Writes append typed, CRC-checked records to data files in one directory; an in-memory,
 * ordered keydir maps each key to the record that holds its newest value; hint files let
 * open rebuild the keydir without reading values; merge rewrites fragmented files in the
 * background. Values larger than 64 KiB are stored as chunked objects, so a value may be far
 * larger than RAM and a partial write costs in proportion to the bytes written.
 * The on-disk format is specified in docs/FORMAT.md; the design in docs/DESIGN.md.
 *
 * Conventions: every function that can fail returns 0 or a negative errno:
 *   -ENOENT        key missing (or expired)
 *   -EBADMSG       a record failed its CRC or is malformed, or a read met a hole that may
 *                  be a chunk lost to damage (corruption)
 *   -ENAMETOOLONG  key longer than BC_MAX_KEY
 *   -EFBIG         value, metadata or offset beyond the limits below
 *   -EROFS         the store was opened read-only
 *   -EWOULDBLOCK   the store is locked by another read-write opener
 *   -EINVAL        bad argument
 *   anything else  an OS error passed through (-EIO, -ENOSPC, ...)
 * bc_strerror() turns a code into a message; details (file, offset) go to the log callback.
 *
 * Keys are arbitrary bytes (1..BC_MAX_KEY; the empty key is -EINVAL) in one of 256
 * independent keyspaces. Space BC_SPACE_USER holds an application's keys; the others are
 * for an embedder's own records (bitcaskfs keeps directories there) and are never shown
 * by the CLI's list. Every record may carry up to BC_MAX_META bytes of opaque metadata
 * beside its value (bitcaskfs keeps mode, owner and times there).
 *
 * Thread safety: a struct bc_db may be used from any number of threads at once. Readers
 * never wait on the disk for each other; writers are serialized. Iterators, batches and
 * streams belong to one thread at a time.
 */
#ifndef BITCASK_BITCASK_H
#define BITCASK_BITCASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BC_MAX_KEY 65535u /* bytes in a key */
#define BC_MAX_META 65535u /* bytes of metadata on one key */
#define BC_CHUNK_SIZE 65536u /* values above this are chunked objects */
#define BC_MAX_VALUE (UINT64_C(1) << 50) /* bytes in one value (1 PiB) */
#define BC_SPACE_USER 0u

struct bc_db;
struct bc_batch;
struct bc_iter;
struct bc_stream;

/* When acknowledged writes reach stable storage. */
enum bc_sync_mode {
	BC_SYNC_NONE = 0, /* left to the OS; bc_sync() and bc_close() flush */
	BC_SYNC_ALWAYS, /* fdatasync before a write returns (concurrent writers share one) */
	BC_SYNC_INTERVAL, /* a background thread syncs every sync_interval_ms */
};

enum bc_log_level { BC_LOG_ERROR = 0, BC_LOG_WARN, BC_LOG_INFO, BC_LOG_DEBUG };

/* Receives one line without a trailing newline; may be called from any thread. */
typedef void (*bc_log_fn)(void *ctx, enum bc_log_level level, const char *msg);

/*
 * Options for bc_open. Zero-initialise and set what you need: every zero means the
 * documented default.
 */
struct bc_options {
	enum bc_sync_mode sync;
	uint32_t sync_interval_ms; /* BC_SYNC_INTERVAL period; default 1000 */
	uint64_t max_file_size; /* rotate the active file past this; default 256 MiB,
				   at most 2 GiB */
	bool read_only; /* no writes, no lock, no recovery truncation */
	uint64_t default_ttl_s; /* expiry for bc_put without one; 0 = never */

	/* Merge. A file is a merge candidate when one trigger holds; a merge starts by itself
	 * (checked every merge_check_ms) when auto_merge is not disabled. */
	bool merge_disable_auto;
	uint32_t merge_check_ms; /* default 60000 */
	uint32_t merge_frag_percent; /* dead share of a file that triggers; default 50 */
	uint64_t merge_dead_bytes; /* dead bytes in a file that trigger; default 128 MiB */
	uint64_t merge_small_file; /* files smaller than this are merged together when
				      there are at least two; default 8 MiB */

	/* Reads copy from a shared read-only mapping of each data file (no system call per
	 * read). Set this to read with pread instead, where a failing disk should give EIO
	 * and not SIGBUS (see docs/DESIGN.md, "Reading and concurrency"). */
	bool mmap_disable;

	bc_log_fn log; /* NULL: errors and warnings go to stderr */
	void *log_ctx;
};

/* What bc_stat reports about one key. */
struct bc_stat {
	uint64_t size; /* value length in bytes */
	uint64_t mtime_ns; /* when the key's newest record was written, ns since the epoch */
	uint64_t expire_s; /* unix seconds after which the key is gone; 0 = never */
	uint32_t meta_len; /* bytes of metadata */
	bool chunked; /* stored as a chunked object */
};

/* Per data file, in bc_stats. */
struct bc_file_stats {
	uint64_t id;
	uint64_t bytes; /* file length */
	uint64_t live_bytes; /* bytes of records the keydir still needs */
	bool active; /* the file writes go to */
	bool has_hint;
};

enum bc_merge_state { BC_MERGE_IDLE = 0, BC_MERGE_RUNNING };

struct bc_stats {
	uint64_t keys; /* live keys, all spaces */
	uint64_t objects; /* live chunked values */
	uint64_t total_bytes; /* sum of data file lengths */
	uint64_t live_bytes;
	uint64_t dead_bytes;
	uint32_t fragmentation_percent; /* dead / total */
	uint64_t keydir_bytes; /* memory held by the keydir and object tables */

	enum bc_merge_state merge_state;
	uint64_t merge_bytes_total; /* of the merge running now */
	uint64_t merge_bytes_done;
	uint64_t merges_done;
	uint64_t merge_reclaimed_bytes;

	uint64_t recovered_torn_bytes; /* truncated from the active file's tail at open */
	uint64_t recovered_damaged_records; /* skipped as corrupt at open */
	uint64_t recovered_damaged_bytes;
	uint64_t hint_fallbacks; /* hint files that failed and were replaced by a scan */
	uint64_t read_errors; /* reads that found a bad CRC since open */

	/* Calls since open: puts counts every write to one key (bc_put, bc_put_ex, bc_write,
	 * bc_write_meta, bc_truncate, bc_set_meta, a stream's commit). */
	uint64_t puts, gets, deletes, batches, syncs;

	size_t nfiles;
	struct bc_file_stats *files; /* caller owns, release with bc_stats_release */
};

/* Returns a static message for a code returned by this library (or any errno). */
const char *bc_strerror(int rc);

/*
 * Open (creating if missing, unless read_only) the store in directory dir.
 * opts may be NULL for defaults. On success *out owns the store; release with bc_close.
 * Returns -EWOULDBLOCK if another process has it open read-write (the log says its pid),
 * -ENOENT if read_only and dir is missing, -EINVAL for impossible options.
 * Open never fails because of damaged records: it skips and counts them (see bc_stats).
 */
int bc_open(const char *dir, const struct bc_options *opts, struct bc_db **out);

/*
 * Stop background work, flush and fdatasync, write the active file's hint and release
 * the lock. Accepts NULL. Returns the first error met while flushing; the store is closed
 * either way.
 */
int bc_close(struct bc_db *db);

/*
 * Flush and fdatasync everything written so far, in every file: without BC_SYNC_ALWAYS a
 * data file that filled up is synced by a thread of its own while writes go on in the next
 * one, and bc_sync waits for it. Returns an error from any of those syncs; after one the
 * store accepts no more writes (reopen it).
 */
int bc_sync(struct bc_db *db);

/*
 * Store value under key, replacing any old value and metadata; expiry from default_ttl_s.
 * val must not change during the call: a large value is checksummed in place and then
 * written from there, and bytes changed in between would be stored under a CRC that no
 * longer matches them.
 */
int bc_put(struct bc_db *db, unsigned space, const void *key, size_t klen, const void *val,
	   size_t vlen);

/*
 * bc_put with metadata (meta may be NULL when mlen is 0) and an explicit expiry:
 * expire_s is unix seconds, 0 = never (the default TTL does not apply).
 */
int bc_put_ex(struct bc_db *db, unsigned space, const void *key, size_t klen, const void *val,
	      size_t vlen, const void *meta, size_t mlen, uint64_t expire_s);

/*
 * Get a whole value. On success *val is a malloc'd copy (caller owns, release with free;
 * never NULL, even for an empty value) and *vlen its length. Returns -EFBIG if the value
 * is larger than max_len (0 = no limit); read large values with bc_read instead.
 */
int bc_get(struct bc_db *db, unsigned space, const void *key, size_t klen, size_t max_len,
	   void **val, size_t *vlen);

/*
 * Copy up to len bytes of the value, starting at off, straight into buf; *got says how
 * many (less than len only at the end of the value; 0 at or past it).
 */
int bc_read(struct bc_db *db, unsigned space, const void *key, size_t klen, uint64_t off, void *buf,
	    size_t len, size_t *got);

/* Size, times, expiry and metadata length of a key, without reading its value. */
int bc_stat(struct bc_db *db, unsigned space, const void *key, size_t klen, struct bc_stat *st);

/*
 * Copy the key's metadata into buf (up to cap bytes); *mlen says its full length.
 * Returns -ENOENT if the key is missing.
 */
int bc_get_meta(struct bc_db *db, unsigned space, const void *key, size_t klen, void *buf,
		size_t cap, size_t *mlen);

/*
 * bc_stat and bc_get_meta in one read of the key's record (the whole record, value
 * included for an inline value, so its CRC is checked): fills *st, copies up to cap bytes
 * of metadata into buf and sets *mlen to its full length.
 */
int bc_stat_meta(struct bc_db *db, unsigned space, const void *key, size_t klen, struct bc_stat *st,
		 void *buf, size_t cap, size_t *mlen);

/* Remove key. Returns -ENOENT (and writes nothing) if it is missing. */
int bc_delete(struct bc_db *db, unsigned space, const void *key, size_t klen);

/*
 * Write len bytes at off inside the key's value, creating the key (empty, no metadata) if
 * missing and extending it if off + len is past the end (a gap reads as zeros). Costs in
 * proportion to len plus at most two chunks, whatever the value's size. Each call is
 * atomic across a crash for len <= BC_WRITE_ATOMIC; a longer one is applied in pieces of
 * that size, each whole or absent. As with bc_put, buf must not change during the call
 * (large data is checksummed in place and then written from there).
 */
#define BC_WRITE_ATOMIC (UINT64_C(8) << 20)
int bc_write(struct bc_db *db, unsigned space, const void *key, size_t klen, uint64_t off,
	     const void *buf, size_t len);

/*
 * bc_write that also replaces the key's metadata (meta may be NULL when mlen is 0), in the
 * same records: a file system's data and modification time change together.
 */
int bc_write_meta(struct bc_db *db, unsigned space, const void *key, size_t klen, uint64_t off,
		  const void *buf, size_t len, const void *meta, size_t mlen);

/* Set the value's length, cutting or extending with zeros. -ENOENT if missing. */
int bc_truncate(struct bc_db *db, unsigned space, const void *key, size_t klen, uint64_t size);

/* Replace the key's metadata, keeping its value. -ENOENT if missing. */
int bc_set_meta(struct bc_db *db, unsigned space, const void *key, size_t klen, const void *meta,
		size_t mlen);

/*
 * Batches: a list of operations applied all-or-nothing, also across a crash, in the order
 * given (a later operation sees the effect of earlier ones). The batch copies keys and
 * values when they are added. Caller owns the batch; release with bc_batch_free (accepts
 * NULL). Adders return -ENOMEM, -EINVAL, -ENAMETOOLONG or -EFBIG; problems that depend on
 * the store (a missing key) are reported by bc_batch_commit, which then applies nothing.
 */
int bc_batch_new(struct bc_batch **out);
void bc_batch_free(struct bc_batch *b);
void bc_batch_reset(struct bc_batch *b);
int bc_batch_put(struct bc_batch *b, unsigned space, const void *key, size_t klen, const void *val,
		 size_t vlen, const void *meta, size_t mlen, uint64_t expire_s);
/* Delete; a missing key is not an error inside a batch. */
int bc_batch_delete(struct bc_batch *b, unsigned space, const void *key, size_t klen);
/* Move a key's value, metadata and expiry to another key (replacing it) without copying
 * chunked values. commit returns -ENOENT if the source is missing. */
int bc_batch_rename(struct bc_batch *b, unsigned from_space, const void *from, size_t flen,
		    unsigned to_space, const void *to, size_t tlen);
/* bc_set_meta inside a batch; commit returns -ENOENT if the key is missing. */
int bc_batch_set_meta(struct bc_batch *b, unsigned space, const void *key, size_t klen,
		      const void *meta, size_t mlen);
/* Number of operations added since new/reset. */
size_t bc_batch_count(const struct bc_batch *b);
int bc_batch_commit(struct bc_db *db, struct bc_batch *b);

/*
 * Streams: write a value of any size in pieces without holding it in memory, then make it
 * the key's value in one atomic step. Until commit nothing is visible, and a crash leaves
 * the old value. Caller owns the stream; bc_stream_commit and bc_stream_abort release it
 * (abort accepts NULL).
 */
int bc_stream_open(struct bc_db *db, unsigned space, const void *key, size_t klen,
		   struct bc_stream **out);
int bc_stream_write(struct bc_stream *s, const void *buf, size_t len);
int bc_stream_commit(struct bc_stream *s, const void *meta, size_t mlen, uint64_t expire_s);
void bc_stream_abort(struct bc_stream *s);

/*
 * Ordered iteration over the keys of one space that start with prefix (plen may be 0),
 * ascending by unsigned byte order, shorter first. The iterator sees the live keys at the
 * moment each key is reached: keys added or removed meanwhile may or may not appear, but
 * none appears twice or out of order. Each step costs O(log N) at most, amortised O(1).
 * Caller owns the iterator; release with bc_iter_free (accepts NULL).
 */
int bc_iter_new(struct bc_db *db, unsigned space, const void *prefix, size_t plen,
		struct bc_iter **out);
/* Continue from the first key >= key (it need not exist). */
int bc_iter_seek(struct bc_iter *it, const void *key, size_t klen);
/*
 * Next key: *key and *klen are valid until the next call on it. st may be NULL; when
 * given it receives size, expiry, and chunked (mtime_ns and meta_len are 0: they need a
 * read). Returns -ENOENT at the end.
 */
int bc_iter_next(struct bc_iter *it, const void **key, size_t *klen, struct bc_stat *st);
void bc_iter_free(struct bc_iter *it);

/*
 * Merge now, in the calling thread: rewrite every file a trigger selects (all immutable
 * files with dead data when full is true) and wait for it. Returns -EBUSY if a merge is
 * already running, -ENOSPC if the disk lacks room for the output (nothing is changed).
 */
int bc_merge(struct bc_db *db, bool full);

/* Fill *st. Caller releases st->files with bc_stats_release (accepts a zeroed struct). */
int bc_stats_get(struct bc_db *db, struct bc_stats *st);
void bc_stats_release(struct bc_stats *st);

/*
 * Make a point-in-time copy of the store in directory dest (created; must not exist):
 * the active file is rotated and every data and hint file is hard-linked (copied when
 * dest is on another filesystem). The copy opens as a store of its own. O(number of files).
 */
int bc_snapshot(struct bc_db *db, const char *dest);

/* One damaged spot found by bc_check. */
typedef void (*bc_check_fn)(void *ctx, const char *file, uint64_t offset, const char *reason);

/*
 * Verify every record of the store in dir (without the lock, read-only) and every hint
 * file; call report for each problem. When it finds any, it also replays the store as a
 * read-only bc_open does and reports each key whose value has holes that may be chunks lost
 * in the damage (such holes read as -EBADMSG; docs/FORMAT.md "Recovery"): the reason names
 * the key, file and offset are those of its LINK record. *problems receives the count.
 * Returns 0 when the walk finished (even with problems) or an error that stopped it.
 */
int bc_check(const char *dir, bc_check_fn report, void *ctx, uint64_t *problems);

/* One record, as bc_dump sees it. Pointers are valid during the call only. */
struct bc_dump_record {
	const char *file;
	uint64_t offset;
	const char *type; /* "put", "delete", "link", "chunk", "truncate", "batch" */
	bool in_batch;
	unsigned space;
	uint64_t timestamp_ns;
	uint64_t expire_s;
	const void *key;
	size_t klen;
	uint32_t meta_len;
	uint64_t value_len; /* put: value bytes; chunk: data bytes; link/truncate: object size;
			       batch: member count */
	uint64_t object; /* link, chunk, truncate */
	uint32_t chunk; /* chunk index */
	const char *damage; /* NULL, or why the bytes at offset are not a valid record */
};
typedef void (*bc_dump_fn)(void *ctx, const struct bc_dump_record *rec);

/* Walk every data file of dir in replay order, record by record (read-only, no lock). */
int bc_dump(const char *dir, bc_dump_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* BITCASK_BITCASK_H */
