#!/usr/bin/env python3
"""What analysing beyond one session costs (issue: customers, metrics, tags, 撞单). Reproduce with:

    cargo build --release
    git worktree add /tmp/huixi-base 4b97bbc && (cd /tmp/huixi-base && cargo build --release)
    python3 scripts/bench_customers.py --baseline /tmp/huixi-base/target/release/huixi

and on equal footing, with the baseline given the store and output changes that came with the issue but
are not part of it (SQLite WAL and page cache, buffered report):

    patch -d /tmp/huixi-base -p1 < scripts/bench_customers_baseline.patch
    (cd /tmp/huixi-base && cargo build --release)
    python3 scripts/bench_customers.py --baseline /tmp/huixi-base/target/release/huixi

The same archive (CUSTOMERS customers, each talking to two staff members over five days, every tenth
writing a phone that another customer also writes) is analysed by `huixi analyze` on a fresh SQLite
store, once by the baseline binary (before conversation metrics and customer profiles existed) and once
by this tree's, side by side, best of --repeat runs. Printed: conversations per second, peak memory
(max RSS), and the ratio of each to the baseline. A second run of the candidate on the same store shows
what a re-run costs (nothing is written). Nothing is timed against a threshold.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAY = 86_400_000
MONDAY = 1_794_758_400_000  # 2026-11-16 00:00 +08:00

TALK = [
    ("c", "你好，我们是培训学校，想了解一下你们的CRM，怎么收费？"),
    ("s", "标准版每个账号每年980元，请问需要多少个账号？"),
    ("c", "我们需要20个账号，能便宜点吗？销售易报价比你们低"),
    ("s", "20个账号可以打九折"),
    ("c", "我考虑一下，谢谢"),
]


def write_archive(path, customers):
    conversations = 0
    with open(path, "w", encoding="utf-8") as f:
        for c in range(customers):
            cust = f"wmBench{c}"
            for k, staff in enumerate([f"staff{c % 13}", f"staff{(c + 5) % 13}"]):
                conversations += 1
                for day in range(k, 5, 2):
                    for i, (who, text) in enumerate(TALK):
                        if who == "c" and i == 0 and c % 10 == 0:
                            text += f" 我的手机 139{c // 20:08d}"
                        sender, to = (cust, staff) if who == "c" else (staff, cust)
                        t = MONDAY + day * DAY + 10 * 3_600_000 + c * 7_000 + i * 90_000
                        f.write(json.dumps({"msgid": f"b{c}_{k}_{day}_{i}", "action": "send", "from": sender,
                                            "tolist": [to], "roomid": "", "msgtime": t, "msgtype": "text",
                                            "text": {"content": text}}, ensure_ascii=False) + "\n")
    return conversations


def run(binary, args):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    out = subprocess.run([binary] + args, capture_output=True, text=True)
    took = time.monotonic() - started
    if out.returncode != 0:
        sys.exit(f"{binary} {' '.join(args)} failed:\n{out.stderr}")
    # ru_maxrss of children is the largest any child reached so far; each binary runs in its own
    # python process below, so the figure is that binary's.
    return took, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def measure(binary, archive, repeat, extra):
    """Best wall time of `repeat` fresh-store runs, and the peak RSS (KiB), in a child python process."""
    code = f"""
import json, sys, tempfile, os
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
from bench_customers import run
best, rss, rerun = None, 0, None
for i in range({repeat}):
    tmp = tempfile.mkdtemp(prefix="huixi-bench-")
    db = "sqlite://" + os.path.join(tmp, "huixi.db")
    took, peak = run({binary!r}, ["analyze", {archive!r}, "--db", db, "--json"] + {extra!r})
    best = took if best is None else min(best, took)
    rss = max(rss, peak)
    again, _ = run({binary!r}, ["analyze", {archive!r}, "--db", db, "--json"] + {extra!r})
    rerun = again if rerun is None else min(rerun, again)
print(json.dumps([best, rss, rerun]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--baseline", required=True, help="huixi binary built before issue #10")
    p.add_argument("--candidate", default=os.path.join(ROOT, "target", "release", "huixi"))
    p.add_argument("--customers", type=int, default=500)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="huixi-bench-")
    archive = os.path.join(tmp, "archive.jsonl")
    n = write_archive(archive, a.customers)
    tags = os.path.join(ROOT, "samples", "tags.json")
    calendar = os.path.join(ROOT, "samples", "calendar.toml")
    base = measure(a.baseline, archive, a.repeat, [])
    cand = measure(a.candidate, archive, a.repeat, ["--calendar", calendar, "--tag-library", tags])
    print(f"{a.customers} customers, {n} conversations, best of {a.repeat}")
    print(f"{'run':<48} {'conv/s':>8} {'x base':>7} {'max RSS MiB':>12} {'x base':>7} {'rerun s':>8}")
    for label, (took, rss, rerun) in [("baseline (before #10)", base),
                                      ("candidate (metrics, profiles, tags, 撞单)", cand)]:
        print(f"{label:<48} {n / took:>8.1f} {base[0] / took:>7.2f} {rss / 1024:>12.1f} "
              f"{rss / base[1]:>7.2f} {rerun:>8.2f}")


if __name__ == "__main__":
    main()
