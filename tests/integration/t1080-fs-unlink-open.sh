#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcaskfs POSIX unlink semantics: a file unlinked (or replaced by rename) while open
# stays readable and writable through its handle, its name is free at once, and its data
# goes away at the last close; orphans left by a killed daemon are removed at the next
# mount.
. "$(dirname "$0")/lib.sh"
bcfs_require
M=$T/mnt
bcfs_mount "$T/data" "$M"
keys() { grep '^keys ' "$M/.bitcask/stats" | cut -d' ' -f2; }

head -c 200000 /dev/urandom >"$T/orig"
cp "$T/orig" "$M/f"
k0=$(keys)
exec 3<"$M/f"
rm "$M/f"
[ ! -e "$M/f" ] || fail "unlinked name still there"
echo new >"$M/f"
cmp <(cat <&3) "$T/orig" || fail "open handle does not read the unlinked file"
exec 3<&-
expect_eq "$(cat "$M/f")" new "the name is a new file"

# rename over a file that is open: the handle keeps the old contents.
printf old >"$M/g"
printf replacement >"$M/g.tmp"
exec 4<"$M/g"
mv "$M/g.tmp" "$M/g"
expect_eq "$(cat <&4)" old "handle on a file replaced by rename"
exec 4<&-
expect_eq "$(cat "$M/g")" replacement "rename replaced the file"

# Writing through a handle to an unlinked file.
exec 5<>"$M/h"
rm "$M/h"
printf 'written after unlink' >&5
python3 -c 'import os; print(os.pread(5, 100, 0).decode())' >"$T/h" || fail "pread"
expect_eq "$(cat "$T/h")" "written after unlink" "read back through the unlinked handle"
exec 5>&-
wait_for 10 test "$(keys)" = "$((k0 + 1))" || fail "orphans not removed after close: $(keys) keys"

# A daemon killed with an orphan open leaves it for the next mount to remove.
printf doomed >"$M/o"
exec 6<"$M/o"
rm "$M/o"
pid=$(bcfs_pid "$M")
kill -9 "$pid"
exec 6<&-
{ wait "$pid"; } 2>/dev/null || true
fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M"
_bcfs_pid[$M]=
bcfs_mount "$T/data" "$M"
grep -q "removed 1 orphaned files" "$BCFS_LOG" || fail "leftover orphan not removed at mount"
expect_eq "$(keys)" "$((k0 + 1))" "keys after orphan removal"
bcfs_umount "$M"
pass
