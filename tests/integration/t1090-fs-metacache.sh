#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcaskfs metadata cache and deferred creates. stat answers from the daemon's per-inode
# cache without reading the store (the meta_reads counter stays put while 1000 files are
# looked up and stat'ed), yet shows every change made through every path: write, append,
# truncate, chmod, chown, touch, mv over a file, mv of a directory, xattrs; and what it
# shows equals what a fresh daemon reads from the store after a remount. A created file
# gets no record until its first close, fsync or write-out: `create; write; close` appends
# exactly one record, while a file still open unwritten is visible to stat, ls, rename,
# unlink and rmdir from other processes and survives unmount (and, after fsync, a kill -9)
# as an empty file.
. "$(dirname "$0")/lib.sh"
bcfs_require
export LC_ALL=C
M=$T/mnt
D=$T/data
bcfs_mount "$D" "$M"
stat_of() { grep "^$1 " "$M/.bitcask/stats" | cut -d' ' -f2 | grep . || fail "no $1 in stats"; }
# "name size mode uid gid atime_ns mtime_ns ctime_ns" for each path given, from the daemon
# (the caller lets the kernel's 1 s attribute cache lapse first).
attrs() {
	python3 - "$@" <<'EOF'
import os, sys
for p in sys.argv[1:]:
    s = os.lstat(p)
    print(os.path.basename(p), s.st_size, oct(s.st_mode), s.st_uid, s.st_gid,
          s.st_atime_ns, s.st_mtime_ns, s.st_ctime_ns)
EOF
}
lapse() { sleep 1.2; } # longer than the daemon's 1 s entry and attribute timeouts
field() { attrs "$1" | cut -d' ' -f"$2"; }

# ---- 1. every path that changes metadata shows in stat ---------------------------------
mkdir "$M/p" "$M/d"
printf abc >"$M/p/w"
printf abc >>"$M/p/w"
printf 0123456789 >"$M/p/t"
truncate -s 4 "$M/p/t"
printf x >"$M/p/m"
chmod 604 "$M/p/m"
printf x >"$M/p/o"
chown 1234:5678 "$M/p/o"
printf x >"$M/p/u"
touch -m -d '2001-02-03 04:05:06' "$M/p/u"
touch -a -d '2002-03-04 05:06:07' "$M/p/u"
printf 12345 >"$M/p/src"
chmod 640 "$M/p/src"
printf 123456789 >"$M/p/dst"
printf y >"$M/d/x"
chmod 606 "$M/d/x"
printf x >"$M/p/xa"
lapse
# Known inodes with cached attributes, changed below.
attrs "$M/p/dst" "$M/d/x" "$M/p/xa" "$M/p/w" >/dev/null
ctime_xa=$(field "$M/p/xa" 8)
mtime_w=$(field "$M/p/w" 7)
sleep 0.01
mv "$M/p/src" "$M/p/dst"
mv "$M/d" "$M/e"
setfattr -n user.k -v value "$M/p/xa"
printf more >>"$M/p/w"
printf zz >>"$M/e/x"
lapse
expect_eq "$(field "$M/p/w" 2)" 10 "size after write and appends"
[ "$(field "$M/p/w" 7)" -gt "$mtime_w" ] || fail "mtime did not move with a write"
expect_eq "$(field "$M/p/t" 2)" 4 "size after truncate"
expect_eq "$(field "$M/p/m" 3)" 0o100604 "mode after chmod"
expect_eq "$(attrs "$M/p/o" | cut -d' ' -f4-5)" "1234 5678" "owner after chown"
expect_eq "$(field "$M/p/u" 7)" "$(date -d '2001-02-03 04:05:06' +%s)000000000" "touch -m -d"
expect_eq "$(field "$M/p/u" 6)" "$(date -d '2002-03-04 05:06:07' +%s)000000000" "touch -a -d"
expect_eq "$(attrs "$M/p/dst" | cut -d' ' -f2-3)" "5 0o100640" "mv over: the moved file"
[ ! -e "$M/d" ] || fail "directory still there after mv"
expect_eq "$(attrs "$M/e/x" | cut -d' ' -f2-3)" "3 0o100606" "file in a renamed directory"
[ "$(field "$M/p/xa" 8)" -gt "$ctime_xa" ] || fail "ctime did not move with setxattr"
expect_eq "$(getfattr --only-values -n user.k "$M/p/xa")" value "xattr read back"
setfattr -x user.k "$M/p/xa"
lapse
all=("$M/p/w" "$M/p/t" "$M/p/m" "$M/p/o" "$M/p/u" "$M/p/dst" "$M/e/x" "$M/p/xa" "$M/e" "$M/p")
attrs "${all[@]}" >"$T/cached"

