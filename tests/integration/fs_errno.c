// SPDX-License-Identifier: MIT
/*
 * Exact errnos of system calls through a bitcaskfs mount (t1030-fs-errno.sh):
 *   fs_errno MOUNTPOINT
 * Each check is one syscall and the errno it must fail with (or success). Prints one line
 * per failed check and exits 1 if any failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

static int failures;
static char M[4096];

static const char *p(const char *rel)
{
	static char buf[4][8192];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", M, rel);
	return buf[i];
}

/* expect(call-result, want-errno (0 = success), description) */
#define expect(call, want, what)                                                                 \
	do {                                                                                     \
		errno = 0;                                                                       \
		long r_ = (long)(call);                                                          \
		int e_ = r_ < 0 ? errno : 0;                                                     \
		if (e_ != (want)) {                                                              \
			printf("FAIL %s: errno %d (%s), want %d (%s)\n", what, e_, strerror(e_), \
			       want, strerror(want));                                            \
			failures++;                                                              \
		}                                                                                \
	} while (0)

static int mkfile(const char *rel, const char *data)
{
	int fd = open(p(rel), O_CREAT | O_WRONLY | O_TRUNC, 0644);

	if (fd < 0)
		return -1;
	if (data && write(fd, data, strlen(data)) != (ssize_t)strlen(data)) {
		close(fd);
		return -1;
	}
	return close(fd);
}

