// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: hint file verification and loading (src/engine/hint.c). The input
 * is written as 0000000000010000.hint in a private directory and loaded against a data
 * file of 1 MiB; a hint that verifies must describe records in order inside [48, covered)
 * (docs/FORMAT.md "Hint files"), and nothing is delivered unless the whole file verifies.
 * A hint that verifies can be continued (bc_hint_writer_resume): finished at once, at its
 * own covered, it is the same bytes again; whatever a resume does, the hint is unchanged
 * until a finish.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DATA_SIZE (UINT64_C(1) << 20)
#define NAME "0000000000010000.hint"

struct walk {
	uint64_t entries, end;
	bool bad;
};

static int on_entry(void *ctx, const struct bc_hint_entry *e)
{
	struct walk *w = ctx;
	uint64_t size = (uint64_t)BC_REC_HEADER_SIZE + e->klen + e->mlen + e->vlen;
	if (e->offset < BC_FILE_HEADER_SIZE || e->offset < w->end || e->type < 1 || e->type > 5)
		w->bad = true;
	w->end = e->offset + size;
	w->entries++;
	return 0;
}

static char tmpl[64];

static void cleanup(void)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/" NAME, tmpl);
	unlink(p);
	snprintf(p, sizeof(p), "%s/" NAME ".tmp", tmpl);
	unlink(p);
	rmdir(tmpl);
}

static int dirfd_once(void)
{
	static int fd = -1;
	if (fd >= 0)
		return fd;
	/* In memory when possible: every execution writes a file. */
	snprintf(tmpl, sizeof(tmpl), "%s/bc-fuzz-hint-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	const char *d = mkdtemp(tmpl);
	if (!d)
		abort();
	atexit(cleanup);
	fd = open(d, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		abort();
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int dirfd = dirfd_once();
	int fd = openat(dirfd, NAME, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);

	struct walk w = {0};
	uint64_t covered = 0;
	int rc =
		bc_hint_load(&bc_io_posix, dirfd, NAME, 0x10000, DATA_SIZE, on_entry, &w, &covered);
	if (rc == 0) {
		if (w.bad || covered < BC_FILE_HEADER_SIZE || covered > DATA_SIZE ||
		    w.end > covered)
			abort();
	} else {
		/* Rejected: verification comes first, so no entry was delivered. */
		if (w.entries && rc != -EBADMSG)
			abort();
		if (w.entries)
			abort();
	}
	/* Verification alone must agree with loading. */
	int vrc = bc_hint_load(&bc_io_posix, dirfd, NAME, 0x10000, DATA_SIZE, NULL, NULL, NULL);
	if ((vrc == 0) != (rc == 0))
		abort();
	/* So must loading in one pass, and when it succeeds it hands out the same entries. */
	struct walk s = {0};
	uint64_t scovered = 0;
	int src = bc_hint_stream(&bc_io_posix, dirfd, NAME, 0x10000, DATA_SIZE, on_entry, &s,
				 &scovered);
	if (src != rc)
		abort();
	if (rc == 0 && (s.bad || s.entries != w.entries || s.end != w.end || scovered != covered))
		abort();

	struct bc_hint_writer *hw;
	int rrc = bc_hint_writer_resume(&bc_io_posix, dirfd, NAME, 0x10000, &hw);
	if (rc == 0 && rrc != 0)
		abort();
	if (rrc == 0) {
		if (rc == 0) {
			if (bc_hint_writer_finish(hw, covered))
				abort();
		} else {
			bc_hint_writer_abort(hw); /* its entries were never checked: not finished */
		}
	}
	fd = openat(dirfd, NAME, O_RDONLY);
	uint8_t *back = malloc(size + 1);
	if (fd < 0 || !back)
		abort();
	ssize_t got = read(fd, back, size + 1);
	close(fd);
	if (got != (ssize_t)size || (size && memcmp(back, data, size)))
		abort();
	free(back);
	if (faccessat(dirfd, NAME ".tmp", F_OK, 0) == 0)
		abort();
	return 0;
}
