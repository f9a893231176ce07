#!/usr/bin/env python3
"""Scale benchmark (issue #15): a real tenant's volume, analyse and queue, side by side. Reproduce with:

    cargo build --release
    git worktree add /tmp/huixi-base 050747d && (cd /tmp/huixi-base && cargo build --release)
    python3 scripts/bench_scale.py --baseline /tmp/huixi-base/target/release/huixi \\
        --sizes 10000,100000 --messages 1000000 --json-out bench_scale.json

and the kill -9 check (RabbitMQ + MariaDB; exit status non-zero when the candidate's store differs from a
clean run, or its workers did not drain):

    python3 scripts/bench_scale.py --kill-check [--baseline /tmp/huixi-base/target/release/huixi]

Quick look at small sizes: `--sizes 2000 --workers 1,2`; one part: `--parts analyze-sqlite`; only write
the archives (cached, printed with their counts and how long they took): `--generate-only`.

1. A deterministic archive (random.Random(--seed)) in WeCom's archive format, one JSON message a line:
   50–200 staff members (one per 500 sessions, at least 50, at most 200), each serving hundreds of
   customers; customers talk to one, two or three staff members, each conversation 1–6 sessions over
   days (sessions are 3–8 messages, replies seconds to minutes apart, sessions hours or days apart,
   always more than the 30-minute idle gap); about 3% of conversations are group chats with 2–3 staff
   members and 2–4 customers; about 5% of messages hit the sensitive lexicon (words from
   lexicons/sensitive.txt, or a mobile number), and every 50th customer writes the same mobile number as
   an earlier customer (撞单). Sized by sessions (--sizes) or by messages (--messages). Archives are kept
   in --work-dir, keyed by their parameters, and written again only when those change.
2. Each binary (--baseline, then --huixi as the candidate), on fresh stores:
   - analyze-sqlite / analyze-mariadb: `huixi analyze ARCHIVE --db URL --json > /dev/null` — wall time,
     sessions/s, peak RSS of that process (os.wait4), then the same command on the same store (nothing
     changed) and its time as a share of the first; with --repeat N, the best of N fresh stores.
   - queue-embedded / queue-amqp (MariaDB store): `huixi enqueue`, then K `huixi worker --drain`
     processes at once (K in --workers), each printing its tally; drain time is from the workers' start
     to the last one's exit, conv/s is conversations / drain time, and "× analyze" divides that by the
     conversations/s of one `huixi analyze` process on MariaDB over the same archive (the analyze-mariadb
     part's first run; measured on its own when that part is not selected). A run that outlasts
     --timeout is stopped (SIGTERM, then SIGKILL) and reported "timed out", with whatever the workers
     counted. Retried jobs are the workers' tallies; in brackets, those whose logged error (workers run
     with RUST_LOG=warn,huixi=info) was a deadlock (1213) or a lock wait timeout (1205).
3. --kill-check: enqueue a --kill-conversations archive on RabbitMQ + MariaDB, start 2 workers, kill -9
   them once --kill-after seconds have passed and some sessions are stored, drain with 2 fresh workers,
   then compare every huixi_* table, row for row, with a clean `huixi analyze` of the same archive into
   another database. Left out of the comparison: huixi_jobs and huixi_runs (delivery and run
   bookkeeping), auto-increment ids and the run_id that points at them, the outbox's delivery columns,
   the `writes` count of a session, and wall-clock timestamps (see VOLATILE).

Services: MariaDB at 127.0.0.1:3306 (root, no password; databases named bench_scale_*, dropped at the
end unless --keep), RabbitMQ at 127.0.0.1:5672 (queues named bench_scale.*, deleted at the end with
rabbitmqctl when it is there). Nothing is timed against a threshold: the script prints Markdown tables
(and --json-out writes every figure).
"""
import argparse
import bisect
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from random import Random
from urllib.parse import urlparse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUIXI = os.path.join(ROOT, "target", "release", "huixi")
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2f"
MYSQL = "mysql://root@127.0.0.1:3306"
PARTS = ["analyze-sqlite", "analyze-mariadb", "queue-embedded", "queue-amqp"]
GENERATOR = 1  # bump when the archive the generator writes changes, so cached archives are rewritten
MONDAY = 1_794_758_400_000  # 2026-11-16 00:00 +08:00
DAY = 86_400_000
MINUTE = 60_000
SPAN_DAYS = 28  # conversations start on one of these days
GRACE = 20  # seconds between SIGTERM and SIGKILL for a run that outlasts --timeout

# ---------------------------------------------------------------------------------------------------
# The archive

SURNAMES = ["zhang", "wang", "li", "liu", "chen", "yang", "zhao", "huang", "zhou", "wu", "xu", "sun",
            "hu", "zhu", "gao", "lin", "he", "guo", "ma", "luo", "liang", "song", "zheng", "xie", "han"]
GIVEN = ["wei", "fang", "na", "min", "jing", "li", "qiang", "lei", "jun", "yang", "yong", "yan", "jie",
         "tao", "ming", "chao", "xiu", "hua", "ping", "gang", "hui", "lin", "xin", "yu", "ting", "hao"]

SLOTS = {
    "product": ["CRM", "客服系统", "SCRM", "营销自动化", "会话存档", "销售管理系统"],
    "n": ["5", "10", "20", "30", "50", "80", "100", "200"],
    "price": ["680", "980", "1280", "1680", "2980"],
    "days": ["7", "14", "30"],
    "weekday": ["周一", "周二", "周三", "周四", "周五"],
    "hour": ["两", "三", "四", "十"],
    "competitor": ["销售易", "纷享销客", "简道云", "钉钉", "飞书", "有赞", "微盟", "Salesforce"],
    "role": ["老板", "运营主管", "IT负责人", "财务", "销售总监"],
    "feature": ["报表导出", "客户导入", "审批流", "移动端", "数据看板", "权限设置"],
    "m": ["一", "两", "三"],
    "name": ["王总", "李经理", "张老师", "陈总", "刘主任", "赵姐"],
}

