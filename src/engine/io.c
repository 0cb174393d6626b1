// SPDX-License-Identifier: MIT
/*
 * The POSIX implementation of the I/O seam and the helpers every engine module uses on
 * top of it: EINTR retries, loops over short reads and writes, and errno folding.
 * Nothing else in src/engine calls read, write, fsync, rename or unlink directly.
 */
#include "io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

static int p_openat(void *ctx, int dirfd, const char *name, int flags, mode_t mode)
{
	(void)ctx;
	int fd = openat(dirfd, name, flags | O_CLOEXEC, mode);
	return fd < 0 ? -errno : fd;
}

static int p_close(void *ctx, int fd)
{
	(void)ctx;
	return close(fd) < 0 ? -errno : 0;
}

static ssize_t p_preadv(void *ctx, int fd, const struct iovec *iov, int n, off_t off)
{
	(void)ctx;
	ssize_t r = preadv(fd, iov, n, off);
	return r < 0 ? -errno : r;
}

static ssize_t p_pwritev(void *ctx, int fd, const struct iovec *iov, int n, off_t off)
{
	(void)ctx;
	ssize_t r = pwritev(fd, iov, n, off);
	return r < 0 ? -errno : r;
}

static int p_fdatasync(void *ctx, int fd)
{
	(void)ctx;
	return fdatasync(fd) < 0 ? -errno : 0;
}

static int p_fsync(void *ctx, int fd)
{
	(void)ctx;
	return fsync(fd) < 0 ? -errno : 0;
}

static int p_ftruncate(void *ctx, int fd, off_t len)
{
	(void)ctx;
	return ftruncate(fd, len) < 0 ? -errno : 0;
}

static int p_fstat(void *ctx, int fd, struct stat *st)
{
	(void)ctx;
	return fstat(fd, st) < 0 ? -errno : 0;
}

static int p_renameat(void *ctx, int dirfd, const char *from, const char *to)
{
	(void)ctx;
	return renameat(dirfd, from, dirfd, to) < 0 ? -errno : 0;
}

static int p_unlinkat(void *ctx, int dirfd, const char *name)
{
	(void)ctx;
	return unlinkat(dirfd, name, 0) < 0 ? -errno : 0;
}

static int p_linkat(void *ctx, int fromdir, const char *from, int todir, const char *to)
{
	(void)ctx;
	return linkat(fromdir, from, todir, to, 0) < 0 ? -errno : 0;
}

static int p_listdir(void *ctx, int dirfd, int (*fn)(void *arg, const char *name), void *arg)
{
	(void)ctx;
	int fd = dup(dirfd);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	rewinddir(d);
	int rc = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		rc = fn(arg, de->d_name);
		if (rc)
			break;
		errno = 0;
	}
	if (!rc && errno)
		rc = -errno;
	closedir(d);
	return rc;
}

/*
 * Filesystems on which a store into a shared mapping, inside a range fallocate reserved,
 * needs no block it might not get: ext4 and XFS write into the reserved blocks in place,
 * tmpfs holds the pages themselves. On a copy-on-write filesystem (btrfs, bcachefs, ZFS)
 * every rewrite of a page takes a new block, so a full disk would end a store with SIGBUS
 * instead of an error from a write; elsewhere the engine does not guess.
 */
static bool map_writes_safe(int fd)
{
	struct statfs sf;

	if (fstatfs(fd, &sf))
		return false;
	switch ((unsigned long)sf.f_type) {
	case EXT4_SUPER_MAGIC: /* also ext2 and ext3 */
	case XFS_SUPER_MAGIC:
	case TMPFS_MAGIC:
		return true;
	default:
		return false;
	}
}

