#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcaskfs under valgrind memcheck: a plain (non-sanitizer) daemon mounts, serves a little
# I/O of every kind (small and large files, rename, unlink while open, xattrs, readdir,
# truncate, the control area with a merge) and unmounts with zero memcheck errors and no
# definite leaks. The daemon comes from $BC_SOURCE_DIR/build/release (scripts/test builds
# it first) or, failing that, is built here without sanitizers; the test skips when
# valgrind is missing or neither works. BC_VALGRIND_BIN=DIR picks another plain build.
. "$(dirname "$0")/lib.sh"
bcfs_require
command -v valgrind >/dev/null || skip "no valgrind"
src=${BC_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}

plain=${BC_VALGRIND_BIN:-$src/build/release/bin}
if ! [ -x "$plain/bitcaskfs" ] || nm -D "$plain/bitcaskfs" 2>/dev/null | grep -q __asan_init; then
	echo "no plain daemon in $plain: building one in $T/build"
	cmake -S "$src" -B "$T/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$T/cmake.log" 2>&1 &&
		cmake --build "$T/build" -j "$(nproc)" --target bitcaskfs >>"$T/cmake.log" 2>&1 ||
		skip "could not build a plain daemon (see $T/cmake.log)"
	plain=$T/build/bin
fi

# bcfs_mount runs $BIN/bitcaskfs: point it at a wrapper that runs the plain daemon under
# memcheck. --error-exitcode makes any error the daemon's exit status, which bcfs_umount
# checks.
mkdir -p "$T/vbin"
cat >"$T/vbin/bitcaskfs" <<EOF
#!/bin/sh
exec valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \\
	--errors-for-leak-kinds=definite --show-leak-kinds=definite --track-fds=no \\
	--log-file="$T/valgrind.log" "$plain/bitcaskfs" "\$@"
EOF
chmod +x "$T/vbin/bitcaskfs"
BIN=$T/vbin

M=$T/mnt
bcfs_mount "$T/data" "$M" -o automerge=0
echo hello >"$M/small"
head -c 300000 /dev/urandom >"$T/big"
cp "$T/big" "$M/big"
cmp "$T/big" "$M/big" || fail "big file"
mkdir -p "$M/d/e"
echo x >"$M/d/e/f"
mv "$M/d/e/f" "$M/d/g"
mv "$M/d" "$M/d2"
ls -laR "$M" >/dev/null
setfattr -n user.k -v v "$M/small" 2>/dev/null || true
getfattr -d "$M/small" >/dev/null 2>&1 || true
exec 3<"$M/small"
rm "$M/small"
expect_eq "$(cat <&3)" hello "read after unlink while open"
exec 3<&-
truncate -s 70000 "$M/big"
truncate -s 10 "$M/big"
cp "$T/big" "$M/big2"
rm "$M/big2"
cat "$M/.bitcask/stats" >/dev/null
echo merge >"$M/.bitcask/control"
wait_for 60 grep -q '^merge_state idle' "$M/.bitcask/stats" || fail "merge did not finish"
echo sync >"$M/.bitcask/control"
bcfs_umount "$M" # fails on a nonzero exit: 99 means memcheck found errors
grep -q "ERROR SUMMARY: 0 errors" "$T/valgrind.log" || {
	sed -n '1,120p' "$T/valgrind.log" >&2
	fail "valgrind reported errors"
}
grep "ERROR SUMMARY" "$T/valgrind.log"
pass
