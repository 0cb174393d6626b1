# SPDX-License-Identifier: MIT
# Common library for the tNNNN-*.sh integration tests. Source it first:
#   . "$(dirname "$0")/lib.sh"
# It gives each test its own scratch directory ($T), a failure path that keeps it, an
# EXIT trap that runs registered cleanups (unmounts first) and exit helpers.
set -euo pipefail

BC_BUILD_DIR=${BC_BUILD_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/asan}
BIN=$BC_BUILD_DIR/bin
TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "${TMPDIR:-/tmp}/bc-$TEST_NAME-XXXXXX")
_bc_cleanups=()
_bc_failed=1

# Register a command to run at exit (last registered runs first).
at_exit() {
	_bc_cleanups+=("$*")
}

_bc_exit() {
	local rc=$? i
	for ((i = ${#_bc_cleanups[@]} - 1; i >= 0; i--)); do
		eval "${_bc_cleanups[$i]}" || true
	done
	if [ $rc -eq 0 ] && [ $_bc_failed -eq 0 ]; then
		rm -rf "$T"
	else
		# A daemon that a sanitizer stopped (halt_on_error) fails the test through the
		# mount's errors before any unmount scans its log: show the report anyway.
		for i in "$T"/log.*; do
			[ -f "$i" ] || continue
			grep -qE 'ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|WARNING: ThreadSanitizer' "$i" &&
				{ echo "sanitizer report in $i:" >&2; sed -n '1,80p' "$i" >&2; }
		done
		echo "FAIL $TEST_NAME (exit $rc); kept $T" >&2
	fi
	exit $rc
}
trap _bc_exit EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# Mark the test as passed and exit 0 (the trap then removes $T).
pass() {
	_bc_failed=0
	echo "ok $TEST_NAME"
	exit 0
}

skip() {
	_bc_failed=0
	echo "skip $TEST_NAME: $*"
	exit 77
}

# expect_eq ACTUAL EXPECTED MESSAGE
expect_eq() {
	[ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
}

# Run a command that must fail with exit code $1: expect_exit 1 cmd args...
expect_exit() {
	local want=$1 rc=0
	shift
	"$@" || rc=$?
	[ "$rc" -eq "$want" ] || fail "'$*' exited $rc, expected $want"
}

# Wait (up to $1 seconds) until the command succeeds; polls every 0.05 s.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.05
	done
}

# Like expect_exit, with the command's stderr in a file: expect_fail 1 "$T/err" cmd args...
# (Redirecting expect_exit's stderr would swallow its own failure message too.)
expect_fail() {
	local want=$1 err=$2 rc=0
	shift 2
	"$@" 2>"$err" || rc=$?
	[ "$rc" -eq "$want" ] || fail "'$*' exited $rc, expected $want; stderr: $(cat "$err")"
}

# ---- bitcaskfs mounts (owned by the filesystem, src/fs) -------------------------------
# bcfs_mount DATADIR MNT [daemon options...]
#   Start bitcaskfs in the foreground with its log in $T/log.<name of MNT>, wait until MNT
#   is mounted, and register an unmount for the EXIT trap. Sets BCFS_LOG to the log.
# bcfs_umount MNT
#   fusermount3 -u, wait for the daemon to exit, and fail on a sanitizer report or a
#   nonzero exit. Call it before pass(); the EXIT trap only makes sure nothing is left.
# bcfs_check_log LOG
#   Fail if LOG holds a sanitizer report. libfuse 3.14's "Ignoring invalid max threads
#   value" line is harmless and allowed.
declare -A _bcfs_pid=()
BCFS_LOG=

bcfs_check_log() {
	if grep -qE 'ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|WARNING: ThreadSanitizer' "$1"; then
		sed -n '1,80p' "$1" >&2
		fail "sanitizer report in $1"
	fi
}

bcfs_mounted() {
	grep -q " $(realpath "$1") fuse" /proc/mounts
}

bcfs_mount() {
	local data=$1 mnt=$2 pid
	shift 2
	mkdir -p "$mnt"
	BCFS_LOG=$T/log.$(basename "$mnt")
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16 \
		"$BIN/bitcaskfs" -f "$@" "$data" "$mnt" >>"$BCFS_LOG" 2>&1 &
	pid=$!
	_bcfs_pid[$mnt]=$pid
	at_exit "_bcfs_cleanup '$mnt'"
	local deadline=$((SECONDS + 30))
	until bcfs_mounted "$mnt"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			cat "$BCFS_LOG" >&2
			fail "bitcaskfs exited before mounting $mnt"
		fi
		[ $SECONDS -lt $deadline ] || fail "bitcaskfs did not mount $mnt within 30 s"
		sleep 0.05
	done
}

# The daemon's pid for MNT.
bcfs_pid() {
	echo "${_bcfs_pid[$1]}"
}

bcfs_umount() {
	local mnt=$1 pid=${_bcfs_pid[$1]:-} rc=0 i
	for i in $(seq 1 100); do
		bcfs_mounted "$mnt" || break
		fusermount3 -u "$mnt" 2>/dev/null && break
		sleep 0.1
	done
	bcfs_mounted "$mnt" && fail "cannot unmount $mnt"
	if [ -n "$pid" ]; then
		local deadline=$((SECONDS + 60))
		while kill -0 "$pid" 2>/dev/null; do
			[ $SECONDS -lt $deadline ] || fail "bitcaskfs $pid did not exit after unmount"
			sleep 0.05
		done
		wait "$pid" || rc=$?
		unset "_bcfs_pid[$mnt]"
		bcfs_check_log "$T/log.$(basename "$mnt")"
		[ $rc -eq 0 ] || fail "bitcaskfs for $mnt exited $rc"
	fi
}

_bcfs_cleanup() {
	local mnt=$1 pid=${_bcfs_pid[$1]:-}
	if bcfs_mounted "$mnt"; then
		fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || true
	fi
	if [ -n "$pid" ]; then
		local deadline=$((SECONDS + 30))
		while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
			sleep 0.05
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
}

# Skip unless FUSE can be used here.
bcfs_require() {
	[ -x "$BIN/bitcaskfs" ] || skip "no $BIN/bitcaskfs"
	[ -e /dev/fuse ] || skip "no /dev/fuse"
	command -v fusermount3 >/dev/null || skip "no fusermount3"
}
# ---- end of bitcaskfs mounts ----------------------------------------------------------
