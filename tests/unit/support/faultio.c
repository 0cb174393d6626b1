// SPDX-License-Identifier: MIT
/* The fault-injecting I/O layer; see faultio.h. */
#include "faultio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const kind_names[FIO_NKINDS] = {
	"openat", "pwritev", "fdatasync", "fsync", "ftruncate", "renameat", "unlinkat", "linkat",
};

const char *fio_kind_name(enum fio_kind k)
{
	return (unsigned)k < FIO_NKINDS ? kind_names[k] : "?";
}

static const char *fd_name(struct fio *f, int fd)
{
	if (fd >= 0 && fd < FIO_MAX_FD && f->names[fd][0])
		return f->names[fd];
	return "(dir)";
}

static void note_hit(struct fio *f, enum fio_kind k, const char *name)
{
	if (f->hits < FIO_HITLOG) {
		f->hitlog[f->hits].kind = k;
		snprintf(f->hitlog[f->hits].name, FIO_NAME_MAX, "%s", name);
		f->hitlog[f->hits].zeros = false;
	}
	f->hits++;
}

/* The call just failed wrote or cut only zero bytes (mu held). */
static void hit_was_zeros(struct fio *f)
{
	if (f->hits && f->hits <= FIO_HITLOG)
		f->hitlog[f->hits - 1].zeros = true;
}

/*
 * Count one call of kind k (mu held) and say whether it fails. name says what it touched,
 * for fio_describe_hit.
 */
static bool should_fail(struct fio *f, enum fio_kind k, const char *name)
{
	f->calls[k]++;
	if (!f->fail_at || !(f->kinds & (1u << k)))
		return false;
	uint64_t n = ++f->seen;
	bool fail = f->mode == FIO_PERSIST ? n >= f->fail_at : n == f->fail_at;
	if (fail)
		note_hit(f, k, name);
	return fail;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static bool iov_zero(const struct iovec *iov, int n)
{
	for (int i = 0; i < n; i++)
		if (!all_zero(iov[i].iov_base, iov[i].iov_len))
			return false;
	return true;
}

/* Whether truncating fd to len would cut only zero bytes (or nothing). */
static bool cut_zero(int fd, off_t len)
{
	uint8_t buf[65536];
	for (off_t at = len;;) {
		ssize_t got = pread(fd, buf, sizeof(buf), at);
		if (got <= 0)
			return got == 0;
		if (!all_zero(buf, (size_t)got))
			return false;
		at += got;
	}
}

static int f_openat(void *ctx, int dirfd, const char *name, int flags, mode_t mode)
{
	struct fio *f = ctx;
	pthread_mutex_lock(&f->mu);
	bool fail = should_fail(f, FIO_OPENAT, name);
	int err = f->err;
	pthread_mutex_unlock(&f->mu);
	if (fail)
		return -err;
	int fd = bc_io_posix.openat(bc_io_posix.ctx, dirfd, name, flags, mode);
	if (fd >= 0 && fd < FIO_MAX_FD) {
		pthread_mutex_lock(&f->mu);
		snprintf(f->names[fd], FIO_NAME_MAX, "%s", name);
		pthread_mutex_unlock(&f->mu);
	}
	return fd;
}

static int f_close(void *ctx, int fd)
{
	struct fio *f = ctx;
	pthread_mutex_lock(&f->mu);
	if (fd >= 0 && fd < FIO_MAX_FD)
		f->names[fd][0] = 0;
	if (f->short_pending && f->short_fd == fd)
		f->short_pending = false;
	pthread_mutex_unlock(&f->mu);
	return bc_io_posix.close(bc_io_posix.ctx, fd);
}

static ssize_t f_preadv(void *ctx, int fd, const struct iovec *iov, int n, off_t off)
{
	(void)ctx;
	return bc_io_posix.preadv(bc_io_posix.ctx, fd, iov, n, off);
}

static ssize_t f_pwritev(void *ctx, int fd, const struct iovec *iov, int n, off_t off)
{
	struct fio *f = ctx;
	pthread_mutex_lock(&f->mu);
	const char *name = fd_name(f, fd);
	int err = f->err;
	if (f->short_pending && f->short_fd == fd) {
		/* The continuation of a short write. */
		f->short_pending = false;
		f->calls[FIO_PWRITEV]++;
		pthread_mutex_unlock(&f->mu);
		return -err;
	}
	bool fail = should_fail(f, FIO_PWRITEV, name);
	if (fail && iov_zero(iov, n))
		hit_was_zeros(f);
	bool shorten = fail && f->mode == FIO_SHORT;
	pthread_mutex_unlock(&f->mu);
	if (!fail)
		return bc_io_posix.pwritev(bc_io_posix.ctx, fd, iov, n, off);
	if (!shorten)
		return -err;
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	size_t want = total / 2;
	if (want == 0)
		return -err;
	/* Write the first half: copy the iovecs and cut them at want bytes. */
	struct iovec v[64];
	int m = 0;
	size_t left = want;
	for (int i = 0; i < n && left && m < 64; i++) {
		v[m] = iov[i];
		if (v[m].iov_len > left)
			v[m].iov_len = left;
		left -= v[m].iov_len;
		m++;
	}
	ssize_t r = bc_io_posix.pwritev(bc_io_posix.ctx, fd, v, m, off);
	if (r <= 0)
		return r < 0 ? r : -err;
	pthread_mutex_lock(&f->mu);
	f->short_pending = true;
	f->short_fd = fd;
	pthread_mutex_unlock(&f->mu);
	return r;
}

static int f_fdatasync(void *ctx, int fd)
{
	struct fio *f = ctx;
	pthread_mutex_lock(&f->mu);
	bool fail = should_fail(f, FIO_FDATASYNC, fd_name(f, fd));
	int err = f->err;
	pthread_mutex_unlock(&f->mu);
	return fail ? -err : bc_io_posix.fdatasync(bc_io_posix.ctx, fd);
}

static int f_fsync(void *ctx, int fd)
{
	struct fio *f = ctx;
	pthread_mutex_lock(&f->mu);
	bool fail = should_fail(f, FIO_FSYNC, fd_name(f, fd));
	int err = f->err;
	pthread_mutex_unlock(&f->mu);
	return fail ? -err : bc_io_posix.fsync(bc_io_posix.ctx, fd);
}

static int f_ftruncate(void *ctx, int fd, off_t len)
{
	struct fio *f = ctx;
	pthread_mutex_lock(&f->mu);
	bool fail = should_fail(f, FIO_FTRUNCATE, fd_name(f, fd));
	if (fail && cut_zero(fd, len))
		hit_was_zeros(f);
	int err = f->err;
	pthread_mutex_unlock(&f->mu);
	return fail ? -err : bc_io_posix.ftruncate(bc_io_posix.ctx, fd, len);
}

static int f_fstat(void *ctx, int fd, struct stat *st)
{
	(void)ctx;
	return bc_io_posix.fstat(bc_io_posix.ctx, fd, st);
}

static int f_renameat(void *ctx, int dirfd, const char *from, const char *to)
{
	struct fio *f = ctx;
	char what[FIO_NAME_MAX];
	snprintf(what, sizeof(what), "%s -> %s", from, to);
	pthread_mutex_lock(&f->mu);
	bool fail = should_fail(f, FIO_RENAMEAT, what);
	int err = f->err;
	pthread_mutex_unlock(&f->mu);
	return fail ? -err : bc_io_posix.renameat(bc_io_posix.ctx, dirfd, from, to);
}

static int f_unlinkat(void *ctx, int dirfd, const char *name)
{
	struct fio *f = ctx;
	pthread_mutex_lock(&f->mu);
	bool fail = should_fail(f, FIO_UNLINKAT, name);
	int err = f->err;
	pthread_mutex_unlock(&f->mu);
	return fail ? -err : bc_io_posix.unlinkat(bc_io_posix.ctx, dirfd, name);
}

static int f_linkat(void *ctx, int fromdir, const char *from, int todir, const char *to)
{
	struct fio *f = ctx;
	pthread_mutex_lock(&f->mu);
	bool fail = should_fail(f, FIO_LINKAT, from);
	int err = f->err;
	pthread_mutex_unlock(&f->mu);
	return fail ? -err : bc_io_posix.linkat(bc_io_posix.ctx, fromdir, from, todir, to);
}

static int f_listdir(void *ctx, int dirfd, int (*fn)(void *arg, const char *name), void *arg)
{
	(void)ctx;
	return bc_io_posix.listdir(bc_io_posix.ctx, dirfd, fn, arg);
}

void fio_init(struct fio *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->mu, NULL);
	f->io = (struct bc_io){
		.ctx = f,
		.openat = f_openat,
		.close = f_close,
		.preadv = f_preadv,
		.pwritev = f_pwritev,
		.fdatasync = f_fdatasync,
		.fsync = f_fsync,
		.ftruncate = f_ftruncate,
		.fstat = f_fstat,
		.renameat = f_renameat,
		.unlinkat = f_unlinkat,
		.linkat = f_linkat,
		.listdir = f_listdir,
	};
	f->err = EIO;
}