# Texts by topic and side (c: customer, s: staff). None of them hits the shipped lexicon: the sensitive
# share is set by SENSITIVE_SHARE alone (checked with `huixi words scan` when the script was written).
TOPICS = {
    "pricing": {
        "c": ["你好，想了解一下你们的{product}，怎么收费？", "请问{product}标准版多少钱一年？",
              "我们公司大概{n}个人用，有没有合适的方案？", "专业版和标准版有什么区别？",
              "上次说的报价单能再发我一份吗", "{n}个账号的话一共多少钱", "价格能不能再优惠一点",
              "按年付和按月付差多少", "有没有适合小团队的版本"],
        "s": ["您好，标准版每个账号每年{price}元", "{n}个账号以上可以打九折", "专业版多了{feature}和数据看板，{price}元一年",
              "报价单已经发到您邮箱了，请查收", "这个月签约还送{m}个月服务期", "可以先申请{days}天试用，体验一下再决定",
              "我整理一下方案，稍后发您"],
    },
    "demo": {
        "c": ["能不能安排一次线上演示？", "我们想先试用一下", "{weekday}下午有空吗，想看看{feature}怎么用",
              "可以，我拉上我们{role}一起", "演示的链接发我一下", "试用账号怎么开通"],
        "s": ["可以的，{weekday}下午{hour}点方便吗？", "好的，会议链接稍后发您", "试用账号已经开通，用户名是您的手机号",
              "演示大概四十分钟，主要讲{feature}和{product}的日常使用", "您看{weekday}上午可以吗"],
    },
    "negotiation": {
        "c": ["{competitor}报价比你们低，能便宜点吗", "我考虑一下", "预算有限，能分期吗", "那就定了，下周签合同",
              "合同发我看看", "对公账户是哪个，我让财务付款", "我们再内部商量一下", "别家更便宜"],
        "s": ["我们这边可以打九折，另外送{m}个月服务", "合同今天发您，盖章后回传就可以", "分期也可以，按季度付款",
              "和{competitor}比，我们的{feature}更成熟", "好的，有问题随时联系我", "今天下单可以安排下周上线"],
    },
    "support": {
        "c": ["系统今天又登录不上了，怎么回事", "{feature}一直报错，很影响工作", "上周反馈过的问题到现在还没解决",
              "希望快一点，我们这边很着急", "数据导不出来", "页面特别慢，打开要好久", "这个功能怎么用"],
        "s": ["非常抱歉，我马上帮您查一下", "技术同事正在处理，今天下班前给您答复", "麻烦截个图发我看一下",
              "已经修复了，您刷新一下试试", "这个问题是浏览器缓存导致的，清理一下就好", "我把操作手册发给您"],
    },
    "followup": {
        "c": ["还在内部讨论，过几天回复你", "方案我看了，有几个问题想问", "{role}觉得还可以", "最近比较忙，下周再说",
              "我们打算先用{n}个账号"],
        "s": ["{name}您好，上次的方案您看得怎么样了？", "新版本上线了{feature}，给您介绍一下", "有任何问题随时联系",
              "这是客户案例，供您参考", "月底之前签约都有优惠"],
    },
    "thanks": {
        "c": ["问题已经解决了，谢谢你", "收到，辛苦了", "好的，非常满意", "谢谢，服务很好", "明白了"],
        "s": ["不客气，有问题随时找我", "感谢您的支持", "好的，祝您工作顺利", "应该的，后续有需要再联系"],
    },
}
TOPIC_WEIGHTS = {"pricing": 26, "demo": 14, "negotiation": 18, "support": 16, "followup": 16, "thanks": 10}
SHORT = ["好的", "收到", "嗯嗯", "明白", "谢谢", "稍等", "可以", "在的", "了解"]
GROUP_STAFF = ["大家好，我是本群的服务顾问，有问题随时在群里说", "新版本今晚上线，{feature}做了优化",
               "@所有人 {weekday}下午有一次线上培训", "这个问题我来跟进", "已经记录，技术同事在看"]
GROUP_CUSTOMER = ["{feature}在哪里设置", "我们这边也遇到同样的问题", "培训有回放吗", "好的收到", "谢谢老师"]

SENSITIVE_SHARE = 0.05
PHONE_SHARE_OF_CUSTOMER_HITS = 0.3
CATEGORY_WEIGHTS = {"引流": 35, "违规": 25, "客诉": 22, "辱骂": 15, "注入": 3}
CUSTOMER_HIT = ["{w}", "{w}吧", "{base}，{w}", "那就{w}", "{w}，这样方便点"]
STAFF_HIT = ["{w}", "{base}，{w}", "{w}，我这边方便"]
PHONE_HIT = ["我的手机号是{phone}", "电话{phone}，有事打给我", "{phone} 这是我手机", "联系方式：{phone}"]
STAFF_PHONE_HIT = ["我手机{phone}，随时联系", "有急事打{phone}"]


def lexicon_words(path):
    by_category = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            word, category = line.split(",")[:2]
            by_category.setdefault(category, []).append(word)
    return by_category


def fill(template, rng, slots=SLOTS):
    if "{" not in template:
        return template
    return template.format(**{k: v[int(rng.random() * len(v))] for k, v in slots.items()
                              if "{" + k + "}" in template})


def phone_number(rng):
    return "1" + rng.choice("3589") + str(rng.randrange(10)) + f"{rng.randrange(100_000_000):08d}"


def plan(rng, target, staff_count):
    """Conversations and their sessions, without text. target: ("sessions"|"messages"|"conversations", N)."""
    kind, goal = target
    staff = set()
    while len(staff) < staff_count:
        staff.add(f"{rng.choice(SURNAMES)}{rng.choice(GIVEN)}{rng.randrange(1, 100):02d}")
    staff = sorted(staff)
    rng.shuffle(staff)
    cum = []
    total = 0.0
    for _ in staff:  # some staff members serve many more customers than others
        total += rng.uniform(0.3, 1.7)
        cum.append(total)

    def pick_staff(k):
        chosen = []
        while len(chosen) < k:
            s = staff[bisect.bisect(cum, rng.random() * total)]
            if s not in chosen:
                chosen.append(s)
        return chosen

    customers, phones, twins = [], {}, []
    conversations = []  # (roomid, members); roomid "" for a one-to-one chat, members[0] the customer
    sessions = []  # (start_ms, conversation index, session index, messages)
    counted = {"sessions": 0, "messages": 0, "conversations": 0}

    def full():
        return counted[kind] >= goal

    def add_conversation(roomid, members):
        conversations.append((roomid, members))
        counted["conversations"] += 1
        ci = len(conversations) - 1
        n_sessions = rng.choices([1, 2, 3, 4, 5, 6], [15, 25, 25, 17, 10, 8])[0]
        day = rng.randrange(SPAN_DAYS)
        tod = None
        for si in range(n_sessions):
            if tod is not None and rng.random() < 0.25 and tod + 8 * 60 < 22 * 60:
                tod += rng.randrange(4 * 60, 8 * 60)  # the same day, hours later
                tod = min(tod, 22 * 60)
            else:
                if tod is not None:
                    day += rng.choice([1, 1, 1, 2, 2, 3, 5, 7])
                r = rng.random()
                tod = (rng.randrange(7 * 60 + 30, 9 * 60) if r < 0.05 else
                       rng.randrange(21 * 60, 23 * 60 + 30) if r < 0.15 else rng.randrange(9 * 60, 21 * 60))
            n = rng.randint(3, 8)
            if kind == "messages":
                n = min(n, goal - counted["messages"])
            sessions.append((MONDAY + day * DAY + tod * MINUTE + rng.randrange(60_000), ci, si, n))
            counted["sessions"] += 1
            counted["messages"] += n
            if kind != "conversations" and full():
                return

    while not full():
        c = len(customers)
        cust = f"{'wo' if rng.random() < 0.2 else 'wm'}C{c:06d}"
        customers.append(cust)
        if c % 50 == 49:  # 撞单: this customer writes an earlier customer's mobile number
            other = customers[rng.randrange(c)]
            phones[cust] = phones[other]
            twins.append((other, cust))
        else:
            phones[cust] = phone_number(rng)
        for s in pick_staff(rng.choices([1, 2, 3], [40, 40, 20])[0]):
            if full():
                break
            add_conversation("", (cust, s))
        if not full() and rng.random() < 0.056 and len(customers) >= 4:
            members = list(dict.fromkeys(
                [cust] + rng.sample(customers[-50:-1], min(len(customers) - 1, rng.randint(1, 3)))))
            if len(members) < 2:
                continue
            roomid = f"wrR{len(conversations):07d}"
            add_conversation(roomid, tuple(members + pick_staff(rng.randint(2, 3))))
    staff_of = {}
    for roomid, members in conversations:
        if not roomid:
            staff_of.setdefault(members[0], set()).add(members[1])
    must_write = {c for pair in twins for c in pair}
    return {"staff": staff, "customers": customers, "phones": phones, "twins": twins,
            "conversations": conversations, "sessions": sessions, "must_write": must_write,
            "multi_staff_customers": sum(1 for v in staff_of.values() if len(v) >= 2)}


