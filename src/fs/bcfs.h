/* SPDX-License-Identifier: MIT */
/*
 * Internal interface of the bitcaskfs daemon: the mount-wide state, the inode table
 * (inode.c), open-file handles and the dirty-chunk cache (handle.c), directory listing and
 * name resolution shared by the ops (ops.c), and the control area (control.c).
 * docs/FILESYSTEM.md describes the behaviour; this header only the seams between files.
 *
 * Locking order: fs->ns (rwlock) -> inode->lock -> fs->itable_lock. Namespace changes
 * (create, unlink, rename, mkdir, rmdir, symlink) hold ns for writing; anything that writes
 * through or reads from a file's key (flush of dirty data, truncate, metadata, data reads)
 * holds it for reading, so a rename never races a write to the old key, and a read never
 * gets the bytes of the file that a rename just put under the key. Reads hold no inode
 * lock across I/O.
 *
 * Metadata cache: each inode keeps the decoded metadata and engine size of its key as the
 * daemon last read or wrote them (inode.c, "meta" below), so lookup and getattr of a known
 * inode do no engine I/O. The daemon is the store's only writer while mounted, so the cache
 * is exact as long as every path that writes a key's record updates it under inode->lock;
 * a path that cannot say what it wrote (an engine error) invalidates it instead.
 *
 * Deferred create: a file made by create() has no record until its first flush (close,
 * fsync, read, a namespace change that needs the record, unmount); meanwhile it is
 * "pending": resolve() finds it in the inode table and its attributes come from the cache.
 */
#ifndef BCFS_H
#define BCFS_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include <bitcask/bitcask.h>

#include "core_ctl.h"
#include "core_meta.h"

#define BCFS_SPACE_FS 1u /* explicit directories ("d" + dir key) and orphans ("o" + id) */
#define BCFS_INO_CTL_DIR 2 /* /.bitcask */
#define BCFS_INO_CTL_STATS 3 /* /.bitcask/stats */
#define BCFS_INO_CTL_JSON 4 /* /.bitcask/stats.json */
#define BCFS_INO_CTL_CMD 5 /* /.bitcask/control */
#define BCFS_INO_FIRST 16 /* first number handed to keys */
#define BCFS_DIRTY_CHUNK (128u << 10) /* bytes one inode buffers before writing through */

enum bcfs_kind { BCFS_FILE = 1, BCFS_DIR };

struct bcfs_inode {
	uint64_t ino;
	uint64_t nlookup; /* kernel references; under itable_lock */
	int nopen; /* open handles; under itable_lock */
	enum bcfs_kind kind;
	bool orphan; /* unlinked while open: key is "o"+id in BCFS_SPACE_FS */
	bool gone; /* replaced or removed: no longer in the key hash */
	bool hashed;

	pthread_mutex_t lock; /* key, dirty buffer, times below */
	unsigned space;
	char *key; /* file: its key; dir: its key prefix ("" root, "a/b/", or a piece) */
	size_t klen;

	/* Dirty-chunk cache: bytes [doff, doff+dlen) not yet written to the engine. */
	uint8_t *dbuf;
	uint64_t doff;
	size_t dlen;
	bool mtime_dirty; /* data changed since the metadata was last written */
	int64_t mtime_ns;

	/* Metadata cache (under lock). Valid while have_meta: meta (mode, owner, times; its
	 * xattrs only when meta_full, else none) and size, the engine's value length without
	 * the dirty buffer. meta_gen counts changes, so a load that raced one is not cached. */
	bool have_meta, meta_full;
	struct bcfs_meta meta;
	uint64_t size;
	uint64_t meta_gen;
	/* No record yet (deferred create); under lock and itable_lock both, so either one
	 * is enough to read it. The meta cache is valid and full while pending. */
	bool pending;
	/* have_meta, readable without the lock: while the inode is in the key hash, its key
	 * exists (or it is pending), so a lookup needs no engine call to know that. */
	atomic_bool known;

