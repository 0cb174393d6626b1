// SPDX-License-Identifier: MIT
/*
 * bitcaskfs: mount a bitcask data directory so every key is a file (docs/FILESYSTEM.md).
 *
 * Start-up order matters: the store is opened (taking its lock) in the process that will
 * serve the mount, after forking into the background, because the engine's background
 * thread would not survive a fork. The parent waits on a pipe until the child has opened
 * the store and mounted, so a failure (a second mount of the same DATADIR) is reported on
 * the terminal with a nonzero exit. Unmounting or SIGTERM/SIGINT ends the loop; then every
 * buffered write is flushed and bc_close leaves the store ready to reopen at once.
 */
#include "bcfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static bool log_to_stderr = true;
static bool log_debug;

void bcfs_log(int level, const char *fmt, ...)
{
	static const char *names[] = {"error", "warning", "info", "debug"};
	char msg[1024];
	va_list ap;

	if (level == BC_LOG_DEBUG && !log_debug)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_to_stderr) {
		fprintf(stderr, "bitcaskfs: %s: %s\n", names[level & 3], msg);
	} else {
		static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

		syslog(prio[level & 3], "%s", msg);
	}
}

void bcfs_engine_log(void *ctx, enum bc_log_level level, const char *msg)
{
	(void)ctx;
	bcfs_log((int)level, "%s", msg);
}

int64_t bcfs_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Delete files left unlinked-but-open by an earlier mount (keys "o..." in space 1). */
static void remove_orphans(struct bcfs *fs)
{
	struct bc_iter *it;
	const void *k;
	size_t kl;
	struct bc_batch *b;
	int rc;

	if (bc_batch_new(&b))
		return;
	rc = bc_iter_new(fs->db, BCFS_SPACE_FS, "o", 1, &it);
	if (!rc) {
		while (!(rc = bc_iter_next(it, &k, &kl, NULL)))
			if (bc_batch_delete(b, BCFS_SPACE_FS, k, kl))
				break;
		bc_iter_free(it);
	}
	if (bc_batch_count(b)) {
		rc = bc_batch_commit(fs->db, b);
		bcfs_log(rc ? BC_LOG_WARN : BC_LOG_INFO, "removed %zu orphaned files: %s",
			 bc_batch_count(b), bc_strerror(rc));
	}
	bc_batch_free(b);
}

/* Give the root directory a marker, so its mode, owner and times persist. */
static void make_root(struct bcfs *fs)
{
	struct bc_stat st;
	struct bcfs_meta m = {.mode = S_IFDIR | 0755, .uid = fs->uid, .gid = fs->gid};
	uint8_t buf[BCFS_META_HDR];
	int n;

	if (bc_stat(fs->db, BCFS_SPACE_FS, "d", 1, &st) != -ENOENT)
		return;
	m.atime_ns = m.mtime_ns = m.ctime_ns = fs->start_ns;
	n = bcfs_meta_encode(&m, buf, sizeof(buf));
	if (n > 0)
		n = bc_put_ex(fs->db, BCFS_SPACE_FS, "d", 1, "", 0, buf, (size_t)n, 0);
	if (n < 0)
		bcfs_log(BC_LOG_WARN, "cannot store the root directory: %s", bc_strerror(n));
}

/* Add "-o<opt>" with commas and backslashes in value escaped. */
static int add_opt(struct fuse_args *args, const char *name, const char *value)
{
	size_t n = strlen(name) + 2 * strlen(value) + 4;
	char *s = malloc(n), *p;
	int rc;

	if (!s)
		return -1;
	p = s + sprintf(s, "-o%s=", name);
	for (; *value; value++) {
		if (*value == ',' || *value == '\\')
			*p++ = '\\';
		*p++ = *value;
	}
	*p = 0;
	rc = fuse_opt_add_arg(args, s);
	free(s);
	return rc;
}

static void tell_parent(int fd, char status)
{
	if (fd >= 0) {
		if (write(fd, &status, 1) != 1)
			status = 1;
		close(fd);
	}
}

