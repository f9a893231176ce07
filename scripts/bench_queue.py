#!/usr/bin/env python3
"""Queue benchmark (issue: worker pool). Reproduce with:

    cargo build --release && python3 scripts/bench_queue.py [--conversations 400] [--latency-ms 200]

1. Overhead of the queue: the same archive analysed by `huixi analyze` in one process (baseline) and by
   `huixi enqueue` + `huixi worker --drain` on the embedded queue and on RabbitMQ, offline analysers.
   Printed as conversations per second and the ratio to the baseline.
2. Concurrency kept busy with a slow model: a local OpenAI-compatible server that answers every request
   after --latency-ms; the worker's `busy_fraction` is the share of its slots that held a job.

Everything runs against this machine's services (RabbitMQ at 127.0.0.1:5672). Nothing is timed against
a threshold: the script prints figures side by side.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUIXI = os.path.join(ROOT, "target", "release", "huixi")
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2f"


def write_archive(path, conversations):
    texts = [("c", "你好，想了解一下你们的CRM，怎么收费？"), ("s", "标准版每个账号每年980元"),
             ("c", "我们要20个账号，能便宜点吗"), ("s", "20个账号可以打九折，谢谢您的支持"),
             ("c", "好的，非常满意，下周签合同")]
    with open(path, "w", encoding="utf-8") as f:
        for c in range(conversations):
            for i, (who, text) in enumerate(texts):
                cust, staff = f"wmBench{c}", f"staff{c % 17}"
                sender, to = (cust, staff) if who == "c" else (staff, cust)
                f.write(json.dumps({"msgid": f"b{c}_{i}", "action": "send", "from": sender, "tolist": [to],
                                    "roomid": "", "msgtime": 1795136400000 + c * 60000 + i * 1000,
                                    "msgtype": "text", "text": {"content": text}}, ensure_ascii=False) + "\n")


def answer(agent, ids):
    first = ids[0][0] if ids else ""
    side = lambda role, label, score: next(({"label": label, "score": score, "evidence": [i]}
                                            for i, r in ids if r == role), None)
    return {
        "emotion": {"customer": side("customer", "positive", 0.5), "staff": side("staff", "neutral", 0.1)},
        "staff_score": {"score": 80, "breakdown": {"responsiveness": 25, "politeness": 18, "compliance": 25,
                                                   "outcome": 12}, "notes": ["ok"], "evidence": [first]},
        "keywords": {"keywords": [{"word": "价格", "weight": 0.9, "evidence": [first]}]},
        "competitors": {"competitors": []},
        "opportunity": {"detected": True, "stage": "quoted", "score": 0.7,
                        "signals": [{"kind": "price_ask", "text": "怎么收费", "msgid": first}], "evidence": [first]},
        "summary": {"text": "客户咨询价格。", "evidence": [first]},
        "opportunity_profile": {"stage": "quoted", "stage_evidence": [first], "needs": [], "objections": [],
                                "next_best_action": {"action": "跟进报价", "reason": "已报价", "evidence": [first]}},
    }.get(agent, {})


def slow_server(latency):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(latency)
            name = body.get("response_format", {}).get("json_schema", {}).get("name", "")
            user = body["messages"][1]["content"]
            ids = []
            for line in user.splitlines():
                try:
                    v = json.loads(line)
                    if v.get("id"):  # the profile agent's first line is the profile, not a message
                        ids.append((v["id"], v.get("role", "")))
                except (ValueError, AttributeError):
                    pass
            content = json.dumps(answer(name, ids), ensure_ascii=False)
            reply = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                "choices": [{"index": 0, "finish_reason": "stop",
                                             "message": {"role": "assistant", "content": content}}],
                                "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}})
            data = reply.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(args, **kw):
    started = time.monotonic()
    out = subprocess.run([HUIXI] + args, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        sys.exit(f"huixi {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout, time.monotonic() - started


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--conversations", type=int, default=400)
    p.add_argument("--latency-ms", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=8)
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="huixi-bench-")
    archive = os.path.join(tmp, "archive.jsonl")
    write_archive(archive, a.conversations)
    n = a.conversations
    conc = str(a.concurrency)

    _, base = run(["analyze", archive, "--db", f"sqlite://{tmp}/analyze.db", "--json"])
    rows = [("huixi analyze (one process)", n / base, 1.0)]
    for label, extra in [("embedded queue + worker", []), ("RabbitMQ + worker", ["--amqp", AMQP])]:
        db = f"sqlite://{tmp}/{len(rows)}.db"
        queue = ["--queue", f"bench.{os.getpid()}.{len(rows)}"] + extra
        _, t_enq = run(["enqueue", archive, "--db", db] + queue)
        out, t_work = run(["worker", "--drain", "--db", db, "--concurrency", conc] + queue)
        rate = n / (t_enq + t_work)
        rows.append((label + " (enqueue + drain)", rate, rate / rows[0][1]))

    print(f"{n} conversations, offline analysers, concurrency {conc}")
    print(f"{'':44} {'conv/s':>8} {'× analyze':>10}")
    for label, rate, ratio in rows:
        print(f"{label:44} {rate:8.1f} {ratio:10.2f}")

    server = slow_server(a.latency_ms / 1000)
    url = f"http://127.0.0.1:{server.server_port}/v1"
    print(f"\nslow model endpoint: {a.latency_ms} ms a request, six agent calls per session")
    for label, extra in [("embedded queue", []), ("RabbitMQ", ["--amqp", AMQP])]:
        db = f"sqlite://{tmp}/llm{label[0]}.db"
        queue = ["--queue", f"bench.llm.{os.getpid()}.{label[0]}"] + extra
        run(["enqueue", archive, "--db", db] + queue)
        out, t = run(["worker", "--drain", "--db", db, "--concurrency", conc, "--llm-base-url", url,
                      "--llm-model", "bench", "--llm-concurrency", "256", "--llm-tenant-concurrency", "256"]
                     + queue)
        tally = json.loads(out.strip().splitlines()[-1])
        print(f"{label:44} busy_fraction {tally['busy_fraction']:.3f}  jobs/s {tally['jobs_per_sec']:.1f}  "
              f"done {tally['done']}")
    server.shutdown()


if __name__ == "__main__":
    main()