void fio_release(struct fio *f)
{
	pthread_mutex_destroy(&f->mu);
}

void fio_arm(struct fio *f, unsigned mask, uint64_t n, int err, enum fio_mode mode)
{
	pthread_mutex_lock(&f->mu);
	f->kinds = mask;
	f->fail_at = n;
	f->err = err;
	f->mode = mode;
	f->seen = 0;
	f->hits = 0;
	f->short_pending = false;
	pthread_mutex_unlock(&f->mu);
}

void fio_disarm(struct fio *f)
{
	pthread_mutex_lock(&f->mu);
	f->fail_at = 0;
	f->short_pending = false;
	pthread_mutex_unlock(&f->mu);
}

uint64_t fio_seen(struct fio *f)
{
	pthread_mutex_lock(&f->mu);
	uint64_t n = f->seen;
	pthread_mutex_unlock(&f->mu);
	return n;
}

uint64_t fio_hits(struct fio *f)
{
	pthread_mutex_lock(&f->mu);
	uint64_t n = f->hits;
	pthread_mutex_unlock(&f->mu);
	return n;
}

uint64_t fio_hit_log(struct fio *f, struct fio_hit *out, size_t max)
{
	pthread_mutex_lock(&f->mu);
	uint64_t n = f->hits;
	for (size_t i = 0; i < max && i < n && i < FIO_HITLOG; i++)
		out[i] = f->hitlog[i];
	pthread_mutex_unlock(&f->mu);
	return n;
}

void fio_describe_hit(struct fio *f, char *buf, size_t len)
{
	pthread_mutex_lock(&f->mu);
	if (f->hits)
		snprintf(buf, len, "%s %s%s", fio_kind_name(f->hitlog[0].kind), f->hitlog[0].name,
			 f->hits > 1 ? " (and later calls)" : "");
	else
		snprintf(buf, len, "no fault");
	pthread_mutex_unlock(&f->mu);
}
