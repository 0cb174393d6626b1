#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcask list and dump escaping: printable ASCII and well-formed UTF-8 as is, "\\" for a
# backslash, "\xNN" for every other byte; every line decodes back to its key's bytes.
# list --raw/-0 prints the keys as they are, each followed by a NUL byte.
. "$(dirname "$0")/lib.sh"

BC=$BIN/bitcask
[ -x "$BC" ] || skip "no $BC"
D=$T/store

# hex of the key, then how list must print it.
cat >"$T/cases" <<'CASES'
610a62 a\x0ab
6261636b5c736c617368 back\\slash
5c783431 \\x41
7409 t\x09
0d0a \x0d\x0a
c3a9 é
ff \xff
007a \x00z
00 \x00
c285 \xc2\x85
c0af \xc0\xaf
eda080 \xed\xa0\x80
e280a8 \xe2\x80\xa8
e282 \xe2\x82
f09f9880 😀
f4908080 \xf4\x90\x80\x80
737020616365 sp ace
7f \x7f
7e ~
2041  A
CASES

while read -r hex want; do
	printf '%s' "$hex" | "$BC" put "$D" --hex-key "$hex"
done <"$T/cases"

# Byte order of the keys is the order of their hex spellings.
LC_ALL=C sort -k1,1 "$T/cases" >"$T/sorted"
# Field 2 may be a lone space, which read would drop: take everything after the first space.
cut -d' ' -f2- "$T/sorted" >"$T/want"
"$BC" list "$D" >"$T/got"
cmp -s "$T/got" "$T/want" || fail "list escaping: $(diff "$T/want" "$T/got")"

# Every line decodes (printf %b understands exactly \\ and \xNN here) to its key's bytes,
# and each key's value (its own hex) comes back through get --hex-key.
n=0
while IFS= read -r line; do
	hex=$(printf '%b' "$line" | od -An -tx1 -v | tr -d ' \n')
	expect_eq "$hex" "$(sed -n "$((n + 1))p" "$T/sorted" | cut -d' ' -f1)" "decode of '$line'"
	expect_eq "$("$BC" get "$D" --hex-key "$hex")" "$hex" "value of key $hex"
	n=$((n + 1))
done <"$T/got"
expect_eq $n "$(wc -l <"$T/cases")" "keys listed"

# --raw and -0: keys as they are, NUL after each.
: >"$T/rawwant"
while read -r hex _; do
	printf '%s00' "$hex" | xxd -r -p >>"$T/rawwant"
done <"$T/sorted"
"$BC" list --raw "$D" | cmp -s - "$T/rawwant" || fail "list --raw"
"$BC" list -0 "$D" | cmp -s - "$T/rawwant" || fail "list -0"
# A prefix with odd bytes.
expect_eq "$("$BC" list -0 "$D" --hex-key 00 | od -An -tx1 | tr -d ' \n')" 0000007a00 \
	"list -0 with a NUL prefix"

# dump escapes the same way, key last.
"$BC" dump "$D" >"$T/dump"
grep -q ' key=a\\x0ab$' "$T/dump" || fail "dump key with a newline"
grep -q ' key=back\\\\slash$' "$T/dump" || fail "dump key with a backslash"
grep -q ' key=sp ace$' "$T/dump" || fail "dump key with a space"
grep -q ' key=é$' "$T/dump" || fail "dump key in UTF-8"
LC_ALL=C grep -q '[[:cntrl:]]' "$T/dump" && fail "dump printed a control byte"

pass
