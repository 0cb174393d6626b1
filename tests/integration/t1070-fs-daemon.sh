#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcaskfs as a daemon: it backgrounds itself and reports start-up failures with an exit
# code; a second mount of the same DATADIR fails with a clear message naming the holder's
# pid; SIGTERM unmounts, flushes and leaves a store that reopens without hint fallbacks;
# mount.fuse3 and an fstab line work; -o allow_other lets
# another user read but the kernel still checks permissions and the control area stays
# the owner's.
. "$(dirname "$0")/lib.sh"
bcfs_require
command -v mount.fuse3 >/dev/null || skip "no mount.fuse3"
[ "$(id -u)" -eq 0 ] || skip "needs root for mount -t and allow_other"
export ASAN_OPTIONS="detect_leaks=1:log_path=$T/asan"
D=$T/data
M=$T/mnt
mkdir -p "$M" "$T/m2"
daemon_pid() { pgrep -f "bitcaskfs .*$1( |$)" | head -1; }
wait_gone() {
	local deadline=$((SECONDS + 60))
	while kill -0 "$1" 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || fail "daemon $1 did not exit"
		sleep 0.05
	done
}
at_exit "fusermount3 -u '$M' 2>/dev/null; fusermount3 -u '$T/m2' 2>/dev/null; umount '$T/m3' 2>/dev/null"

# Background mode: the command returns once mounted.
"$BIN/bitcaskfs" "$D" "$M" || fail "bitcaskfs in the background"
bcfs_mounted "$M" || fail "not mounted after bitcaskfs returned"
pid=$(daemon_pid "$M")
[ -n "$pid" ] || fail "no daemon process"
echo data >"$M/file"
mkdir "$M/dir"

# A second mount of the same DATADIR fails, saying why.
rc=0
"$BIN/bitcaskfs" -f "$D" "$T/m2" 2>"$T/second.err" || rc=$?
[ $rc -ne 0 ] || fail "second mount of the same DATADIR succeeded"
grep -q "already open by another process" "$T/second.err" || fail "unclear message: $(cat "$T/second.err")"
grep -q "$pid" "$T/second.err" || fail "message does not name pid $pid: $(cat "$T/second.err")"
bcfs_mounted "$T/m2" && fail "second mount is mounted"
rc=0
"$BIN/bitcaskfs" "$D" "$T/m2" 2>"$T/second.err" || rc=$?
[ $rc -ne 0 ] || fail "second background mount exited 0"

# SIGTERM: unmounted, flushed, closed cleanly.
exec 3>"$M/open-at-term"
printf 'buffered' >&3
kill -TERM "$pid"
wait_gone "$pid"
exec 3>&-
bcfs_mounted "$M" && fail "still mounted after SIGTERM"
"$BIN/bitcask" stats "$D" >"$T/stats" || fail "store does not reopen"
expect_eq "$(grep '^hint_fallbacks ' "$T/stats" | cut -d' ' -f2)" 0 "hint fallbacks after close"
expect_eq "$(grep '^recovered_torn_bytes ' "$T/stats" | cut -d' ' -f2)" 0 "torn bytes after close"
expect_eq "$("$BIN/bitcask" get "$D" file)" data "file after SIGTERM"
expect_eq "$("$BIN/bitcask" get "$D" open-at-term)" buffered "buffered write flushed at SIGTERM"

# mount.fuse3 (what mount -t fuse.bitcaskfs runs; it finds bitcaskfs in PATH) with our
# options. mount(8) gives helpers a fixed PATH, so the uninstalled binary is named with the
# "PROGRAM#SOURCE" form below instead.
PATH=$BIN:$PATH mount.fuse3 "$D" "$M" -t bitcaskfs -o sync=always,allow_other ||
	fail "mount.fuse3 -t bitcaskfs"
bcfs_mounted "$M" || fail "mount.fuse3 did not mount"
expect_eq "$(cat "$M/file")" data "read after mount -t"
grep " $M fuse.bitcaskfs " /proc/mounts | grep -q allow_other || fail "allow_other not in effect"

# allow_other: another user reads what the modes allow and nothing more.
chmod 0644 "$M/file"
echo secret >"$M/secret"
chmod 0600 "$M/secret"
chmod 0755 "$M/dir"
asuser() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
if command -v setpriv >/dev/null; then
	chmod 0755 "$T" # mktemp made it 0700
	expect_eq "$(asuser cat "$M/file")" data "other user reads a 0644 file"
	if asuser cat "$M/secret" >/dev/null 2>&1; then fail "other user read a 0600 file"; fi
	if asuser sh -c "echo x >'$M/file'" 2>/dev/null; then fail "other user wrote a 0644 file"; fi
	if asuser sh -c "echo x >'$M/dir/new'" 2>/dev/null; then fail "other user created in a 0755 dir"; fi
	if asuser cat "$M/.bitcask/stats" >/dev/null 2>&1; then fail "other user read stats"; fi
	if asuser sh -c "echo merge >'$M/.bitcask/control'" 2>/dev/null; then
		fail "other user wrote control"
	fi
fi
pid=$(daemon_pid "$M")
umount "$M" || fail "umount"
wait_gone "$pid"

# An fstab line (mount -T reads a given fstab file instead of /etc/fstab).
if mount --help 2>&1 | grep -q -- '--fstab'; then
	mkdir -p "$T/m3"
	echo "$BIN/bitcaskfs#$D $T/m3 fuse defaults,sync=interval:100 0 0" >"$T/fstab"
	mount -T "$T/fstab" "$T/m3" || fail "mount from an fstab line"
	expect_eq "$(cat "$T/m3/file")" data "read through the fstab mount"
	pid=$(daemon_pid "$T/m3")
	fusermount3 -u "$T/m3" || fail "fusermount3 -u of the fstab mount"
	wait_gone "$pid"
fi
if ls "$T"/asan.* >/dev/null 2>&1; then
	cat "$T"/asan.* >&2
	fail "sanitizer report from a background daemon"
fi
pass
