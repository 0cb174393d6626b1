// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the reversible key <-> name mapping (src/fs/core_namemap.c,
 * docs/FILESYSTEM.md "Name mapping"). The first input byte picks a property:
 *   0: any key maps to a path of valid names and back to itself;
 *   1: a name the kernel could pass (1..255 bytes, no '/' or NUL) either fails to parse or
 *      parses to a key that shows in the same directory under exactly that name;
 *   2: any path either fails or is the canonical path of the key it parses to.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_namemap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXKEY 65535

static void key_roundtrip(const uint8_t *key, size_t klen)
{
	if (klen == 0 || klen > MAXKEY)
		return;
	char *path = bcfs_key_to_path(key, klen);
	if (!path)
		abort();
	/* Every component is a usable name. */
	for (const char *p = path;;) {
		const char *s = strchr(p, '/');
		size_t n = s ? (size_t)(s - p) : strlen(p);
		if (n < 1 || n > BCFS_NAME_MAX || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			abort();
		if (p == path && n == strlen(BCFS_CTL_NAME) && !memcmp(p, BCFS_CTL_NAME, n))
			abort();
		if (!s)
			break;
		p = s + 1;
	}
	char *back = NULL;
	size_t blen = 0;
	if (bcfs_path_to_key(path, &back, &blen) || blen != klen || memcmp(back, key, klen))
		abort();
	free(back);
	free(path);
}

static void name_parse(const uint8_t *name, size_t n)
{
	if (n == 0 || memchr(name, '/', n) || memchr(name, 0, n))
		return;
	char buf[BCFS_NAME_MAX + 8];
	size_t len = 0;
	int rc = bcfs_name_parse("", 0, (const char *)name, n, buf, sizeof(buf), &len, MAXKEY);
	if (n > BCFS_NAME_MAX) {
		if (rc != -ENAMETOOLONG)
			abort();
		return;
	}
	if (rc < 0) {
		if (rc != -EINVAL && rc != -ENAMETOOLONG)
			abort();
		return;
	}
	if (len > sizeof(buf))
		abort();
	if (rc == BCFS_NAME_PLAIN && len > 0) {
		/* The key shows in the root under exactly this name. */
		struct bcfs_child c;
		if (bcfs_child_of("", 0, buf, len, &c))
			abort();
		if (c.kind == BCFS_CHILD_FILE && (c.name_len != n || memcmp(c.name, name, n)))
			abort();
	}
}

static void path_parse(const uint8_t *data, size_t size)
{
	char *path = malloc(size + 1);
	if (!path)
		abort();
	memcpy(path, data, size);
	path[size] = 0;
	char *key = NULL;
	size_t klen = 0;
	int rc = bcfs_path_to_key(path, &key, &klen);
	if (rc == 0) {
		/* Canonical: showing the key again gives the same path (or its %@ form). */
		char *again = bcfs_key_to_path(key, klen);
		if (!again)
			abort();
		size_t pl = strlen(path);
		bool shadow = pl >= 3 && !strcmp(path + pl - 3, "/%@");
		if (!shadow && strcmp(again, path))
			abort();
		free(again);
		free(key);
	} else if (rc != -EINVAL && rc != -ENAMETOOLONG) {
		abort();
	}
	free(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		key_roundtrip(data + 1, size - 1);
		break;
	case 1:
		name_parse(data + 1, size - 1);
		break;
	default:
		path_parse(data + 1, size - 1);
	}
	return 0;
}