# ---- 2. stat of known files reads nothing from the store -------------------------------
mkdir "$M/many"
for i in $(seq 1000); do printf 'file %d\n' "$i" >"$M/many/f$i"; done
lapse
reads0=$(stat_of meta_reads)
hits0=$(stat_of meta_cache_hits)
lookups0=$(stat_of op_lookup)
stat "$M"/many/f* >/dev/null
reads1=$(stat_of meta_reads)
hits1=$(stat_of meta_cache_hits)
lookups1=$(stat_of op_lookup)
expect_eq "$reads1" "$reads0" "metadata reads from the store while stat'ing 1000 known files"
[ $((lookups1 - lookups0)) -ge 1000 ] || fail "lookups did not reach the daemon: $lookups0 -> $lookups1"
[ $((hits1 - hits0)) -ge 1000 ] || fail "cache hits $hits0 -> $hits1"

# ---- 3. create; write; close appends exactly one record --------------------------------
mkdir "$M/one"
puts0=$(stat_of engine_puts)
for i in $(seq 100); do head -c 4096 /dev/zero >"$M/one/f$i"; done
puts1=$(stat_of engine_puts)
expect_eq "$((puts1 - puts0))" 100 "engine writes for 100 create;write;close"
expect_eq "$(stat_of pending_creates)" 0 "pending creates after close"
# As cp -a and tar -x do: owner, mode and times set between the write and the
# close stay with the created file's first record (counted in section 5).
python3 - "$M/one" <<'PY'
import os, sys
for i in range(10):
    fd = os.open(f"{sys.argv[1]}/cpa{i}", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    os.write(fd, b"x" * (100 + i))
    os.fchown(fd, 1000 + i, 2000)
    os.fchmod(fd, 0o640)
    os.utime(fd, ns=(1_500_000_000_000_000_000 + i, 1_600_000_000_000_000_000 + i))
    os.close(fd)
PY
cpa_attrs() { stat -c '%n %s %a %u %g %.9Y %.9X' "$M"/one/cpa*; }
cpa_attrs >"$T/cpa_cached"
expect_eq "$(sed -n 4p "$T/cpa_cached")" \
	"$M/one/cpa3 103 640 1003 2000 1600000000.000000003 1500000000.000000003" \
	"attributes set on a created file before its close"

# ---- 4. a created file still open and unwritten exists for everyone ---------------------
mkdir "$M/q" "$M/r"
used() { stat -f -c '%c %d' "$M" | awk '{ print $1 - $2 }'; } # statfs: files in use
used0=$(used)
exec 3>"$M/q/open"
expect_eq "$(stat_of pending_creates)" 1 "pending creates while open"
expect_eq "$(used)" "$((used0 + 1))" "statfs files in use with a created, unwritten file"
expect_eq "$(stat -c '%s %a' "$M/q/open")" "0 644" "stat of a created, unwritten file"
expect_eq "$(ls "$M/q")" open "ls of a directory with a created, unwritten file"
exec 3>&-
exec 3>"$M/r/p1" 4>"$M/r/p2" 5>"$M/r/p3" 6>"$M/r/p4"
expect_fail 1 "$T/err" rmdir "$M/r"
grep -q 'not empty' "$T/err" || fail "rmdir of a directory with only pending files: $(cat "$T/err")"
mv "$M/r/p1" "$M/r/p1.moved"
rm "$M/r/p2"
printf later >&3
chmod 600 "$M/r/p3"
setfattr -n user.a -v b "$M/r/p4"
exec 3>&- 4>&- 5>&- 6>&-
lapse
expect_eq "$(ls "$M/r" | tr '\n' ' ')" "p1.moved p3 p4 " "after rename and unlink of pending files"
expect_eq "$(cat "$M/r/p1.moved")" later "written through a handle after rename"
expect_eq "$(stat -c '%s %a' "$M/r/p3")" "0 600" "chmod of a pending file"
expect_eq "$(getfattr --only-values -n user.a "$M/r/p4")" b "xattr of a pending file"
# Read by another process while the creator still has it open.
exec 3>"$M/q/rd"
expect_eq "$(wc -c <"$M/q/rd")" 0 "read of a pending file"
exec 3>&-
# Held open across the unmount: it is written as an empty file.
exec 3>"$M/q/held"
attrs "$M/q/held" >/dev/null
exec 3>&-
attrs "${all[@]}" >"$T/cached2"
cmp "$T/cached" "$T/cached2" || fail "attributes changed without a write"

# ---- 5. what the cache said is what the store holds -------------------------------------
bcfs_umount "$M"
nrec=$("$BIN/bitcask" dump "$D" | grep -c ' key=one/f')
expect_eq "$nrec" 100 "records for 100 create;write;close"
nrec=$("$BIN/bitcask" dump "$D" | grep -c ' key=one/cpa')
expect_eq "$nrec" 10 "records for 10 create;write;chown;chmod;utimens;close"
bcfs_mount "$D" "$M"
cpa_attrs | diff "$T/cpa_cached" - || fail "attributes of created files differ after a remount"
attrs "${all[@]}" >"$T/stored"
diff "$T/cached" "$T/stored" || fail "cached attributes differ from the stored ones"
expect_eq "$(stat -c '%s %a' "$M/q/open" "$M/q/held" | tr '\n' ' ')" "0 644 0 644 " \
	"created files closed unwritten are empty files after a remount"

# ---- 6. fsync makes a created, unwritten file durable -----------------------------------
python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_CREAT|os.O_WRONLY, 0o640); os.fsync(fd); print("ok")' \
	"$M/q/synced" >/dev/null
