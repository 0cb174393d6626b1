/* SPDX-License-Identifier: MIT */
/*
 * A fault-injecting I/O layer for the engine's seam (src/engine/io.h), after SQLite's
 * test VFS: it forwards every call to bc_io_posix, counts the calls of the kinds it was
 * told to watch, and fails the N-th of them with a chosen errno, either once or for every
 * watched call from N on. A pwritev fault can instead be short: the N-th write puts half
 * of its bytes in the file and the write that continues it fails. The layer remembers
 * which name each descriptor was opened under, so a test can tell a fault in a data file
 * from one in a hint file or the lock file.
 */
#ifndef BC_TEST_FAULTIO_H
#define BC_TEST_FAULTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "io.h"

/* The kinds of calls that can fail; a mask of (1u << kind). */
enum fio_kind {
	FIO_OPENAT = 0,
	FIO_PWRITEV,
	FIO_FDATASYNC,
	FIO_FSYNC,
	FIO_FTRUNCATE,
	FIO_RENAMEAT,
	FIO_UNLINKAT,
	FIO_LINKAT,
	FIO_NKINDS
};
#define FIO_ALL ((1u << FIO_NKINDS) - 1)

enum fio_mode {
	FIO_ONCE = 0, /* only the N-th watched call fails */
	FIO_PERSIST, /* the N-th and every later watched call fail */
	FIO_SHORT, /* the N-th watched pwritev writes half, its continuation fails
		      (other kinds fail as in FIO_ONCE) */
};

#define FIO_MAX_FD 4096
#define FIO_NAME_MAX 64

struct fio {
	struct bc_io io; /* pass &f->io to bc_open_io; io.ctx points back at f */
	pthread_mutex_t mu;
	unsigned kinds; /* watched kinds */
	enum fio_mode mode;
	int err; /* positive errno to inject */
	uint64_t fail_at; /* 0: disarmed */
	uint64_t seen; /* watched calls since fio_arm */
	uint64_t hits; /* faults injected since fio_arm */
	bool short_pending;
	int short_fd;
	/* The first FIO_HITLOG faults injected since fio_arm: kind and what each touched. */
#define FIO_HITLOG 16
	struct fio_hit {
		enum fio_kind kind;
		char name[FIO_NAME_MAX];
		bool zeros; /* a write of zero bytes only, or a truncation cutting only zeros */
	} hitlog[FIO_HITLOG];
	uint64_t calls[FIO_NKINDS]; /* every call per kind since fio_init, watched or not */
	char names[FIO_MAX_FD][FIO_NAME_MAX]; /* fd -> name it was opened as ("" unknown) */
};

/* Set up f to pass everything through to bc_io_posix (nothing armed). */
void fio_init(struct fio *f);
void fio_release(struct fio *f);

/*
 * Fail the n-th watched call (counting from 1, from now on) of the kinds in mask with
 * -err, as mode says. n = 0 disarms. Resets seen and hits.
 */
void fio_arm(struct fio *f, unsigned mask, uint64_t n, int err, enum fio_mode mode);
void fio_disarm(struct fio *f);

/* Watched calls since fio_arm, and faults injected. */
uint64_t fio_seen(struct fio *f);
uint64_t fio_hits(struct fio *f);

/*
 * Copy the log of faults injected since fio_arm into out (up to max entries); returns
 * how many were injected in all (may exceed max).
 */
uint64_t fio_hit_log(struct fio *f, struct fio_hit *out, size_t max);

/* "pwritev 0000000000010000.data" for the first fault since fio_arm; buf of len. */
void fio_describe_hit(struct fio *f, char *buf, size_t len);

const char *fio_kind_name(enum fio_kind k);

#endif