	/* The attributes last reported (under lock): a replaced or removed inode that a
	 * process still holds keeps answering stat with them (link count 0), as on a local
	 * filesystem, instead of ENOENT. */
	struct stat attr;
	bool have_attr;

	struct bcfs_inode *next_ino, *next_key; /* hash chains */
};

struct bcfs {
	struct bc_db *db;
	struct fuse_session *se;
	char *datadir; /* absolute */
	char *mountpoint;
	bool ro, foreground, debug;
	uid_t uid;
	gid_t gid;
	int64_t start_ns;
	struct bc_options bopts;
	uint64_t dirty_max; /* bound on all dirty buffers together */
	atomic_uint_fast64_t dirty_bytes;
	atomic_uint_fast64_t npending; /* pending inodes (deferred creates) */

	pthread_rwlock_t ns;

	/* Open handles by id: a release may race a read the kernel abandoned (fatal signal),
	 * so requests find handles here and hold a reference instead of trusting fi->fh. */
	pthread_mutex_t handles_lock;
	struct bcfs_handle *handles[256];
	uint64_t next_fh;

	pthread_mutex_t itable_lock;
	struct bcfs_inode **by_ino, **by_key;
	size_t nbuckets, ninodes;
	uint64_t next_ino;
	struct bcfs_inode *root;

	/* Control area. */
	pthread_mutex_t ctl_lock;
	pthread_t merge_thread;
	bool merge_thread_live;
	atomic_bool merge_running;
	atomic_int merge_last_rc;
	char ctl_last_error[256];

	struct {
		atomic_uint_fast64_t lookups, getattrs, opens, reads, read_bytes, writes,
			write_bytes, creates, unlinks, renames, mkdirs, rmdirs, fsyncs, flushes,
			readdirs, merges_requested, ctl_commands, ctl_errors, meta_reads, meta_hits;
	} n;
};

/* An open file (fi->fh). */
struct bcfs_handle {
	struct bcfs_inode *inode; /* NULL for control files */
	fuse_ino_t ctl_ino;
	char *text; /* stats files: the snapshot taken at open */
	size_t text_len;
	uint64_t id; /* fi->fh */
	int refs; /* the open itself plus requests using it; under handles_lock */
	struct bcfs_handle *prev, *next; /* hash chain in fs->handles */
};

/* main.c / opts.c */
void bcfs_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bcfs_engine_log(void *ctx, enum bc_log_level level, const char *msg);
int64_t bcfs_now_ns(void);
struct bcfs_cmdline {
	char *datadir, *mountpoint;
	bool foreground, debug, single, help, version;
	struct fuse_args args;
};
int bcfs_opts_parse(int argc, char **argv, struct bcfs *fs, struct bcfs_cmdline *cl);
void bcfs_opts_usage(const char *prog);

/* inode.c */
int bcfs_itable_init(struct bcfs *fs);
void bcfs_itable_destroy(struct bcfs *fs);
/* Find or add the inode for (kind, key) and take n lookups on it. NULL on ENOMEM. */
struct bcfs_inode *bcfs_inode_get(struct bcfs *fs, enum bcfs_kind kind, const void *key,
				  size_t klen, uint64_t n);
/* The inode for ino, or NULL. Valid while the kernel holds it (until its forget). */
struct bcfs_inode *bcfs_inode_find(struct bcfs *fs, fuse_ino_t ino);
/* The cached inode for (kind, key), or NULL. Caller holds ns. */
struct bcfs_inode *bcfs_inode_lookup_key(struct bcfs *fs, enum bcfs_kind kind, const void *key,
					 size_t klen);
void bcfs_inode_forget(struct bcfs *fs, struct bcfs_inode *in, uint64_t n);
/* Change an inode's key (caller holds ns for writing). */
int bcfs_inode_rekey(struct bcfs *fs, struct bcfs_inode *in, unsigned space, const void *key,
		     size_t klen);
