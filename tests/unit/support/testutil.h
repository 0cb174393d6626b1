/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the unit tests: temporary directories that are removed when a test
 * passes and kept (path printed) when it fails, and a seeded PRNG for table-driven and
 * randomized tests.
 */
#ifndef BC_TESTUTIL_H
#define BC_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Make a fresh directory under $TMPDIR (or /tmp) named after tag; returns a malloc'd path.
 * Register it for cleanup: it is removed by tu_tmpdir_done(path, passed) when passed is
 * nonzero, else its path is printed to stderr and it is kept.
 */
char *tu_tmpdir(const char *tag);
void tu_tmpdir_done(char *path, int passed);

/* Remove a directory tree (files and subdirectories). */
void tu_rmtree(const char *path);

/* xorshift64* PRNG; seed must not be 0. */
struct tu_rng {
	uint64_t s;
};
uint64_t tu_rand(struct tu_rng *r);
/* Uniform in [0, n). */
uint64_t tu_below(struct tu_rng *r, uint64_t n);
void tu_fill(struct tu_rng *r, void *buf, size_t len);

/* Read a whole file into a malloc'd buffer; returns NULL on failure. */
void *tu_read_file(const char *path, size_t *len);
int tu_write_file(const char *path, const void *buf, size_t len);
/* Names in directory dir that end in suffix (-1 when dir cannot be read). */
int tu_count_suffix(const char *dir, const char *suffix);

/* Seed from $BC_TEST_SEED when set, else the given default (printed either way). */
uint64_t tu_seed(uint64_t dflt);

#endif
