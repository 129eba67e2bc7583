"""GET /metrics end to end (issue 16), in both backends: a known mix of calls moves the counters by
exactly that mix, the whole page parses with a strict exposition-format parser (prom_text.py), who may
scrape, and the JSON log format."""

import json
import math
import os
import time
import unittest

import harness
import prom_text

ADMIN = "e2e-admin-credential-0123456789"
METRICS_TOKEN = "e2e-metrics-token-0123456789"


class Proxy(harness.Proxy):
    def scrape(self, token=METRICS_TOKEN):
        status, headers, data = self.api("GET", "/metrics", token)
        assert status == 200, (status, data)
        assert headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"), headers
        return prom_text.parse(data.decode())


def new_session(proxy, namespaces, permissions="read_write"):
    status, _, data = proxy.api("POST", "/api/sessions", ADMIN,
                                {"language": "python", "namespaces": namespaces, "permissions": permissions})
    assert status == 201, data
    doc = json.loads(data)
    return doc["session_id"], doc["token"]


class MetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = {"ERA_ADMIN_TOKEN": ADMIN, "ERA_METRICS_TOKEN": METRICS_TOKEN,
               "ERA_PROXY_METRICS_STORE_SIZES_TTL": "0"}
        cls.proxy = Proxy(["--auth", "token"], env).start()
        cls.sid, cls.token = new_session(cls.proxy, ["mx", "mx2"])
        cls.other_sid, cls.other = new_session(cls.proxy, ["elsewhere"])

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()

    def delta(self, before, after, family, sample=None, **labels):
        return after[family].value(sample, **labels) - (before[family].value(sample, **labels) if family in before else 0)

    def test_a_known_mix_moves_every_counter_by_exactly_that_mix(self):
        p = self.proxy
        before = p.scrape()
        kv_in = kv_out = r2_in = r2_out = 0

        def kv(method, key, body=None, token=None, want=200):
            nonlocal kv_in, kv_out
            raw = json.dumps(body).encode() if body is not None else None
            h = {"Content-Type": "application/json"} if raw else {}
            status, _, data = p.api(method, "/api/storage/kv/mx/" + key, token if token is not None else self.token, raw, h)
            self.assertEqual(status, want, data)
            kv_in += len(raw or b"")
            kv_out += len(data)

        kv("PUT", "a", {"value": "1" * 100})
        kv("PUT", "b", {"value": "2" * 10})
        kv("PUT", "c", {"value": "3"})
        kv("GET", "a")
        kv("GET", "b")
        kv("GET", "missing", want=404)
        kv("DELETE", "c")
        kv("GET", "a", token=self.other, want=403)  # out of scope: namespace_forbidden
        kv("GET", "a", token="", want=401)           # no token: missing_token

        status, _, data = p.api("POST", "/api/storage/d1/mx/exec", self.token,
                                {"sql": "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)"})
        self.assertEqual(status, 200, data)
        status, _, data = p.api("POST", "/api/storage/d1/mx/query", self.token, {"sql": "SELECT count(*) AS n FROM t"})
        self.assertEqual(status, 200, data)

        blob1, blob2 = os.urandom(3000), os.urandom(5)
        for key, blob in (("o1", blob1), ("o2", blob2)):
            status, _, data = p.api("PUT", "/api/storage/r2/mx/" + key, self.token, blob,
                                    {"Content-Type": "application/octet-stream"})
            self.assertEqual(status, 200, data)
            r2_in += len(blob)
            r2_out += len(data)
        status, _, data = p.api("GET", "/api/storage/r2/mx/o1?raw=1", self.token)
        self.assertEqual((status, data), (200, blob1))
        r2_out += len(data)
        status, _, data = p.api("GET", "/api/resources/stats", self.token)
        self.assertEqual(status, 200, data)

        after = p.scrape()
        req = "era_http_requests_total"
        expected = {
            ("kv", "PUT", "2xx"): 3, ("kv", "GET", "2xx"): 2, ("kv", "GET", "4xx"): 3, ("kv", "DELETE", "2xx"): 1,
            ("d1", "POST", "2xx"): 2, ("r2", "PUT", "2xx"): 2, ("r2", "GET", "2xx"): 1,
            ("resources", "GET", "2xx"): 1,
            ("other", "GET", "2xx"): 1,  # the first scrape (a scrape counts itself only in the next one)
        }
        moved = {}
        for _, labels, _v in after[req].samples:
            key = (labels["surface"], labels["method"], labels["status_class"])
            d = self.delta(before, after, req, **labels)
            if d:
                moved[key] = d
        self.assertEqual(moved, {k: float(v) for k, v in expected.items()})

        h = "era_http_request_duration_seconds"
        self.assertEqual(self.delta(before, after, h, h + "_count", surface="kv", method="GET"), 5)
        self.assertEqual(self.delta(before, after, h, h + "_bucket", surface="kv", method="GET", le="+Inf"), 5)
        self.assertEqual(self.delta(before, after, h, h + "_count", surface="d1", method="POST"), 2)
        self.assertGreater(self.delta(before, after, h, h + "_sum", surface="kv", method="PUT"), 0)

        self.assertEqual(self.delta(before, after, "era_http_request_body_bytes_total", surface="kv"), kv_in)
        self.assertEqual(self.delta(before, after, "era_http_response_body_bytes_total", surface="kv"), kv_out)
        self.assertEqual(self.delta(before, after, "era_http_request_body_bytes_total", surface="r2"), r2_in)
        self.assertEqual(self.delta(before, after, "era_http_response_body_bytes_total", surface="r2"), r2_out)

        fails = "era_auth_failures_total"
        self.assertEqual(self.delta(before, after, fails, reason="namespace_forbidden"), 1)
        self.assertEqual(self.delta(before, after, fails, reason="missing_token"), 1)
        self.assertEqual(after[fails].total() - (before[fails].total() if fails in before else 0), 2)

        # Store sizes from the registry's counters (cached for 0 s here): +3 -1 keys, 1 table, 2 objects.
        self.assertEqual(self.delta(before, after, "era_store_resources", type="kv"), 2)
        self.assertEqual(self.delta(before, after, "era_store_resources", type="d1"), 1)
        self.assertEqual(self.delta(before, after, "era_store_resources", type="r2"), 2)
        self.assertEqual(self.delta(before, after, "era_store_bytes", type="r2"), len(blob1) + len(blob2))
        self.assertEqual(after["era_store_sizes_up"].value(), 1)

        self.assertEqual(after["era_http_requests_in_flight"].value(), 1)  # the scrape itself
        self.assertGreaterEqual(after["era_http_open_connections"].value(), 1)
        self.assertGreater(self.delta(before, after, "era_http_connections_total"), 10)

        up = "era_upstream_requests_total"
        upstream_kv = after[up].total(api="kv") - (before[up].total(api="kv") if up in before else 0)
        if harness.backend() == "cloudflare":
            self.assertGreaterEqual(upstream_kv, 4)  # every KV write reached Cloudflare (reads may be cached)
            self.assertGreater(self.delta(before, after, "era_upstream_request_duration_seconds",
                                          "era_upstream_request_duration_seconds_count", api="r2"), 0)
        else:
            self.assertEqual(upstream_kv, 0)

    def test_the_whole_page_is_strict_exposition_format_with_help_and_type_everywhere(self):
        status, headers, data = self.proxy.api("GET", "/metrics", METRICS_TOKEN)
        self.assertEqual(status, 200)
        families = prom_text.parse(data.decode())
        for name in ("era_http_requests_total", "era_http_request_duration_seconds", "era_http_open_connections",
                     "era_http_requests_in_flight", "era_auth_failures_total", "era_throttled_total",
                     "era_http_request_body_bytes_total", "era_http_response_body_bytes_total",
                     "era_store_resources", "era_store_bytes", "era_upstream_requests_total",
                     "era_upstream_request_duration_seconds", "era_upstream_retries_total",
                     "era_upstream_throttled_total", "era_runner_runs_total", "era_runner_run_duration_seconds",
                     "era_audit_events_total", "process_resident_memory_bytes", "process_cpu_seconds_total",
                     "process_open_fds", "process_threads", "process_start_time_seconds", "era_build_info"):
            self.assertIn(name, families)
        self.assertEqual(families["era_http_requests_total"].type, "counter")
        self.assertEqual(families["era_http_request_duration_seconds"].type, "histogram")
        self.assertEqual(families["process_threads"].type, "gauge")
        now = time.time()
        start = families["process_start_time_seconds"].value()
        self.assertTrue(now - 3600 < start <= now + 1, start)
        self.assertGreater(families["process_resident_memory_bytes"].value(), 1 << 20)
        self.assertGreaterEqual(families["process_threads"].value(), 2)
        self.assertGreater(families["process_open_fds"].value(), 2)
        self.assertTrue(math.isfinite(families["process_cpu_seconds_total"].value()))
        # No label anywhere holds a session id or a token.
        text = data.decode()
        for secret in (self.sid, self.token, self.other_sid, ADMIN, METRICS_TOKEN):
            self.assertNotIn(secret, text)

    def test_who_may_scrape(self):
        p = self.proxy
        self.assertEqual(p.api("GET", "/metrics", METRICS_TOKEN)[0], 200)
        self.assertEqual(p.api("GET", "/metrics", ADMIN)[0], 200)
        status, _, data = p.api("GET", "/metrics")
        self.assertEqual((status, json.loads(data)["code"]), (401, "missing_token"))
        status, _, data = p.api("GET", "/metrics", self.token)
        self.assertEqual((status, json.loads(data)["code"]), (403, "admin_required"))
        status, _, data = p.api("GET", "/metrics", METRICS_TOKEN + "x")
        self.assertEqual(status, 401, data)
        status, _, data = p.api("GET", "/metrics", METRICS_TOKEN[:-1])
        self.assertEqual(status, 401, data)
        # The metrics token is good for /metrics only.
        status, _, data = p.api("GET", "/api/storage/kv/mx/a", METRICS_TOKEN)
        self.assertEqual(status, 401, data)
        status, _, data = p.api("GET", "/api/sessions", METRICS_TOKEN)
        self.assertEqual(status, 401, data)


