#!/usr/bin/env python3
"""Writes samples/journey.jsonl: one customer's week, for what spans sessions (customer profile, stage
moves, tag suggestions, response-time metrics in working hours, 撞单).

Week of Monday 2026-11-16, Beijing time. Customer wmJourney, a chain of training schools:
  Mon 10:00  with staff liuyang: first contact, needs 30 accounts                 → 需求确认
  Tue 23:10  asks about data migration; liuyang answers Wed 09:05 — outside working hours, so the
             wait is five working minutes, not ten hours
  Wed 10:00  writes a phone number and a name; liuyang answers an hour later        → 超时 (late reply)
  Thu 14:00  now with staff wangfang (撞单): asks the price, mentions 销售易, bargains → 谈判
  Fri 15:00  asks wangfang about payment terms; nobody answers                     → 超时 (no reply)
  Fri 16:00  wmJourneyTwin (another WeChat account) writes the same phone and name to zhaolei (撞单)
The lines are written shuffled (fixed seed), as an archive export arrives.
"""
import datetime
import json
import random

CN = datetime.timezone(datetime.timedelta(hours=8))
lines = []
seq = [0]


def text(day, hhmm, sender, to, content):
    h, m = map(int, hhmm.split(":"))
    t = datetime.datetime(2026, 11, day, h, m, tzinfo=CN)
    seq[0] += 1
    lines.append({
        "msgid": f"j_{seq[0]:03d}",
        "action": "send",
        "from": sender,
        "tolist": [to],
        "roomid": "",
        "msgtime": int(t.timestamp() * 1000),
        "msgtype": "text",
        "text": {"content": content},
    })


C, L, W, Z, T = "wmJourney", "liuyang", "wangfang", "zhaolei", "wmJourneyTwin"
text(16, "10:00", C, L, "你好，我们是一家连锁培训学校，想了解一下你们的CRM系统")
text(16, "10:02", L, C, "您好！我们的系统很适合培训机构，请问您这边大概要多少个账号？")
text(16, "10:05", C, L, "我们需要30个账号，主要给课程顾问用")
text(16, "10:06", L, C, "好的，我整理一下方案发您")
text(17, "23:10", C, L, "方案收到了，数据迁移另外收费吗？")
text(18, "09:05", L, C, "早上好！数据迁移是免费的")
text(18, "10:00", C, L, "我叫陈明，手机 139 0000 1111，方便的话电话联系")
text(18, "11:00", L, C, "好的陈总，稍后给您电话")
text(19, "14:00", C, W, "你好，30个账号多少钱？销售易报价比较低")
text(19, "14:02", W, C, "您好，专业版每个账号每年1680元")
text(19, "14:05", C, W, "能便宜点吗？我们预算4万元")
text(19, "14:07", W, C, "30个账号可以给您打九折，每年1512元一个")
text(19, "14:10", C, W, "我考虑一下")
text(19, "14:12", W, C, "好的，有问题随时找我")
text(20, "15:00", C, W, "合同条款法务还在看，付款能分两期吗？")
text(20, "16:00", T, Z, "你好，我叫陈明，手机13900001111，之前咨询过你们同事")
text(20, "16:01", Z, T, "陈先生您好，请问有什么可以帮您？")

random.Random(20261116).shuffle(lines)
with open("samples/journey.jsonl", "w", encoding="utf-8") as f:
    for m in lines:
        f.write(json.dumps(m, ensure_ascii=False) + "\n")
print(f"wrote {len(lines)} messages to samples/journey.jsonl")
