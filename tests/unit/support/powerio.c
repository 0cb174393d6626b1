// SPDX-License-Identifier: MIT
/* Power-loss simulation over the I/O seam; see powerio.h. */
#include "powerio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One change since the last sync: a write of len bytes at off, or a truncation to off. */
struct pio_wr {
	bool trunc;
	uint64_t off;
	uint8_t *data;
	size_t len;
};

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		abort();
	return q;
}

static void ino_resize(struct pio_ino *in, size_t len)
{
	if (len > in->cur_cap) {
		size_t cap = in->cur_cap ? in->cur_cap : 4096;
		while (cap < len)
			cap *= 2;
		in->cur = xrealloc(in->cur, cap);
		in->cur_cap = cap;
	}
	if (len > in->cur_len)
		memset(in->cur + in->cur_len, 0, len - in->cur_len);
	in->cur_len = len;
}

static void ino_log(struct pio_ino *in, bool trunc, uint64_t off, const uint8_t *data, size_t len)
{
	if (in->nlog == in->caplog) {
		in->caplog = in->caplog ? in->caplog * 2 : 16;
		in->log = xrealloc(in->log, in->caplog * sizeof(*in->log));
	}
	struct pio_wr *w = &in->log[in->nlog++];
	w->trunc = trunc;
	w->off = off;
	w->len = len;
	w->data = NULL;
	if (len) {
		w->data = xrealloc(NULL, len);
		memcpy(w->data, data, len);
	}
}

static void ino_clear_log(struct pio_ino *in)
{
	for (size_t i = 0; i < in->nlog; i++)
		free(in->log[i].data);
	in->nlog = 0;
}

static void ino_make_durable(struct pio_ino *in)
{
	in->dur = xrealloc(in->dur, in->cur_len);
	if (in->cur_len)
		memcpy(in->dur, in->cur, in->cur_len);
	in->dur_len = in->cur_len;
	ino_clear_log(in);
}

static int ino_new(struct pio *p)
{
	if (p->nino == p->capino) {
		p->capino = p->capino ? p->capino * 2 : 32;
		p->inos = xrealloc(p->inos, p->capino * sizeof(*p->inos));
	}
	memset(&p->inos[p->nino], 0, sizeof(p->inos[0]));
	return (int)p->nino++;
}

static struct pio_ent *ent_find(struct pio_ent *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return &v[i];
	return NULL;
}

static void ent_set(struct pio_ent **v, size_t *n, size_t *cap, const char *name, int ino)
{
	struct pio_ent *e = ent_find(*v, *n, name);
	if (!e) {
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 32;
			*v = xrealloc(*v, *cap * sizeof(**v));
		}
		e = &(*v)[(*n)++];
		snprintf(e->name, sizeof(e->name), "%s", name);
	}
	e->ino = ino;
}

static void ent_del(struct pio_ent *v, size_t *n, const char *name)
{
	struct pio_ent *e = ent_find(v, *n, name);
	if (e)
		*e = v[--*n];
}

static bool tracked_name(const char *name)
{
	return !strchr(name, '/') && strlen(name) < sizeof(((struct pio_ent *)0)->name);
}

static int ino_of_fd(struct pio *p, int fd)
{
	return fd >= 0 && fd < PIO_MAX_FD ? p->fd_ino[fd] : -1;
}

/* ---- the seam ---- */

/* Plain forwarders for pio_nosync_io. */
static int x_openat_posix(void *ctx, int dirfd, const char *name, int flags, mode_t mode)
{
	(void)ctx;
	return bc_io_posix.openat(NULL, dirfd, name, flags, mode);
}

static int x_close_posix(void *ctx, int fd)
{
	(void)ctx;
	return bc_io_posix.close(NULL, fd);
}

static ssize_t x_pwritev_posix(void *ctx, int fd, const struct iovec *iov, int n, off_t off)
{
	(void)ctx;
	return bc_io_posix.pwritev(NULL, fd, iov, n, off);
}

static int x_ftruncate_posix(void *ctx, int fd, off_t len)
{
	(void)ctx;
	return bc_io_posix.ftruncate(NULL, fd, len);
}

static int x_renameat_posix(void *ctx, int dirfd, const char *from, const char *to)
{
	(void)ctx;
	return bc_io_posix.renameat(NULL, dirfd, from, to);
}

static int x_unlinkat_posix(void *ctx, int dirfd, const char *name)
{
	(void)ctx;
	return bc_io_posix.unlinkat(NULL, dirfd, name);
}

