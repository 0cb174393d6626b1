#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcaskfs with whole trees: cp -a, tar c/x, rsync -a into the mount and back out with
# diff -r clean, and a second rsync -a --itemize-changes that transfers nothing. The tree
# has nested directories, empty ones, symlinks, odd modes, old times, xattrs, a sparse file,
# files of 0, 1, 64 KiB +/- 1 and a few MiB, and names with spaces, '%' and newlines.
. "$(dirname "$0")/lib.sh"
bcfs_require
command -v rsync >/dev/null || skip "no rsync"

S=$T/src
mkdir -p "$S/a/b/c" "$S/empty" "$S/sp ace" "$S/pct%20dir"
: >"$S/zero"
printf x >"$S/one"
head -c 65535 /dev/urandom >"$S/a/k64m"
head -c 65536 /dev/urandom >"$S/a/k64"
head -c 65537 /dev/urandom >"$S/a/b/k64p"
head -c 3000000 /dev/urandom >"$S/a/b/c/big"
printf 'percent' >"$S/pct%20dir/100%"
printf 'nl' >"$S/sp ace/new
line"
truncate -s 1000000 "$S/sparse"
printf 'mid' | dd of="$S/sparse" bs=1 seek=500000 conv=notrunc status=none
ln -s a/b "$S/dirlink"
ln -s /nonexistent "$S/dangling"
chmod 0700 "$S/a/b"
chmod 0444 "$S/one"
chmod 4755 "$S/a/k64"
touch -h -d '1999-12-31 23:59:59.5' "$S/dangling"
touch -d '2010-01-01 00:00:00.000000001' "$S/a/k64m" "$S/empty"
if command -v setfattr >/dev/null; then
	setfattr -n user.tag -v hello "$S/a/b/k64p"
fi

M=$T/mnt
bcfs_mount "$T/data" "$M"

# cp -a
cp -a "$S" "$M/cpa"
diff -r --no-dereference "$S" "$M/cpa" || fail "diff -r after cp -a"
expect_eq "$(stat -c '%a %Y' "$M/cpa/a/k64m")" "$(stat -c '%a %Y' "$S/a/k64m")" "cp -a mode+mtime"
expect_eq "$(stat -c %a "$M/cpa/a/k64")" 4755 "cp -a setuid mode"

# tar c | tar x into the mount, and tar c from the mount
(cd "$S" && tar cf - .) | (mkdir "$M/tarx" && cd "$M/tarx" && tar xpf -) || fail "tar x into the mount"
diff -r --no-dereference "$S" "$M/tarx" || fail "diff -r after tar x"
(cd "$M/tarx" && tar cf - .) | (mkdir "$T/tarback" && cd "$T/tarback" && tar xpf -) ||
	fail "tar c from the mount"
diff -r --no-dereference "$S" "$T/tarback" || fail "diff -r after tar c from the mount"

# rsync -a in and back out; a second run transfers nothing
rsync -aX "$S/" "$M/rs/" || fail "rsync -a into the mount"
diff -r --no-dereference "$S" "$M/rs" || fail "diff -r after rsync in"
rsync -aX "$M/rs/" "$T/back/" || fail "rsync -a out of the mount"
diff -r --no-dereference "$S" "$T/back" || fail "diff -r after rsync out"
changes=$(rsync -aX --itemize-changes "$S/" "$M/rs/")
expect_eq "$changes" "" "second rsync -a --itemize-changes"
expect_eq "$(stat -c '%a %u %Y' "$M/rs/a/b")" "$(stat -c '%a %u %Y' "$S/a/b")" "rsync dir attrs"
expect_eq "$(stat -c '%Y' "$M/rs/dangling")" "$(stat -c '%Y' "$S/dangling")" "symlink mtime"
if command -v getfattr >/dev/null; then
	expect_eq "$(getfattr --only-values -n user.tag "$M/rs/a/b/k64p" 2>/dev/null)" hello "rsync -X"
fi

# After a remount nothing changed either.
bcfs_umount "$M"
bcfs_mount "$T/data" "$M"
changes=$(rsync -aX --itemize-changes "$S/" "$M/rs/")
expect_eq "$changes" "" "rsync after remount"
diff -r --no-dereference "$S" "$M/cpa" || fail "diff -r after remount"
bcfs_umount "$M"
pass
