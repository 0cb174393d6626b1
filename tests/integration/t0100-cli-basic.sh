#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcask CLI: put/get round trips (file, stdin, empty, binary, chunk boundaries), delete,
# list order and prefix, --hex-key, keys starting with '-', stats, --ttl expiry,
# --help and --version.
. "$(dirname "$0")/lib.sh"

BC=$BIN/bitcask
[ -x "$BC" ] || skip "no $BC"
D=$T/store

# roundtrip KEY FILE: put from FILE, get back, compare bytes.
roundtrip() {
	"$BC" put "$D" "$1" "$2" || fail "put $1 from file"
	"$BC" get "$D" "$1" >"$T/out" || fail "get $1"
	cmp -s "$T/out" "$2" || fail "value of $1 differs from $2"
}

# From a file.
printf 'hello' >"$T/hello"
roundtrip greeting "$T/hello"
expect_eq "$("$BC" get "$D" greeting)" hello "get greeting"

# From standard input, with and without "-".
printf 'from stdin' | "$BC" put "$D" s1
expect_eq "$("$BC" get "$D" s1)" "from stdin" "put from stdin"
printf 'dash' | "$BC" put "$D" s2 -
expect_eq "$("$BC" get "$D" s2)" dash "put from '-'"

# Empty values, from stdin and from a file: get succeeds with no bytes.
"$BC" put "$D" empty </dev/null
: >"$T/empty"
roundtrip empty2 "$T/empty"
"$BC" get "$D" empty >"$T/out"
expect_eq "$(stat -c %s "$T/out")" 0 "empty value length"

# Binary value with NUL and high bytes.
printf 'a\0b\0\377\n\r\0' >"$T/bin"
roundtrip bin "$T/bin"

# Around the inline/chunked boundary (64 KiB) and a few chunks, from stdin too.
for n in 65535 65536 65537 200000 1048576 1048577 3000000; do
	head -c $n /dev/urandom >"$T/v$n"
	roundtrip "size$n" "$T/v$n"
	"$BC" put "$D" "stdin$n" <"$T/v$n"
	"$BC" get "$D" "stdin$n" | cmp -s - "$T/v$n" || fail "stdin value of $n bytes"
done

# Overwrite replaces; --sync writes work too.
printf 'v2' | "$BC" --sync put "$D" greeting
expect_eq "$("$BC" get "$D" greeting)" v2 "overwrite"
printf 'v3' | "$BC" put "$D" greeting --sync
expect_eq "$("$BC" get "$D" greeting)" v3 "options after the command"

# Keys starting with '-' after "--"; --hex-key for arbitrary bytes.
printf 'dashed' | "$BC" put "$D" -- -k
expect_eq "$("$BC" get "$D" -- -k)" dashed "key starting with -"
printf 'hexed' | "$BC" put --hex-key 00ff0a41 "$D"
expect_eq "$("$BC" get "$D" --hex-key 00FF0A41)" hexed "--hex-key round trip"
printf 'A' | "$BC" put "$D" --hex-key 4b31
expect_eq "$("$BC" get "$D" K1)" A "--hex-key names the same key as its bytes"

# Delete: gone from get and list, a second delete fails.
"$BC" delete "$D" s2
expect_fail 1 "$T/err" "$BC" get "$D" s2
expect_fail 1 "$T/err" "$BC" delete "$D" s2
"$BC" list "$D" | grep -qx s2 && fail "deleted key still listed"

# list: order is unsigned bytes, shorter first; a prefix narrows it.
L=$T/list
for k in b a ab A aa a0 B; do
	printf x | "$BC" put "$L" "$k"
done
expect_eq "$("$BC" list "$L" | tr '\n' ' ')" "A B a a0 aa ab b " "list order"
expect_eq "$("$BC" list "$L" a | tr '\n' ' ')" "a a0 aa ab " "list with prefix"
expect_eq "$("$BC" list "$L" ab | tr '\n' ' ')" "ab " "list with a whole key as prefix"
expect_eq "$("$BC" list "$L" zz)" "" "list with a prefix that matches nothing"
expect_eq "$("$BC" list "$L" --hex-key 61 | tr '\n' ' ')" "a a0 aa ab " "list --hex-key prefix"
expect_eq "$("$BC" -r list "$L" | wc -l)" 7 "list -r"
printf 'ff' | "$BC" put "$L" --hex-key ff
expect_eq "$("$BC" list "$L" | tail -n 1)" '\xff' "0xff sorts last"

# stats: every field, keys counted right, one set of lines per data file.
S=$T/stats
printf 1 | "$BC" put "$S" one
printf 2 | "$BC" put "$S" two
printf 3 | "$BC" put "$S" three
"$BC" delete "$S" two
"$BC" stats "$S" >"$T/stats.out"
for f in keys objects total_bytes live_bytes dead_bytes fragmentation_percent keydir_bytes \
	merge_state merge_bytes_total merge_bytes_done merges_done merge_reclaimed_bytes \
	recovered_torn_bytes recovered_damaged_records recovered_damaged_bytes hint_fallbacks \
	read_errors puts gets deletes batches syncs nfiles; do
	grep -Eq "^$f [0-9a-z]+\$" "$T/stats.out" || fail "stats lacks $f"
done
expect_eq "$(awk '$1 == "keys" { print $2 }' "$T/stats.out")" 2 "stats keys"
expect_eq "$(awk '$1 == "merge_state" { print $2 }' "$T/stats.out")" idle "stats merge_state"
nfiles=$(awk '$1 == "nfiles" { print $2 }' "$T/stats.out")
[ "$nfiles" -ge 1 ] || fail "stats nfiles $nfiles"
for f in bytes live_bytes active has_hint; do
	expect_eq "$(grep -Ec "^file\.[0-9a-f]{16}\.$f [0-9]+\$" "$T/stats.out")" "$nfiles" \
		"file.*.$f lines"
done
# A read-only open writes nothing, so it may have no active file; a read-write one has one.
[ "$(grep -Ec '^file\.[0-9a-f]{16}\.active 1$' "$T/stats.out")" -le 1 ] || fail "active files"
expect_eq "$("$BC" -w stats "$S" | grep -Ec '^file\.[0-9a-f]{16}\.active 1$')" 1 \
	"one active file (stats -w)"
# Every line is "name value".
awk 'NF != 2 { exit 1 }' "$T/stats.out" || fail "stats line not 'name value'"

# --ttl: visible before expiry, gone (get, list) after.
printf live | "$BC" put --ttl 100 "$D" longttl
printf soon | "$BC" put --ttl 1 "$D" shortttl
expect_eq "$("$BC" get "$D" longttl)" live "ttl key before expiry"
gone() {
	! "$BC" get "$D" shortttl >/dev/null 2>&1
}
wait_for 10 gone || fail "key with --ttl 1 did not expire"
expect_fail 1 "$T/err" "$BC" get "$D" shortttl
"$BC" list "$D" | grep -qx shortttl && fail "expired key listed"
expect_eq "$("$BC" get "$D" longttl)" live "ttl key still there"

# Values survive across processes and read-write opens.
expect_eq "$("$BC" -w get "$D" greeting)" v3 "get -w"

# --help on stdout with exit 0; --version.
"$BC" --help >"$T/help"
grep -q '^usage: bitcask' "$T/help" || fail "--help text"
grep -q 'hex-key' "$T/help" || fail "--help lists options"
"$BC" -h | grep -q '^usage: bitcask' || fail "-h"
"$BC" --version | grep -Eq '^bitcask [0-9]+\.[0-9]+' || fail "--version"

pass