static int x_openat_locked(void *ctx, int dirfd, const char *name, int flags, mode_t mode)
{
	struct pio *p = ctx;
	int fd = bc_io_posix.openat(NULL, dirfd, name, flags, mode);
	if (fd < 0 || fd >= PIO_MAX_FD || !tracked_name(name))
		return fd;
	struct pio_ent *e = ent_find(p->cur, p->ncur, name);
	int ino;
	if (e) {
		ino = e->ino;
	} else {
		ino = ino_new(p); /* created now: nothing durable, no durable name */
		ent_set(&p->cur, &p->ncur, &p->capcur, name, ino);
	}
	if ((flags & O_TRUNC) && p->inos[ino].cur_len) {
		ino_resize(&p->inos[ino], 0);
		ino_log(&p->inos[ino], true, 0, NULL, 0);
	}
	p->fd_ino[fd] = ino;
	return fd;
}

static int x_close_locked(void *ctx, int fd)
{
	struct pio *p = ctx;
	if (fd >= 0 && fd < PIO_MAX_FD)
		p->fd_ino[fd] = -1;
	return bc_io_posix.close(NULL, fd);
}

static ssize_t x_preadv(void *ctx, int fd, const struct iovec *iov, int n, off_t off)
{
	(void)ctx;
	return bc_io_posix.preadv(NULL, fd, iov, n, off);
}

static ssize_t x_pwritev_locked(void *ctx, int fd, const struct iovec *iov, int n, off_t off)
{
	struct pio *p = ctx;
	ssize_t r = bc_io_posix.pwritev(NULL, fd, iov, n, off);
	int ino = ino_of_fd(p, fd);
	if (r <= 0 || ino < 0)
		return r;
	struct pio_ino *in = &p->inos[ino];
	uint8_t *flat = xrealloc(NULL, (size_t)r);
	size_t done = 0;
	for (int i = 0; i < n && done < (size_t)r; i++) {
		size_t k = iov[i].iov_len < (size_t)r - done ? iov[i].iov_len : (size_t)r - done;
		memcpy(flat + done, iov[i].iov_base, k);
		done += k;
	}
	if ((uint64_t)off + (uint64_t)r > in->cur_len)
		ino_resize(in, (size_t)off + (size_t)r);
	memcpy(in->cur + off, flat, (size_t)r);
	ino_log(in, false, (uint64_t)off, flat, (size_t)r);
	free(flat);
	return r;
}

static void call_hook(struct pio *p, enum pio_when when)
{
	if (p->hook && !p->in_hook) {
		p->in_hook = true;
		p->hook(p->hook_ctx, p, p->syncs, when);
		p->in_hook = false;
	}
}

static int do_sync(struct pio *p, int fd, bool data_only)
{
	p->syncs++;
	call_hook(p, PIO_BEFORE_SYNC);
	if (p->real_sync) {
		int rc = data_only ? bc_io_posix.fdatasync(NULL, fd) : bc_io_posix.fsync(NULL, fd);
		if (rc)
			return rc;
	}
	struct stat st;
	int ino = ino_of_fd(p, fd);
	if (ino >= 0) {
		ino_make_durable(&p->inos[ino]);
	} else if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		struct stat mine;
		if (fstat(p->dirfd, &mine) == 0 && mine.st_ino == st.st_ino &&
		    mine.st_dev == st.st_dev) {
			p->dur = xrealloc(p->dur, (p->ncur ? p->ncur : 1) * sizeof(*p->dur));
			memcpy(p->dur, p->cur, p->ncur * sizeof(*p->cur));
			p->ndur = p->capdur = p->ncur;
		}
	}
	call_hook(p, PIO_AFTER_SYNC);
	return 0;
}

static int x_fdatasync_locked(void *ctx, int fd)
{
	return do_sync(ctx, fd, true);
}

static int x_fsync_locked(void *ctx, int fd)
{
	return do_sync(ctx, fd, false);
}

static int x_ftruncate_locked(void *ctx, int fd, off_t len)
{
	struct pio *p = ctx;
	int rc = bc_io_posix.ftruncate(NULL, fd, len);
	int ino = ino_of_fd(p, fd);
	if (rc || ino < 0)
		return rc;
	ino_resize(&p->inos[ino], (size_t)len);
	ino_log(&p->inos[ino], true, (uint64_t)len, NULL, 0);
	return 0;
}

static int x_fstat(void *ctx, int fd, struct stat *st)
{
	(void)ctx;
	return bc_io_posix.fstat(NULL, fd, st);
}

static int x_renameat_locked(void *ctx, int dirfd, const char *from, const char *to)
{
	struct pio *p = ctx;
	int rc = bc_io_posix.renameat(NULL, dirfd, from, to);
	if (rc || !tracked_name(from) || !tracked_name(to))
		return rc;
	struct pio_ent *e = ent_find(p->cur, p->ncur, from);
	if (e) {
		int ino = e->ino;
		ent_del(p->cur, &p->ncur, from);
		ent_set(&p->cur, &p->ncur, &p->capcur, to, ino);
	}
	return 0;
}