def generate(path, target, seed, staff_count, lexicon):
    started = time.monotonic()
    rng = Random(seed)
    p = plan(rng, target, staff_count)
    conversations, phones, must_write = p["conversations"], p["phones"], p["must_write"]
    staff_phone = {s: phone_number(rng) for s in p["staff"]}
    words = lexicon_words(lexicon)
    categories = [c for c in CATEGORY_WEIGHTS if c in words]
    category_weights = [CATEGORY_WEIGHTS[c] for c in categories]
    topics = list(TOPIC_WEIGHTS)
    topic_weights = [TOPIC_WEIGHTS[t] for t in topics]
    by_day = {}
    for s in p["sessions"]:
        by_day.setdefault((s[0] - MONDAY) // DAY, []).append(s)
    dumps = json.dumps
    r = rng.random
    counts = Counter()
    tolists = {}

    def tolist(ci, sender):
        key = (ci, sender)
        t = tolists.get(key)
        if t is None:
            t = tolists[key] = dumps([m for m in conversations[ci][1] if m != sender], ensure_ascii=False)
        return t

    def text_for(side, topic, group, sender):
        if group:
            base = fill((GROUP_CUSTOMER if side == "c" else GROUP_STAFF)[int(r() * 5)], rng)
        elif r() < 0.15:
            base = SHORT[int(r() * len(SHORT))]
        else:
            pool = TOPICS[topic][side]
            base = fill(pool[int(r() * len(pool))], rng)
        if side == "c" and sender in must_write:
            must_write.discard(sender)
            counts["sensitive"] += 1
            counts["phone"] += 1
            return fill(PHONE_HIT[int(r() * len(PHONE_HIT))], rng, {"phone": [phones[sender]]})
        if r() >= SENSITIVE_SHARE:
            return base
        counts["sensitive"] += 1
        if side == "c" and r() < PHONE_SHARE_OF_CUSTOMER_HITS:
            counts["phone"] += 1
            return fill(PHONE_HIT[int(r() * len(PHONE_HIT))], rng, {"phone": [phones[sender]]})
        if side == "s" and r() < 0.1:
            counts["phone"] += 1
            return fill(STAFF_PHONE_HIT[int(r() * len(STAFF_PHONE_HIT))], rng, {"phone": [staff_phone[sender]]})
        pool = words[rng.choices(categories, category_weights)[0]]
        hits = CUSTOMER_HIT if side == "c" else STAFF_HIT
        hit = hits[int(r() * len(hits))]
        return hit.replace("{w}", pool[int(r() * len(pool))]).replace("{base}", base)

    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for day in sorted(by_day):
            lines = []
            for start, ci, si, n in by_day[day]:
                roomid, members = conversations[ci]
                group = bool(roomid)
                if group:
                    custs = [m for m in members if m[:2] in ("wm", "wo")]
                    staffs = [m for m in members if m[:2] not in ("wm", "wo")]
                topic = topics[bisect.bisect(_cumulative(topic_weights), r() * sum(topic_weights))]
                side = "c" if r() < 0.8 else "s"
                t = start
                for i in range(n):
                    if i:
                        if r() < 0.7:
                            side = "s" if side == "c" else "c"
                            if side == "s":  # staff reply: seconds to minutes, now and then 12-25 min
                                t += int(1000 * (rng.uniform(720, 1500) if r() < 0.05 else
                                                 rng.uniform(5, 40) * (1 + 14 * r() * r())))
                            else:
                                t += int(1000 * rng.uniform(5, 300))
                        else:
                            t += int(1000 * rng.uniform(3, 60))
                    if group:
                        who = custs if side == "c" else staffs
                        sender = who[int(r() * len(who))]
                    else:
                        sender = members[0] if side == "c" else members[1]
                    text = text_for(side, topic, group, sender)
                    lines.append((t, f'{{"msgid":"bs{ci}_{si}_{i}","action":"send","from":"{sender}",'
                                     f'"tolist":{tolist(ci, sender)},"roomid":"{roomid}","msgtime":{t},'
                                     f'"msgtype":"text","text":{{"content":{dumps(text, ensure_ascii=False)}}}}}\n'))
            lines.sort(key=lambda x: x[0])
            f.write("".join(line for _, line in lines))
            counts["messages"] += len(lines)
    os.replace(tmp, path)
    groups = sum(1 for roomid, _ in conversations if roomid)
    meta = {"file": path, "target": list(target), "seed": seed, "generator": GENERATOR,
            "sessions": len(p["sessions"]), "conversations": len(conversations),
            "group_conversations": groups, "single_conversations": len(conversations) - groups,
            "messages": counts["messages"], "staff": len(p["staff"]), "customers": len(p["customers"]),
            "customers_with_2plus_staff": p["multi_staff_customers"],
            "sensitive_messages": counts["sensitive"], "phone_messages": counts["phone"],
            "shared_phone_pairs": len(p["twins"]), "days": len(by_day), "bytes": os.path.getsize(path),
            "generated_in_s": round(time.monotonic() - started, 2)}
    with open(path + ".meta.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
    return meta


_CUM = {}


def _cumulative(weights):
    key = tuple(weights)
    if key not in _CUM:
        out, total = [], 0
        for w in weights:
            total += w
            out.append(total)
        _CUM[key] = out
    return _CUM[key]


def archive_for(work, target, seed, staff, lexicon):
    """The cached archive for these parameters, generated when missing."""
    with open(lexicon, "rb") as f:
        lex = hashlib.sha256(f.read()).hexdigest()[:8]
    kind, n = target
    staff_count = staff or min(200, max(50, (n if kind == "sessions" else n // 5 if kind == "messages"
                                             else n * 3) // 500))
    path = os.path.join(work, f"archive-{kind}{n}-seed{seed}-staff{staff_count}-g{GENERATOR}-{lex}.jsonl")
    if os.path.exists(path) and os.path.exists(path + ".meta.json"):
        with open(path + ".meta.json", encoding="utf-8") as f:
            meta = json.load(f)
        meta["cached"] = True
        return path, meta
    log(f"generating {n} {kind} → {path}")
    meta = generate(path, target, seed, staff_count, lexicon)
    meta["cached"] = False
    return path, meta


def describe(meta):
    return (f"{meta['sessions']} sessions, {meta['conversations']} conversations "
            f"({meta['group_conversations']} group chats), {meta['messages']} messages; "
            f"{meta['staff']} staff, {meta['customers']} customers "
            f"({meta['customers_with_2plus_staff']} with 2+ staff), {meta['sensitive_messages']} sensitive "
            f"messages ({meta['phone_messages']} with a mobile number), {meta['shared_phone_pairs']} shared "
            f"phones; {meta['bytes'] / 1e6:.1f} MB, "
            + ("cached" if meta.get("cached") else f"generated in {meta['generated_in_s']:.1f} s"))


# ---------------------------------------------------------------------------------------------------
# Processes

def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Child:
    """A process whose own peak RSS is read when it is reaped (os.wait4)."""

    def __init__(self, cmd, stdout_path, stderr_path, env=None):
        self.cmd = cmd
        self.stdout_path, self.stderr_path = stdout_path, stderr_path
        out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
        err = open(stderr_path, "wb")
        self.started = time.monotonic()
        self.popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        for f in (out, err):
            if f is not subprocess.DEVNULL:
                f.close()
        self.rc = self.ended = self.maxrss_kb = None
        self.timed_out = self.killed = False

    def poll(self):
        if self.rc is None:
            pid, status, usage = os.wait4(self.popen.pid, os.WNOHANG)
            if pid:
                self.ended = time.monotonic()
                self.rc = os.waitstatus_to_exitcode(status)
                self.popen.returncode = self.rc
                self.maxrss_kb = usage.ru_maxrss
        return self.rc

    def signal(self, sig):
        if self.rc is None:
            try:
                os.kill(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def stdout(self):
        with open(self.stdout_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stderr_tail(self, n=6):
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return "\n".join(f.read().strip().splitlines()[-n:])


def wait_all(children, timeout):
    """Waits for every child; past `timeout` seconds SIGTERM, then SIGKILL after GRACE."""
    deadline = time.monotonic() + timeout
    termed = None
    while any(c.poll() is None for c in children):
        now = time.monotonic()
        if termed is None and now > deadline:
            for c in children:
                if c.rc is None:
                    c.timed_out = True
                    c.signal(signal.SIGTERM)
            termed = now
        elif termed is not None and now > termed + GRACE:
            for c in children:
                c.signal(signal.SIGKILL)
        time.sleep(0.005)


def status_of(children):
    if any(c.timed_out for c in children):
        return "timed out"
    bad = [c for c in children if c.rc != 0]
    if bad:
        return f"failed (exit {bad[0].rc}): {bad[0].stderr_tail(3)}"
    return "ok"


def run_one(cmd, dirname, name, timeout, capture=False):
    c = Child(cmd, os.path.join(dirname, name + ".out") if capture else None,
              os.path.join(dirname, name + ".err"))
    wait_all([c], timeout)
    return c


# ---------------------------------------------------------------------------------------------------
# Services

class Maria:
    def __init__(self, base):
        u = urlparse(base)
        self.user, self.password = u.username or "root", u.password or ""
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 3306
        self.created = []
        self.n = 0
        self.prefix = f"bench_scale_{os.getpid()}_"

    def cli(self):
        args = ["mariadb", f"-u{self.user}", f"-h{self.host}", f"-P{self.port}", "--batch", "-N"]
        return args + ([f"-p{self.password}"] if self.password else [])

    def sql(self, statement):
        out = subprocess.run(self.cli() + ["-e", statement], capture_output=True, stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            raise RuntimeError(f"mariadb: {statement[:200]}: {out.stderr.decode(errors='replace').strip()}")
        return out.stdout.decode("utf-8", errors="replace")

    def ok(self):
        try:
            self.sql("SELECT 1")
            return True
        except (RuntimeError, FileNotFoundError):
            return False

    def fresh(self):
        name = f"{self.prefix}{self.n}"
        self.n += 1
        self.sql(f"DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`")
        self.created.append(name)
        return name

    def url(self, name):
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"mysql://{auth}@{self.host}:{self.port}/{name}"

    def count(self, db, query):
        try:
            return int(self.sql(f"USE `{db}`; {query}").strip() or 0)
        except (RuntimeError, ValueError):
            return None

    def drop_all(self):
        for name in self.created:
            try:
                self.sql(f"DROP DATABASE IF EXISTS `{name}`")
            except RuntimeError as e:
                log(f"cannot drop {name}: {e}")
        self.created = []


class Rabbit:
    def __init__(self, url):
        self.url = url
        self.prefix = f"bench_scale.{os.getpid()}."
        self.n = 0
        self.ctl = shutil.which("rabbitmqctl")

    def ok(self):
        u = urlparse(self.url)
        try:
            socket.create_connection((u.hostname or "127.0.0.1", u.port or 5672), timeout=3).close()
            return True
        except OSError:
            return False

    def new_queue(self):
        self.n += 1
        return f"{self.prefix}{self.n}"

    def queues(self):
        """name → messages, for this run's queues (needs rabbitmqctl)."""
        if not self.ctl:
            return {}
        out = subprocess.run([self.ctl, "-q", "list_queues", "name", "messages"], capture_output=True, stdin=subprocess.DEVNULL,
                             text=True, timeout=120)
        found = {}
        for line in out.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].startswith(self.prefix) and parts[1].isdigit():
                found[parts[0]] = int(parts[1])
        return found

    def depth(self, queue):
        """(ready jobs in the queue and its retry queues, dead letters), or None without rabbitmqctl."""
        if not self.ctl:
            return None
        qs = self.queues()
        waiting = sum(v for k, v in qs.items() if k == queue or k.startswith(queue + ".retry."))
        return waiting, qs.get(queue + ".dead", 0)

    def delete(self, queue=None):
        """Deletes `queue` with its retry and dead-letter queues (src/queue/amqp.rs: Q.retry.<ms>,
        Q.dead), or every queue of this run."""
        if not self.ctl:
            return
        for name in self.queues():
            if queue is None or name == queue or name.startswith(queue + "."):
                subprocess.run([self.ctl, "-q", "delete_queue", name], capture_output=True, stdin=subprocess.DEVNULL,
                               timeout=120)


# ---------------------------------------------------------------------------------------------------
# Measurements

def sqlite_sessions(path):
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return con.execute("SELECT COUNT(*) FROM huixi_sessions").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return None


def measure_analyze(binary, archive, meta, store, runs, name, timeout, rerun=True):
    """store: ("sqlite", path) or ("mariadb", Maria). Two runs on one fresh store."""
    if store[0] == "sqlite":
        db_path = os.path.join(runs, name + ".db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db_path + suffix):
                os.remove(db_path + suffix)
        url = f"sqlite://{db_path}"
    else:
        maria = store[1]
        dbname = maria.fresh()
        url = maria.url(dbname)
    cmd = [binary, "analyze", archive, "--db", url, "--json"]
    log(f"{name}: {' '.join(cmd)}")
    first = run_one(cmd, runs, name + ".1", timeout)
    row = {"wall_s": first.ended - first.started, "peak_rss_mb": first.maxrss_kb / 1024,
           "status": status_of([first]), "url": url}
    if row["status"] == "ok" and rerun:
        again = run_one(cmd, runs, name + ".2", timeout)
        row["rerun_status"] = status_of([again])
        if row["rerun_status"] == "ok":
            row["rerun_s"] = again.ended - again.started
            row["rerun_pct"] = 100 * row["rerun_s"] / row["wall_s"]
            row["rerun_peak_rss_mb"] = again.maxrss_kb / 1024
    if row["status"] == "ok":
        row["sessions_per_s"] = meta["sessions"] / row["wall_s"]
        row["conversations_per_s"] = meta["conversations"] / row["wall_s"]
    stored = (sqlite_sessions(db_path) if store[0] == "sqlite"
              else store[1].count(dbname, "SELECT COUNT(*) FROM huixi_sessions"))
    row["stored_sessions"] = stored
    if store[0] == "sqlite":
        row["store_mb"] = sum(os.path.getsize(db_path + s) for s in ("", "-wal") if os.path.exists(db_path + s)) / 1e6
    log(f"{name}: {row['status']}, {row['wall_s']:.2f} s" +
        (f", re-run {row['rerun_s']:.2f} s" if "rerun_s" in row else ""))
    return row


# Workers log each retried job at info ("job failed, retrying in …: <error>"); the error says whether
# it was a deadlock (MariaDB 1213) or a lock wait timeout (1205).
WORKER_ENV = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn,huixi=info"))


def lock_retries(children):
    n = 0
    for c in children:
        with open(c.stderr_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if "retrying" in line and ("eadlock" in line or "1213" in line or "Lock wait" in line
                                           or "1205" in line):
                    n += 1
    return n


def best_of(rows):
    """The best of repeated analyze measurements: fastest first run and re-run, largest peak RSS."""
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return rows[-1]
    best = dict(min(ok, key=lambda r: r["wall_s"]))
    reruns = [r for r in ok if "rerun_s" in r]
    if reruns:
        fastest = min(reruns, key=lambda r: r["rerun_s"])
        best["rerun_s"], best["rerun_status"] = fastest["rerun_s"], "ok"
        best["rerun_pct"] = 100 * best["rerun_s"] / best["wall_s"]
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in ok)
    best["runs"] = [{k: r.get(k) for k in ("wall_s", "rerun_s", "peak_rss_mb", "status")} for r in rows]
    return best


def tallies(children):
    total = {"taken": 0, "done": 0, "retried": 0, "dead": 0}
    reported = 0
    total["lock_retries"] = lock_retries(children)
    for c in children:
        lines = [l for l in c.stdout().strip().splitlines() if l.startswith("{")]
        if not lines:
            continue
        try:
            t = json.loads(lines[-1])
        except ValueError:
            continue
        reported += 1
        for k in total:
            total[k] += int(t.get(k, 0))
    total["workers_reported"] = reported
    return total


def measure_queue(binary, archive, meta, maria, rabbit, amqp, k, runs, name, timeout, concurrency, keep):
    dbname = maria.fresh()
    url = maria.url(dbname)
    queue = rabbit.new_queue()
    qargs = ["--db", url, "--queue", queue] + (["--amqp", rabbit.url] if amqp else [])
    enq_cmd = [binary, "enqueue", archive] + qargs
    log(f"{name}: {' '.join(enq_cmd)}")
    enq = run_one(enq_cmd, runs, name + ".enqueue", timeout, capture=True)
    row = {"workers": k, "enqueue_s": enq.ended - enq.started, "status": status_of([enq]), "queue": queue,
           "url": url}
    if row["status"] != "ok":
        row["status"] = "enqueue " + row["status"]
        return row
    cmd = [binary, "worker", "--drain"] + qargs + (["--concurrency", str(concurrency)] if concurrency else [])
    log(f"{name}: {k} × {' '.join(cmd)}")
    workers = [Child(cmd, os.path.join(runs, f"{name}.w{i}.out"), os.path.join(runs, f"{name}.w{i}.err"),
                     WORKER_ENV) for i in range(k)]
    started = min(w.started for w in workers)
    wait_all(workers, timeout)
    row["drain_s"] = max(w.ended for w in workers) - started
    row["status"] = status_of(workers)
    row["worker_peak_rss_mb"] = max(w.maxrss_kb for w in workers) / 1024
    row.update(tallies(workers))
    if row["status"] == "ok":
        row["conversations_per_s"] = meta["conversations"] / row["drain_s"]
    row["stored_sessions"] = maria.count(dbname, "SELECT COUNT(*) FROM huixi_sessions")
    if amqp:
        d = rabbit.depth(queue)
        if d:
            row["left_waiting"], row["left_dead"] = d
        if not keep:
            rabbit.delete(queue)
    else:
        row["left_waiting"] = maria.count(dbname, "SELECT COUNT(*) FROM huixi_jobs WHERE state <> 'dead'")
        row["left_dead"] = maria.count(dbname, "SELECT COUNT(*) FROM huixi_jobs WHERE state = 'dead'")
    log(f"{name}: {row['status']}, drained in {row['drain_s']:.2f} s, retried {row['retried']}, dead {row['dead']}")
    return row


# ---------------------------------------------------------------------------------------------------
# The kill -9 check

# Columns that record when something happened or how it was delivered, not what was found.
VOLATILE = {"analysed_at", "updated_at", "created_at", "next_at", "delivered_at", "lease_until",
            "available_at", "started_at", "finished_at", "done_at", "revoked_at", "applied_at", "writes",
            "run_id"}
SKIP_TABLES = {"huixi_jobs", "huixi_runs"}
TABLE_VOLATILE = {"huixi_outbox": {"attempts", "last_error"}}


def columns(maria, db):
    out = maria.sql("SELECT TABLE_NAME, COLUMN_NAME, COLUMN_KEY, EXTRA FROM information_schema.COLUMNS "
                    f"WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME LIKE 'huixi\\\\_%' "
                    "ORDER BY TABLE_NAME, ORDINAL_POSITION")
    tables = {}
    for line in out.splitlines():
        table, col, key, extra = (line.split("\t") + ["", "", ""])[:4]
        t = tables.setdefault(table, {"compared": [], "key": []})
        if "auto_increment" in extra or col in VOLATILE or col in TABLE_VOLATILE.get(table, ()):
            continue
        t["compared"].append(col)
        if key == "PRI":
            t["key"].append(col)
    return tables


def compare_stores(maria, a, b):
    """Every huixi_* table of databases a and b, row for row over the compared columns."""
    ca, cb = columns(maria, a), columns(maria, b)
    results = []
    for table in sorted(set(ca) | set(cb)):
        if table in SKIP_TABLES:
            results.append({"table": table, "result": "skipped (bookkeeping)"})
            continue
        if table not in ca or table not in cb:
            results.append({"table": table, "result": "different", "why": "table missing on one side"})
            continue
        cols = [c for c in ca[table]["compared"] if c in cb[table]["compared"]]
        select = ", ".join(f"`{c}`" for c in cols)
        rows_a = Counter(maria.sql(f"SELECT {select} FROM `{a}`.`{table}`").splitlines())
        rows_b = Counter(maria.sql(f"SELECT {select} FROM `{b}`.`{table}`").splitlines())
        only_a, only_b = rows_a - rows_b, rows_b - rows_a
        r = {"table": table, "rows_a": sum(rows_a.values()), "rows_b": sum(rows_b.values()),
             "compared_columns": cols, "result": "equal" if not only_a and not only_b else "different"}
        if only_a or only_b:
            r["only_a"], r["only_b"] = sum(only_a.values()), sum(only_b.values())
            r["example_a"] = [l[:300] for l in list(only_a)[:2]]
            r["example_b"] = [l[:300] for l in list(only_b)[:2]]
            key = [cols.index(c) for c in ca[table]["key"] if c in cols]
            if key:  # which columns differ between rows of the same key
                index = lambda rows: {tuple(l.split("\t")[i] for i in key): l.split("\t") for l in rows}
                ia, ib = index(only_a), index(only_b)
                differ = Counter()
                for k in set(ia) & set(ib):
                    for i, c in enumerate(cols):
                        if ia[k][i] != ib[k][i]:
                            differ[c] += 1
                r["same_key_rows"] = len(set(ia) & set(ib))
                r["differing_columns"] = dict(differ)
        results.append(r)
    return results


def kill_check(label, binary, archive, meta, maria, rabbit, a, runs):
    name = f"kill-{label}"
    qdb, cdb = maria.fresh(), maria.fresh()
    queue = rabbit.new_queue()
    qargs = ["--db", maria.url(qdb), "--queue", queue, "--amqp", rabbit.url]
    out = {"binary": binary, "label": label, "queue_db": qdb, "clean_db": cdb, "queue": queue}
    log(f"{name}: enqueue {meta['conversations']} conversations")
    enq = run_one([binary, "enqueue", archive] + qargs, runs, name + ".enqueue", a.timeout, capture=True)
    if status_of([enq]) != "ok":
        out["status"] = "enqueue " + status_of([enq])
        return out
    cmd = [binary, "worker", "--drain"] + qargs
    first = [Child(cmd, os.path.join(runs, f"{name}.k{i}.out"), os.path.join(runs, f"{name}.k{i}.err"),
                   WORKER_ENV) for i in range(2)]
    started = time.monotonic()
    stored = 0
    while True:
        time.sleep(0.25)
        elapsed = time.monotonic() - started
        if any(c.poll() is not None for c in first):
            out["note"] = "a worker exited before the kill"
            break
        stored = maria.count(qdb, "SELECT COUNT(DISTINCT conversation) FROM huixi_sessions") or 0
        if (elapsed >= a.kill_after and stored > 0) or elapsed >= a.timeout:
            break
    for c in first:
        c.signal(signal.SIGKILL)
    wait_all(first, 60)
    out["killed_after_s"] = time.monotonic() - started
    out["conversations_stored_at_kill"] = maria.count(qdb, "SELECT COUNT(DISTINCT conversation) FROM huixi_sessions")
    if out["conversations_stored_at_kill"] == meta["conversations"]:
        out["note"] = "every conversation was stored before the kill: use --kill-conversations larger"
    log(f"{name}: killed 2 workers after {out['killed_after_s']:.1f} s, "
        f"{out['conversations_stored_at_kill']}/{meta['conversations']} conversations stored")
    second = [Child(cmd, os.path.join(runs, f"{name}.d{i}.out"), os.path.join(runs, f"{name}.d{i}.err"),
                    WORKER_ENV) for i in range(2)]
    t0 = min(c.started for c in second)
    wait_all(second, a.timeout)
    out["drain_s"] = max(c.ended for c in second) - t0
    out["drain_status"] = status_of(second)
    out.update(tallies(second))
    d = rabbit.depth(queue)
    if d:
        out["left_waiting"], out["left_dead"] = d
    log(f"{name}: fresh workers {out['drain_status']} in {out['drain_s']:.1f} s, retried {out['retried']}, "
        f"dead {out['dead']}; clean analyze")
    clean = run_one([binary, "analyze", archive, "--db", maria.url(cdb), "--json"], runs, name + ".clean",
                    a.timeout)
    out["clean_status"] = status_of([clean])
    out["clean_s"] = clean.ended - clean.started
    out["tables"] = compare_stores(maria, qdb, cdb)
    equal = all(t["result"] != "different" for t in out["tables"])
    out["equal"] = equal
    problems = ([] if equal else ["different"]) + \
        ([] if out["drain_status"] == "ok" else [f"not drained ({out['drain_status']})"]) + \
        ([] if out["clean_status"] == "ok" else [f"clean run {out['clean_status']}"])
    out["status"] = "; ".join(problems) or "equal"
    if not a.keep:
        rabbit.delete(queue)
    return out


def print_kill(k, meta):
    print(f"\n### kill -9 mid-batch, RabbitMQ + MariaDB — {k['label']} (`{k['binary']}`)\n")
    print(f"{meta['conversations']} conversations, {meta['sessions']} sessions, {meta['messages']} messages.")
    if "killed_after_s" in k:
        print(f"2 workers killed (SIGKILL) after {k['killed_after_s']:.1f} s with "
              f"{k['conversations_stored_at_kill']} conversations stored"
              + (f" ({k['note']})" if k.get("note") else "") + "; "
              f"2 fresh workers: {k['drain_status']}, {k['drain_s']:.1f} s, retried {k['retried']} "
              f"({k['lock_retries']} on a deadlock or lock wait), "
              f"dead {k['dead']}" + (f"; broker after: {k['left_waiting']} waiting, {k['left_dead']} dead letters"
                                     if "left_dead" in k else "") + f". Clean analyze: {k['clean_status']}, "
              f"{k.get('clean_s', 0):.1f} s.\n")
    if "tables" not in k:
        print(f"**{k['status']}**")
        return
    print("| table | rows (queue, killed) | rows (clean analyze) | result |")
    print("| --- | ---: | ---: | --- |")
    for t in k["tables"]:
        if "rows_a" not in t:
            print(f"| {t['table']} | | | {t['result']} |")
            continue
        extra = ""
        if t["result"] == "different":
            extra = f": {t['only_a']} rows only in the queue's, {t['only_b']} only in the clean"
            if t.get("differing_columns"):
                extra += "; same key, different " + ", ".join(f"{c} ({n})" for c, n in t["differing_columns"].items())
        print(f"| {t['table']} | {t['rows_a']} | {t['rows_b']} | {t['result']}{extra} |")
    print(f"\n**{k['status']}**")
    for t in k["tables"]:
        if t["result"] == "different":
            for side, key in (("queue", "example_a"), ("clean", "example_b")):
                for e in t.get(key, []):
                    print(f"- {t['table']}, only in {side}: `{e[:200]}`")


# ---------------------------------------------------------------------------------------------------
# Tables

def fmt(x, digits=2):
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def size_label(meta):
    kind, n = meta["target"]
    short = f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k" if n >= 1000 else str(n)
    return f"{short} {kind}"


def analyze_table(title, rows, archives):
    print(f"\n### {title}\n")
    print("| binary | size | sessions | messages | wall s | sessions/s | × baseline | peak RSS MB "
          "| re-run s | re-run % of first | notes |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        meta = archives[r["archive"]]
        base = next((b for b in rows if b["binary"] == "baseline" and b["archive"] == r["archive"]), None)
        ratio = (r["sessions_per_s"] / base["sessions_per_s"]
                 if base and r.get("sessions_per_s") and base.get("sessions_per_s") else None)
        notes = [] if r["status"] == "ok" else [r["status"]]
        if r.get("rerun_status") not in (None, "ok"):
            notes.append("re-run " + r["rerun_status"])
        if r.get("stored_sessions") is not None and r["stored_sessions"] != meta["sessions"]:
            notes.append(f"{r['stored_sessions']} sessions stored")
        print(f"| {r['binary']} | {size_label(meta)} | {meta['sessions']:,} | {meta['messages']:,} "
              f"| {fmt(r.get('wall_s'))} | {fmt(r.get('sessions_per_s'), 0)} | {fmt(ratio)} "
              f"| {fmt(r.get('peak_rss_mb'), 0)} | {fmt(r.get('rerun_s'))} | {fmt(r.get('rerun_pct'), 1)} "
              f"| {'; '.join(notes).replace('|', '/')[:200]} |")


def retried(r):
    if "retried" not in r:
        return "–"
    return f"{r['retried']:,} ({r.get('lock_retries', 0):,})"


def queue_table(title, rows, archives):
    print(f"\n### {title}\n")
    print("| binary | size | workers | conversations | enqueue s | drain s | conv/s | × analyze (MariaDB) "
          "| retried (on a deadlock or lock wait) | dead | notes |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        meta = archives[r["archive"]]
        ref = r.get("analyze_conversations_per_s")
        ratio = r["conversations_per_s"] / ref if ref and "conversations_per_s" in r else None
        notes = [] if r["status"] == "ok" else [r["status"]]
        if r["status"] != "ok" and "done" in r:
            notes.append(f"{r['done']} jobs done")
        if r.get("stored_sessions") is not None and r["stored_sessions"] != meta["sessions"]:
            notes.append(f"{r['stored_sessions']}/{meta['sessions']} sessions stored")
        if r.get("left_waiting"):
            notes.append(f"{r['left_waiting']} jobs left waiting")
        if r.get("left_dead"):
            notes.append(f"{r['left_dead']} dead letters")
        if "workers_reported" in r and r["workers_reported"] < r["workers"]:
            notes.append(f"{r['workers_reported']}/{r['workers']} workers printed a tally")
        print(f"| {r['binary']} | {size_label(meta)} | {r['workers']} | {meta['conversations']:,} "
              f"| {fmt(r.get('enqueue_s'))} | {fmt(r.get('drain_s'))} | {fmt(r.get('conversations_per_s'), 0)} "
              f"| {fmt(ratio)} | {retried(r)} | {fmt(r.get('dead'))} "
              f"| {'; '.join(notes).replace('|', '/')[:200]} |")


# ---------------------------------------------------------------------------------------------------

def ints(s):
    """Positive sizes from "10000,100_000"; anything else stops the run naming the value."""
    out = []
    for x in s.split(","):
        if not x.strip():
            continue
        try:
            n = int(x.strip().replace("_", ""))
        except ValueError:
            n = 0
        if n <= 0:
            sys.exit(f"size {x.strip()!r}: expected a positive whole number ('' for none)")
        out.append(n)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--huixi", default=HUIXI, help="the candidate binary (default target/release/huixi)")
    p.add_argument("--baseline", help="another huixi build, measured first, side by side")
    p.add_argument("--sizes", "--sessions", dest="sizes", default="10000,100000",
                   help="archive sizes in sessions, comma-separated ('' for none)")
    p.add_argument("--messages", default="", help="archive sizes in messages, e.g. 1000000")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)}")
    p.add_argument("--workers", default="1,2,4", help="worker processes per queue run")
    p.add_argument("--concurrency", type=int, help="jobs per worker process (default: the pool's)")
    p.add_argument("--repeat", type=int, default=1, help="analyze: best of this many fresh-store runs")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per huixi command (workers: per run)")
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--staff", type=int, help="staff members (default: sessions/500, 50..200)")
    p.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "huixi-bench-scale"),
                   help="archives are cached here; stores and logs go under runs/")
    p.add_argument("--mysql", default=MYSQL, help="MariaDB server, as a URL without a database")
    p.add_argument("--amqp", default=AMQP)
    p.add_argument("--json-out", help="write every figure to this file")
    p.add_argument("--keep", action="store_true", help="keep stores, logs, databases and queues")
    p.add_argument("--generate-only", action="store_true", help="write (or find) the archives and stop")
    p.add_argument("--kill-check", action="store_true", help="only the kill -9 check")
    p.add_argument("--kill-conversations", type=int, default=2000)
    p.add_argument("--kill-after", type=float, default=3.0, help="seconds before the kill")
    a = p.parse_args()

    parts = [x.strip() for x in a.parts.split(",") if x.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        sys.exit(f"unknown parts: {', '.join(sorted(unknown))} (known: {', '.join(PARTS)})")
    lexicon = os.path.join(ROOT, "lexicons", "sensitive.txt")
    os.makedirs(a.work_dir, exist_ok=True)
    if a.kill_check:
        targets = [("conversations", a.kill_conversations)]
    else:
        targets = [("sessions", n) for n in ints(a.sizes)] + [("messages", n) for n in ints(a.messages)]
    if not targets:
        sys.exit("no sizes: give --sizes and/or --messages")

    if a.generate_only:
        for t in targets:
            _, meta = archive_for(a.work_dir, t, a.seed, a.staff, lexicon)
            print(f"{size_label(meta)}: {describe(meta)}\n  {meta['file']}")
        return

    binaries = ([("baseline", a.baseline)] if a.baseline else []) + [("candidate", a.huixi)]
    for label, b in binaries:
        if not (os.path.isfile(b) and os.access(b, os.X_OK)):
            sys.exit(f"{label} binary {b} is not there (cargo build --release?)")
    maria, rabbit = Maria(a.mysql), Rabbit(a.amqp)
    need_maria = a.kill_check or any(x != "analyze-sqlite" for x in parts)
    need_rabbit = a.kill_check or "queue-amqp" in parts
    if need_maria and not maria.ok():
        sys.exit("MariaDB is not reachable at " + a.mysql +
                 " (start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd)")
    if need_rabbit and not rabbit.ok():
        sys.exit("RabbitMQ is not reachable at " + a.amqp + " (rabbitmq-server -detached)")
    runs = tempfile.mkdtemp(prefix="runs-", dir=a.work_dir)
    workers = ints(a.workers)
    report = {"command": sys.argv, "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()},
              "binaries": {label: {"path": b, "mtime": os.path.getmtime(b), "bytes": os.path.getsize(b)}
                           for label, b in binaries},
              "archives": {}, "analyze-sqlite": [], "analyze-mariadb": [], "queue-embedded": [],
              "queue-amqp": [], "analyze-mariadb-reference": []}
    exit_code = 0
    try:
        archives = {}
        for t in targets:
            path, meta = archive_for(a.work_dir, t, a.seed, a.staff, lexicon)
            key = size_label(meta)
            archives[key] = meta
            report["archives"][key] = meta
            print(f"{key}: {describe(meta)}", flush=True)
            if a.kill_check:
                report["kill_check"] = []
                for label, b in binaries:
                    k = kill_check(label, b, path, meta, maria, rabbit, a, runs)
                    report["kill_check"].append(k)
                    print_kill(k, meta)
                    if label == "candidate" and k["status"] != "equal":
                        exit_code = 1
                continue
            tag = key.replace(" ", "")
            for part in parts:
                for label, b in binaries:
                    if part.startswith("analyze"):
                        store = ("sqlite", None) if part == "analyze-sqlite" else ("mariadb", maria)
                        tries = []
                        for i in range(a.repeat):
                            tries.append(measure_analyze(b, path, meta, store, runs,
                                                         f"{part}-{label}-{tag}-{i}", a.timeout))
                            if store[0] == "sqlite" and not a.keep:
                                for s in ("", "-wal", "-shm"):
                                    if os.path.exists(tries[-1]["url"][len("sqlite://"):] + s):
                                        os.remove(tries[-1]["url"][len("sqlite://"):] + s)
                            if store[0] == "mariadb" and not a.keep:
                                maria.drop_all()
                        row = best_of(tries)
                        row.update(binary=label, archive=key)
                        report[part].append(row)
                        continue
                    ref = next((r for r in report["analyze-mariadb"] + report["analyze-mariadb-reference"]
                                if r["binary"] == label and r["archive"] == key), None)
                    if ref is None:
                        ref = measure_analyze(b, path, meta, ("mariadb", maria), runs,
                                              f"reference-{label}-{tag}", a.timeout, rerun=False)
                        ref.update(binary=label, archive=key)
                        report["analyze-mariadb-reference"].append(ref)
                    for k in workers:
                        row = measure_queue(b, path, meta, maria, rabbit, part == "queue-amqp", k, runs,
                                            f"{part}-{label}-{tag}-{k}w", a.timeout, a.concurrency, a.keep)
                        row.update(binary=label, archive=key,
                                   analyze_conversations_per_s=ref.get("conversations_per_s"))
                        report[part].append(row)
                        if not a.keep:
                            maria.drop_all()
                if not a.keep:
                    maria.drop_all()
        if not a.kill_check:
            titles = {"analyze-sqlite": "huixi analyze, SQLite", "analyze-mariadb": "huixi analyze, MariaDB",
                      "queue-embedded": "queue: embedded, MariaDB store (enqueue, then K × worker --drain)",
                      "queue-amqp": "queue: RabbitMQ, MariaDB store (enqueue, then K × worker --drain)"}
            for part in parts:
                if part.startswith("analyze"):
                    analyze_table(titles[part], report[part], archives)
                else:
                    queue_table(titles[part], report[part], archives)
            if report["analyze-mariadb-reference"]:
                print("\n× analyze (MariaDB): one `huixi analyze` on MariaDB over the same archive, measured for "
                      "the ratio: " + ", ".join(f"{r['binary']} {r['archive']} {fmt(r.get('wall_s'))} s"
                                               for r in report["analyze-mariadb-reference"]))
    finally:
        if a.json_out:
            with open(a.json_out, "w", encoding="utf-8") as f:
                json.dump(report, f, indent=1, ensure_ascii=False)
        if not a.keep:
            maria.drop_all()
            rabbit.delete()
            shutil.rmtree(runs, ignore_errors=True)
        else:
            log(f"kept: {runs}, databases {', '.join(maria.created)}")
    sys.exit(exit_code)


if __name__ == "__main__":
    main()
