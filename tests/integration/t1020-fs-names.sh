#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcaskfs name mapping (docs/FILESYSTEM.md "Name mapping") through a real mount: keys
# written by the engine with every byte value and every awkward shape are each reachable
# as exactly one file whose contents are that key; names created through the mount become
# exactly the keys they spell, including names with '%'; non-canonical names are refused.
. "$(dirname "$0")/lib.sh"
bcfs_require
export LC_ALL=C # byte-exact names in read, sort and grep
H=$BC_BUILD_DIR/tests/integration/fs_keys
[ -x "$H" ] || H=$(find "$BC_BUILD_DIR" -name fs_keys -type f -perm -u+x | head -1)
[ -x "$H" ] || skip "no fs_keys helper"

D=$T/data
M=$T/mnt
"$H" put "$D" | sort -u >"$T/written"
bcfs_mount "$D" "$M"

# Every file's contents is its key in hex: the set read equals the set written.
(cd "$M" && find . -path ./.bitcask -prune -o -type f -print0) >"$T/files"
: >"$T/read"
while IFS= read -r -d '' f; do
	cat "$M/$f" >>"$T/read"
	echo >>"$T/read"
done <"$T/files"
sort "$T/read" >"$T/read.sorted"
diff "$T/written" "$T/read.sorted" || fail "keys read through the mount differ from those written"
expect_eq "$(tr -cd '\0' <"$T/files" | wc -c)" "$(wc -l <"$T/written")" "one file per key"

# A few exact paths (docs/FILESYSTEM.md examples).
expect_eq "$(cat "$M/%=.bitcask/%@")" "$(printf .bitcask | od -An -v -tx1 | tr -d ' \n')" ".bitcask key"
expect_eq "$(cat "$M/conf/%@")" 636f6e66 "file shadowed by a directory"
expect_eq "$(cat "$M/conf/child")" 636f6e662f6368696c64 "child of the shadowing directory"
expect_eq "$(cat "$M/%=/%=")" 2f "key /"
expect_eq "$(cat "$M/e/%=/f")" 652f2f66 "empty middle component"
expect_eq "$(cat "$M/dots/%=./%=..")" 646f74732f2e2f2e2e "dot components"
expect_eq "$(cat "$M/%=%25=m")" 253d6d "marker prefix escaped"
[ -d "$M/.bitcask" ] || fail "control area shown"
ls "$M" >/dev/null || fail "ls of the root"
ls -la "$M/dir" >/dev/null || fail "ls -la of a directory with every byte"

# Names made through the mount are the keys they spell.
printf a >"$M/100%"
printf b >"$M/%20"
printf c >"$M/sp ace"
mkdir "$M/%x"
printf d >"$M/%x/%"
printf e >"$M/$(printf 'nl\nx')"
long=$(head -c 255 /dev/zero | tr '\0' 'z')
printf f >"$M/$long"
for bad in '%=abc' '%=%41' '%@x' '%+6162'; do
	if (printf x >"$M/$bad") 2>/dev/null; then fail "created non-canonical name $bad"; fi
done
if (printf x >"$M/.bitcask/new") 2>/dev/null; then fail "created a file in the control area"; fi
bcfs_umount "$M"
"$H" list "$D" >"$T/keys"
for k in 31303025 253230 737020616365 25782f25 6e6c0a78; do
	grep -qx "$k" "$T/keys" || fail "key $k missing after writing through the mount"
done
grep -qx "$(printf %s "$long" | od -An -v -tx1 | tr -d ' \n')" "$T/keys" || fail "255-byte name"
for k in 253d616263 616263 25407 252b36313632 6162 2e6269746361736b2f6e6577; do
	if grep -qx "$k" "$T/keys"; then fail "key $k from a refused name"; fi
done
pass