/* Drop an inode from the key hash: its key now belongs to something else. */
void bcfs_inode_unhash(struct bcfs *fs, struct bcfs_inode *in);
/* Rewrite the keys of every cached inode under prefix from (dir rename). */
int bcfs_inode_rename_prefix(struct bcfs *fs, const void *from, size_t flen, const void *to,
			     size_t tlen);
/* Copy in's key under its lock: caller frees *key. Returns 0 or -ENOMEM. */
int bcfs_inode_key(struct bcfs_inode *in, unsigned *space, char **key, size_t *klen);
/* Flush the buffered writes of every open file while requests run (control sync and
 * snapshot); returns the first error. */
int bcfs_inode_flush_open(struct bcfs *fs);
/* Flush every inode's dirty data (at unmount). */
void bcfs_inode_flush_all(struct bcfs *fs);
uint64_t bcfs_inode_count(struct bcfs *fs);
/*
 * Metadata cache, all under in->lock (taken by these). bcfs_inode_meta copies in's full
 * metadata into *m (release with bcfs_meta_release) and its engine size into *size (may be
 * NULL): from the cache when it holds the xattrs too, else loaded from the engine (and
 * cached). Files and directories; -ENOENT for a removed inode. Caller holds ns.
 */
int bcfs_inode_meta(struct bcfs *fs, struct bcfs_inode *in, struct bcfs_meta *m, uint64_t *size);
/* The same with in->lock held by the caller (the engine is read under it on a miss). */
int bcfs_inode_meta_locked(struct bcfs *fs, struct bcfs_inode *in, struct bcfs_meta *m,
			   uint64_t *size);
/* Attributes for stat: *m without xattrs, *size; buffered writes (dirty end, pending mtime)
 * merged in under the same lock. -ENOENT for a removed inode. Caller holds ns (read), so
 * no namespace change runs between reading a key's record and caching it. */
int bcfs_inode_attr(struct bcfs *fs, struct bcfs_inode *in, struct bcfs_meta *m, uint64_t *size);
/* Cache m (copied; its xattrs only when small) and size for in (lock held by caller). */
void bcfs_inode_meta_set_locked(struct bcfs_inode *in, const struct bcfs_meta *m, uint64_t size);
/* Forget in's cached metadata (lock held by caller); kept while in is pending. */
void bcfs_inode_meta_drop_locked(struct bcfs_inode *in);
/* Mark a fresh inode pending / no longer pending (lock held by caller). */
void bcfs_inode_set_pending_locked(struct bcfs *fs, struct bcfs_inode *in, bool pending);
/* Does the table know that file key exists: an inode in the key hash that is pending
 * (created, no record yet) or has cached metadata? false means "ask the engine". */
bool bcfs_inode_file_known(struct bcfs *fs, const void *key, size_t klen);
/* Give every pending file its record. ns_held: caller holds ns for writing; else ns is
 * taken for reading. Returns the first error. */
int bcfs_inode_flush_pending(struct bcfs *fs, bool ns_held);
/* An open handle was added or released; frees what an orphan leaves behind. */
void bcfs_inode_open(struct bcfs *fs, struct bcfs_inode *in);
void bcfs_inode_release(struct bcfs *fs, struct bcfs_inode *in);
int bcfs_inode_nopen(struct bcfs *fs, struct bcfs_inode *in);

/* handle.c: open handles, and file data through the dirty-chunk cache. */
/* A new handle on in (NULL for control files), counted open; NULL on ENOMEM. */
struct bcfs_handle *bcfs_handle_new(struct bcfs *fs, struct bcfs_inode *in);
/* The handle with id fh, with a reference taken; NULL if there is none. */
struct bcfs_handle *bcfs_handle_get(struct bcfs *fs, uint64_t fh);
/* Drop a reference; the last one releases the inode's open count and frees the handle. */
void bcfs_handle_put(struct bcfs *fs, struct bcfs_handle *h);
/* Drop the open's own reference (at release). */
void bcfs_handle_free(struct bcfs *fs, struct bcfs_handle *h);
/* At unmount: free handles the kernel never released. */
void bcfs_handle_free_all(struct bcfs *fs);
int bcfs_data_write(struct bcfs *fs, struct bcfs_inode *in, const char *buf, size_t len,
		    uint64_t off);
