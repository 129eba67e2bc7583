"""The proxy in cloudflare mode against a small misbehaving upstream on loopback: 429 with Retry-After,
500s, slow answers and connections reset mid-body. Shows retries, timeouts and clear JSON errors, no
acknowledged write lost, and every upstream call counted."""

import json
import os
import socket
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import prom_text
from harness import Proxy, call, request, slack

NS_ID = "f" * 32


class Upstream:
    """A KV REST stand-in: stores values (PUT values/<key>, POST bulk/get), and before answering runs
    the scripted fault, if any, for (method, call number of that method); D1 calls (the revocation
    list the proxy reloads in the background) are never faulted."""

    def __init__(self):
        self.values = {}
        self.calls = []  # (method, path)
        self.faults = {}  # method -> list of fault names, consumed in order
        self.rays = []  # cf-ray values sent with fault answers
        self.lock = threading.Lock()
        outer = self

        self.conns = set()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with outer.lock:
                    outer.conns.add(self.connection)

            def log_message(self, *a):
                pass

            def _reply(self, status, body, ctype="application/json", headers=()):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                d1 = self.path.split("?")[0].endswith("/raw")
                with outer.lock:
                    outer.calls.append((self.command, self.path))
                    queue = [] if d1 else outer.faults.get(self.command, [])
                    fault = queue.pop(0) if queue else None
                if fault == "500":
                    return self._reply(500, {"success": False, "errors": [{"code": 10001, "message": "boom"}]},
                                       headers=[("cf-ray", outer.ray())])
                if fault == "429":
                    return self._reply(429, {"success": False, "errors": [{"code": 971, "message": "slow down"}]},
                                       headers=[("Retry-After", "1"), ("cf-ray", outer.ray())])
                if fault == "429-long":
                    return self._reply(429, {"success": False, "errors": [{"code": 971, "message": "slow down"}]},
                                       headers=[("Retry-After", "90")])
                if fault == "slow":
                    time.sleep(1.5)
                if fault == "reset":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b"partial")
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                return self._serve(body)

            def _serve(self, body):
                kv = f"/storage/kv/namespaces/{NS_ID}"
                path = self.path.split("?")[0]
                prefix = f"/storage/kv/namespaces/{NS_ID}/values/"
                name = urllib.parse.unquote(path[len(prefix):]) if path.startswith(prefix) else None
                if self.command == "PUT" and name is not None:
                    if (self.headers.get("Content-Type") or "").startswith("multipart/"):
                        # The value part of the multipart body (the test values hold no CR/LF).
                        body = body.split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0]
                    with outer.lock:
                        outer.values[name] = body
                    return self._reply(200, {"success": True, "errors": [], "result": {}})
                if self.command == "POST" and path == kv + "/bulk/get":
                    keys = json.loads(body)["keys"]
                    with outer.lock:
                        found = {k: outer.values.get(k) for k in keys}
                    values = {k: None if v is None else {"value": v.decode(), "metadata": None} for k, v in found.items()}
                    return self._reply(200, {"success": True, "errors": [], "result": {"values": values}})
                if self.command == "GET" and name is not None:
                    with outer.lock:
                        v = outer.values.get(name)
                    if v is None:
                        return self._reply(404, {"success": False, "errors": [{"code": 10009, "message": "not found"}]})
                    return self._reply(200, v, "application/octet-stream")
                if self.command == "POST" and path.endswith("/raw"):
                    # D1, for the auth layer's revocation list: empty answers.
                    return self._reply(200, {"success": True, "errors": [], "result": [
                        {"results": {"columns": [], "rows": []}, "meta": {"changes": 0}, "success": True}]})
                if self.command == "GET" and path.endswith("/keys"):
                    return self._reply(200, {"success": True, "errors": [], "result": [],
                                             "result_info": {"count": 0, "cursor": ""}})
                return self._reply(404, {"success": False, "errors": [{"code": 7003, "message": "no route"}]})

            do_GET = do_PUT = do_POST = do_DELETE = _handle

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # the proxy hanging up on a slow answer is part of the test, not noise

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def ray(self):
        """A new cf-ray value (Cloudflare's request id), remembered in self.rays."""
        with self.lock:
            self.rays.append(f"8f{len(self.rays):014x}-SJC")
            return self.rays[-1]

    def count(self, method):
        with self.lock:
            return sum(1 for m, _ in self.calls if m == method)

    def script(self, method, *faults):
        with self.lock:
            self.faults[method] = list(faults)
            self.calls.clear()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        with self.lock:  # kept-alive connections too: after stop() nothing answers
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass





@unittest.skipIf(os.environ.get("ERA_TEST_BACKEND") == "cloudflare",
                 "starts its own upstream: runs once, in the local-mode run")
class CloudflareFaultsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = Upstream()
        env = {
            "ERA_PROXY_BACKEND": "cloudflare", "ERA_CF_ACCOUNT_ID": "a" * 32, "ERA_CF_API_TOKEN": "SECRET-TOKEN-xyz",
            "ERA_CF_KV_NAMESPACE_ID": NS_ID, "ERA_CF_D1_DATABASE_ID": "db", "ERA_CF_R2_BUCKET": "bucket",
            "ERA_CF_R2_ACCESS_KEY_ID": "ak", "ERA_CF_R2_SECRET_ACCESS_KEY": "sk",
            "ERA_CF_API_BASE": cls.up.base, "ERA_CF_R2_ENDPOINT": cls.up.base,
            "ERA_CF_TIMEOUT_MS": "700", "ERA_CF_MAX_ATTEMPTS": "3",
            # Every read goes upstream (no read cache), so the read faults below reach it.
            "ERA_CF_KV_CACHE_TTL_S": "0",
        }
        cls.proxy = Proxy.configured(env)
        cls.base = cls.proxy.url + "/api/storage/kv/faults/"

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        cls.up.stop()

    def test_500s_are_retried_and_the_acknowledged_write_is_there(self):
        self.up.script("PUT", "500", "500")
        status, body = call("PUT", self.base + "k1", {"value": "kept"})
        self.assertEqual((status, body), (200, {"success": True}))
        self.assertEqual(self.up.count("PUT"), 3)
        self.assertEqual(self.up.values["faults:k1"], b"kept")
        self.assertEqual(call("GET", self.base + "k1")[1]["value"], "kept")

    def test_persistent_500_is_a_502_with_the_upstream_reason_and_no_secret(self):
        self.up.script("PUT", "500", "500", "500")
        status, body = call("PUT", self.base + "k2", {"value": "x"})
        self.assertEqual(status, 502)
        self.assertEqual(body["code"], "upstream_error")
        self.assertIn("code 10001: boom", body["error"])
        self.assertNotIn("SECRET-TOKEN", body["error"])
        self.assertEqual(self.up.count("PUT"), 3)
        self.assertNotIn("SECRET-TOKEN", "".join(self.proxy.stderr))

    def test_429_with_retry_after_is_honoured(self):
        self.up.script("PUT", "429")
        t0 = time.monotonic()
        status, _ = call("PUT", self.base + "k3", {"value": "later"})
        self.assertEqual(status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.95)
        self.assertEqual(self.up.count("PUT"), 2)

    def test_long_retry_after_is_passed_to_the_client(self):
        # Its own proxy: a 429 pauses every call of the proxy's budget for the 90 s it says.
        p = Proxy.configured(self.proxy_env())
        try:
            self.up.script("PUT", "429-long")  # (clears the call log)
            base = p.url + "/api/storage/kv/faults/"
            status, headers, raw = request("PUT", base + "k4", {"value": "x"})
            body = json.loads(raw)
            self.assertEqual((status, body["code"]), (503, "upstream_rate_limited"))
            self.assertIn(headers.get("Retry-After"), ("89", "90"))
            self.assertEqual(self.up.count("PUT"), 1)
            # The pause holds for every call: nothing more reaches Cloudflare, the clients get 503 at once.
            status, headers, raw = request("GET", base + "k4")
            self.assertEqual(status, 503, raw)
            self.assertTrue(1 <= int(headers.get("Retry-After")) <= 90)
            self.assertEqual(self.up.count("PUT"), 1)
        finally:
            p.close()

    def test_slow_upstream_times_out_with_504(self):
        call("PUT", self.base + "k5", {"value": "x"})
        self.up.script("POST", "slow", "slow", "slow")
        t0 = time.monotonic()
        status, body = call("GET", self.base + "k5")
        self.assertEqual((status, body["code"]), (504, "upstream_timeout"))
        self.assertLess(time.monotonic() - t0, slack(4.5))

    def test_reset_mid_body_is_retried(self):
        call("PUT", self.base + "k6", {"value": "whole"})
        self.up.script("POST", "reset")
        status, body = call("GET", self.base + "k6")
        self.assertEqual((status, body["value"]), (200, "whole"))

    def test_upstream_failures_are_counted_and_logged_with_cf_ray(self):
        def scrape():
            status, _, data = request("GET", self.proxy.url + "/metrics")
            self.assertEqual(status, 200, data)
            return prom_text.parse(data.decode())

        before = scrape()
        self.up.script("PUT", "500", "429")
        status, _ = call("PUT", self.base + "ray", {"value": "x"})
        self.assertEqual(status, 200)
        after = scrape()

        def delta(family, **labels):
            return after[family].value(**labels) - (before[family].value(**labels) if family in before else 0)

        up = "era_upstream_requests_total"
        self.assertEqual(delta(up, api="kv", outcome="server_error"), 1)
        self.assertEqual(delta(up, api="kv", outcome="throttled"), 1)
        self.assertEqual(delta(up, api="kv", outcome="ok"), 1)
        self.assertEqual(delta("era_upstream_retries_total", api="kv"), 2)
        self.assertEqual(delta("era_upstream_throttled_total", api="kv"), 1)
        hist = "era_upstream_request_duration_seconds"
        self.assertEqual(after[hist].value(hist + "_count", api="kv") - before[hist].value(hist + "_count", api="kv"), 3)
        rays = self.up.rays[-2:]  # the 500's, then the 429's
        deadline = time.monotonic() + slack(10)  # the log is read from the proxy's stderr by another thread
        while rays[1] not in "".join(self.proxy.stderr) and time.monotonic() < deadline:
            time.sleep(0.05)
        log = "".join(self.proxy.stderr)
        for ray, status in zip(rays, ("500", "429")):
            lines = [l for l in log.splitlines() if "cf_ray=" + ray in l]
            self.assertEqual(len(lines), 1, log[-3000:])
            self.assertIn("upstream call failed", lines[0])
            self.assertIn("upstream=KV put", lines[0])
            self.assertIn("status=" + status, lines[0])
        self.assertNotIn("SECRET-TOKEN", log)

    def test_unreachable_upstream_is_502(self):
        # A proxy whose upstream goes away after it started (it loads revocations from D1 at start).
        gone = Upstream()
        env = self.proxy_env()
        env["ERA_CF_API_BASE"] = gone.base
        p = Proxy.configured(env)
        try:
            gone.stop()
            status, body = call("GET", p.url + "/api/storage/kv/faults/x")
            self.assertEqual((status, body["code"]), (502, "upstream_unreachable"))
            self.assertIn("2 attempts", body["error"])
        finally:
            p.close()

    def proxy_env(self):
        return {
            "ERA_PROXY_BACKEND": "cloudflare", "ERA_CF_ACCOUNT_ID": "a" * 32, "ERA_CF_API_TOKEN": "t",
            "ERA_CF_KV_NAMESPACE_ID": NS_ID, "ERA_CF_D1_DATABASE_ID": "db", "ERA_CF_R2_BUCKET": "bucket",
            "ERA_CF_R2_ACCESS_KEY_ID": "ak", "ERA_CF_R2_SECRET_ACCESS_KEY": "sk",
            "ERA_CF_API_BASE": self.up.base, "ERA_CF_R2_ENDPOINT": self.up.base, "ERA_CF_TIMEOUT_MS": "700",
            "ERA_CF_MAX_ATTEMPTS": "2",
        }


if __name__ == "__main__":
    unittest.main()
