"""SDK cost for scripts/bench: Python KV get calls per second, one process, sequential, through the
era_storage SDK against raw keep-alive HTTP (http.client) from the same process.

usage: sdk_cost.py ROOT NAMESPACE KEY EXPECTED_VALUE SECONDS   (ERA_STORAGE_URL, ERA_STORAGE_TOKEN set)
Prints results.tsv rows (see scripts/bench). Both loops are bounded by time and by a call count, and
alternate in ten short rounds each so that drift on a shared machine hits both alike.
"""
import http.client
import json
import os
import sys
import time
import urllib.parse

MAX_CALLS = 200_000
ROUNDS = 10  # short alternating rounds: load from other jobs hits both loops alike


def measure(call, seconds):
    lat = []
    end = time.perf_counter() + seconds
    while len(lat) < MAX_CALLS:
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
        lat.append(t1 - t0)
        if t1 >= end:
            break
    return lat


def row(name, server, lat, note):
    lat_sorted = sorted(lat)
    total = sum(lat)
    p = lambda q: lat_sorted[min(len(lat_sorted) - 1, int(q * len(lat_sorted)))] * 1000
    return f"{name}\t{server}\t1\t{len(lat)}\t{len(lat) / total:.0f}\t{p(0.50):.3f}\t{p(0.99):.3f}\t0\t0\t{note}"


def main():
    root, ns, key, expected, seconds = sys.argv[1:6]
    seconds = float(seconds)
    url = urllib.parse.urlsplit(os.environ["ERA_STORAGE_URL"])
    token = os.environ.get("ERA_STORAGE_TOKEN", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    path = f"/api/storage/kv/{urllib.parse.quote(ns, safe='')}/{urllib.parse.quote(key, safe='')}"
    conn = http.client.HTTPConnection(url.hostname, url.port)

    def raw():
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200 or json.loads(body)["value"] != expected:
            raise SystemExit(f"raw GET answered {r.status}: {body[:200]!r}")

    sdk_path = os.path.join(root, "sdk", "python", "era_storage.py")
    sdk_get = None
    if os.path.exists(sdk_path):
        sys.path.insert(0, os.path.dirname(sdk_path))
        import era_storage  # noqa: E402

        def sdk_get():
            if era_storage.kv.get(ns, key) != expected:
                raise SystemExit("SDK get returned a wrong value")

    raw_lat, sdk_lat = [], []
    for _ in range(ROUNDS):
        raw_lat += measure(raw, seconds / ROUNDS)
        if sdk_get:
            sdk_lat += measure(sdk_get, seconds / ROUNDS)
    print(row("sdk_python_kv_get", "raw", raw_lat, "http.client, one kept-alive connection"))
    if sdk_get:
        print(row("sdk_python_kv_get", "sdk", sdk_lat, "era_storage.kv.get"))
    else:
        print("sdk_python_kv_get\tsdk\t-\t0\t0\t0\t0\t0\t0\tskipped: SDK not built yet (no sdk/python/era_storage.py)")


main()