int main(int argc, char **argv)
{
	struct bcfs fs;
	struct bcfs_cmdline cl;
	struct fuse_loop_config *cfg = NULL;
	int rc, status = 1, pfd[2] = {-1, -1};
	char *real;

	memset(&fs, 0, sizeof(fs));
	if (bcfs_opts_parse(argc, argv, &fs, &cl)) {
		fprintf(stderr, "try '%s --help'\n", argv[0]);
		return 1;
	}
	if (cl.help) {
		bcfs_opts_usage(argv[0]);
		return 0;
	}
	if (cl.version) {
		printf("bitcaskfs %s, libfuse %s\n", "0.1.0", fuse_pkgversion());
		return 0;
	}
	if (!cl.datadir || !cl.mountpoint) {
		fprintf(stderr, "bitcaskfs: need DATADIR and MOUNTPOINT; try '%s --help'\n",
			argv[0]);
		return 1;
	}
	log_debug = cl.debug;
	fs.foreground = cl.foreground;
	fs.debug = cl.debug;
	if (!fs.ro && mkdir(cl.datadir, 0755) && errno != EEXIST) {
		fprintf(stderr, "bitcaskfs: cannot create %s: %s\n", cl.datadir, strerror(errno));
		return 1;
	}
	real = realpath(cl.datadir, NULL);
	if (!real) {
		fprintf(stderr, "bitcaskfs: %s: %s\n", cl.datadir, strerror(errno));
		return 1;
	}
	fs.datadir = real;
	fs.mountpoint = cl.mountpoint;
	fs.uid = getuid();
	fs.gid = getgid();
	fs.start_ns = bcfs_now_ns();
	if (!fs.dirty_max)
		fs.dirty_max = 32u << 20;
	fs.bopts.log = bcfs_engine_log;
	/*
	 * Read with pread, not through mappings: a FUSE request costs tens of microseconds,
	 * so the system call saved is noise, while a mapped read turns a disk error into
	 * SIGBUS (the mount would die instead of returning EIO) and every page read around
	 * stays in the daemon's RSS.
	 */
	fs.bopts.mmap_disable = true;
	if (fuse_opt_add_arg(&cl.args, "-odefault_permissions") ||
	    add_opt(&cl.args, "fsname", fs.datadir) ||
	    fuse_opt_add_arg(&cl.args, "-osubtype=bitcaskfs")) {
		fprintf(stderr, "bitcaskfs: out of memory\n");
		return 1;
	}

	if (!cl.foreground) {
		pid_t pid;
		char st = 1;

		if (pipe(pfd)) {
			perror("bitcaskfs: pipe");
			return 1;
		}
		pid = fork();
		if (pid < 0) {
			perror("bitcaskfs: fork");
			return 1;
		}
		if (pid > 0) {
			close(pfd[1]);
			if (read(pfd[0], &st, 1) != 1)
				st = 1;
			close(pfd[0]);
			fuse_opt_free_args(&cl.args);
			free(cl.datadir);
			free(cl.mountpoint);
			free(fs.datadir);
			return st;
		}
		close(pfd[0]);
		setsid();
	}

	rc = bc_open(fs.datadir, &fs.bopts, &fs.db);
	if (rc == -EWOULDBLOCK) {
		fprintf(stderr,
			"bitcaskfs: %s is already open by another process (mounted elsewhere?); "
			"refusing a second mount\n",
			fs.datadir);
		goto out_parent;
	}
	if (rc) {
		fprintf(stderr, "bitcaskfs: cannot open %s: %s\n", fs.datadir, bc_strerror(rc));
		goto out_parent;
	}
	if (!fs.ro) {
		remove_orphans(&fs);
		make_root(&fs);
	}
	pthread_rwlock_init(&fs.ns, NULL);
	pthread_mutex_init(&fs.handles_lock, NULL);
	pthread_mutex_init(&fs.ctl_lock, NULL);
	if (bcfs_itable_init(&fs)) {
		fprintf(stderr, "bitcaskfs: out of memory\n");
		goto out_db;
	}
	fs.se = fuse_session_new(&cl.args, &bcfs_ops, sizeof(bcfs_ops), &fs);
	if (!fs.se)
		goto out_db;
	if (fuse_set_signal_handlers(fs.se))
		goto out_session;
	if (fuse_session_mount(fs.se, fs.mountpoint)) {
		fprintf(stderr, "bitcaskfs: cannot mount on %s\n", fs.mountpoint);
		goto out_signals;
	}
	if (!cl.foreground) {
		int null = open("/dev/null", O_RDWR);

		tell_parent(pfd[1], 0);
		pfd[1] = -1;
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			if (null > 2)
				close(null);
		}
		log_to_stderr = false;
		openlog("bitcaskfs", LOG_PID, LOG_DAEMON);
		if (chdir("/"))
			bcfs_log(BC_LOG_WARN, "chdir /: %s", strerror(errno));
	}
	bcfs_log(BC_LOG_INFO, "serving %s at %s", fs.datadir, fs.mountpoint);

	if (cl.single) {
		rc = fuse_session_loop(fs.se);
	} else {
		cfg = fuse_loop_cfg_create();
		if (!cfg)
			goto out_unmount;
		fuse_loop_cfg_set_clone_fd(cfg, 0);
		fuse_loop_cfg_set_idle_threads(cfg, 10);
		rc = fuse_session_loop_mt(fs.se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	status = rc ? 1 : 0;
	bcfs_inode_flush_all(&fs);
	bcfs_handle_free_all(&fs);
	bcfs_ctl_shutdown(&fs);
out_unmount:
	fuse_session_unmount(fs.se);
out_signals:
	fuse_remove_signal_handlers(fs.se);
out_session:
	fuse_session_destroy(fs.se);
out_db:
	rc = bc_close(fs.db);
	if (rc) {
		bcfs_log(BC_LOG_ERROR, "closing the store: %s", bc_strerror(rc));
		status = 1;
	} else {
		bcfs_log(BC_LOG_INFO, "store closed cleanly");
	}
	fs.db = NULL;
	bcfs_itable_destroy(&fs);
	pthread_mutex_destroy(&fs.ctl_lock);
	pthread_rwlock_destroy(&fs.ns);
	pthread_mutex_destroy(&fs.handles_lock);
out_parent:
	tell_parent(pfd[1], 1);
	if (fs.db)
		bc_close(fs.db);
	fuse_opt_free_args(&cl.args);
	free(cl.datadir);
	free(cl.mountpoint);
	free(fs.datadir);
	return status;
}