int main(int argc, char **argv)
{
	char name[300], buf[64];
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: fs_errno MOUNTPOINT\n");
		return 2;
	}
	snprintf(M, sizeof(M), "%s", argv[1]);

	expect(mkfile("f", "data"), 0, "create f");
	expect(mkdir(p("d"), 0755), 0, "mkdir d");
	expect(mkfile("d/inner", "x"), 0, "create d/inner");
	expect(mkdir(p("e"), 0755), 0, "mkdir e");

	/* open / creat */
	expect(open(p("missing"), O_RDONLY), ENOENT, "open missing");
	expect(open(p("f"), O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST, "O_EXCL on existing");
	expect(open(p("f/x"), O_RDONLY), ENOTDIR, "path through a file");
	expect(open(p("f"), O_RDONLY | O_DIRECTORY), ENOTDIR, "O_DIRECTORY on a file");
	expect(open(p("d"), O_WRONLY), EISDIR, "open dir for writing");
	expect(open(p("nodir/x"), O_CREAT | O_WRONLY, 0644), ENOENT, "create in missing dir");

	/* mkdir / rmdir / unlink */
	expect(mkdir(p("d"), 0755), EEXIST, "mkdir existing dir");
	expect(mkdir(p("f"), 0755), EEXIST, "mkdir over a file");
	expect(rmdir(p("d")), ENOTEMPTY, "rmdir non-empty");
	expect(rmdir(p("f")), ENOTDIR, "rmdir a file");
	expect(rmdir(p("missing")), ENOENT, "rmdir missing");
	expect(unlink(p("d")), EISDIR, "unlink a directory");
	expect(unlink(p("missing")), ENOENT, "unlink missing");

	/* rename */
	expect(rename(p("f"), p("d")), EISDIR, "rename file over dir");
	expect(rename(p("d"), p("f")), ENOTDIR, "rename dir over file");
	expect(mkdir(p("full"), 0755), 0, "mkdir full");
	expect(mkfile("full/x", "x"), 0, "create full/x");
	expect(rename(p("e"), p("full")), ENOTEMPTY, "rename dir over non-empty dir");
	expect(rename(p("d"), p("d/sub")), EINVAL, "rename dir into itself");
	expect(rename(p("missing"), p("other")), ENOENT, "rename missing");
	expect(syscall(SYS_renameat2, AT_FDCWD, p("f"), AT_FDCWD, p("full/x"), 1 /* NOREPLACE */),
	       EEXIST, "RENAME_NOREPLACE onto existing");
	expect(syscall(SYS_renameat2, AT_FDCWD, p("f"), AT_FDCWD, p("full/x"), 2 /* EXCHANGE */),
	       EINVAL, "RENAME_EXCHANGE");
	expect(rename(p("e"), p("e2")), 0, "rename empty dir");
	expect(mkdir(p("e3"), 0755), 0, "mkdir e3");
	expect(rename(p("e2"), p("e3")), 0, "rename dir over empty dir");

	/* links and special files: refused */
	expect(link(p("f"), p("hard")), EPERM, "hard link");
	expect(mknod(p("fifo"), S_IFIFO | 0644, 0), EPERM, "mkfifo");
	expect(mknod(p("chr"), S_IFCHR | 0644, makedev(1, 3)), EPERM, "mknod char device");
	expect(mknod(p("reg"), S_IFREG | 0644, 0), 0, "mknod regular file");
	expect(symlink("target", p("sl")), 0, "symlink");
	expect(symlink("target", p("sl")), EEXIST, "symlink over existing");
	expect(readlink(p("f"), buf, sizeof(buf)), EINVAL, "readlink of a file");

	/* names */
	memset(name, 'n', 256);
	name[256] = 0;
	expect(open(p(name), O_CREAT | O_WRONLY, 0644), ENAMETOOLONG, "256-byte name");
	name[255] = 0;
	expect(mkfile(name, NULL), 0, "255-byte name");
	expect(open(p("%=abc"), O_CREAT | O_WRONLY, 0644), EINVAL, "non-canonical escape");
	expect(open(p("%@"), O_CREAT | O_WRONLY, 0644), EINVAL, "shadow name of nothing");
	expect(mkdir(p("%+6162"), 0755), EINVAL, "continuation name");
	expect(mkdir(p("%=%00"), 0755), 0, "escaped NUL is fine");

	/* a key longer than the engine allows: nest 255-byte directories */
	{
		int dfd = open(M, O_RDONLY | O_DIRECTORY), depth = 0, r = 0, e = 0;

		memset(name, 'k', 255);
		name[255] = 0;
		while (dfd >= 0 && depth < 400) {
			r = mkdirat(dfd, name, 0755);
			if (r) {
				e = errno;
				break;
			}
			int nfd = openat(dfd, name, O_RDONLY | O_DIRECTORY);

			close(dfd);
			dfd = nfd;
			depth++;
		}
		if (dfd >= 0)
			close(dfd);
		if (!r || e != ENAMETOOLONG || depth < 250) {
			printf("FAIL deep key: depth %d errno %d (%s), want ENAMETOOLONG past 250\n",
			       depth, e, strerror(e));
			failures++;
		}
	}

	/* xattrs */
	expect(getxattr(p("f"), "user.none", buf, sizeof(buf)), ENODATA, "getxattr missing");
	expect(setxattr(p("f"), "user.a", "1", 1, XATTR_CREATE), 0, "setxattr create");
	expect(setxattr(p("f"), "user.a", "1", 1, XATTR_CREATE), EEXIST, "XATTR_CREATE again");
	expect(setxattr(p("f"), "user.b", "1", 1, XATTR_REPLACE), ENODATA, "XATTR_REPLACE missing");
	if (getxattr(p("f"), "user.a", buf, 0) != 1) {
		printf("FAIL getxattr size query\n");
		failures++;
	}
	expect(setxattr(p("f"), "trusted.x", "1", 1, 0), ENOTSUP, "non-user namespace");
	expect(removexattr(p("f"), "user.none"), ENODATA, "removexattr missing");
	expect(removexattr(p("f"), "user.a"), 0, "removexattr");

	/* truncate */
	expect(truncate(p("d"), 0), EISDIR, "truncate a directory");
	fd = open(p("f"), O_RDONLY);
	expect(ftruncate(fd, 0), EINVAL, "ftruncate read-only fd");
	close(fd);

	/* control area */
	expect(open(p(".bitcask/stats"), O_WRONLY), EACCES, "write stats");
	expect(open(p(".bitcask/control"), O_RDONLY), EACCES, "read control");
	expect(open(p(".bitcask/new"), O_CREAT | O_WRONLY, 0644), EPERM, "create in control area");
	expect(mkdir(p(".bitcask"), 0755), EEXIST, "mkdir .bitcask");
	expect(unlink(p(".bitcask/stats")), EPERM, "unlink stats");
	expect(rename(p("f"), p(".bitcask/stats")), EPERM, "rename onto stats");
	expect(rename(p(".bitcask/stats"), p("st")), EPERM, "rename stats away");
	fd = open(p(".bitcask/control"), O_WRONLY);
	expect(fd, 0, "open control");
	expect(write(fd, "frobnicate\n", 11), EINVAL, "unknown command");
	expect(write(fd, "snapshot a/b\n", 13), EINVAL, "bad snapshot name");
	expect(write(fd, "sync\n", 5), 0, "sync command");
	close(fd);

	if (failures)
		printf("%d checks failed\n", failures);
	return failures ? 1 : 0;
}