static void *p_map(void *ctx, int fd, size_t len, bool writable)
{
	(void)ctx;
	if (writable && !map_writes_safe(fd))
		return NULL;
	void *p = mmap(NULL, len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

static int p_fallocate(void *ctx, int fd, off_t off, off_t len)
{
	(void)ctx;
	return fallocate(fd, 0, off, len) < 0 ? -errno : 0;
}

static void p_writeback(void *ctx, int fd, off_t off, off_t len)
{
	(void)ctx;
	/* Errors are left to the fdatasync that makes the bytes durable. */
	(void)sync_file_range(fd, off, len, SYNC_FILE_RANGE_WRITE);
}

/*
 * The kernel reads ahead at most the device's preferred I/O size or the file's readahead
 * window per call (128 KiB by default), and drops the rest of a larger range: so the range
 * goes in pieces of that size.
 */
#define WILLNEED_PIECE ((off_t)128 << 10)

static void p_willneed(void *ctx, int fd, off_t off, off_t len)
{
	(void)ctx;
	for (off_t end = off + len; off < end; off += WILLNEED_PIECE)
		(void)posix_fadvise(fd, off,
				    end - off < WILLNEED_PIECE ? end - off : WILLNEED_PIECE,
				    POSIX_FADV_WILLNEED);
}

static int p_advise(void *ctx, void *addr, size_t len, enum bc_io_advice advice)
{
	(void)ctx;
	int how = MADV_DONTNEED;
	if (advice == BC_IO_POPULATE) {
#ifdef MADV_POPULATE_WRITE
		how = MADV_POPULATE_WRITE;
#else
		return -EOPNOTSUPP;
#endif
	}
	if (!madvise(addr, len, how))
		return 0;
	return errno == EINVAL ? -EOPNOTSUPP : -errno; /* EINVAL: populate before Linux 5.14 */
}

static void p_unmap(void *ctx, void *addr, size_t len)
{
	(void)ctx;
	munmap(addr, len);
}

const struct bc_io bc_io_posix = {
	.openat = p_openat,
	.close = p_close,
	.preadv = p_preadv,
	.pwritev = p_pwritev,
	.fdatasync = p_fdatasync,
	.fsync = p_fsync,
	.ftruncate = p_ftruncate,
	.fstat = p_fstat,
	.renameat = p_renameat,
	.unlinkat = p_unlinkat,
	.linkat = p_linkat,
	.listdir = p_listdir,
	.map = p_map,
	.unmap = p_unmap,
	.fallocate = p_fallocate,
	.writeback = p_writeback,
	.advise = p_advise,
	.willneed = p_willneed,
};

uint8_t *bc_io_map(const struct bc_io *io, int fd, uint64_t len, bool writable)
{
	if (!io->map || !len || len > SIZE_MAX)
		return NULL;
	return io->map(io->ctx, fd, (size_t)len, writable);
}

int bc_io_fallocate(const struct bc_io *io, int fd, uint64_t off, uint64_t len)
{
	if (!io->fallocate)
		return -EOPNOTSUPP;
	if (off > INT64_MAX || len > INT64_MAX - off)
		return -EFBIG;
	int rc;
	do
		rc = io->fallocate(io->ctx, fd, (off_t)off, (off_t)len);
	while (rc == -EINTR);
	return rc;
}

void bc_io_writeback(const struct bc_io *io, int fd, uint64_t off, uint64_t len)
{
	if (io->writeback && off <= INT64_MAX && len <= INT64_MAX - off)
		io->writeback(io->ctx, fd, (off_t)off, (off_t)len);
}

void bc_io_willneed(const struct bc_io *io, int fd, uint64_t off, uint64_t len)
{
	if (io->willneed && off <= INT64_MAX && len <= INT64_MAX - off)
		io->willneed(io->ctx, fd, (off_t)off, (off_t)len);
}

int bc_io_advise(const struct bc_io *io, const uint8_t *addr, uint64_t len,
		 enum bc_io_advice advice)
{
	if (!io->advise)
		return -EOPNOTSUPP;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t from = ((uintptr_t)addr + page - 1) & ~(page - 1);
	uintptr_t to = ((uintptr_t)addr + len) & ~(page - 1);
	if (to <= from)
		return 0;
	return io->advise(io->ctx, (void *)from, to - from, advice);
}

void bc_io_unmap(const struct bc_io *io, const uint8_t *addr, uint64_t len)
{
	if (addr)
		io->unmap(io->ctx, (void *)(uintptr_t)addr, (size_t)len);
}

int bc_io_openat(const struct bc_io *io, int dirfd, const char *name, int flags, mode_t mode)
{
	int fd;
	do
		fd = io->openat(io->ctx, dirfd, name, flags, mode);
	while (fd == -EINTR);
	return fd;
}

int bc_io_close(const struct bc_io *io, int fd)
{
	if (fd < 0)
		return 0;
	int rc = io->close(io->ctx, fd);
	/* Linux releases the descriptor even when close reports EINTR; never retry. */
	return rc == -EINTR ? 0 : rc;
}

/* Advance an iovec array past n bytes. */
static void iov_advance(struct iovec **iov, int *cnt, size_t n)
{
	while (*cnt > 0 && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	if (*cnt > 0 && n) {
		(*iov)->iov_base = (char *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
}

int bc_io_preadv_full(const struct bc_io *io, int fd, struct iovec *iov, int n, uint64_t off)
{
	while (n > 0) {
		if (iov->iov_len == 0) {
			iov++;
			n--;
			continue;
		}
		ssize_t r = io->preadv(io->ctx, fd, iov, n, (off_t)off);
		if (r == -EINTR)
			continue;
		if (r < 0)
			return (int)r;
		if (r == 0)
			return -ENODATA;
		off += (uint64_t)r;
		iov_advance(&iov, &n, (size_t)r);
	}
	return 0;
}

int bc_io_pread_full(const struct bc_io *io, int fd, void *buf, size_t len, uint64_t off)
{
	struct iovec v = {.iov_base = buf, .iov_len = len};
	return bc_io_preadv_full(io, fd, &v, 1, off);
}

int bc_io_pread(const struct bc_io *io, int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
	size_t done = 0;
	while (done < len) {
		struct iovec v = {.iov_base = (char *)buf + done, .iov_len = len - done};
		ssize_t r = io->preadv(io->ctx, fd, &v, 1, (off_t)(off + done));
		if (r == -EINTR)
			continue;
		if (r < 0)
			return (int)r;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	*got = done;
	return 0;
}

int bc_io_pwritev_full(const struct bc_io *io, int fd, struct iovec *iov, int n, uint64_t off)
{
	while (n > 0) {
		if (iov->iov_len == 0) {
			iov++;
			n--;
			continue;
		}
		ssize_t r = io->pwritev(io->ctx, fd, iov, n, (off_t)off);
		if (r == -EINTR)
			continue;
		if (r < 0)
			return (int)r;
		if (r == 0)
			return -EIO;
		off += (uint64_t)r;
		iov_advance(&iov, &n, (size_t)r);
	}
	return 0;
}

int bc_io_pwrite_full(const struct bc_io *io, int fd, const void *buf, size_t len, uint64_t off)
{
	struct iovec v = {.iov_base = (void *)buf, .iov_len = len};
	return bc_io_pwritev_full(io, fd, &v, 1, off);
}

int bc_io_fdatasync(const struct bc_io *io, int fd)
{
	int rc;
	do
		rc = io->fdatasync(io->ctx, fd);
	while (rc == -EINTR);
	return rc;
}

int bc_io_fsync(const struct bc_io *io, int fd)
{
	int rc;
	do
		rc = io->fsync(io->ctx, fd);
	while (rc == -EINTR);
	return rc;
}

int bc_io_ftruncate(const struct bc_io *io, int fd, uint64_t len)
{
	int rc;
	do
		rc = io->ftruncate(io->ctx, fd, (off_t)len);
	while (rc == -EINTR);
	return rc;
}

int bc_io_fsize(const struct bc_io *io, int fd, uint64_t *size)
{
	struct stat st;
	int rc = io->fstat(io->ctx, fd, &st);
	if (rc)
		return rc;
	*size = (uint64_t)st.st_size;
	return 0;
}

int bc_io_renameat(const struct bc_io *io, int dirfd, const char *from, const char *to)
{
	return io->renameat(io->ctx, dirfd, from, to);
}

int bc_io_unlinkat(const struct bc_io *io, int dirfd, const char *name)
{
	return io->unlinkat(io->ctx, dirfd, name);
}

int bc_io_linkat(const struct bc_io *io, int fromdir, const char *from, int todir, const char *to)
{
	return io->linkat(io->ctx, fromdir, from, todir, to);
}

int bc_io_listdir(const struct bc_io *io, int dirfd, int (*fn)(void *arg, const char *name),
		  void *arg)
{
	return io->listdir(io->ctx, dirfd, fn, arg);
}
