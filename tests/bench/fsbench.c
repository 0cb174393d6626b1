// SPDX-License-Identifier: MIT
/*
 * Filesystem workload client for scripts/bench: the same system calls against any
 * directory (bitcaskfs, the nullfs ceiling, ext4, tmpfs). Each command prints
 * "<metric> <value>" lines, rates in MiB/s or operations per second, for the script to
 * collect; nothing here knows which filesystem it runs on.
 *
 *   fsbench seqwrite FILE MIB BLOCK_KIB      write MIB MiB in BLOCK_KIB blocks, fsync, close
 *   fsbench seqread FILE BLOCK_KIB           read FILE to the end
 *   fsbench small DIR N BYTES                N files: create+write+close, open+read+close,
 *                                            stat, unlink (one line each)
 *   fsbench mkfiles DIR N                    create N empty files (for ls -l)
 *   fsbench append DIR FILES LINES BYTES     LINES appends of BYTES each, round-robin over
 *                                            FILES O_APPEND logs, then fsync each
 *   fsbench randwrite FILE N                 N 4 KiB pwrites at random 4 KiB-aligned offsets
 *                                            inside FILE (its size stays), then fsync
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "fsbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static char *buffer(size_t n)
{
	char *b = malloc(n);

	if (!b)
		die("malloc");
	for (size_t i = 0; i < n; i++)
		b[i] = (char)(i * 131 + (i >> 12));
	return b;
}

static void write_all(int fd, const char *b, size_t n)
{
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write");
		b += w;
		n -= (size_t)w;
	}
}

static int seqwrite(const char *path, uint64_t mib, size_t bs)
{
	char *b = buffer(bs);
	uint64_t total = mib << 20;
	double t0 = now();
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		die(path);
	for (uint64_t done = 0; done < total; done += bs)
		write_all(fd, b, bs);
	if (fsync(fd) || close(fd))
		die("fsync");
	printf("seqwrite_mib_s %.1f\n", (double)mib / (now() - t0));
	free(b);
	return 0;
}

static int seqread(const char *path, size_t bs)
{
	char *b = buffer(bs);
	uint64_t total = 0;
	double t0 = now();
	int fd = open(path, O_RDONLY);
	ssize_t r;

	if (fd < 0)
		die(path);
	while ((r = read(fd, b, bs)) > 0)
		total += (uint64_t)r;
	if (r < 0)
		die("read");
	close(fd);
	printf("seqread_mib_s %.1f\n", (double)total / 1048576.0 / (now() - t0));
	free(b);
	return 0;
}

static void name_of(char *p, size_t cap, const char *dir, unsigned i)
{
	snprintf(p, cap, "%s/f%06u", dir, i);
}

static int small(const char *dir, unsigned n, size_t bytes)
{
	char p[4096], *b = buffer(bytes ? bytes : 1);
	struct stat st;
	double t;

	t = now();
	for (unsigned i = 0; i < n; i++) {
		name_of(p, sizeof(p), dir, i);
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			die(p);
		write_all(fd, b, bytes);
		if (close(fd))
			die("close");
	}
	printf("create_ops_s %.0f\n", n / (now() - t));
	t = now();
	for (unsigned i = 0; i < n; i++) {
		name_of(p, sizeof(p), dir, i);
		int fd = open(p, O_RDONLY);
		if (fd < 0)
			die(p);
		if (read(fd, b, bytes) != (ssize_t)bytes)
			die("short read");
		close(fd);
	}
	printf("read_ops_s %.0f\n", n / (now() - t));
	t = now();
	for (unsigned i = 0; i < n; i++) {
		name_of(p, sizeof(p), dir, i);
		if (stat(p, &st))
			die(p);
	}
	printf("stat_ops_s %.0f\n", n / (now() - t));
	t = now();
	for (unsigned i = 0; i < n; i++) {
		name_of(p, sizeof(p), dir, i);
		if (unlink(p))
			die(p);
	}
	printf("unlink_ops_s %.0f\n", n / (now() - t));
	free(b);
	return 0;
}

static int mkfiles(const char *dir, unsigned n)
{
	char p[4096];
	double t = now();

	for (unsigned i = 0; i < n; i++) {
		name_of(p, sizeof(p), dir, i);
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || close(fd))
			die(p);
	}
	printf("mkfiles_ops_s %.0f\n", n / (now() - t));
	return 0;
}

static int append(const char *dir, unsigned files, unsigned lines, size_t bytes)
{
	int fds[64];
	char p[4096], *b = buffer(bytes);
	double t = now();

	if (files < 1 || files > 64)
		return 2;
	for (unsigned f = 0; f < files; f++) {
		snprintf(p, sizeof(p), "%s/log%u", dir, f);
		fds[f] = open(p, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fds[f] < 0)
			die(p);
	}
	for (unsigned i = 0; i < lines; i++)
		write_all(fds[i % files], b, bytes);
	for (unsigned f = 0; f < files; f++)
		if (fsync(fds[f]) || close(fds[f]))
			die("fsync");
	printf("append_ops_s %.0f\n", lines / (now() - t));
	free(b);
	return 0;
}

static int randwrite(const char *path, unsigned n)
{
	char *b = buffer(4096);
	struct stat st;
	uint64_t rng = 88172645463325252u, blocks;
	double t = now();
	int fd = open(path, O_WRONLY);

	if (fd < 0 || fstat(fd, &st))
		die(path);
	blocks = (uint64_t)st.st_size / 4096;
	if (!blocks)
		return 2;
	for (unsigned i = 0; i < n; i++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		if (pwrite(fd, b, 4096, (off_t)((rng % blocks) * 4096)) != 4096)
			die("pwrite");
	}
	if (fsync(fd) || close(fd))
		die("fsync");
	printf("randwrite_ops_s %.0f\n", n / (now() - t));
	free(b);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (!strcmp(cmd, "seqwrite") && argc == 5)
		return seqwrite(argv[2], strtoull(argv[3], NULL, 0),
				strtoull(argv[4], NULL, 0) << 10);
	if (!strcmp(cmd, "seqread") && argc == 4)
		return seqread(argv[2], strtoull(argv[3], NULL, 0) << 10);
	if (!strcmp(cmd, "small") && argc == 5)
		return small(argv[2], (unsigned)atoi(argv[3]), strtoull(argv[4], NULL, 0));
	if (!strcmp(cmd, "mkfiles") && argc == 4)
		return mkfiles(argv[2], (unsigned)atoi(argv[3]));
	if (!strcmp(cmd, "append") && argc == 6)
		return append(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]),
			      strtoull(argv[5], NULL, 0));
	if (!strcmp(cmd, "randwrite") && argc == 4)
		return randwrite(argv[2], (unsigned)atoi(argv[3]));
	fprintf(stderr,
		"usage: fsbench seqwrite|seqread|small|mkfiles|append|randwrite ... "
		"(see the top of fsbench.c)\n");
	return 2;
}
