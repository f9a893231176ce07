#!/usr/bin/env python3
"""Real-time alert latency (issue #17): messages POSTed to `huixi serve` at a steady rate, and the time
from each request leaving to its `alert.created` webhook arriving. Reproduce with:

    cargo build --release
    python3 scripts/bench_realtime.py --huixi target/release/huixi --rate 500 --seconds 30 \\
        --stores sqlite,mariadb [--json-out bench_realtime.json]

1. One `huixi serve` per store (a fresh SQLite file; a fresh MariaDB database bench_rt_* on
   127.0.0.1:3306, dropped at the end), with a tenant token, and a webhook receiver in this process
   (a threaded HTTP server on 127.0.0.1) set as the tenant's URL (--webhook-allow-private).
2. A sender thread POSTs NDJSON batches to /v1/messages every --tick-ms (rate × tick messages per
   batch), for --seconds. Messages go to --conversations one-to-one chats of 20 staff members; every
   --alert-every-th message is a hand-off (加我微信) that raises a high alert; the rest are ordinary
   sales talk. Message times are now, so conversations stay in the idle schedule and no session analysis
   competes during the run (as in production while people are talking).
3. Latency per alert = webhook arrival − the moment its batch's request was sent; p50, p90, p99, max,
   over every alert of the run, and the requests' own latency (send → response) beside it as the
   baseline: the alert path's p99 divided by the request path's p99 shows what the outbox adds.

With --bulk ARCHIVE, the ingest path's throughput instead: the archive POSTed to /v1/messages in
requests of --batch lines, one after the other, on a fresh store per binary; beside it `huixi enqueue
ARCHIVE` (the same path from a file) and, with --baseline BIN, the baseline binary's `huixi enqueue`
(before issue 17 it stored messages without scanning them):

    python3 scripts/bench_realtime.py --huixi target/release/huixi --baseline /tmp/base/huixi \
        --bulk /tmp/huixi-bench-scale/archive-sessions100000-….jsonl --stores sqlite,mariadb

Nothing is timed against a threshold: the script prints a Markdown table (and --json-out the figures).
"""
import argparse
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

LEX_WORD = "加我微信"


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


class Receiver:
    """Webhook receiver: records the arrival time of every alert.created, by msgid."""

    def __init__(self):
        self.arrivals = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                now = time.monotonic()
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("x-huixi-event") == "alert.created":
                    msgid = json.loads(body)["msgid"]
                    with outer.lock:
                        outer.arrivals.setdefault(msgid, now)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def run(huixi, cmd_args, env=None):
    out = subprocess.run([huixi] + cmd_args, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"huixi {' '.join(cmd_args)} failed: {out.stderr}")
    return out.stdout


def request(method, url, token, body, content_type="application/json"):
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("authorization", f"Bearer {token}")
    req.add_header("content-type", content_type)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.read()