class OpenOnLoopbackTest(unittest.TestCase):
    def test_open_on_loopback_needs_no_credential_and_throttles_are_counted_without_session_ids(self):
        env = {"ERA_ADMIN_TOKEN": ADMIN, "ERA_PROXY_METRICS_OPEN_ON_LOOPBACK": "true",
               "ERA_PROXY_RATE_LIMIT": "1", "ERA_PROXY_RATE_BURST": "1"}
        with Proxy(["--auth", "token"], env) as p:
            before = p.scrape(token=None)
            sid, token = new_session(p, ["th"])
            codes = [p.api("GET", "/api/storage/kv/th/k", token)[0] for _ in range(3)]
            self.assertEqual(codes[0], 404)
            self.assertEqual(codes[1:], [429, 429])
            status, _, data = p.api("GET", "/metrics")
            self.assertEqual(status, 200)
            after = prom_text.parse(data.decode())
            self.assertEqual(after["era_throttled_total"].value(surface="kv", reason="rate_limited")
                             - before["era_throttled_total"].value(surface="kv", reason="rate_limited"), 2)
            self.assertNotIn(sid, data.decode())


class JsonLogTest(unittest.TestCase):
    def test_json_lines_carry_request_id_route_status_duration_session_and_no_token(self):
        with Proxy(["--auth", "token", "--log-format", "json"],
                   {"ERA_ADMIN_TOKEN": ADMIN, "ERA_PROXY_LOG_LEVEL": "info"}) as p:
            sid, token = new_session(p, ["lg"])
            status, headers, _ = p.api("PUT", "/api/storage/kv/lg/secret-key", token, {"value": "BODY-VALUE-xyz"})
            self.assertEqual(status, 200)
            rid = headers["X-Request-Id"]
            deadline = time.monotonic() + harness.slack(10)
            while rid not in p.log() and time.monotonic() < deadline:
                time.sleep(0.05)
            lines = [l for l in p.log().splitlines() if l.strip()]
            docs = [json.loads(l) for l in lines]  # every line is one JSON object
            for d in docs:
                self.assertIn("time", d)
                self.assertIn(d["level"], ("debug", "info", "warn", "error"))
                self.assertIn("msg", d)
            mine = [d for d in docs if d.get("request_id") == rid and d["msg"] == "request"]
            self.assertEqual(len(mine), 1, lines)
            line = mine[0]
            self.assertEqual(line["route"], "/api/storage/kv/{ns}/{key...}")
            self.assertEqual(line["method"], "PUT")
            self.assertEqual(line["status"], 200)
            self.assertIsInstance(line["duration_ms"], (int, float))
            self.assertEqual(line["session_id"], sid)
            log = p.log()
            for secret in (token, ADMIN, "BODY-VALUE-xyz"):
                self.assertNotIn(secret, log)


if __name__ == "__main__":
    unittest.main()
