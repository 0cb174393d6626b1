/* SPDX-License-Identifier: MIT */
/*
 * A power-loss simulator for the engine's I/O seam (src/engine/io.h), after SQLite's
 * crash-test VFS. It forwards every call to bc_io_posix and keeps, for the one store
 * directory it watches, a shadow of what is durable:
 *
 *   - a file's bytes are durable up to its last completed fdatasync or fsync; writes and
 *     truncations since then are kept in order in a log;
 *   - a name (creation, rename, unlink) is durable only once the directory itself was
 *     fsync'd after the change (an fsync of the file does not make its name durable).
 *
 * pio_crash() writes into another directory what a power loss at this moment could leave:
 * the directory as of its last fsync (or, leniently, as it is now) and in each file the
 * durable bytes plus, depending on the mode, nothing, a random prefix of the unsynced
 * writes (the last one cut anywhere), all of them, or zeros where they went. A hook runs
 * before and after every sync call so a test can take a crash image at each sync point.
 * Files present when pio_init runs are taken as durable. Calls from several threads (the
 * engine syncs a rotated-out file in a thread of its own) are serialized by a lock that
 * the thread running a hook holds.
 */
#ifndef BC_TEST_POWERIO_H
#define BC_TEST_POWERIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io.h"

enum pio_mode {
	PIO_STRICT = 0, /* durable bytes only: every unsynced write is lost */
	PIO_PREFIX, /* plus a random prefix of the unsynced writes, the last one cut */
	PIO_ALL, /* every write reached the disk (only the names may revert) */
	PIO_ZEROS, /* the files have their current length, unsynced bytes read as 0 */
	PIO_NMODES
};

enum pio_when { PIO_BEFORE_SYNC = 0, PIO_AFTER_SYNC };

struct pio;
/* Called around every fdatasync/fsync the engine makes (n counts them from 1). */
typedef void (*pio_hook_fn)(void *ctx, struct pio *p, uint64_t n, enum pio_when when);

struct pio_wr;
struct pio_ino {
	uint8_t *cur, *dur; /* current and durable content */
	size_t cur_len, cur_cap, dur_len;
	struct pio_wr *log; /* writes and truncations since the last sync */
	size_t nlog, caplog;
};

struct pio_ent {
	char name[64];
	int ino;
};

#define PIO_MAX_FD 1024

struct pio {
	struct bc_io io; /* pass &p->io to bc_open_io; io.ctx points back at p */
	pthread_mutex_t mu; /* recursive: a hook may call back in */
	int dirfd; /* the watched directory (our own descriptor) */
	struct pio_ino *inos;
	size_t nino, capino;
	struct pio_ent *cur, *dur; /* directory now and as of its last fsync */
	size_t ncur, ndur, capcur, capdur;
	int fd_ino[PIO_MAX_FD]; /* -1: not a tracked file */
	uint64_t syncs; /* sync calls seen */
	pio_hook_fn hook;
	void *hook_ctx;
	bool in_hook;
	bool real_sync; /* also call the real fdatasync/fsync (default: only simulate) */
};

/*
 * bc_io_posix with fdatasync and fsync that do nothing: for opening crash images fast
 * (their durability is not under test).
 */
extern const struct bc_io pio_nosync_io;

/* Watch directory dir (it must exist); its files are taken as durable. 0 or -errno. */
int pio_init(struct pio *p, const char *dir);
void pio_release(struct pio *p);
void pio_set_hook(struct pio *p, pio_hook_fn fn, void *ctx);

/*
 * Write into the empty directory out what a power loss now could leave (see above).
 * dir_now: use the directory as it is now instead of as of its last fsync (a metadata
 * journal that happened to commit). seed drives PIO_PREFIX. Returns 0 or -errno.
 */
int pio_crash(struct pio *p, const char *out, enum pio_mode mode, bool dir_now, uint64_t seed);

/* Bytes written but not yet durable, over all files. */
uint64_t pio_unsynced(const struct pio *p);

#endif