pid=$(bcfs_pid "$M")
kill -9 "$pid"
{ wait "$pid"; } 2>/dev/null || true
fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M"
bcfs_check_log "$BCFS_LOG"
bcfs_mount "$D" "$M"
expect_eq "$(stat -c '%s %a' "$M/q/synced")" "0 640" "fsync'd created file after kill -9"

# ---- 7. creates, writes, listings, stats and renames at once -----------------------------
mkdir "$M/c"
creator() { # n: 150 files, each create; write n+i bytes; close; every 10th renamed
	local n=$1 i
	for i in $(seq 150); do
		head -c $((n * 1000 + i)) /dev/zero >"$M/c/f$n.$i"
		[ $((i % 10)) -ne 0 ] || mv "$M/c/f$n.$i" "$M/c/g$n.$i"
	done
}
watcher() { # list and stat the directory until the creators are done
	while [ ! -e "$T/done" ]; do
		ls "$M/c" >/dev/null
		stat "$M"/c/* >/dev/null 2>&1 || true
	done
}
watcher &
wpid=$!
creator 1 &
c1=$!
creator 2 &
c2=$!
creator 3 &
c3=$!
wait $c1 $c2 $c3 || fail "a creator failed"
touch "$T/done"
wait $wpid || fail "the watcher failed"
check_sizes() {
	local n i f
	for n in 1 2 3; do
		for i in $(seq 150); do
			f=$M/c/f$n.$i
			[ $((i % 10)) -ne 0 ] || f=$M/c/g$n.$i
			expect_eq "$(stat -c %s "$f")" $((n * 1000 + i)) "size of $f"
		done
	done
	expect_eq "$(ls "$M/c" | wc -l)" 450 "files after concurrent creates"
}
check_sizes
bcfs_umount "$M"
bcfs_mount "$D" "$M"
check_sizes
bcfs_umount "$M"
pass
