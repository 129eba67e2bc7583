#!/usr/bin/env python3
"""The economy bench: how many Cloudflare API calls the proxy spends per client operation, in
cloudflare mode against Cloudflare's emulator, counted at the emulator side by a pass-through
(tests/e2e/cf_counter.py) — what Cloudflare's rate limit (1,200 REST calls per 5 minutes per token)
would count.

    scripts/bench economy [quick]          (or: python3 scripts/bench.d/economy.py [--quick] [--out DIR])

Phases 1-3 run with the budget off (ERA_CF_CALL_BUDGET=0: the emulator has no limit), so the counts are
what the operations need; phase 4 runs with a budget.

1. Each operation alone, 64 concurrent clients: REST calls (KV + D1) and S3 calls per 1,000 operations,
   client p50 / p99.
2. The mix, 64 clients: KV get 60 % (a hot working set of 100 keys), KV put 25 %, KV delete 5 %,
   R2 put 5 % (1 KiB), D1 query 5 % (a primary-key SELECT): the same figures per operation type and in total.
3. An idle replica: REST calls in a window (300 s; quick: 65 s, the rate extrapolated to 5 minutes).
4. A low budget (ERA_CF_CALL_BUDGET=60): the mix for a few seconds with one 429 injected at the start;
   clients get 200 or 503 with Retry-After; the 429 reaches the proxy once; REST calls stay within 60;
   every acknowledged KV put and R2 put is read back (through a second proxy outside the counter).

Writes economy.md and economy.json to --out (default bench-results/<stamp>-economy/). Exit status 0
when the bench ran (figures are not judged here: docs/benchmarks.md says which targets are met), 1 when
it broke.
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
os.environ.setdefault("ERA_SOURCE_DIR", ROOT)

from cf_counter import Counter  # noqa: E402
from cf_emulator import Emulator  # noqa: E402
from harness import Proxy  # noqa: E402

CLIENTS = 64
MIX = [("kv_get", 60), ("kv_put", 25), ("kv_delete", 5), ("r2_put", 5), ("d1_query", 5)]
HOT = 100  # KV keys in the hot working set
NS = "eco"
BLOB = os.urandom(1024)


class Client:
    """One keep-alive connection per thread; (status, headers, body, seconds) per request."""

    def __init__(self, url):
        self.host, self.port = url.split("//", 1)[1].split(":")
        self.local = threading.local()

    def __call__(self, method, path, body=None, ctype="application/json"):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, int(self.port), timeout=120)
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        headers = {"Content-Type": ctype} if body is not None else {}
        t0 = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (http.client.HTTPException, OSError):
            conn.close()
            self.local.conn = None
            raise
        return resp.status, dict(resp.getheaders()), data, time.perf_counter() - t0


def op_request(op, i, rng, tag):
    """(method, path, body, content type) of operation `op` number i."""
    if op == "kv_get":
        return "GET", f"/api/storage/kv/{NS}/hot{rng.randrange(HOT)}", None, None
    if op == "kv_put":
        return "PUT", f"/api/storage/kv/{NS}/put{tag}-{i}", {"value": f"value {tag} {i}"}, "application/json"
    if op == "kv_delete":
        return "DELETE", f"/api/storage/kv/{NS}/del{tag}-{i}", None, None
    if op == "r2_put":
        return "PUT", f"/api/storage/r2/{NS}/obj{tag}-{i}", BLOB, "application/octet-stream"
    if op == "d1_query":
        return "POST", f"/api/storage/d1/{NS}/query", {"sql": "SELECT id, name FROM items WHERE id = ?",
                                                       "params": [rng.randrange(1, 101)]}, "application/json"
    raise ValueError(op)


def run(client, ops, tag):
    """Runs the (op, i) list on CLIENTS threads; returns [(op, i, status, headers, seconds)]."""
    results = []
    lock = threading.Lock()
    chunks = [ops[k::CLIENTS] for k in range(CLIENTS)]

    def worker(chunk, seed):
        rng = random.Random(seed)
        mine = []
        for op, i in chunk:
            method, path, body, ctype = op_request(op, i, rng, tag)
            try:
                status, headers, _, secs = client(method, path, body, ctype or "application/json")
            except (http.client.HTTPException, OSError):
                status, headers, secs = 0, {}, 0.0
            mine.append((op, i, status, headers, secs))
        with lock:
            results.extend(mine)

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(worker, chunks, range(CLIENTS)))
    return results


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] * 1000


def must(cond, what):
    if not cond:
        raise SystemExit(f"[economy] BENCH BROKEN: {what}")


def log(msg):
    print(f"[economy {time.strftime('%H:%M:%S', time.gmtime())}] {msg}", file=sys.stderr, flush=True)


def setup(client, deletes):
    st = client("POST", f"/api/storage/d1/{NS}/exec",
                {"sql": "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"})[0]
    must(st == 200, f"D1 create table: HTTP {st}")
    values = ",".join(f"({i}, 'item {i}')" for i in range(1, 101))
    st = client("POST", f"/api/storage/d1/{NS}/exec", {"sql": f"INSERT OR REPLACE INTO items (id, name) VALUES {values}"})[0]
    must(st == 200, f"D1 seed: HTTP {st}")
    seed = [("kv_put_hot", i) for i in range(HOT)] + [("kv_put_del", i) for i in deletes]

    def put(item):
        kind, i = item
        key = f"hot{i}" if kind == "kv_put_hot" else f"del{i}"
        return client("PUT", f"/api/storage/kv/{NS}/{key}", {"value": f"seed {key}"})[0]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(put, seed))
    must(all(s == 200 for s in statuses), "KV seed failed")


def measure(counter, client, ops, tag):
    counter.reset()
    t0 = time.monotonic()
    res = run(client, ops, tag)
    wall = time.monotonic() - t0
    time.sleep(1.5)  # writes the proxy groups and flushes on an interval land in this phase's count
    return res, counter.counts(), counter.by_endpoint(), wall


def summarize(res, op=None):
    rows = [r for r in res if op is None or r[0] == op]
    ok = [r for r in rows if 200 <= r[2] < 300 or (r[0] == "kv_get" and r[2] == 404)]
    lat = [r[4] for r in rows]
    return {"ops": len(rows), "ok": len(ok), "errors": len(rows) - len(ok),
            "p50_ms": round(pct(lat, 50), 2), "p99_ms": round(pct(lat, 99), 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    per_op = 640 if args.quick else 3200
    mix_n = 1280 if args.quick else 6400
    idle_s = 65 if args.quick else 300
    out_dir = args.out or os.path.join(ROOT, "bench-results", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                                       + ("-economy-quick" if args.quick else "-economy"))
    os.makedirs(out_dir, exist_ok=True)
    report = {"mode": "quick" if args.quick else "full", "clients": CLIENTS}

    with Emulator() as emu, Counter(emu.proxy_env()) as counter:
        log(f"emulator on {emu.info['base']}, counter on port {counter.port}")
        env = dict(counter.proxy_env(), ERA_PROXY_LOG_LEVEL="warn")
        # Measured without a budget (the emulator has no limit): the counts are what the operations need.
        proxy = Proxy.configured(dict(env, ERA_CF_CALL_BUDGET="0"))
        reader = Proxy.configured(dict(emu.proxy_env(), ERA_PROXY_LOG_LEVEL="warn"))
        try:
            measure_all(args, report, counter, proxy, reader, env, per_op, mix_n, idle_s)
        finally:
            proxy.close()
            reader.close()

    with open(os.path.join(out_dir, "economy.json"), "w") as f:
        json.dump(report, f, indent=2)
    md = table(report)
    with open(os.path.join(out_dir, "economy.md"), "w") as f:
        f.write(md)
    print(md)
    log(f"results in {out_dir}")


def measure_all(args, report, counter, proxy, reader, env, per_op, mix_n, idle_s):
    client = Client(proxy.url)
    setup(client, range(per_op + mix_n))

    # 1. Each operation alone.
    report["alone"] = {}
    for op, _ in MIX:
        ops = [(op, i) for i in range(per_op)]
        res, counts, endpoints, wall = measure(counter, client, ops, f"a{op}")
        s = summarize(res)
        s.update({"rest_per_1000": round(counts["rest"] * 1000 / per_op, 1),
                  "s3_per_1000": round(counts["r2_s3"] * 1000 / per_op, 1),
                  "ops_per_s": round(per_op / wall, 1), "endpoints": endpoints})
        report["alone"][op] = s
        log(f"{op}: {s['rest_per_1000']} REST calls / 1000, p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms,"
            f" errors {s['errors']}")
        must(s["errors"] == 0, f"{op} answered errors: {[r[2] for r in res if r[2] >= 300][:5]}")

    # 2. The mix.
    rng = random.Random(7)
    weights = [w for _, w in MIX]
    ops = [(rng.choices([o for o, _ in MIX], weights)[0], per_op + i) for i in range(mix_n)]
    res, counts, endpoints, wall = measure(counter, client, ops, "m")
    report["mix"] = {"total": summarize(res), "by_op": {op: summarize(res, op) for op, _ in MIX},
                     "rest_per_1000": round(counts["rest"] * 1000 / mix_n, 1),
                     "s3_per_1000": round(counts["r2_s3"] * 1000 / mix_n, 1),
                     "ops_per_s": round(mix_n / wall, 1), "endpoints": endpoints}
    log(f"mix: {report['mix']['rest_per_1000']} REST calls / 1000 ops, {report['mix']['ops_per_s']} ops/s")
    must(report["mix"]["total"]["errors"] == 0, "the mix answered errors")

    # 3. Idle.
    time.sleep(3)  # anything the mix left to flush goes out before the window
    counter.reset()
    log(f"idle window: {idle_s} s")
    time.sleep(idle_s)
    idle = counter.counts()["rest"]
    report["idle"] = {"window_s": idle_s, "rest_calls": idle,
                      "per_5_min": round(idle * 300 / idle_s, 1), "endpoints": counter.by_endpoint()}
    log(f"idle: {idle} REST calls in {idle_s} s")
    # 4. A low budget, with one 429 injected at the start (the measured proxy stops first: it stays idle).
    proxy.close()
    counter.reset()
    low = Proxy.configured(dict(env, ERA_CF_CALL_BUDGET="60"))
    try:
        client = Client(low.url)
        counter.inject_429(n=1, retry_after=2)
        n = 640 if args.quick else 1920
        ops = [(rng.choices([o for o, _ in MIX], weights)[0], 10_000_000 + i) for i in range(n)]
        res = run(client, ops, "low")
        counts = counter.counts()
        by_status = {}
        for r in res:
            by_status[r[2]] = by_status.get(r[2], 0) + 1
        refused = [r for r in res if r[2] == 503]
        with_retry_after = sum(1 for r in refused if "Retry-After" in r[3])
        # Every acknowledged write is in the store: read back outside the counter and the budget.
        rc = Client(reader.url)
        lost = 0
        checked = 0
        for op, i, status, _, _ in res:
            if status != 200 or op not in ("kv_put", "r2_put"):
                continue
            checked += 1
            if op == "kv_put":
                st, _, data, _ = rc("GET", f"/api/storage/kv/{NS}/putlow-{i}")
                if st != 200 or json.loads(data).get("value") != f"value low {i}":
                    lost += 1
            else:
                st, _, data, _ = rc("GET", f"/api/storage/r2/{NS}/objlow-{i}?raw=1")
                if st != 200 or data != BLOB:
                    lost += 1
        report["low_budget"] = {"budget": 60, "ops": n, "by_status": {str(k): v for k, v in sorted(by_status.items())},
                                "refused_with_retry_after": with_retry_after, "rest_calls": counts["rest"],
                                "s3_calls": counts["r2_s3"], "upstream_429": counts["429"],
                                "acknowledged_writes_checked": checked, "lost": lost}
        log(f"low budget: {report['low_budget']}")
    finally:
        low.close()


def table(r):
    lines = [f"Economy bench ({r['mode']}): {r['clients']} concurrent clients, cloudflare mode against the emulator; "
             "upstream calls counted at the emulator side.", "",
             "| operation | REST calls / 1,000 ops (alone) | S3 calls / 1,000 | p50 ms | p99 ms | p50 ms in the mix | p99 ms in the mix |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for op, _ in MIX:
        a, m = r["alone"][op], r["mix"]["by_op"][op]
        lines.append(f"| {op.replace('_', ' ')} | {a['rest_per_1000']} | {a['s3_per_1000']} | {a['p50_ms']} | "
                     f"{a['p99_ms']} | {m['p50_ms']} | {m['p99_ms']} |")
    m = r["mix"]
    lines.append(f"| **the mix** | {m['rest_per_1000']} | {m['s3_per_1000']} | {m['total']['p50_ms']} | "
                 f"{m['total']['p99_ms']} | | |")
    i = r["idle"]
    lines += ["", f"Idle replica: {i['rest_calls']} REST calls in {i['window_s']} s"
              + ("" if i["window_s"] == 300 else f" (extrapolated: {i['per_5_min']} per 5 minutes)") + "."]
    lb = r["low_budget"]
    lines += ["", f"Low budget ({lb['budget']} calls / 5 min), {lb['ops']} mixed operations, one 429 injected: "
              f"answers {lb['by_status']}; 503s with Retry-After: {lb['refused_with_retry_after']}; REST calls sent: "
              f"{lb['rest_calls']}; 429s reaching the proxy: {lb['upstream_429']}; acknowledged writes read back: "
              f"{lb['acknowledged_writes_checked']}, lost: {lb['lost']}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
