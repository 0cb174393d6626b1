#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcaskfs access control (docs/FILESYSTEM.md "Mounting", "Control area", "Name mapping"):
# every mount has default_permissions; the control area is owner-only (even for root, stats
# is read-only and control write-only); keys named like the control area (written with the
# CLI before mounting) cannot shadow it; over-long names give ENAMETOOLONG; and with
# -o allow_other one unprivileged user cannot read, chmod, chown, rename or delete another's
# 0600 file. Users are created with useradd when missing (numeric ids otherwise) and run
# with setpriv.
. "$(dirname "$0")/lib.sh"
bcfs_require
[ "$(id -u)" = 0 ] || skip "needs root (allow_other, switching users)"
command -v setpriv >/dev/null || skip "no setpriv to switch users"

# Two unprivileged users.
user_id() { # name fallback-uid
	if ! id -u "$1" >/dev/null 2>&1; then
		useradd -M -r -s /usr/sbin/nologin "$1" >/dev/null 2>&1 || true
	fi
	id -u "$1" 2>/dev/null || echo "$2"
}
UA=$(user_id bcfs-test-a 61001)
UB=$(user_id bcfs-test-b 61002)
GA=$(id -g "$UA" 2>/dev/null || echo "$UA")
GB=$(id -g "$UB" 2>/dev/null || echo "$UB")
as_a() { setpriv --reuid="$UA" --regid="$GA" --clear-groups "$@"; }
as_b() { setpriv --reuid="$UB" --regid="$GB" --clear-groups "$@"; }
# expect_denied WHAT MESSAGE-PATTERN cmd...: the command fails with that error.
expect_denied() {
	local what=$1 pat=$2 out
	shift 2
	if out=$("$@" 2>&1); then
		fail "$what succeeded"
	fi
	case $out in *$pat*) ;; *) fail "$what: '$out', expected '$pat'" ;; esac
}

# Keys that would shadow the control area if the mapping let them.
D=$T/data
printf 'impostor' | "$BIN/bitcask" put "$D" .bitcask/stats || fail "put .bitcask/stats"
printf 'impostor' | "$BIN/bitcask" put "$D" .bitcask || fail "put .bitcask"

# Mount with allow_other; the parent of the mount point must be reachable by the users.
chmod 755 "$T"
M=$T/mnt
bcfs_mount "$D" "$M" -o allow_other
chmod 1777 "$M"
opts=$(awk -v m="$(realpath "$M")" '$2 == m { print $4 }' /proc/mounts)
case ,$opts, in *,default_permissions,*) ;; *) fail "mount options '$opts' lack default_permissions" ;; esac
case ,$opts, in *,allow_other,*) ;; *) fail "mount options '$opts' lack allow_other" ;; esac

# The control area is the real one, owner-only, and its modes hold even for root.
C=$M/.bitcask
expect_eq "$(stat -c '%a %u' "$C")" "700 0" "control dir mode and owner"
grep -q '^keys ' "$C/stats" || fail "stats is not the control file (shadowed by a key?)"
expect_eq "$(cat "$M/%=.bitcask/stats")" impostor "the key .bitcask/stats shows escaped"
ls "$M" | grep -qx '%=.bitcask' || fail "the key .bitcask is not shown as %=.bitcask"
expect_denied "root opening stats for writing" "Permission denied" sh -c "echo x >'$C/stats'"
expect_denied "root reading control" "Permission denied" cat "$C/control"
expect_denied "user listing the control area" "Permission denied" as_a ls "$C"
expect_denied "user reading stats" "Permission denied" as_a cat "$C/stats"
expect_denied "user writing control" "Permission denied" as_a sh -c "echo merge >'$C/control'"
expect_denied "creating a key under the control area" "" touch "$C/new"
expect_denied "mkdir .bitcask" "File exists" mkdir "$C"
echo x >"$M/plain"
expect_denied "renaming a file over the control area" "" mv -T "$M/plain" "$C"
expect_denied "removing the control area" "" rmdir "$C"
expect_eq "$(stat -c %a "$C")" 700 "control dir after the attempts"

# Names: a 255-byte component is fine, 256 bytes is ENAMETOOLONG.
n255=$(printf 'n%.0s' $(seq 1 255))
touch "$M/$n255" || fail "a 255-byte name"
expect_denied "a 256-byte name" "File name too long" touch "$M/${n255}x"
expect_denied "a 256-byte directory name" "File name too long" mkdir "$M/${n255}y"

# allow_other: user A's 0600 file is A's alone.
as_a mkdir "$M/home-a" || fail "user A mkdir"
as_a sh -c "umask 077; echo secret >'$M/home-a/secret'; chmod 0711 '$M/home-a'" || fail "user A writes"
expect_eq "$(stat -c '%u %a' "$M/home-a/secret")" "$UA 600" "owner and mode of A's file"
expect_eq "$(as_a cat "$M/home-a/secret")" secret "A reads its own file"
expect_denied "B reading A's 0600 file" "Permission denied" as_b cat "$M/home-a/secret"
expect_denied "B chmod of A's file" "Operation not permitted" as_b chmod 644 "$M/home-a/secret"
expect_denied "B chown of A's file" "Operation not permitted" as_b chown "$UB" "$M/home-a/secret"
expect_denied "B writing A's file" "Permission denied" as_b sh -c "echo evil >>'$M/home-a/secret'"
expect_denied "B truncating A's file" "Permission denied" as_b truncate -s 0 "$M/home-a/secret"
expect_denied "B deleting from A's directory" "Permission denied" as_b rm -f "$M/home-a/secret"
expect_denied "B renaming A's file" "Permission denied" as_b mv "$M/home-a/secret" "$M/stolen"
expect_denied "B listing A's 0711 directory" "Permission denied" as_b ls "$M/home-a"
if command -v setfattr >/dev/null; then
	expect_denied "B setting an xattr on A's file" "Permission denied" \
		as_b setfattr -n user.x -v 1 "$M/home-a/secret"
elif [ -x /usr/bin/python3 ]; then
	expect_denied "B setting an xattr on A's file" "Permission denied" \
		as_b /usr/bin/python3 -c "import os; os.setxattr('$M/home-a/secret', 'user.x', b'1')"
fi
expect_eq "$(as_a cat "$M/home-a/secret")" secret "A's file after B's attempts"
expect_eq "$(stat -c '%u %a' "$M/home-a/secret")" "$UA 600" "A's file mode after B's attempts"
bcfs_umount "$M"
pass