static int x_unlinkat_locked(void *ctx, int dirfd, const char *name)
{
	struct pio *p = ctx;
	int rc = bc_io_posix.unlinkat(NULL, dirfd, name);
	if (!rc && tracked_name(name))
		ent_del(p->cur, &p->ncur, name);
	return rc;
}

static int x_linkat(void *ctx, int fromdir, const char *from, int todir, const char *to)
{
	(void)ctx;
	return bc_io_posix.linkat(NULL, fromdir, from, todir, to);
}

static int x_listdir(void *ctx, int dirfd, int (*fn)(void *arg, const char *name), void *arg)
{
	(void)ctx;
	return bc_io_posix.listdir(NULL, dirfd, fn, arg);
}

/* ---- the hooks that touch the shadow: one thread at a time ---- */

static int x_openat(void *ctx, int dirfd, const char *name, int flags, mode_t mode)
{
	struct pio *p = ctx;
	pthread_mutex_lock(&p->mu);
	int r = x_openat_locked(ctx, dirfd, name, flags, mode);
	pthread_mutex_unlock(&p->mu);
	return r;
}

static int x_close(void *ctx, int fd)
{
	struct pio *p = ctx;
	pthread_mutex_lock(&p->mu);
	int r = x_close_locked(ctx, fd);
	pthread_mutex_unlock(&p->mu);
	return r;
}

static ssize_t x_pwritev(void *ctx, int fd, const struct iovec *iov, int n, off_t off)
{
	struct pio *p = ctx;
	pthread_mutex_lock(&p->mu);
	ssize_t r = x_pwritev_locked(ctx, fd, iov, n, off);
	pthread_mutex_unlock(&p->mu);
	return r;
}

static int x_fdatasync(void *ctx, int fd)
{
	struct pio *p = ctx;
	pthread_mutex_lock(&p->mu);
	int r = x_fdatasync_locked(ctx, fd);
	pthread_mutex_unlock(&p->mu);
	return r;
}

static int x_fsync(void *ctx, int fd)
{
	struct pio *p = ctx;
	pthread_mutex_lock(&p->mu);
	int r = x_fsync_locked(ctx, fd);
	pthread_mutex_unlock(&p->mu);
	return r;
}

static int x_ftruncate(void *ctx, int fd, off_t len)
{
	struct pio *p = ctx;
	pthread_mutex_lock(&p->mu);
	int r = x_ftruncate_locked(ctx, fd, len);
	pthread_mutex_unlock(&p->mu);
	return r;
}

static int x_renameat(void *ctx, int dirfd, const char *from, const char *to)
{
	struct pio *p = ctx;
	pthread_mutex_lock(&p->mu);
	int r = x_renameat_locked(ctx, dirfd, from, to);
	pthread_mutex_unlock(&p->mu);
	return r;
}

static int x_unlinkat(void *ctx, int dirfd, const char *name)
{
	struct pio *p = ctx;
	pthread_mutex_lock(&p->mu);
	int r = x_unlinkat_locked(ctx, dirfd, name);
	pthread_mutex_unlock(&p->mu);
	return r;
}

static int nosync(void *ctx, int fd)
{
	(void)ctx;
	(void)fd;
	return 0;
}

const struct bc_io pio_nosync_io = {
	.openat = x_openat_posix,
	.close = x_close_posix,
	.preadv = x_preadv,
	.pwritev = x_pwritev_posix,
	.fdatasync = nosync,
	.fsync = nosync,
	.ftruncate = x_ftruncate_posix,
	.fstat = x_fstat,
	.renameat = x_renameat_posix,
	.unlinkat = x_unlinkat_posix,
	.linkat = x_linkat,
	.listdir = x_listdir,
};

/* ---- setup and crash images ---- */

