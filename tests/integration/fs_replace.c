// SPDX-License-Identifier: MIT
/*
 * fs_replace DIR SECONDS: one thread replaces DIR/f again and again by writing DIR/f.tmp
 * and renaming it over DIR/f (each version one byte value, its own length); others open
 * DIR/f by name, fstat the open file and read it whole. A reader must see exactly one
 * version: as many bytes as fstat said, all the same value, matching that version's
 * length. Exits 1 on the first mixed read, printing it; 0 after SECONDS, printing counts.
 * (A read that raced a rename used to return the new file's bytes under the old file's
 * size.) An open may fail with ESTALE when the file it found was replaced before the open
 * reached the daemon, and again after the kernel's one lookup retry: counted, not an
 * error.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READERS 3
#define MAXLEN (64 * 1024)

static const char *dir;
static atomic_bool stop;
static atomic_long reads, replaces, stale, bad;

/* Version v is byte 'a' + v % 26 repeated len_of(v) times. */
static size_t len_of(unsigned v)
{
	return 1 + (v * 7919u) % MAXLEN;
}

static void *writer(void *arg)
{
	char tmp[4096], dst[4096];
	char *buf = malloc(MAXLEN);

	(void)arg;
	snprintf(tmp, sizeof(tmp), "%s/f.tmp", dir);
	snprintf(dst, sizeof(dst), "%s/f", dir);
	for (unsigned v = 1; buf && !atomic_load(&stop); v++) {
		size_t n = len_of(v);
		memset(buf, 'a' + v % 26, n);
		int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, buf, n) != (ssize_t)n || close(fd) || rename(tmp, dst)) {
			perror("writer");
			atomic_fetch_add(&bad, 1);
			break;
		}
		atomic_fetch_add(&replaces, 1);
	}
	free(buf);
	atomic_store(&stop, true);
	return NULL;
}

static void *reader(void *arg)
{
	char path[4096];
	char *buf = malloc(MAXLEN + 1);

	(void)arg;
	snprintf(path, sizeof(path), "%s/f", dir);
	while (buf && !atomic_load(&stop)) {
		int fd = open(path, O_RDONLY);
		if (fd < 0) {
			if (errno == ESTALE)
				atomic_fetch_add(&stale, 1);
			if (errno == ENOENT || errno == ESTALE)
				continue;
			perror("open");
			atomic_fetch_add(&bad, 1);
			break;
		}
		struct stat st;
		ssize_t got = 0, r = 0;
		if (fstat(fd, &st) == 0)
			while ((r = read(fd, buf + got, (size_t)(MAXLEN + 1 - got))) > 0)
				got += r;
		close(fd);
		bool same = got > 0;
		for (ssize_t i = 1; i < got && same; i++)
			same = buf[i] == buf[0];
		unsigned v0 = got > 0 ? (unsigned)(buf[0] - 'a') : 0;
		bool len_ok = false;
		for (unsigned v = v0; got > 0 && v < 1u << 20 && !len_ok; v += 26)
			len_ok = len_of(v) == (size_t)got;
		if (r < 0 || got != st.st_size || !same || !len_ok) {
			fprintf(stderr,
				"mixed read: fstat size %lld, read %zd bytes (%s), first '%c'%s\n",
				(long long)st.st_size, got, r < 0 ? strerror(errno) : "ok",
				got > 0 ? buf[0] : '?', same ? "" : ", not all the same byte");
			atomic_fetch_add(&bad, 1);
			atomic_store(&stop, true);
			break;
		}
		atomic_fetch_add(&reads, 1);
	}
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t w, r[READERS];

	if (argc != 3) {
		fprintf(stderr, "usage: fs_replace DIR SECONDS\n");
		return 2;
	}
	dir = argv[1];
	pthread_create(&w, NULL, writer, NULL);
	for (int i = 0; i < READERS; i++)
		pthread_create(&r[i], NULL, reader, NULL);
	for (int s = atoi(argv[2]) * 10; s > 0 && !atomic_load(&stop); s--)
		usleep(100000);
	atomic_store(&stop, true);
	pthread_join(w, NULL);
	for (int i = 0; i < READERS; i++)
		pthread_join(r[i], NULL);
	printf("%ld replaces, %ld whole reads, %ld ESTALE opens, %ld bad\n", atomic_load(&replaces),
	       atomic_load(&reads), atomic_load(&stale), atomic_load(&bad));
	return atomic_load(&bad) ? 1 : 0;
}
