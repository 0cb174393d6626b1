// SPDX-License-Identifier: MIT
/* Shared unit-test helpers; see testutil.h. */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Directories handed out and not yet done: printed at exit, so a test that dies on a
 * failed assertion (Check exits the forked child) still says where its files are. */
static char *live_dirs[64];

static void report_kept(void)
{
	for (size_t i = 0; i < sizeof(live_dirs) / sizeof(*live_dirs); i++)
		if (live_dirs[i])
			fprintf(stderr, "test failed; kept %s\n", live_dirs[i]);
}

char *tu_tmpdir(const char *tag)
{
	static int registered;
	if (!registered++)
		atexit(report_kept);
	const char *base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	size_t n = strlen(base) + strlen(tag) + 32;
	char *p = malloc(n);
	if (!p)
		abort();
	snprintf(p, n, "%s/bc-%s-XXXXXX", base, tag);
	if (!mkdtemp(p)) {
		perror("mkdtemp");
		abort();
	}
	for (size_t i = 0; i < sizeof(live_dirs) / sizeof(*live_dirs); i++)
		if (!live_dirs[i]) {
			live_dirs[i] = p;
			break;
		}
	return p;
}

void tu_rmtree(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			size_t n = strlen(path) + strlen(de->d_name) + 2;
			char *c = malloc(n);
			if (!c)
				abort();
			snprintf(c, n, "%s/%s", path, de->d_name);
			struct stat st;
			if (!lstat(c, &st) && S_ISDIR(st.st_mode))
				tu_rmtree(c);
			else
				unlink(c);
			free(c);
		}
		closedir(d);
	}
	rmdir(path);
}

void tu_tmpdir_done(char *path, int passed)
{
	if (!path)
		return;
	for (size_t i = 0; i < sizeof(live_dirs) / sizeof(*live_dirs); i++)
		if (live_dirs[i] == path)
			live_dirs[i] = NULL;
	if (passed)
		tu_rmtree(path);
	else
		fprintf(stderr, "test failed; kept %s\n", path);
	free(path);
}

uint64_t tu_rand(struct tu_rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * UINT64_C(2685821657736338717);
}

uint64_t tu_below(struct tu_rng *r, uint64_t n)
{
	return n ? tu_rand(r) % n : 0;
}

void tu_fill(struct tu_rng *r, void *buf, size_t len)
{
	unsigned char *p = buf;
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)tu_rand(r);
}

void *tu_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	void *buf = malloc(n > 0 ? (size_t)n : 1);
	if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf)
		*len = (size_t)n;
	return buf;
}

int tu_write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	int ok = fwrite(buf, 1, len, f) == len;
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

uint64_t tu_seed(uint64_t dflt)
{
	const char *e = getenv("BC_TEST_SEED");
	uint64_t s = e ? strtoull(e, NULL, 0) : dflt;
	if (!s)
		s = 1;
	fprintf(stderr, "seed %llu (set BC_TEST_SEED to repeat)\n", (unsigned long long)s);
	return s;
}

int tu_count_suffix(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	size_t sl = strlen(suffix);
	for (struct dirent *e; (e = readdir(d));) {
		size_t l = strlen(e->d_name);
		n += l > sl && !strcmp(e->d_name + l - sl, suffix);
	}
	closedir(d);
	return n;
}
