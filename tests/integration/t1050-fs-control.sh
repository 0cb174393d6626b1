#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcaskfs control area: stats and stats.json change as expected, unknown commands fail
# with EINVAL and are named in the log and in stats, sync works, and snapshot NAME makes a
# consistent copy beside DATADIR that rsync -a can back up and that mounts on its own.
. "$(dirname "$0")/lib.sh"
bcfs_require

M=$T/mnt
bcfs_mount "$T/data" "$M"
C=$M/.bitcask
expect_eq "$(stat -c %a "$C")" 700 "control dir mode"
expect_eq "$(stat -c %a "$C/stats") $(stat -c %a "$C/control")" "400 200" "control file modes"
ls "$C" | sort | tr '\n' ' ' | grep -qx 'control stats stats.json ' || fail "control listing"
stat_of() { grep "^$1 " "$C/stats" | cut -d' ' -f2; }

for key in keys live_bytes dead_bytes fragmentation_percent merge_state merge_progress_percent \
	recovered_torn_bytes keydir_bytes uptime_s op_write; do
	grep -q "^$key " "$C/stats" || fail "stats has no $key"
done
k0=$(stat_of keys)
w0=$(stat_of op_write)
for i in $(seq 1 10); do echo "$i" >"$M/k$i"; done
expect_eq "$(stat_of keys)" $((k0 + 10)) "keys after 10 creates"
[ "$(stat_of op_write)" -ge $((w0 + 10)) ] || fail "op_write did not grow"
for i in $(seq 1 10); do echo "again $i" >"$M/k$i"; done
[ "$(stat_of dead_bytes)" -gt 0 ] || fail "rewrites left no dead bytes"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["keys"] >= 10; assert isinstance(d["file"], list)' \
	"$C/stats.json" || fail "stats.json is not the expected JSON"

# Commands: unknown -> EINVAL, reason in the log and in stats.
err=$( (echo frobnicate >"$C/control") 2>&1 || true)
case $err in *"Invalid argument"*) ;; *) fail "unknown command: '$err'" ;; esac
grep -q "control: unknown command: 'frobnicate'" "$BCFS_LOG" || fail "reason not in the log"
[ "$(stat_of control_errors)" -ge 1 ] || fail "control_errors"
grep -q "^control_last_error unknown command" "$C/stats" || fail "control_last_error"
echo sync >"$C/control" || fail "sync command"

# snapshot NAME goes next to DATADIR; it mounts on its own and rsync -a copies it.
mkdir -p "$M/tree/sub"
head -c 200000 /dev/urandom >"$M/tree/sub/blob"
echo snap >"$M/tree/note"
# A file still open with buffered writes: the snapshot must hold them too.
exec 3>"$M/tree/open"
printf 'buffered' >&3
echo "snapshot snap1" >"$C/control" || fail "snapshot command"
exec 3>&-
[ -d "$T/snap1" ] || fail "snapshot directory $T/snap1 missing"
err=$( (echo "snapshot snap1" >"$C/control") 2>&1 || true)
case $err in *"File exists"*) ;; *) fail "second snapshot with the same name: '$err'" ;; esac
echo after >"$M/tree/later"
rsync -a "$T/snap1/" "$T/backup/" || fail "rsync -a of the snapshot"
bcfs_mount "$T/backup" "$T/mnt2"
diff -r "$M/tree/sub" "$T/mnt2/tree/sub" || fail "snapshot contents"
expect_eq "$(cat "$T/mnt2/tree/note")" snap "snapshot file"
expect_eq "$(cat "$T/mnt2/tree/open")" buffered "buffered write of an open file in the snapshot"
[ ! -e "$T/mnt2/tree/later" ] || fail "a write after the snapshot is in it"
bcfs_umount "$T/mnt2"
echo "snapshot $T/abs-snap" >"$C/control" || fail "snapshot to an absolute path"
[ -d "$T/abs-snap" ] || fail "absolute snapshot missing"
bcfs_umount "$M"
pass
