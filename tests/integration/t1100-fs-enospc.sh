#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcaskfs on a full disk (docs/DURABILITY.md "Full disk"): the data directory lives on an
# 8 MiB tmpfs. Filling it through the mount gives ENOSPC from write or close (never EIO,
# never a hang: every step runs under a timeout); what was written before stays readable;
# a merge with no room refuses and says so in the log and in stats (merge_last_rc 28);
# once room is made (a merge needs free space for a copy of the live data it moves, plus
# 1 MiB), deleting files and merging frees space; after unmount `bitcask check`
# finds no damage and a remount reads everything back.
. "$(dirname "$0")/lib.sh"
bcfs_require
[ "$(id -u)" = 0 ] || skip "mounting a tmpfs needs root"

D=$T/small
mkdir -p "$D"
mount -t tmpfs -o size=8m bcfs-enospc "$D" 2>/dev/null || skip "cannot mount a tmpfs here"
# Registered before the mount's own cleanup, so it runs after the daemon is gone.
at_exit "umount '$D' 2>/dev/null || umount -l '$D'"
# Ballast outside the store on the same tmpfs: the "administrator" frees it later.
head -c $((2560 * 1024)) /dev/zero >"$D/ballast"

M=$T/mnt
bcfs_mount "$D/data" "$M" -o max_file_size=512K -o automerge=0
C=$M/.bitcask
stat_of() { grep "^$1 " "$C/stats" | cut -d' ' -f2; }
head -c $((256 * 1024)) /dev/urandom >"$T/src"
sum() { md5sum <"$1" | cut -d' ' -f1; }
want=$(sum "$T/src")

# Dead data to merge later: write two files and replace one.
timeout 60 cp "$T/src" "$M/old" || fail "cp old"
timeout 60 cp "$T/src" "$M/old" || fail "cp old again"

# Fill: whole files until the disk is full. Each cp must end, and with ENOSPC.
n=0 err=
while [ $n -lt 200 ]; do
	if ! err=$(timeout 60 cp "$T/src" "$M/f$n" 2>&1); then
		break
	fi
	n=$((n + 1))
done
[ $n -lt 200 ] || fail "8 MiB tmpfs never filled"
case $err in
*"No space left on device"*) ;;
*) fail "filling the disk: '$err' (wanted ENOSPC, not EIO or a timeout)" ;;
esac
echo "disk full after $n files"

# A small write is buffered by the daemon: the error must come at close, as ENOSPC.
python3 - "$M/small" <<'EOF' || fail "small write + close on a full disk"
import errno, os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
except OSError as e:
    sys.exit(0 if e.errno == errno.ENOSPC else f"open: {e}")
try:
    os.write(fd, os.urandom(200 * 1024))
    os.close(fd)
except OSError as e:
    if e.errno != errno.ENOSPC:
        sys.exit(f"write/close: {e} (wanted ENOSPC)")
    try:
        os.close(fd)
    except OSError:
        pass
EOF

# Reads keep working and earlier files are intact.
for ((i = 0; i < n; i++)); do
	expect_eq "$(timeout 30 md5sum <"$M/f$i" | cut -d' ' -f1)" "$want" "f$i after ENOSPC"
done
expect_eq "$(timeout 30 md5sum <"$M/old" | cut -d' ' -f1)" "$want" "old after ENOSPC"

# A merge without room refuses, says so, and changes nothing.
echo merge >"$C/control" || fail "merge command"
wait_for 60 grep -q '^merge_state idle' "$C/stats" || fail "merge did not finish"
expect_eq "$(stat_of merge_last_rc)" 28 "merge_last_rc on a full disk (ENOSPC)"
grep -q "merge needs about .* free bytes" "$BCFS_LOG" || fail "the log does not say why the merge refused"

# Deleting on a full disk appends a small DELETE record: it works or fails with ENOSPC.
if ! err=$(timeout 30 rm "$M/f0" 2>&1); then
	case $err in *"No space left on device"*) echo "rm on a full disk: ENOSPC" ;;
	*) fail "rm on a full disk: '$err'" ;; esac
fi

# Make room, delete files through the mount, merge: the store shrinks.
rm -f "$D/ballast"
before=$(du -sk "$D/data" | cut -f1)
# (A merge needs room for a copy of the live data plus 1 MiB: keep little of it.)
for ((i = 0; i < n - 2; i++)); do timeout 30 rm -f "$M/f$i" || fail "rm f$i"; done
timeout 30 rm "$M/old" || fail "rm old"
echo merge >"$C/control" || fail "merge command"
wait_for 60 grep -q '^merge_state idle' "$C/stats" || fail "merge did not finish"
expect_eq "$(stat_of merge_last_rc)" 0 "merge_last_rc with room"
after=$(du -sk "$D/data" | cut -f1)
[ "$after" -lt "$before" ] || fail "merge freed nothing ($before KiB -> $after KiB)"
echo "store $before KiB -> $after KiB after deletes and merge"
timeout 60 cp "$T/src" "$M/again" || fail "a write after the merge"
bcfs_umount "$M"

# No damage on disk (a torn tail would be cut by open; check reports none after a clean
# unmount), and everything reads back after a remount.
"$BIN/bitcask" check "$D/data" >"$T/check" 2>&1 || { cat "$T/check" >&2; fail "bitcask check after ENOSPC"; }
bcfs_mount "$D/data" "$M" -o automerge=0
for ((i = n - 2; i < n; i++)); do
	expect_eq "$(sum "$M/f$i")" "$want" "f$i after remount"
done
expect_eq "$(sum "$M/again")" "$want" "again after remount"
[ ! -e "$M/f0" ] || fail "a deleted file came back"
bcfs_umount "$M"
pass
