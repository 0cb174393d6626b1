#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turn the raw output of scripts/bench in a results directory into results.md and PNG
plots (gnuplot), and judge the targets of the benchmark issue against the figures.

    report.py OUTDIR                       write OUTDIR/results.md and OUTDIR/*.png
    report.py --docs OUTDIR BENCHMARKS.md  replace everything below the marker line of
                                           BENCHMARKS.md with OUTDIR/results.md

Ratios are medians of per-round ratios (rounds are interleaved, so both sides of a ratio
ran minutes apart at most); absolute figures are medians over rounds.
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict

MARKER = "<!-- scripts/bench writes the latest results below this line -->"
KV_LABELS = ["100B-1t", "100B-4t", "4K-1t", "sync-1t", "sync-4t"]
RATE_PHASES = ["fillseq", "fillrandom", "readrandom", "readmissing", "overwrite"]
PEERS = ["lmdb", "leveldb", "rocksdb", "tkrzw"]
TARGETS_FS = ["bitcaskfs", "nullfs", "ext4", "tmpfs"]
# Filesystem metrics: (name in fs.tsv, label, higher is better)
FS_METRICS = [
    ("1m_seqwrite_mib_s", "seq write 1 MiB blocks + fsync (MiB/s)", True),
    ("1m_seqread_mib_s", "seq read 1 MiB blocks (MiB/s)", True),
    ("128k_seqwrite_mib_s", "seq write 128 KiB blocks + fsync (MiB/s)", True),
    ("128k_seqread_mib_s", "seq read 128 KiB blocks (MiB/s)", True),
    ("create_ops_s", "4 KiB files create+write+close (ops/s)", True),
    ("read_ops_s", "4 KiB files open+read+close (ops/s)", True),
    ("stat_ops_s", "stat (ops/s)", True),
    ("unlink_ops_s", "unlink (ops/s)", True),
    ("mkfiles_ops_s", "empty files create (ops/s)", True),
    ("ls_l_s", "ls -l of the big directory (s)", False),
    ("cp_a_s", "cp -a of the tree (s)", False),
    ("rsync_a_s", "rsync -a of the tree (s)", False),
    ("append_ops_s", "log appends, 128 B, 4 files (ops/s)", True),
    ("1g_randwrite_ops_s", "random 4 KiB overwrite in the big file (ops/s)", True),
    ("4m_randwrite_ops_s", "random 4 KiB overwrite in a 4 MiB file (ops/s)", True),
]


def med(xs):
    xs = [x for x in xs if x is not None and x >= 0]
    return statistics.median(xs) if xs else None


def fmt(x, nd=2):
    if x is None:
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}"


def read_kv(path):
    kv = defaultdict(dict)  # (label, engine, phase) -> {round: value}
    if os.path.exists(path):
        for line in open(path):
            label, rnd, eng, phase, val = line.rstrip("\n").split("\t")
            kv[(label, eng, phase)][int(rnd)] = float(val)
    return kv


def read_fs(path):
    fs = defaultdict(dict)  # (pin, target, metric) -> {round: value}
    if os.path.exists(path):
        for line in open(path):
            _, rnd, pin, tgt, metric, val = line.rstrip("\n").split("\t")
            try:
                fs[(int(pin), tgt, metric)][int(rnd)] = float(val)
            except ValueError:
                pass
    return fs


def read_kvfile(path):
    d = {}
    if os.path.exists(path):
        for line in open(path):
            parts = line.split(None, 1)
            if len(parts) == 2:
                d[parts[0]] = parts[1].strip()
    return d


def ratio_rounds(a, b, invert=False):
    """Median over rounds present in both of a/b (b/a when invert)."""
    rs = []
    for r in a:
        if r in b and a[r] > 0 and b[r] > 0:
            rs.append(b[r] / a[r] if invert else a[r] / b[r])
    return med(rs)


def gnuplot(script, outdir):
    if not shutil.which("gnuplot"):
        return
    subprocess.run(["gnuplot"], input=script, text=True, cwd=outdir, check=False,
                   stderr=subprocess.DEVNULL)


def main():
    if sys.argv[1] == "--docs":
        outdir, doc = sys.argv[2], sys.argv[3]
        text = open(doc).read() if os.path.exists(doc) else MARKER + "\n"
        head = text.split(MARKER)[0]
        res = open(os.path.join(outdir, "results.md")).read()
        # A partial report (a part never run into this directory) would replace the
        # published figures with gaps: leave the document as it is.
        if "| not measured |" in res:
            print(f"report.py: {doc} not updated: {outdir} lacks some parts "
                  "(run them into it with --only)", file=sys.stderr)
            return
        # one heading level down: the results are a section of the document
        res = re.sub(r"^#", "##", res, flags=re.M)
        open(doc, "w").write(head + MARKER + "\n\n" + res)
        return
    outdir = sys.argv[1]
    env = read_kvfile(os.path.join(outdir, "env.txt"))
    kv = read_kv(os.path.join(outdir, "kv.tsv"))
    fs = read_fs(os.path.join(outdir, "fs.tsv"))
    st1 = read_kvfile(os.path.join(outdir, "startup_1m.txt"))
    st10 = read_kvfile(os.path.join(outdir, "startup_10m.txt"))
    mg = read_kvfile(os.path.join(outdir, "merge.txt"))
    md = []
    w = md.append
    w(f"# Benchmark results, {env.get('date', '?')}\n")
    w(f"Command: `{env.get('command', 'scripts/bench')}`  ")
    runs = {}
    for part in ("kv", "start", "fs", "merge"):
        path = os.path.join(outdir, f"run_{part}.txt")
        if os.path.exists(path):
            day, hhmm, utc, commit, cmd = open(path).read().strip().split(" ", 4)
            runs.setdefault((cmd, commit, f"{day} {hhmm} {utc}"), []).append(part)
    if runs:
        w("Parts: " + "; ".join(f"{', '.join(parts)} from `{cmd}` at {commit}, {when}"
                                for (cmd, commit, when), parts in runs.items()) + "  ")
    w(f"Machine: {env.get('cpu', '?')}, {env.get('memory', '?')} RAM, Linux "
      f"{env.get('kernel', '?')}; work dir {env.get('workdir', '?')}; libfuse "
      f"{env.get('libfuse', '?')}  ")
    w(f"Peers: {env.get('peers', '?')}  ")
    w(f"Rounds: {env.get('rounds', '?')} (interleaved; figures are medians, ratios are "
      "medians of per-round ratios)\n")
    if env.get("quick") == "1":
        w("**Quick smoke run: sizes are tiny, nothing here means anything.**\n")

    # ---- targets ----
    targets = []  # (target, measured, met)

    def kvr(label, phase, peer):
        return ratio_rounds(kv.get((label, "bitcask", phase), {}),
                            kv.get((label, peer, phase), {}))

    def kv_fastest(label, phase):
        ours = kv.get((label, "bitcask", phase), {})
        rs = []
        for r in ours:
            best = max((kv.get((label, p, phase), {}).get(r, -1) for p in PEERS), default=-1)
            if best > 0:
                rs.append(ours[r] / best)
        return med(rs)

    def add(name, val, need, unit="x", le=False):
        if val is None:
            targets.append((name, "n/a", f"{'<=' if le else '>='} {need}{unit}", "not measured"))
            return
        ok = val <= need if le else val >= need
        targets.append((name, f"{fmt(val)}{unit}", f"{'<=' if le else '>='} {need}{unit}",
                        "**met**" if ok else "missed"))

    for ph, nm in (("fillrandom", "random put 100 B"), ("overwrite", "overwrite 100 B")):
        add(f"{nm} vs fastest peer", kv_fastest("100B-1t", ph), 1.0)
        add(f"{nm} vs tkrzw", kvr("100B-1t", ph, "tkrzw"), 1.0)
        add(f"{nm} vs LevelDB", kvr("100B-1t", ph, "leveldb"), 2.5)
    add("random get vs fastest peer", kv_fastest("100B-1t", "readrandom"), 1.0)
    add("random get vs LMDB", kvr("100B-1t", "readrandom", "lmdb"), 1.2)
    add("missing keys vs LMDB", kvr("100B-1t", "readmissing", "lmdb"), 4.0)
    add("4 KiB random fill vs LMDB", kvr("4K-1t", "fillrandom", "lmdb"), 2.0)
    add("4 KiB random read vs LMDB", kvr("4K-1t", "readrandom", "lmdb"), 1.0)
    spp = med(list(kv.get(("sync-1t", "bitcask", "syncs_per_put"), {}).values()))
    add("fsync each write: fdatasyncs per put (stats)", spp, 1.0, "", le=True)
    strace_calls = None
    sp = os.path.join(outdir, "strace_sync.txt")
    if os.path.exists(sp):
        for line in open(sp):
            f = line.split()
            if f and f[-1] == "fdatasync" and len(f) >= 5:
                strace_calls = int(f[3])
    if strace_calls is not None:
        targets.append(("fsync each write: fdatasync calls for 500 puts (strace)",
                        str(strace_calls), "500 (+1 at close)",
                        "**met**" if strace_calls <= 501 else "missed"))
    add("fsync each write vs LevelDB", kvr("sync-1t", "fillrandom", "leveldb"), 1.2)
    g1 = med(list(kv.get(("sync-1t", "bitcask", "fillrandom"), {}).values()))
    g4 = med(list(kv.get(("sync-4t", "bitcask", "fillrandom"), {}).values()))
    add("group commit: 4 writers vs 1 (fsync each write)",
        g4 / g1 if g1 and g4 else None, 3.0)
    add("open with hints (read-write), s per million keys (1M keys)",
        float(st1["open_hint_s_per_mkeys"]) if "open_hint_s_per_mkeys" in st1 else None,
        0.12, " s", le=True)
    add("keydir bytes per key beyond the key (1M)",
        float(st1["keydir_bytes_per_key"]) if "keydir_bytes_per_key" in st1 else None,
        32, " B", le=True)
    add("keydir bytes per key beyond the key (10M)",
        float(st10["keydir_bytes_per_key"]) if "keydir_bytes_per_key" in st10 else None,
        32, " B", le=True)
    for pin in (0, 1):
        tag = "pinned" if pin else "unpinned"
        for metric, need, nm in (("1m_seqwrite_mib_s", 0.8, "seq write 1 MiB"),
                                 ("128k_seqwrite_mib_s", 0.8, "seq write 128 KiB"),
                                 ("1m_seqread_mib_s", 0.9, "seq read 1 MiB"),
                                 ("128k_seqread_mib_s", 0.9, "seq read 128 KiB"),
                                 ("create_ops_s", 0.8, "small-file create"),
                                 ("stat_ops_s", 0.9, "stat")):
            add(f"fs {nm} vs ceiling ({tag})",
                ratio_rounds(fs.get((pin, "bitcaskfs", metric), {}),
                             fs.get((pin, "nullfs", metric), {})), need)
        add(f"fs random 4 KiB overwrite: big file rate / 4 MiB file rate ({tag})",
            ratio_rounds(fs.get((pin, "bitcaskfs", "1g_randwrite_ops_s"), {}),
                         fs.get((pin, "bitcaskfs", "4m_randwrite_ops_s"), {})), 0.8)
    for op in ("get", "put"):
        add(f"merge: foreground {op} p99 during / without",
            float(mg[f"{op}_p99_ratio"]) if f"{op}_p99_ratio" in mg else None, 2.0, "x",
            le=True)
    w("## Targets\n")
    w("| target | measured | wanted | verdict |")
    w("|---|---:|---:|---|")
    for t in targets:
        w(f"| {t[0]} | {t[1]} | {t[2]} | {t[3]} |")
    w("")

    # ---- engine tables ----
    w("## 1. Engine (each library's C API, one operation per call, 16-byte keys)\n")
    w("Rates in ops/s; `open_s` seconds to reopen the filled store (warm cache); RSS and "
      "disk in MiB (lower is better; disk after = after bc_merge / compact_range / "
      "rebuild; LMDB has no compaction). `ours/x` is the median of per-round ratios "
      "bitcask/x of the same figure (for rates, above 1 means bitcask is faster; for "
      "seconds and MiB, below 1 means bitcask uses less).\n")
    for label in KV_LABELS:
        p = os.path.join(outdir, f"kv_{label}.md")
        if os.path.exists(p):
            w(open(p).read().rstrip() + "\n")
            if os.path.exists(os.path.join(outdir, f"kv_{label}.png")):
                pass
    # plots
    for label in KV_LABELS:
        phases = [ph for ph in RATE_PHASES if kv.get((label, "bitcask", ph))]
        if not phases:
            continue
        engines = ["bitcask"] + PEERS
        dat = os.path.join(outdir, f"kv_{label}.dat")
        with open(dat, "w") as f:
            f.write("phase " + " ".join(engines) + "\n")
            for ph in phases:
                vals = [med(list(kv.get((label, e, ph), {}).values())) for e in engines]
                f.write(ph + " " + " ".join(str(v if v else 0) for v in vals) + "\n")
        cols = " , ".join(f"'' using {i + 2}:xtic(1) title columnhead"
                          for i in range(len(engines)))
        gnuplot(f"""set terminal png size 900,500
set output 'kv_{label}.png'
set title 'Engine ops/s, {label} (median of rounds)'
set style data histograms
set style histogram clustered gap 1
set style fill solid border -1
set logscale y
set ylabel 'ops/s (log)'
set key top left
plot {cols.replace("''", "'kv_" + label + ".dat'", 1)}
""", outdir)
    w("Plots: `kv_<config>.png` (ops/s per phase and engine, log scale).\n")

    # ---- startup ----
    w("## 2. Start-up and keydir memory (bitcask)\n")
    w("| keys | open with hints, read-write (s per M keys) | the same, read-only | "
      "open by scan (s per M keys) | "
      "keydir bytes/key beyond key (bc_stats) | anon RSS growth bytes/key beyond key |")
    w("|---:|---:|---:|---:|---:|---:|")
    for st in (st1, st10):
        if st:
            w(f"| {st.get('keys')} | {st.get('open_hint_s_per_mkeys')} | "
              f"{st.get('open_hint_ro_s_per_mkeys', 'n/a')} | "
              f"{st.get('open_scan_s_per_mkeys')} | {st.get('keydir_bytes_per_key')} | "
              f"{st.get('anon_rss_bytes_per_key')} |")
    w("")

    # ---- filesystem ----
    w("## 3. Filesystem\n")
    w("bitcaskfs against nullfs (a no-op FUSE filesystem with the same libfuse options: the "
      "FUSE ceiling), ext4 (the work dir, page cache) and tmpfs. `bcfs/ceiling` is the "
      "median of per-round ratios, oriented so that above 1 means bitcaskfs is faster "
      "(for times, ceiling time / bitcaskfs time). Pinned: daemon and client both on "
      "CPU 1 (`taskset -c 1`).\n")
    for pin in (0, 1):
        if not any(k[0] == pin for k in fs):
            continue
        w(f"### {'Pinned to one CPU' if pin else 'Unpinned'}\n")
        w("| workload | " + " | ".join(TARGETS_FS) + " | bcfs/ceiling |")
        w("|---|" + "---:|" * (len(TARGETS_FS) + 1))
        rows = []
        for metric, nm, higher in FS_METRICS:
            vals = [med(list(fs.get((pin, t, metric), {}).values())) for t in TARGETS_FS]
            if all(v is None for v in vals):
                continue
            r = ratio_rounds(fs.get((pin, "bitcaskfs", metric), {}),
                             fs.get((pin, "nullfs", metric), {}), invert=not higher)
            rows.append((metric, r))
            w(f"| {nm} | " + " | ".join(fmt(v) for v in vals) + f" | {fmt(r)}x |")
        store = med(list(fs.get((pin, "bitcaskfs", "store_mib"), {}).values()))
        w(f"\nbitcaskfs store size at the end of a round: {fmt(store)} MiB.\n")
        tag = "pinned" if pin else "unpinned"
        with open(os.path.join(outdir, f"fs_{tag}.dat"), "w") as f:
            for metric, r in rows:
                f.write(f"{metric} {r if r else 0}\n")
        gnuplot(f"""set terminal png size 900,500
set output 'fs_{tag}.png'
set title 'bitcaskfs / nullfs ceiling, {tag} (1 = the FUSE ceiling)'
set style data histograms
set style fill solid border -1
set xtics rotate by -40
set yrange [0:*]
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2
plot 'fs_{tag}.dat' using 2:xtic(1) notitle
""", outdir)
    w("Plots: `fs_unpinned.png`, `fs_pinned.png` (ratio to the ceiling per workload).\n")

    # ---- merge ----
    w("## 4. Merge under load (bitcask)\n")
    if mg:
        w(f"Merge throughput: {mg.get('merge_input_mib_s')} MiB of input per second "
          "(store half dead, 32 MiB files).\n")
        w("| foreground | without merge | during merge | p99 during/without |")
        w("|---|---:|---:|---:|")
        for op in ("get", "put"):
            w(f"| {op} p50 (us) | {mg.get(f'idle_{op}_p50_us')} | "
              f"{mg.get(f'merge_{op}_p50_us')} | |")
            w(f"| {op} p99 (us) | {mg.get(f'idle_{op}_p99_us')} | "
              f"{mg.get(f'merge_{op}_p99_us')} | {mg.get(f'{op}_p99_ratio')}x |")
        w("")
    open(os.path.join(outdir, "results.md"), "w").write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
