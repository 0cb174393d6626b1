#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# kill -9 of the mounted daemon under load. Writers create, rewrite, append to and rename
# files through the mount, fsync each change and only then record it as acknowledged;
# the daemon is killed at a random moment, the dead mount detached, the store remounted
# (recovery runs) and every acknowledged change checked byte for byte. Then again, on the
# same store, so recovery follows recovery.
#   BC_DAEMON_KILLS   rounds (default 12)
. "$(dirname "$0")/lib.sh"
bcfs_require
command -v python3 >/dev/null || fail "python3 is needed"
kills=${BC_DAEMON_KILLS:-12}
M=$T/mnt
ACK=$T/acked # the writers' intent (P) and acknowledgement (A) lines

# One writer per directory: before each change it logs "P path hash [trunc]" (what the
# file will hold; "trunc" when the change empties the file first, which may be all that
# lands), then changes the file, fsyncs it (and the directory after a rename) and logs
# "A path hash". Only "A" lines are acknowledged.
cat >"$T/writer.py" <<'PY'
import hashlib, os, random, sys
mnt, ack, wid, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rnd = random.Random(seed)
log = open(ack, "a", buffering=1)
d = os.path.join(mnt, "w" + wid)
os.makedirs(d, exist_ok=True)
H = lambda b: hashlib.sha256(b).hexdigest()
try:
    while True:
        name = os.path.join(d, "f%d" % rnd.randrange(12))
        rel = os.path.relpath(name, mnt)
        data = os.urandom(rnd.choice([10, 3000, 70000, 200000]))
        old = open(name, "rb").read() if os.path.exists(name) else None
        op = rnd.randrange(4) if old is not None else 0
        if op == 0:  # create or rewrite with O_TRUNC
            new = data
            log.write("P %s %s trunc\n" % (rel, H(new)))
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, data)
        elif op == 1:  # append
            new = old + data[:5000]
            log.write("P %s %s\n" % (rel, H(new)))
            fd = os.open(name, os.O_WRONLY | os.O_APPEND)
            os.write(fd, data[:5000])
        elif op == 2:  # overwrite 4 KiB inside
            off = rnd.randrange(max(1, len(old)))
            w = data[:4096]
            b = bytearray(old)
            if off + len(w) > len(b):
                b.extend(bytes(off + len(w) - len(b)))
            b[off:off + len(w)] = w
            new = bytes(b)
            log.write("P %s %s\n" % (rel, H(new)))
            fd = os.open(name, os.O_WRONLY)
            os.pwrite(fd, w, off)
        else:  # write a new version aside and rename it over
            new = data
            tmp = name + ".tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            log.write("P %s %s\n" % (rel, H(new)))
            os.rename(tmp, name)
            dfd = os.open(d, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)
            log.write("A %s %s\n" % (rel, H(new)))
            continue
        os.fsync(fd)
        os.close(fd)
        log.write("A %s %s\n" % (rel, H(new)))
except OSError:
    pass  # the daemon died under us
PY

: >"$ACK"
for round in $(seq 1 "$kills"); do
	bcfs_mount "$T/data" "$M" -o max_file_size=1M
	pids=()
	for w in 1 2 3; do
		python3 "$T/writer.py" "$M" "$ACK" "$w" "$((round * 10 + w))" &
		pids+=($!)
	done
	sleep "0.$((RANDOM % 9 + 1))"
	kill -9 "$(bcfs_pid "$M")"
	for p in "${pids[@]}"; do wait "$p" || true; done
	fusermount3 -uz "$M" 2>/dev/null || true
	wait "$(bcfs_pid "$M")" 2>/dev/null || true
	unset "_bcfs_pid[$M]"
	bcfs_check_log "$BCFS_LOG"

	# Recovery, then every acknowledged file must hold its last acknowledged bytes.
	bcfs_mount "$T/data" "$M"
	python3 - "$M" "$ACK" <<'PY' || fail "round $round: an acknowledged write was lost"
import hashlib, os, sys
mnt, ack = sys.argv[1], sys.argv[2]
# Per path: the last acknowledged hash, and the outcomes the changes in flight after it
# may have left: each one's new content, or an empty file when it truncated first. There
# can be several, one per round: a change in flight when the daemon died may have landed,
# and the path's next change (in a later round) may then die in flight too, leaving the
# earlier one's content.
acked, pending = {}, {}
for line in open(ack):
    f = line.split()
    if f[0] == "A":
        acked[f[1]] = f[2]
        pending.pop(f[1], None)
    elif f[0] == "P":
        pending.setdefault(f[1], set()).update(
            {f[2]} | ({hashlib.sha256(b"").hexdigest()} if "trunc" in f[3:] else set()))
bad = 0
for path, h in acked.items():
    try:
        got = hashlib.sha256(open(os.path.join(mnt, path), "rb").read()).hexdigest()
    except OSError as e:
        got = "missing (%s)" % e.strerror
    if got != h and got not in pending.get(path, set()):
        print("%s: acknowledged %s, found %s" % (path, h[:12], got[:12]), file=sys.stderr)
        bad += 1
print("%d acknowledged files intact" % (len(acked) - bad))
sys.exit(1 if bad else 0)
PY
	bcfs_umount "$M"
done
echo "daemon kills: $kills, acknowledged changes: $(grep -c '^A ' "$ACK")"
pass
