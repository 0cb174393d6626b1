// SPDX-License-Identifier: MIT
/*
 * The control area /.bitcask (docs/FILESYSTEM.md, "Control area"): a directory with three
 * fixed inodes. stats and stats.json are generated when opened (so one read sequence sees
 * one consistent snapshot) and served with direct I/O; control takes commands, each
 * write(2) carrying one or more whole lines. merge runs bc_merge in a background thread so
 * no FUSE worker waits for it. Only the mount's owner may use the area (modes 0700, 0400,
 * 0200, enforced by the kernel through default_permissions).
 */
#include "bcfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	fuse_ino_t ino;
	const char *name;
	mode_t mode;
} ctl_files[] = {
	{BCFS_INO_CTL_STATS, "stats", S_IFREG | 0400},
	{BCFS_INO_CTL_JSON, "stats.json", S_IFREG | 0400},
	{BCFS_INO_CTL_CMD, "control", S_IFREG | 0200},
};

bool bcfs_ctl_is(fuse_ino_t ino)
{
	return ino >= BCFS_INO_CTL_DIR && ino <= BCFS_INO_CTL_CMD;
}

void bcfs_ctl_attr(struct bcfs *fs, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_nlink = 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mode = S_IFDIR | 0700;
	for (size_t i = 0; i < sizeof(ctl_files) / sizeof(ctl_files[0]); i++)
		if (ctl_files[i].ino == ino)
			st->st_mode = ctl_files[i].mode;
	st->st_blksize = 4096;
	st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = fs->start_ns / 1000000000;
}

void bcfs_ctl_lookup(struct bcfs *fs, fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = {.attr_timeout = 1.0, .entry_timeout = 1.0, .generation = 1};

	if (parent == FUSE_ROOT_ID) {
		e.ino = BCFS_INO_CTL_DIR;
	} else if (parent == BCFS_INO_CTL_DIR) {
		for (size_t i = 0; i < sizeof(ctl_files) / sizeof(ctl_files[0]); i++)
			if (!strcmp(ctl_files[i].name, name))
				e.ino = ctl_files[i].ino;
	}
	if (!e.ino) {
		fuse_reply_err(req, parent == BCFS_INO_CTL_DIR ? ENOENT : ENOTDIR);
		return;
	}
	bcfs_ctl_attr(fs, e.ino, &e.attr);
	fuse_reply_entry(req, &e);
}

void bcfs_ctl_readdir(fuse_req_t req, size_t size, off_t off)
{
	static const char *names[] = {".", "..", "stats", "stats.json", "control"};
	static const fuse_ino_t inos[] = {BCFS_INO_CTL_DIR, FUSE_ROOT_ID, BCFS_INO_CTL_STATS,
					  BCFS_INO_CTL_JSON, BCFS_INO_CTL_CMD};
	char buf[1024];
	size_t pos = 0;

	if (size > sizeof(buf))
		size = sizeof(buf);
	for (off_t i = off; i < 5; i++) {
		struct stat st = {.st_ino = inos[i], .st_mode = i < 2 ? S_IFDIR : S_IFREG};
		size_t n = fuse_add_direntry(req, buf + pos, size - pos, names[i], &st, i + 1);

		if (n > size - pos)
			break;
		pos += n;
	}
	fuse_reply_buf(req, buf, pos);
}

static char *stats_text(struct bcfs *fs, int json)
{
	struct bc_stats st = {0};
	struct bcfs_fs_stats f = {0};
	char *text, err[sizeof(fs->ctl_last_error)];
	int rc = bc_stats_get(fs->db, &st);

	if (rc)
		memset(&st, 0, sizeof(st));
	f.uptime_s = (uint64_t)((bcfs_now_ns() - fs->start_ns) / 1000000000);
	f.lookups = fs->n.lookups;
	f.getattrs = fs->n.getattrs;
	f.opens = fs->n.opens;
	f.reads = fs->n.reads;
	f.read_bytes = fs->n.read_bytes;
	f.writes = fs->n.writes;
	f.write_bytes = fs->n.write_bytes;
	f.creates = fs->n.creates;
	f.unlinks = fs->n.unlinks;
	f.renames = fs->n.renames;
	f.mkdirs = fs->n.mkdirs;
	f.rmdirs = fs->n.rmdirs;
	f.fsyncs = fs->n.fsyncs;
	f.flushes = fs->n.flushes;
	f.readdirs = fs->n.readdirs;
	f.dirty_bytes = fs->dirty_bytes;
	f.inodes = bcfs_inode_count(fs);
	f.meta_reads = fs->n.meta_reads;
	f.meta_hits = fs->n.meta_hits;
	f.pending_creates = fs->npending;
	f.merges_requested = fs->n.merges_requested;
	f.merge_running = fs->merge_running;
	f.merge_last_rc = (uint64_t)(-(int64_t)fs->merge_last_rc);
	f.ctl_commands = fs->n.ctl_commands;
	f.ctl_errors = fs->n.ctl_errors;
	pthread_mutex_lock(&fs->ctl_lock);
	memcpy(err, fs->ctl_last_error, sizeof(err));
	pthread_mutex_unlock(&fs->ctl_lock);
	f.ctl_last_error = err;
	text = bcfs_ctl_format_stats(&st, &f, json);
	bc_stats_release(&st);
	return text;
}