int pio_init(struct pio *p, const char *dir)
{
	memset(p, 0, sizeof(*p));
	p->io = (struct bc_io){
		.ctx = p,
		.openat = x_openat,
		.close = x_close,
		.preadv = x_preadv,
		.pwritev = x_pwritev,
		.fdatasync = x_fdatasync,
		.fsync = x_fsync,
		.ftruncate = x_ftruncate,
		.fstat = x_fstat,
		.renameat = x_renameat,
		.unlinkat = x_unlinkat,
		.linkat = x_linkat,
		.listdir = x_listdir,
	};
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&p->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	for (int i = 0; i < PIO_MAX_FD; i++)
		p->fd_ino[i] = -1;
	p->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->dirfd < 0)
		return -errno;
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !tracked_name(de->d_name))
			continue;
		int fd = openat(p->dirfd, de->d_name, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		struct stat st;
		int ino = ino_new(p);
		struct pio_ino *in = &p->inos[ino];
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
			ino_resize(in, (size_t)st.st_size);
			size_t got = 0;
			while (got < in->cur_len) {
				ssize_t r = pread(fd, in->cur + got, in->cur_len - got, (off_t)got);
				if (r <= 0)
					break;
				got += (size_t)r;
			}
			in->cur_len = got;
		}
		close(fd);
		ino_make_durable(in);
		ent_set(&p->cur, &p->ncur, &p->capcur, de->d_name, ino);
		ent_set(&p->dur, &p->ndur, &p->capdur, de->d_name, ino);
	}
	closedir(d);
	return 0;
}

void pio_release(struct pio *p)
{
	for (size_t i = 0; i < p->nino; i++) {
		ino_clear_log(&p->inos[i]);
		free(p->inos[i].log);
		free(p->inos[i].cur);
		free(p->inos[i].dur);
	}
	free(p->inos);
	free(p->cur);
	free(p->dur);
	if (p->dirfd >= 0)
		close(p->dirfd);
	pthread_mutex_destroy(&p->mu);
	memset(p, 0, sizeof(*p));
	p->dirfd = -1;
}

void pio_set_hook(struct pio *p, pio_hook_fn fn, void *ctx)
{
	p->hook = fn;
	p->hook_ctx = ctx;
}

uint64_t pio_unsynced(const struct pio *p)
{
	uint64_t n = 0;
	for (size_t i = 0; i < p->nino; i++)
		for (size_t j = 0; j < p->inos[i].nlog; j++)
			n += p->inos[i].log[j].len;
	return n;
}

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

/* Build the crash content of one file into a malloc'd buffer. */
static uint8_t *crash_content(const struct pio_ino *in, enum pio_mode mode, uint64_t *rng,
			      size_t *len)
{
	size_t cap = in->dur_len > in->cur_len ? in->dur_len : in->cur_len;
	for (size_t i = 0; i < in->nlog; i++)
		if (in->log[i].off + in->log[i].len > cap)
			cap = in->log[i].off + in->log[i].len;
	uint8_t *b = xrealloc(NULL, cap);
	size_t n = in->dur_len;
	if (n)
		memcpy(b, in->dur, n);
	if (mode == PIO_ALL) {
		n = in->cur_len;
		if (n)
			memcpy(b, in->cur, n);
	} else if (mode == PIO_ZEROS) {
		if (in->cur_len > n)
			memset(b + n, 0, in->cur_len - n);
		n = in->cur_len;
	} else if (mode == PIO_PREFIX && in->nlog) {
		size_t upto = (size_t)(next_rand(rng) % (in->nlog + 1));
		for (size_t i = 0; i < upto && i < in->nlog; i++) {
			const struct pio_wr *w = &in->log[i];
			size_t wl = w->len;
			if (i + 1 == upto && wl)
				wl = (size_t)(next_rand(rng) % (wl + 1)); /* the last one torn */
			if (w->trunc) {
				if (w->off > n)
					memset(b + n, 0, (size_t)w->off - n);
				n = (size_t)w->off;
				continue;
			}
			if (w->off > n)
				memset(b + n, 0, (size_t)w->off - n);
			memcpy(b + w->off, w->data, wl);
			if (w->off + wl > n)
				n = (size_t)w->off + wl;
		}
	}
	*len = n;
	return b;
}

static int crash_locked(struct pio *p, const char *out, enum pio_mode mode, bool dir_now,
			uint64_t seed)
{
	const struct pio_ent *v = dir_now ? p->cur : p->dur;
	size_t n = dir_now ? p->ncur : p->ndur;
	uint64_t rng = seed ? seed : 1;
	for (size_t i = 0; i < n; i++) {
		size_t len;
		uint8_t *b = crash_content(&p->inos[v[i].ino], mode, &rng, &len);
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", out, v[i].name);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			free(b);
			return -errno;
		}
		size_t done = 0;
		while (done < len) {
			ssize_t r = write(fd, b + done, len - done);
			if (r <= 0)
				break;
			done += (size_t)r;
		}
		close(fd);
		free(b);
		if (done != len)
			return -EIO;
	}
	return 0;
}

int pio_crash(struct pio *p, const char *out, enum pio_mode mode, bool dir_now, uint64_t seed)
{
	pthread_mutex_lock(&p->mu);
	int rc = crash_locked(p, out, mode, dir_now, seed);
	pthread_mutex_unlock(&p->mu);
	return rc;
}
