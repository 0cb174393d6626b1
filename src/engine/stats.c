// SPDX-License-Identifier: MIT
/*
 * Introspection and backup: bc_stats_get fills counters, per-file byte accounting, merge
 * progress and recovery counters from the live state; bc_snapshot makes a point-in-time
 * copy of the store by rotating the active file and hard-linking every data and hint file
 * (O(number of files)), with merges held off while it links.
 */
#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int bc_stats_get(struct bc_db *db, struct bc_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!db)
		return -EINVAL;
	bc_kd_rdlock(db);
	size_t n = 0;
	for (uint32_t i = 0; i < db->nslots; i++)
		if (db->files[i])
			n++;
	st->files = calloc(n ? n : 1, sizeof(*st->files));
	if (!st->files) {
		bc_kd_unlock(db);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < db->nslots; i++) {
		struct bc_file *f = db->files[i];
		if (!f)
			continue;
		struct bc_file_stats *fs = &st->files[st->nfiles++];
		fs->id = f->id;
		fs->bytes = f->size;
		fs->live_bytes = f->live;
		fs->active = !db->opt.read_only && i == db->active;
		fs->has_hint = f->has_hint;
		st->total_bytes += f->size;
		st->live_bytes += f->live;
	}
	st->keys = bc_keydir_count(db->kd);
	st->objects = bc_objtab_count(db->objs);
	st->keydir_bytes = bc_keydir_memory(db->kd) + bc_objtab_memory(db->objs);
	bc_kd_unlock(db);

	/* Sort files by id for readers of the stats. */
	for (size_t i = 1; i < st->nfiles; i++)
		for (size_t j = i; j > 0 && st->files[j - 1].id > st->files[j].id; j--) {
			struct bc_file_stats t = st->files[j];
			st->files[j] = st->files[j - 1];
			st->files[j - 1] = t;
		}
	st->dead_bytes = st->total_bytes - st->live_bytes;
	st->fragmentation_percent =
		st->total_bytes ? (uint32_t)(st->dead_bytes * 100 / st->total_bytes) : 0;
	pthread_mutex_lock(&db->merge_mu);
	st->merge_state = db->merge_running ? BC_MERGE_RUNNING : BC_MERGE_IDLE;
	pthread_mutex_unlock(&db->merge_mu);
	st->merge_bytes_total = atomic_load(&db->merge_total);
	st->merge_bytes_done = atomic_load(&db->merge_done);
	st->merges_done = atomic_load(&db->merges);
	st->merge_reclaimed_bytes = atomic_load(&db->merge_reclaimed);
	st->recovered_torn_bytes = db->torn_bytes;
	st->recovered_damaged_records = db->damaged_records;
	st->recovered_damaged_bytes = db->damaged_bytes;
	st->hint_fallbacks = db->hint_fallbacks;
	st->read_errors = atomic_load(&db->n_read_err);
	st->puts = atomic_load(&db->n_put);
	st->gets = atomic_load(&db->n_get);
	st->deletes = atomic_load(&db->n_del);
	st->batches = atomic_load(&db->n_batch);
	st->syncs = atomic_load(&db->n_sync);
	return 0;
}

void bc_stats_release(struct bc_stats *st)
{
	if (!st)
		return;
	free(st->files);
	st->files = NULL;
	st->nfiles = 0;
}

/* Link (or, across filesystems, copy) name from the store into dest. */
static int link_or_copy(struct bc_db *db, int destfd, const char *name)
{
	int rc = bc_io_linkat(db->io, db->dirfd, name, destfd, name);
	if (rc != -EXDEV && rc != -EPERM && rc != -EMLINK)
		return rc;
	int in = openat(db->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	int out = openat(destfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	char *buf = malloc(1 << 20);
	rc = buf ? 0 : -ENOMEM;
	uint64_t off = 0;
	while (!rc) {
		size_t got;
		rc = bc_io_pread(db->io, in, buf, 1 << 20, off, &got);
		if (rc || !got)
			break;
		rc = bc_io_pwrite_full(db->io, out, buf, got, off);
		off += got;
	}
	if (!rc)
		rc = bc_io_fsync(db->io, out);
	free(buf);
	close(in);
	close(out);
	return rc;
}

int bc_snapshot(struct bc_db *db, const char *dest)
{
	if (!db || !dest || !*dest)
		return -EINVAL;
	if (db->opt.read_only)
		return -EROFS;
	if (mkdir(dest, 0755) < 0) {
		int rc = -errno;
		bc_log(db, BC_LOG_ERROR, "snapshot %s: %s", dest, strerror(errno));
		return rc;
	}
	int destfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (destfd < 0)
		return -errno;

	/* Hold merges off so no file we list disappears before it is linked. */
	pthread_mutex_lock(&db->merge_mu);
	while (db->merge_running)
		pthread_cond_wait(&db->merge_cv, &db->merge_mu);
	db->merge_running = true;
	pthread_mutex_unlock(&db->merge_mu);

	pthread_mutex_lock(&db->wlock);
	/* The file rotated out is synced and has its hint before it is linked. */
	int rc = bc_rotate(db);
	if (!rc)
		rc = bc_retire_wait(db);
	uint64_t *ids = NULL;
	bool *hints = NULL;
	size_t n = 0;
	if (!rc) {
		bc_kd_rdlock(db);
		ids = calloc(db->nslots + 1, sizeof(*ids));
		hints = calloc(db->nslots + 1, sizeof(*hints));
		for (uint32_t i = 0; ids && hints && i < db->nslots; i++) {
			if (!db->files[i] || i == db->active)
				continue;
			ids[n] = db->files[i]->id;
			hints[n++] = db->files[i]->has_hint;
		}
		bc_kd_unlock(db);
		if (!ids || !hints)
			rc = -ENOMEM;
	}
	pthread_mutex_unlock(&db->wlock);
	for (size_t i = 0; i < n && !rc; i++) {
		char name[BC_FILE_NAME_MAX];
		bc_file_name(name, ids[i], BC_DATA_SUFFIX);
		rc = link_or_copy(db, destfd, name);
		if (!rc && hints[i]) {
			bc_file_name(name, ids[i], BC_HINT_SUFFIX);
			int hrc = link_or_copy(db, destfd, name);
			if (hrc && hrc != -ENOENT)
				rc = hrc;
		}
		if (rc)
			bc_log(db, BC_LOG_ERROR, "snapshot %s: %s: %s", dest, name, strerror(-rc));
	}
	if (!rc)
		rc = bc_io_fsync(db->io, destfd);
	pthread_mutex_lock(&db->merge_mu);
	db->merge_running = false;
	pthread_cond_broadcast(&db->merge_cv);
	pthread_mutex_unlock(&db->merge_mu);
	free(ids);
	free(hints);
	close(destfd);
	return rc;
}
