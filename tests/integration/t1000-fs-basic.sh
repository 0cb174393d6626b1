#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcaskfs with ordinary tools: cat, cp, mv (file and directory), rm, rm -r, mkdir -p,
# rmdir, ln -s, truncate, >> appends, dd at offsets with conv=notrunc, touch -d, chmod,
# chown, xattrs, ls -l, du, df, find, stat; and that all of it survives a remount.
. "$(dirname "$0")/lib.sh"
bcfs_require

D=$T/data
M=$T/mnt
bcfs_mount "$D" "$M"

# cat, cp, >> appends
echo hello >"$M/a"
expect_eq "$(cat "$M/a")" hello "cat"
for i in $(seq 1 200); do echo "line $i" >>"$M/log"; done
expect_eq "$(wc -l <"$M/log")" 200 "appended lines"
expect_eq "$(sed -n 137p "$M/log")" "line 137" "line 137"
head -c 300000 /dev/urandom >"$T/rand"
cp "$T/rand" "$M/rand"
cmp "$T/rand" "$M/rand" || fail "cp of 300000 random bytes"

# mkdir -p, mv of a file and a directory, rmdir, rm, rm -r
mkdir -p "$M/x/y/z"
[ -d "$M/x/y/z" ] || fail "mkdir -p"
mv "$M/a" "$M/x/y/a2"
[ ! -e "$M/a" ] || fail "mv left the source"
expect_eq "$(cat "$M/x/y/a2")" hello "mv file"
cp "$T/rand" "$M/x/y/z/big"
mv "$M/x" "$M/w"
[ ! -e "$M/x" ] || fail "mv dir left the source"
cmp "$T/rand" "$M/w/y/z/big" || fail "mv dir moved the contents"
expect_eq "$(cat "$M/w/y/a2")" hello "file in moved dir"
mkdir "$M/empty"
rmdir "$M/empty"
[ ! -e "$M/empty" ] || fail "rmdir"
if rmdir "$M/w" 2>/dev/null; then fail "rmdir of a non-empty directory"; fi
rm "$M/w/y/a2"
[ -d "$M/w/y" ] || fail "removing the last file removed its directory"
rm -r "$M/w"
[ ! -e "$M/w" ] || fail "rm -r"

# ln -s, readlink
ln -s /some/where/else "$M/link"
expect_eq "$(readlink "$M/link")" /some/where/else "readlink"
[ -L "$M/link" ] || fail "symlink is not a link"
ln -s log "$M/rel"
expect_eq "$(head -1 "$M/rel")" "line 1" "relative symlink followed"
if ln "$M/log" "$M/hard" 2>/dev/null; then fail "hard link accepted"; fi
if mkfifo "$M/fifo" 2>/dev/null; then fail "mkfifo accepted"; fi

# truncate, dd with conv=notrunc, sparse holes
truncate -s 100000 "$M/sparse"
expect_eq "$(stat -c %s "$M/sparse")" 100000 "truncate up"
cmp <(head -c 100000 /dev/zero) "$M/sparse" || fail "hole reads as zeros"
printf 'XYZ' | dd of="$M/sparse" bs=1 seek=70000 conv=notrunc status=none
expect_eq "$(dd if="$M/sparse" bs=1 skip=69999 count=5 status=none | od -An -c | tr -d ' ')" \
	'\0XYZ\0' "dd at an offset"
expect_eq "$(stat -c %s "$M/sparse")" 100000 "conv=notrunc keeps the size"
printf 'tail' | dd of="$M/sparse" bs=1 seek=5000000 conv=notrunc status=none
expect_eq "$(stat -c %s "$M/sparse")" 5000004 "write past the end"
truncate -s 3 "$M/sparse"
expect_eq "$(stat -c %s "$M/sparse")" 3 "truncate down"
truncate -s 70003 "$M/sparse"
expect_eq "$(dd if="$M/sparse" bs=1 skip=70000 count=3 status=none | od -An -v -tx1 | tr -d ' ')" \
	000000 "no old bytes come back after truncate down and up"
: >"$M/log2"
echo one >"$M/log2"
echo two >"$M/log2"
expect_eq "$(cat "$M/log2")" two "O_TRUNC"

# touch -d, chmod, chown, xattrs, ls -l
touch -d '2001-02-03 04:05:06.123456789' "$M/log"
expect_eq "$(stat -c %y "$M/log")" "2001-02-03 04:05:06.123456789 +0000" "touch -d" || true
chmod 0600 "$M/log"
expect_eq "$(stat -c %a "$M/log")" 600 "chmod"
chown 1234:5678 "$M/rand"
expect_eq "$(stat -c %u:%g "$M/rand")" 1234:5678 "chown"
mkdir "$M/dir"
chmod 0711 "$M/dir"
expect_eq "$(stat -c %a "$M/dir")" 711 "chmod dir"
if command -v setfattr >/dev/null; then
	setfattr -n user.color -v blue "$M/log"
	expect_eq "$(getfattr --only-values -n user.color "$M/log" 2>/dev/null)" blue "xattr"
	setfattr -n user.d -v 1 "$M/dir"
fi
ls -l "$M" >"$T/ls" || fail "ls -l"
grep -q ' log$' "$T/ls" || fail "ls -l shows log"
grep -q '^l.* link -> /some/where/else$' "$T/ls" || fail "ls -l shows the link"

# du, df, find, stat
du -s "$M" >/dev/null || fail "du"
[ "$(du -k "$M/rand" | cut -f1)" -ge 290 ] || fail "du of a 300000-byte file"
df "$M" >/dev/null || fail "df"
[ "$(df --output=size -k "$M" | tail -1)" -gt 0 ] || fail "df size"
mkdir -p "$M/f1/f2"
echo x >"$M/f1/f2/leaf"
expect_eq "$(cd "$M" && find f1 | sort | tr '\n' ' ')" "f1 f1/f2 f1/f2/leaf " "find"
expect_eq "$(cd "$M" && find . -type l | sort | tr '\n' ' ')" "./link ./rel " "find -type l"

# Remount: contents, modes, owners, times, links and empty directories persist.
sum_before=$(cd "$M" && find . -path ./.bitcask -prune -o -print0 | sort -z |
	xargs -0 stat -c '%n %a %u %g %s %Y %F' | md5sum)
bcfs_umount "$M"
bcfs_mount "$D" "$M"
sum_after=$(cd "$M" && find . -path ./.bitcask -prune -o -print0 | sort -z |
	xargs -0 stat -c '%n %a %u %g %s %Y %F' | md5sum)
expect_eq "$sum_after" "$sum_before" "names, modes, owners, sizes, mtimes after remount"
expect_eq "$(stat -c %y "$M/log")" "2001-02-03 04:05:06.123456789 +0000" "mtime ns persist"
cmp "$T/rand" "$M/rand" || fail "content after remount"
[ -d "$M/dir" ] || fail "empty directory after remount"
expect_eq "$(readlink "$M/link")" /some/where/else "symlink after remount"
if command -v getfattr >/dev/null; then
	expect_eq "$(getfattr --only-values -n user.color "$M/log" 2>/dev/null)" blue "xattr after remount"
fi
bcfs_umount "$M"
pass
