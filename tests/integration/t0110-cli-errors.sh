#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcask CLI failures: usage errors exit 2 with the usage text; failures exit 1 with one
# line on stderr (missing key, missing store, unreadable input, locked store, full
# stdout); a closed pipe ends get quietly.
. "$(dirname "$0")/lib.sh"

BC=$BIN/bitcask
[ -x "$BC" ] || skip "no $BC"
D=$T/store
printf v | "$BC" put "$D" k

# one_line FILE REGEX: FILE holds exactly one line and it matches REGEX.
one_line() {
	expect_eq "$(wc -l <"$1")" 1 "lines on stderr ($(cat "$1"))"
	grep -Eq "$2" "$1" || fail "stderr '$(cat "$1")' does not match '$2'"
}

# usage ARGS...: exit 2, usage text on stderr, nothing on stdout.
usage() {
	local rc=0
	"$BC" "$@" >"$T/out" 2>"$T/err" || rc=$?
	[ $rc -eq 2 ] || fail "'bitcask $*' exited $rc, expected 2"
	grep -q '^usage: bitcask' "$T/err" || fail "'bitcask $*': no usage text on stderr"
	grep -q '^bitcask: ' "$T/err" || fail "'bitcask $*': no error line"
	[ ! -s "$T/out" ] || fail "'bitcask $*' printed on stdout"
}

usage
usage frobnicate "$D"
usage get
usage get "$D"
usage get "$D" k extra
usage get "$D" ""
usage put "$D"
usage put "$D" k file extra
usage delete "$D"
usage list "$D" a b
usage stats "$D" extra
usage merge "$D" extra
usage check "$D" extra
usage dump "$D" extra
usage --bogus get "$D" k
usage -Z get "$D" k
usage get "$D" k --ttl
usage --ttl 0 put "$D" k
usage --ttl -5 put "$D" k
usage --ttl abc put "$D" k
usage --ttl 99999999999999999999999 put "$D" k
usage --ttl 5 get "$D" k
usage --raw get "$D" k
usage --sync get "$D" k
usage --hex-key 0 get "$D"
usage --hex-key zz get "$D"
usage --hex-key "" get "$D"
usage --hex-key 41 stats "$D"
usage -r put "$D" k
usage -r delete "$D" k
usage -w check "$D"
usage -r -w get "$D" k
usage --max-file-size 0 put "$D" k
usage --max-file-size 4096 get "$D" k
usage get ""
# A usage error changes nothing.
expect_eq "$("$BC" get "$D" k)" v "store after usage errors"

# Missing key: exit 1, one line naming the command and the store.
expect_fail 1 "$T/err" "$BC" get "$D" nokey >"$T/out"
one_line "$T/err" "^bitcask: get: $D: "
[ ! -s "$T/out" ] || fail "get of a missing key printed on stdout"
expect_fail 1 "$T/err" "$BC" delete "$D" nokey
one_line "$T/err" "^bitcask: delete: $D: "

# Missing store for a read-only command: it is not created.
expect_fail 1 "$T/err" "$BC" get "$T/nostore" k
one_line "$T/err" "^bitcask: open $T/nostore: "
[ ! -e "$T/nostore" ] || fail "get created the store"
expect_fail 1 "$T/err" "$BC" list "$T/nostore"
one_line "$T/err" "^bitcask: open $T/nostore: "
expect_fail 1 "$T/err" "$BC" stats "$T/nostore"
one_line "$T/err" "^bitcask: open $T/nostore: "

# Unreadable input for put: the key keeps its old value.
expect_fail 1 "$T/err" "$BC" put "$D" k "$T/missing-file"
one_line "$T/err" "^bitcask: put: $T/missing-file: "
expect_fail 1 "$T/err" "$BC" put "$D" k "$T"
one_line "$T/err" "^bitcask: put: $T: "
expect_eq "$("$BC" get "$D" k)" v "value after failed puts"

# A key longer than the engine allows.
head -c 65536 /dev/zero | tr '\0' a >"$T/longkey"
expect_fail 1 "$T/err" "$BC" put "$D" "$(cat "$T/longkey")" </dev/null
one_line "$T/err" "^bitcask: put: $D: "

# Writing to a full stdout is a failure with a message, for get and for text output.
expect_fail 1 "$T/err" "$BC" get "$D" k >/dev/full
one_line "$T/err" "^bitcask: get: stdout: "
expect_fail 1 "$T/err" "$BC" list "$D" >/dev/full
one_line "$T/err" "^bitcask: list: stdout: "
expect_fail 1 "$T/err" "$BC" stats "$D" >/dev/full
one_line "$T/err" "^bitcask: stats: stdout: "
expect_fail 1 "$T/err" "$BC" dump "$D" >/dev/full
one_line "$T/err" "^bitcask: dump: stdout: "
expect_fail 1 "$T/err" "$BC" --help >/dev/full

# A reader that goes away (get | head) ends get quietly, killed by SIGPIPE like cat.
head -c 8000000 /dev/urandom | "$BC" put "$D" big
set +o pipefail
"$BC" get "$D" big 2>"$T/err" | head -c 10 >/dev/null
rc=${PIPESTATUS[0]}
set -o pipefail
[ $rc -eq 141 ] || fail "get into a closed pipe exited $rc, expected 141 (SIGPIPE)"
[ ! -s "$T/err" ] || fail "get into a closed pipe printed '$(cat "$T/err")'"
# The same for text output (list, dump) through stdio: ten 20 KB keys overflow the pipe.
P=$T/pipe
for i in 0 1 2 3 4 5 6 7 8 9; do
	printf v | "$BC" put "$P" "$i$(head -c 20000 /dev/zero | tr '\0' k)"
done
for cmd in list dump; do
	set +o pipefail
	"$BC" $cmd "$P" 2>"$T/err" | head -n 1 >/dev/null
	rc=${PIPESTATUS[0]}
	set -o pipefail
	[ $rc -eq 141 ] || fail "$cmd into a closed pipe exited $rc, expected 141 (SIGPIPE)"
	[ ! -s "$T/err" ] || fail "$cmd into a closed pipe printed '$(cat "$T/err")'"
done

# A locked store: a put waiting on its input holds the lock; a second writer fails
# naming the holder's pid, readers still work, and the first put completes.
mkfifo "$T/fifo"
"$BC" put "$D" held <"$T/fifo" &
holder=$!
at_exit "kill $holder 2>/dev/null"
exec 3>"$T/fifo"
wait_for 20 grep -qw "$holder" "$D/LOCK" || fail "put did not take the lock"
expect_fail 1 "$T/err" "$BC" put "$D" other </dev/null
one_line "$T/err" "^bitcask: open $D: .*pid $holder"
expect_fail 1 "$T/err" "$BC" delete "$D" k
one_line "$T/err" "^bitcask: open $D: .*pid $holder"
expect_fail 1 "$T/err" "$BC" merge "$D"
one_line "$T/err" "^bitcask: open $D: .*pid $holder"
expect_eq "$("$BC" get "$D" k)" v "read-only get beside a writer"
"$BC" list "$D" >/dev/null || fail "read-only list beside a writer"
"$BC" stats "$D" >/dev/null || fail "read-only stats beside a writer"
expect_fail 1 "$T/err" "$BC" -w get "$D" k
one_line "$T/err" "^bitcask: open $D: .*pid $holder"
printf 'late value' >&3
exec 3>&-
wait $holder || fail "the holding put failed"
expect_eq "$("$BC" get "$D" held)" "late value" "value of the put that held the lock"
printf w | "$BC" put "$D" other || fail "put after the lock was released"

pass