void bcfs_ctl_open(struct bcfs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bcfs_handle *h;
	int acc = fi->flags & O_ACCMODE;

	if (ino == BCFS_INO_CTL_DIR) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((ino == BCFS_INO_CTL_CMD && acc != O_WRONLY) ||
	    (ino != BCFS_INO_CTL_CMD && acc != O_RDONLY)) {
		fuse_reply_err(req, EACCES); /* even for root: stats are read, control written */
		return;
	}
	h = bcfs_handle_new(fs, NULL);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->ctl_ino = ino;
	if (ino != BCFS_INO_CTL_CMD) {
		h->text = stats_text(fs, ino == BCFS_INO_CTL_JSON);
		if (!h->text) {
			bcfs_handle_free(fs, h);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		h->text_len = strlen(h->text);
	}
	fi->fh = h->id;
	fi->direct_io = 1;
	if (fuse_reply_open(req, fi))
		bcfs_handle_free(fs, h);
}

void bcfs_ctl_read(fuse_req_t req, struct bcfs_handle *h, size_t size, off_t off)
{
	if (!h->text || (size_t)off >= h->text_len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > h->text_len - (size_t)off)
		size = h->text_len - (size_t)off;
	fuse_reply_buf(req, h->text + off, size);
}

static void ctl_error(struct bcfs *fs, const char *line, size_t len, const char *why)
{
	pthread_mutex_lock(&fs->ctl_lock);
	snprintf(fs->ctl_last_error, sizeof(fs->ctl_last_error), "%s: '%.*s'", why,
		 (int)(len > 64 ? 64 : len), line);
	pthread_mutex_unlock(&fs->ctl_lock);
	atomic_fetch_add(&fs->n.ctl_errors, 1);
	bcfs_log(BC_LOG_ERROR, "control: %s: '%.*s'", why, (int)(len > 64 ? 64 : len), line);
}

static void *merge_main(void *arg)
{
	struct bcfs *fs = arg;

	pthread_setname_np(pthread_self(), "bcfs-merge");
	int rc = bc_merge(fs->db, true);

	fs->merge_last_rc = rc;
	if (rc)
		bcfs_log(BC_LOG_ERROR, "merge: %s", bc_strerror(rc));
	else
		bcfs_log(BC_LOG_INFO, "merge done");
	fs->merge_running = false;
	return NULL;
}

static int start_merge(struct bcfs *fs)
{
	int rc = 0;

	pthread_mutex_lock(&fs->ctl_lock);
	if (fs->merge_running) {
		rc = -EBUSY;
		goto out;
	}
	if (fs->merge_thread_live) {
		pthread_join(fs->merge_thread, NULL);
		fs->merge_thread_live = false;
	}
	fs->merge_running = true;
	atomic_fetch_add(&fs->n.merges_requested, 1);
	rc = -pthread_create(&fs->merge_thread, NULL, merge_main, fs);
	if (rc)
		fs->merge_running = false;
	else
		fs->merge_thread_live = true;
out:
	pthread_mutex_unlock(&fs->ctl_lock);
	return rc;
}

static int run_line(struct bcfs *fs, const char *line, size_t len)
{
	struct bcfs_cmd cmd;
	const char *why;
	char *path;
	int rc = bcfs_ctl_parse(line, len, &cmd, &why);

	if (rc <= 0) {
		if (rc)
			ctl_error(fs, line, len, why);
		return rc;
	}
	atomic_fetch_add(&fs->n.ctl_commands, 1);
	if (fs->ro && cmd.kind != BCFS_CMD_SNAPSHOT) {
		ctl_error(fs, line, len, "read-only mount");
		return -EROFS;
	}
	switch (cmd.kind) {
	case BCFS_CMD_MERGE:
		rc = start_merge(fs);
		break;
	case BCFS_CMD_SYNC:
		rc = bcfs_inode_flush_open(fs);
		if (!rc)
			rc = bcfs_inode_flush_pending(fs, false);
		if (!rc)
			rc = bc_sync(fs->db);
		break;
	case BCFS_CMD_SNAPSHOT:
		path = bcfs_ctl_snapshot_path(fs->datadir, cmd.arg);
		if (!path)
			return -ENOMEM;
		/* Buffered writes of files still open go in too, as on a local filesystem. */
		rc = bcfs_inode_flush_open(fs);
		if (!rc)
			rc = bcfs_inode_flush_pending(fs, false);
		if (!rc)
			rc = bc_snapshot(fs->db, path);
		if (!rc)
			bcfs_log(BC_LOG_INFO, "snapshot written to %s", path);
		free(path);
		break;
	}
	if (rc)
		ctl_error(fs, line, len, bc_strerror(rc));
	return rc;
}

void bcfs_ctl_write(struct bcfs *fs, fuse_req_t req, struct bcfs_handle *h, const char *buf,
		    size_t size)
{
	size_t b = 0;
	int rc = 0;

	(void)h;
	while (b < size && !rc) {
		const char *nl = memchr(buf + b, '\n', size - b);
		size_t e = nl ? (size_t)(nl - buf) : size;

		rc = run_line(fs, buf + b, e - b);
		b = e + 1;
	}
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, size);
}

void bcfs_ctl_release(struct bcfs *fs, struct bcfs_handle *h)
{
	(void)fs;
	(void)h;
}

void bcfs_ctl_shutdown(struct bcfs *fs)
{
	pthread_mutex_lock(&fs->ctl_lock);
	if (fs->merge_thread_live) {
		pthread_join(fs->merge_thread, NULL);
		fs->merge_thread_live = false;
	}
	pthread_mutex_unlock(&fs->ctl_lock);
}
