/* SPDX-License-Identifier: MIT */
/*
 * The I/O seam: every system call the engine makes on its files goes through a struct
 * bc_io, so tests can fail, shorten or record any call (tests/unit/faultio.c). Names are
 * relative to a directory fd. Each hook returns a count or 0 on success and a negative
 * errno on failure; the bc_io_* helpers add EINTR retries and whole-buffer loops.
 */
#ifndef BC_ENGINE_IO_H
#define BC_ENGINE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

enum bc_io_advice {
	/* Fault the pages in for writing, as a store would (MADV_POPULATE_WRITE). */
	BC_IO_POPULATE,
	/* Drop the pages from the page table (MADV_DONTNEED on a shared mapping): they stay
	 * in the page cache, dirty or not, and the next access maps them again. */
	BC_IO_RELEASE,
};

struct bc_io {
	void *ctx;
	int (*openat)(void *ctx, int dirfd, const char *name, int flags, mode_t mode);
	int (*close)(void *ctx, int fd);
	ssize_t (*preadv)(void *ctx, int fd, const struct iovec *iov, int n, off_t off);
	ssize_t (*pwritev)(void *ctx, int fd, const struct iovec *iov, int n, off_t off);
	int (*fdatasync)(void *ctx, int fd);
	int (*fsync)(void *ctx, int fd);
	int (*ftruncate)(void *ctx, int fd, off_t len);
	int (*fstat)(void *ctx, int fd, struct stat *st);
	int (*renameat)(void *ctx, int dirfd, const char *from, const char *to);
	int (*unlinkat)(void *ctx, int dirfd, const char *name);
	int (*linkat)(void *ctx, int fromdir, const char *from, int todir, const char *to);
	/* Call fn for each name in the directory (not . and ..); stop early when it returns
	 * nonzero and return that value. */
	int (*listdir)(void *ctx, int dirfd, int (*fn)(void *arg, const char *name), void *arg);
	/* Map [0, len) of fd shared, read-only or (writable) for reading and writing, or
	 * return NULL. Optional: a layer without it (the test layers) has every read go
	 * through preadv and every write through pwritev. A layer that has it returns NULL
	 * for writable when a store through the mapping could fault for want of space on
	 * fd's filesystem even inside a range fallocate reserved. */
	void *(*map)(void *ctx, int fd, size_t len, bool writable);
	void (*unmap)(void *ctx, void *addr, size_t len);
	/* Allocate [off, off + len) of fd, growing it (fallocate mode 0). Optional. */
	int (*fallocate)(void *ctx, int fd, off_t off, off_t len);
	/* Start writing [off, off + len) of fd's dirty pages to the disk without waiting
	 * (sync_file_range SYNC_FILE_RANGE_WRITE). A hint: it makes nothing durable. Optional. */
	void (*writeback)(void *ctx, int fd, off_t off, off_t len);
	/* Advise on [addr, addr + len), whole pages of a mapping map returned; the bytes of
	 * the file stay as they are. Optional; -EOPNOTSUPP when the kernel cannot. */
	int (*advise)(void *ctx, void *addr, size_t len, enum bc_io_advice advice);
	/* Bring [off, off + len) of fd into the page cache ahead of writes to it, reading
	 * what is not there yet (posix_fadvise POSIX_FADV_WILLNEED); in a hole that is
	 * zeroed pages and no disk I/O. A hint: the bytes of the file stay as they are.
	 * Optional. */
	void (*willneed)(void *ctx, int fd, off_t off, off_t len);
};

/* The real system calls. */
extern const struct bc_io bc_io_posix;

int bc_io_openat(const struct bc_io *io, int dirfd, const char *name, int flags, mode_t mode);
int bc_io_close(const struct bc_io *io, int fd);
/* Read exactly len bytes at off; -ENODATA if the file ends first. */
int bc_io_pread_full(const struct bc_io *io, int fd, void *buf, size_t len, uint64_t off);
/* Read up to len bytes; *got says how many (short only at end of file). */
int bc_io_pread(const struct bc_io *io, int fd, void *buf, size_t len, uint64_t off, size_t *got);
int bc_io_preadv_full(const struct bc_io *io, int fd, struct iovec *iov, int n, uint64_t off);
/* Write every byte or fail; a short write followed by an error returns that error. */
int bc_io_pwrite_full(const struct bc_io *io, int fd, const void *buf, size_t len, uint64_t off);
int bc_io_pwritev_full(const struct bc_io *io, int fd, struct iovec *iov, int n, uint64_t off);
int bc_io_fdatasync(const struct bc_io *io, int fd);
int bc_io_fsync(const struct bc_io *io, int fd);
int bc_io_ftruncate(const struct bc_io *io, int fd, uint64_t len);
int bc_io_fsize(const struct bc_io *io, int fd, uint64_t *size);
int bc_io_renameat(const struct bc_io *io, int dirfd, const char *from, const char *to);
int bc_io_unlinkat(const struct bc_io *io, int dirfd, const char *name);
int bc_io_linkat(const struct bc_io *io, int fromdir, const char *from, int todir, const char *to);
/* The io layer's map, or NULL when it has none or the mapping fails. */
uint8_t *bc_io_map(const struct bc_io *io, int fd, uint64_t len, bool writable);
void bc_io_unmap(const struct bc_io *io, const uint8_t *addr, uint64_t len);
/* -EOPNOTSUPP when the layer has no fallocate. */
int bc_io_fallocate(const struct bc_io *io, int fd, uint64_t off, uint64_t len);
/* The layer's writeback, when it has one. */
void bc_io_writeback(const struct bc_io *io, int fd, uint64_t off, uint64_t len);
/* The layer's willneed, when it has one. */
void bc_io_willneed(const struct bc_io *io, int fd, uint64_t off, uint64_t len);
/* The layer's advise over the whole pages inside [addr, addr + len); -EOPNOTSUPP when it
 * has none. */
int bc_io_advise(const struct bc_io *io, const uint8_t *addr, uint64_t len,
		 enum bc_io_advice advice);
int bc_io_listdir(const struct bc_io *io, int dirfd, int (*fn)(void *arg, const char *name),
		  void *arg);

#endif /* BC_ENGINE_IO_H */