def bench(huixi, store, args, workdir):
    if store == "sqlite":
        db = f"sqlite://{os.path.join(workdir, 'rt.db')}"
        drop = None
    else:
        name = f"bench_rt_{os.getpid()}"
        subprocess.run(["mariadb", "-uroot", "-h127.0.0.1", "-e", f"CREATE DATABASE {name}"], check=True)
        db = f"mysql://root@127.0.0.1:3306/{name}"
        drop = name
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUIXI_")}
    env["RUST_LOG"] = "warn"
    tenant = json.loads(run(huixi, ["token", "create", "--tenant", "acme", "--db", db], env))["token"]
    admin = json.loads(run(huixi, ["token", "create", "--admin", "--db", db], env))["token"]
    serve = subprocess.Popen(
        [huixi, "serve", "--listen", "127.0.0.1:0", "--db", db, "--webhook-allow-private"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    base = serve.stdout.readline().strip().removeprefix("listening on ")
    receiver = Receiver()
    try:
        request("PUT", f"{base}/admin/tenants/acme/webhook", admin,
                json.dumps({"url": receiver.url, "secret": "bench-secret-0123456789"}).encode())
        per_batch = max(1, int(args.rate * args.tick_ms / 1000))
        batches = int(args.seconds * 1000 / args.tick_ms)
        sent_at = {}
        request_ms = []
        seq = 0
        start = time.monotonic()
        for b in range(batches):
            due = start + b * args.tick_ms / 1000.0
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            lines = []
            alerts = []
            now_ms = int(time.time() * 1000)
            for _ in range(per_batch):
                seq += 1
                staff = f"staff{seq % 20}"
                customer = f"wmrt{seq % args.conversations:05d}"
                msgid = f"rt{seq:08d}"
                if seq % args.alert_every == 0:
                    text = f"{LEX_WORD}，私下联系"
                    alerts.append(msgid)
                else:
                    text = "您好，这款产品的价格和优惠可以再详细说一下吗"
                frm, to = (staff, customer) if seq % 2 else (customer, staff)
                lines.append(json.dumps({
                    "msgid": msgid, "action": "send", "from": frm, "tolist": [to], "roomid": "",
                    "msgtime": now_ms, "msgtype": "text", "text": {"content": text}},
                    ensure_ascii=False))
            body = ("\n".join(lines) + "\n").encode()
            t0 = time.monotonic()
            for m in alerts:
                sent_at[m] = t0
            status, _ = request("POST", f"{base}/v1/messages", tenant, body, "application/x-ndjson")
            request_ms.append((time.monotonic() - t0) * 1000)
            if status != 200:
                sys.exit(f"POST /v1/messages answered {status}")
        sent_for = time.monotonic() - start
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with receiver.lock:
                if len(receiver.arrivals) >= len(sent_at):
                    break
            time.sleep(0.05)
        with receiver.lock:
            latencies = [(receiver.arrivals[m] - t) * 1000 for m, t in sent_at.items() if m in receiver.arrivals]
        return {
            "store": store,
            "messages": seq,
            "achieved_rate": seq / sent_for,
            "alerts_sent": len(sent_at),
            "alerts_received": len(latencies),
            "alert_ms": {p: percentile(latencies, p) for p in (50, 90, 99, 100)},
            "request_ms": {p: percentile(request_ms, p) for p in (50, 90, 99, 100)},
        }
    finally:
        serve.terminate()
        serve.wait()
        receiver.server.shutdown()
        if drop:
            subprocess.run(["mariadb", "-uroot", "-h127.0.0.1", "-e", f"DROP DATABASE {drop}"], check=False)


def fresh_store(store, workdir, tag):
    if store == "sqlite":
        return f"sqlite://{os.path.join(workdir, tag + '.db')}", None
    name = f"bench_rt_{tag}_{os.getpid()}"
    subprocess.run(["mariadb", "-uroot", "-h127.0.0.1", "-e", f"CREATE DATABASE {name}"], check=True)
    return f"mysql://root@127.0.0.1:3306/{name}", name


def drop_store(name):
    if name:
        subprocess.run(["mariadb", "-uroot", "-h127.0.0.1", "-e", f"DROP DATABASE {name}"], check=False)


def bulk(huixi, baseline, store, args, workdir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUIXI_")}
    env["RUST_LOG"] = "warn"
    with open(args.bulk, "rb") as f:
        lines = [l for l in f.read().split(b"\n") if l.strip()]
    rows = []
    # The API: requests of --batch lines, one after the other.
    db, name = fresh_store(store, workdir, "api")
    tenant = json.loads(run(huixi, ["token", "create", "--tenant", "bench", "--db", db], env))["token"]
    serve = subprocess.Popen([huixi, "serve", "--listen", "127.0.0.1:0", "--db", db, "--no-worker"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    base = serve.stdout.readline().strip().removeprefix("listening on ")
    try:
        accepted = alerts = 0
        t0 = time.monotonic()
        for i in range(0, len(lines), args.batch):
            body = b"\n".join(lines[i:i + args.batch]) + b"\n"
            status, answer = request("POST", f"{base}/v1/messages", tenant, body, "application/x-ndjson")
            report = json.loads(answer)
            accepted += report["accepted"]
            alerts += report["alerts"]
        secs = time.monotonic() - t0
        rows.append({"store": store, "path": "POST /v1/messages", "binary": huixi, "messages": accepted,
                     "alerts": alerts, "seconds": secs, "per_s": accepted / secs})
    finally:
        serve.terminate()
        serve.wait()
        drop_store(name)
    # The same archive from a file, by each binary.
    for label, binary in (("huixi enqueue", huixi), ("huixi enqueue (baseline)", baseline)):
        if not binary:
            continue
        db, name = fresh_store(store, workdir, "enq")
        try:
            t0 = time.monotonic()
            run(binary, ["enqueue", args.bulk, "--db", db, "--tenant", "bench"], env)
            secs = time.monotonic() - t0
            rows.append({"store": store, "path": label, "binary": binary, "messages": len(lines),
                         "seconds": secs, "per_s": len(lines) / secs})
        finally:
            drop_store(name)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--huixi", default="target/release/huixi")
    ap.add_argument("--rate", type=float, default=500, help="messages per second")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--tick-ms", type=int, default=100, help="one request every TICK ms")
    ap.add_argument("--conversations", type=int, default=2000)
    ap.add_argument("--alert-every", type=int, default=10, help="every Nth message is a hand-off")
    ap.add_argument("--stores", default="sqlite", help="sqlite,mariadb")
    ap.add_argument("--json-out")
    ap.add_argument("--bulk", help="an archive to push through the ingest path as fast as it goes")
    ap.add_argument("--batch", type=int, default=5000, help="lines per request with --bulk")
    ap.add_argument("--baseline", help="with --bulk: a binary whose `huixi enqueue` runs beside")
    args = ap.parse_args()
    if args.bulk:
        rows = []
        with tempfile.TemporaryDirectory() as work:
            for store in args.stores.split(","):
                rows.extend(bulk(args.huixi, args.baseline, store, args, work))
        print("| store | path | messages | seconds | messages/s | × enqueue (baseline) |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            base = next((b for b in rows if b["store"] == r["store"] and b["path"] == "huixi enqueue (baseline)"), None)
            ratio = f"{r['seconds'] / base['seconds']:.2f}×" if base else "–"
            print(f"| {r['store']} | {r['path']} | {r['messages']} | {r['seconds']:.1f} | {r['per_s']:.0f} | {ratio} |")
        if args.json_out:
            with open(args.json_out, "w") as f:
                json.dump(rows, f, indent=2)
        return
    results = []
    with tempfile.TemporaryDirectory() as work:
        for store in args.stores.split(","):
            results.append(bench(args.huixi, store, args, work))
    print(f"rate {args.rate:.0f} msg/s for {args.seconds:.0f} s, one request every {args.tick_ms} ms, "
          f"every {args.alert_every}th message alerted\n")
    print("| store | messages | msg/s achieved | alerts (received/sent) | alert p50 ms | p90 | p99 | max "
          "| request p50 ms | p99 | alert p99 / request p99 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        a, q = r["alert_ms"], r["request_ms"]
        print(f"| {r['store']} | {r['messages']} | {r['achieved_rate']:.0f} | {r['alerts_received']}/{r['alerts_sent']} "
              f"| {a[50]:.0f} | {a[90]:.0f} | {a[99]:.0f} | {a[100]:.0f} | {q[50]:.0f} | {q[99]:.0f} "
              f"| {a[99] / q[99]:.1f}× |")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
