#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcask CLI with a 200 MiB value: put from a file and from a pipe, get back, and check
# that neither holds the value in memory. The peak RSS of each run is taken from
# getrusage(RUSAGE_CHILDREN) in a python3 wrapper, which works under ASan (unlike a
# ulimit -v cap, ASan reserves terabytes of address space); ASan's quarantine of freed
# blocks is cut down for these runs so it does not count as memory the tool holds.
. "$(dirname "$0")/lib.sh"

BC=$BIN/bitcask
[ -x "$BC" ] || skip "no $BC"
command -v python3 >/dev/null || skip "python3 needed to measure peak RSS"
D=$T/store
SIZE=$((200 << 20))
LIMIT_KB=$((120 << 10)) # far below the value's 200 MiB, far above the tool's own needs

export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4:thread_local_quarantine_size_kb=256

# peak_rss OUTFILE CMD...: run CMD (stdin and stdout inherited), write its peak RSS in KiB
# to OUTFILE, exit with CMD's status.
peak_rss() {
	python3 -c '
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write("%d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc if rc >= 0 else 128 - rc)
' "$@"
}

# bounded WHAT RSSFILE: the run recorded in RSSFILE stayed under LIMIT_KB.
bounded() {
	local kb
	kb=$(cat "$2")
	echo "# $1: peak RSS $kb KiB"
	[ "$kb" -lt $LIMIT_KB ] || fail "$1 peaked at $kb KiB of RSS (limit $LIMIT_KB KiB)"
}

head -c $SIZE /dev/urandom >"$T/big"

# From a file.
peak_rss "$T/rss" "$BC" put "$D" big "$T/big" || fail "put of 200 MiB from a file"
bounded "put from a file" "$T/rss"
peak_rss "$T/rss" "$BC" get "$D" big | cmp - "$T/big" || fail "200 MiB value differs"
bounded "get" "$T/rss"

# From a pipe, replacing the first value.
head -c $SIZE /dev/urandom >"$T/big2"
cat "$T/big2" | peak_rss "$T/rss" "$BC" put "$D" big || fail "put of 200 MiB from a pipe"
bounded "put from a pipe" "$T/rss"
"$BC" get "$D" big | cmp - "$T/big2" || fail "200 MiB value from a pipe differs"
rm -f "$T/big"

# A put killed half way through its input leaves the old value.
mkfifo "$T/fifo"
"$BC" put "$D" big <"$T/fifo" &
writer=$!
at_exit "kill -9 $writer 2>/dev/null"
exec 3>"$T/fifo"
head -c $((SIZE / 2)) /dev/urandom >&3
kill -9 $writer
rc=0
{ wait $writer; } 2>/dev/null || rc=$?
[ $rc -eq 137 ] || fail "killed put exited $rc"
exec 3>&-
"$BC" get "$D" big | cmp - "$T/big2" || fail "value after a killed put"

# stats: one live chunked object of 200 MiB.
"$BC" stats "$D" >"$T/stats"
expect_eq "$(awk '$1 == "keys" { print $2 }' "$T/stats")" 1 "keys"
expect_eq "$(awk '$1 == "objects" { print $2 }' "$T/stats")" 1 "objects"
live=$(awk '$1 == "live_bytes" { print $2 }' "$T/stats")
[ "$live" -ge $SIZE ] || fail "live_bytes $live below the value's size"

pass