int bcfs_data_read(struct bcfs *fs, struct bcfs_inode *in, char *buf, size_t len, uint64_t off,
		   size_t *got);
/* Write the dirty buffer and pending mtime of in to the engine, and its record if it has
 * none yet (deferred create). Caller holds ns (read). */
int bcfs_data_flush(struct bcfs *fs, struct bcfs_inode *in);
/* Same, taking ns itself. */
int bcfs_data_flush_ns(struct bcfs *fs, struct bcfs_inode *in);
/* Make m in's metadata: store it, or keep it for the first record while in is pending;
 * the cache then holds m and no mtime is pending, or is dropped if the store failed
 * (in->lock held, ns held). */
int bcfs_data_meta_locked(struct bcfs *fs, struct bcfs_inode *in, const struct bcfs_meta *m);
/* The same at close (FLUSH), except that a created file not yet written keeps waiting for
 * its data or its release (which flushes). */
int bcfs_data_close(struct bcfs *fs, struct bcfs_inode *in);
int bcfs_data_truncate(struct bcfs *fs, struct bcfs_inode *in, uint64_t size);

/* ops.c: helpers the callbacks in file.c, dir.c and xattr.c share. */
/* The filesystem a request belongs to. */
struct bcfs *bcfs_of(fuse_req_t req);
/* The inode a request names, or NULL (reply ESTALE). */
struct bcfs_inode *bcfs_req_inode(fuse_req_t req, fuse_ino_t ino);
/* A directory's metadata (explicit marker or defaults for an implicit one); *explicit (may
 * be NULL) says whether a marker exists. */
int bcfs_dir_meta(struct bcfs *fs, const char *kp, size_t kplen, struct bcfs_meta *m,
		  bool *explicit);
/* Write a directory's metadata into its marker (creating it). */
int bcfs_dir_meta_store(struct bcfs *fs, const char *kp, size_t kplen, const struct bcfs_meta *m);
/* 1 if the key exists, 0 if not, or a negative errno. */
int bcfs_key_exists(struct bcfs *fs, unsigned space, const void *key, size_t klen);

/* The callbacks of the operations table (ops.c) that live in their own files. */
void bcfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void bcfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void bcfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		struct fuse_file_info *fi);
void bcfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void bcfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void bcfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void bcfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void bcfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		  struct fuse_file_info *fi);
void bcfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void bcfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void bcfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void bcfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void bcfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
		   int flags);
void bcfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* ops.c */
extern const struct fuse_lowlevel_ops bcfs_ops;
/* Metadata of key (files) with defaults for keys written without it. */
int bcfs_meta_load(struct bcfs *fs, unsigned space, const void *key, size_t klen,
		   struct bcfs_meta *m, struct bc_stat *st);
int bcfs_meta_store(struct bcfs *fs, unsigned space, const void *key, size_t klen,
		    const struct bcfs_meta *m);

/* control.c */
bool bcfs_ctl_is(fuse_ino_t ino);
void bcfs_ctl_lookup(struct bcfs *fs, fuse_req_t req, fuse_ino_t parent, const char *name);
void bcfs_ctl_attr(struct bcfs *fs, fuse_ino_t ino, struct stat *st);
void bcfs_ctl_open(struct bcfs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void bcfs_ctl_read(fuse_req_t req, struct bcfs_handle *h, size_t size, off_t off);
void bcfs_ctl_write(struct bcfs *fs, fuse_req_t req, struct bcfs_handle *h, const char *buf,
		    size_t size);
void bcfs_ctl_release(struct bcfs *fs, struct bcfs_handle *h);
void bcfs_ctl_readdir(fuse_req_t req, size_t size, off_t off);
void bcfs_ctl_shutdown(struct bcfs *fs);

#endif
