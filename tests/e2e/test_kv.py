"""KV end to end: the real binary, over HTTP, through the Python SDK and raw requests."""

import http.client
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

from harness import BIN, Proxy, ProxyTestCase, backend, slack

import era_storage
from era_storage import StorageError

Q = lambda s: urllib.parse.quote(s, safe="")  # noqa: E731


def unique(name="ns"):
    return f"{name}_{uuid.uuid4().hex[:8]}"


class KvApiTest(ProxyTestCase):
    def test_set_get_delete_return_values(self):
        ns = unique()
        self.assertIs(era_storage.kv.set(ns, "config:api", json.dumps({"timeout": 30})), True)
        self.assertEqual(json.loads(era_storage.kv.get(ns, "config:api")), {"timeout": 30})
        self.assertIs(era_storage.kv.delete(ns, "config:api"), True)
        self.assertIsNone(era_storage.kv.get(ns, "config:api"))
        # Deletes are idempotent.
        self.assertIs(era_storage.kv.delete(ns, "config:api"), True)

    def test_overwrite_replaces_value_and_metadata(self):
        ns = unique()
        era_storage.kv.set(ns, "k", "v1", metadata={"a": 1})
        era_storage.kv.set(ns, "k", "v2")
        doc = era_storage.kv.get_with_metadata(ns, "k")
        self.assertEqual(doc, {"value": "v2", "metadata": None})

    def test_metadata_round_trip_and_listing(self):
        ns = unique()
        meta = {"user": "alice", "n": 3, "nested": {"ok": True}, "uni": "é✓"}
        era_storage.kv.set(ns, "k", "v", metadata=meta)
        self.assertEqual(era_storage.kv.get_with_metadata(ns, "k")["metadata"], meta)
        self.assertEqual(era_storage.kv.list(ns), [{"name": "k", "metadata": meta}])

    def test_missing_key_is_404_json_and_none(self):
        ns = unique()
        self.assertIsNone(era_storage.kv.get(ns, "nope"))
        self.assertError(self.proxy.call("GET", f"/api/storage/kv/{ns}/nope"), 404, "key_not_found")

    def test_unusual_keys_round_trip(self):
        ns = unique()
        # The longest key: 512 bytes locally; with the cloudflare backend Cloudflare's 512-byte limit is
        # on the stored name "ns:key".
        longest = 512 if backend() == "local" else 512 - len(ns) - 1
        keys = ["a/b/c", "with space", "what?", "hash#tag", "100%", "%2F literal", "ünïcødé ✓ 日本",
                "../../etc/passwd", "/leading", "trailing/", "a+b", "k" * longest, ":colon:", "tab\there"]
        for i, k in enumerate(keys):
            era_storage.kv.set(ns, k, f"v{i}")
        for i, k in enumerate(keys):
            self.assertEqual(era_storage.kv.get(ns, k), f"v{i}", k)
        self.assertEqual([k["name"] for k in era_storage.kv.list(ns)], sorted(keys, key=lambda s: s.encode()))
        # An encoded slash in the key position is part of the key, not a path separator.
        self.assertIsNone(era_storage.kv.get(ns, "a"))

    def test_key_limits_and_bad_keys(self):
        ns = unique()
        self.assertError(self.proxy.call("PUT", f"/api/storage/kv/{ns}/{'k' * 513}", {"value": "v"}), 400,
                         "key_too_long")
        self.assertError(self.proxy.call("PUT", f"/api/storage/kv/{ns}/%FF%FE", {"value": "v"}), 400, "invalid_key")
        self.assertError(self.proxy.call("PUT", f"/api/storage/kv/{ns}/a%00b", {"value": "v"}), 400, "invalid_key")
        self.assertError(self.proxy.call("PUT", f"/api/storage/kv/{ns}/..", {"value": "v"}), 400, "invalid_key")
        self.assertError(self.proxy.call("PUT", f"/api/storage/kv/{ns}/%zz", {"value": "v"}), 400, "bad_path")
        self.assertEqual(era_storage.kv.list(ns), [])

    def test_invalid_namespaces_are_400_stating_the_rule(self):
        for bad in ["a" * 65, "a.b", "a:b", "a%2Fb", "%20", "ns%00", "%C3%BCmlaut", "a%3Ab"]:
            status, doc = self.proxy.call("PUT", f"/api/storage/kv/{bad}/key", {"value": "v"})
            self.assertEqual(status, 400, bad)
            self.assertEqual(doc["code"], "invalid_namespace")
            self.assertIn("1 to 64", doc["error"])
        with self.assertRaises(StorageError) as cm:
            era_storage.kv.set("bad ns", "k", "v")
        self.assertEqual((cm.exception.status, cm.exception.code), (400, "invalid_namespace"))
        self.assertIsInstance(cm.exception, Exception)
        # The longest valid namespace works.
        era_storage.kv.set("n" * 64, "k", "v")
        self.assertEqual(era_storage.kv.get("n" * 64, "k"), "v")

    def test_namespaces_are_isolated_and_case_sensitive(self):
        a, b = unique("App"), None
        b = a.lower()
        era_storage.kv.set(a, "k", "upper")
        era_storage.kv.set(b, "k", "lower")
        self.assertEqual(era_storage.kv.get(a, "k"), "upper")
        self.assertEqual(era_storage.kv.get(b, "k"), "lower")
        # "ns" and "ns:x" can never collide: a namespace cannot hold ':'.
        era_storage.kv.set(a, "x:k", "other")
        self.assertEqual([k["name"] for k in era_storage.kv.list(a)], ["k", "x:k"])

    def test_bad_bodies_are_400_and_change_nothing(self):
        ns = unique()
        era_storage.kv.set(ns, "k", "original")
        path = f"/api/storage/kv/{ns}/k"
        cases = [
            (b"not json", "invalid_json"),
            (b"[1,2]", "invalid_json"),
            (b'{"value": 5}', "invalid_value"),
            (b'{"metadata": {}}', "invalid_value"),
            (b'{"value": "v", "metadata": [1]}', "invalid_metadata"),
            (b'{"value": "v", "metadata": "x"}', "invalid_metadata"),
            (b'{"value": "v", "extra": 1}', "unknown_field"),
            (b'{"value": "v", "expiration_ttl": 30}', "invalid_expiration"),
            (b'{"value": "v", "expiration_ttl": "120"}', "invalid_expiration"),
            (b'{"value": "v", "expiration": 1000}', "invalid_expiration"),
            (b'{"value": "v", "expiration": 99999999999, "expiration_ttl": 120}', "invalid_expiration"),
            (b'{"value": "v", "expiration_ttl": 1e3}', "invalid_expiration"),
        ]
        for body, code in cases:
            self.assertError(self.proxy.call("PUT", path, body, {"Content-Type": "application/json"}), 400, code)
        self.assertEqual(era_storage.kv.get_with_metadata(ns, "k"), {"value": "original", "metadata": None})

    def test_value_and_metadata_limits(self):
        ns = unique()
        big = "x" * (25 * 1024 * 1024)
        era_storage.kv.set(ns, "big", big)
        self.assertEqual(len(era_storage.kv.get(ns, "big")), len(big))
        with self.assertRaises(StorageError) as cm:
            era_storage.kv.set(ns, "big", big + "y")
        self.assertEqual((cm.exception.status, cm.exception.code), (413, "value_too_large"))
        self.assertEqual(len(era_storage.kv.get(ns, "big")), len(big))
        meta_ok = {"m": "x" * (1024 - len('{"m":""}'))}
        era_storage.kv.set(ns, "m", "v", metadata=meta_ok)
        with self.assertRaises(StorageError) as cm:
            era_storage.kv.set(ns, "m", "v2", metadata={"m": "x" * 1024})
        self.assertEqual(cm.exception.status, 413)
        self.assertEqual(era_storage.kv.get(ns, "m"), "v")

    def test_oversized_body_refused_before_reading(self):
        ns = unique()
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=30)
        conn.putrequest("PUT", f"/api/storage/kv/{ns}/k")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(10 * 1024 * 1024 * 1024))
        conn.endheaders()
        conn.send(b'{"value": "')
        resp = conn.getresponse()
        self.assertEqual(resp.status, 413)
        self.assertEqual(json.loads(resp.read())["code"], "payload_too_large")
        conn.close()
        self.assertIsNone(era_storage.kv.get(ns, "k"))

    def test_expiration_options(self):
        ns = unique()
        now = int(time.time())
        era_storage.kv.set(ns, "ttl", "v", expiration_ttl=120)
        era_storage.kv.set(ns, "abs", "v", expiration=now + 3600)
        era_storage.kv.set(ns, "forever", "v")
        # Both backends report expirations (in cloudflare mode the emulator's KV Worker serves them as
        # Cloudflare does: bulk/get with metadata, the list).
        doc = era_storage.kv.get_with_metadata(ns, "ttl")
        self.assertTrue(now + 119 <= doc["expiration"] <= now + 125, doc)
        self.assertEqual(era_storage.kv.get_with_metadata(ns, "abs")["expiration"], now + 3600)
        listed = {k["name"]: k for k in era_storage.kv.list(ns)}
        self.assertEqual(listed["abs"]["expiration"], now + 3600)
        self.assertNotIn("expiration", listed["forever"])

    def test_list_prefix_limit_and_validation(self):
        ns = unique()
        for k in ["config:a", "config:b", "configx", "other", "config:c"]:
            era_storage.kv.set(ns, k, "v")
        self.assertEqual([k["name"] for k in era_storage.kv.list(ns, prefix="config:", limit=100)],
                         ["config:a", "config:b", "config:c"])
        page = era_storage.kv.list_page(ns, prefix="config", limit=2)
        self.assertEqual([k["name"] for k in page["keys"]], ["config:a", "config:b"])
        self.assertFalse(page["list_complete"])
        self.assertTrue(page["cursor"])
        rest = era_storage.kv.list_page(ns, prefix="config", limit=2, cursor=page["cursor"])
        self.assertEqual([k["name"] for k in rest["keys"]], ["config:c", "configx"])
        self.assertTrue(rest["list_complete"])
        self.assertIsNone(rest["cursor"])
        for bad in ["0", "1001", "x", "-1", "1.5"]:
            self.assertError(self.proxy.call("GET", f"/api/storage/kv/{ns}?limit={bad}"), 400, "invalid_limit")
        self.assertError(self.proxy.call("GET", f"/api/storage/kv/{ns}?cursor=%25%25%25"), 400, "invalid_cursor")

    def test_list_pages_through_many_keys_while_writing(self):
        ns = unique()
        original = [f"key{i:05d}" for i in range(2500)]
        threads = [threading.Thread(target=lambda part=original[i::8]: [era_storage.kv.set(ns, k, "v") for k in part])
                   for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seen = []
        cursor = None
        extra = 0
        while True:
            page = era_storage.kv.list_page(ns, limit=300, cursor=cursor)
            seen += [k["name"] for k in page["keys"]]
            # Writes between pages: new keys before and after the cursor position.
            era_storage.kv.set(ns, f"key{extra:05d}x", "new")
            era_storage.kv.set(ns, f"aaa{extra}", "new")
            extra += 1
            if page["list_complete"]:
                break
            cursor = page["cursor"]
        self.assertEqual(len(seen), len(set(seen)), "a key was listed twice")
        self.assertTrue(set(original) <= set(seen), "a key present for the whole walk was skipped")
        self.assertEqual(seen, sorted(seen, key=lambda s: s.encode()))
        everything = list(era_storage.kv.iter(ns, page_size=1000))
        self.assertEqual(len(everything), 2500 + 2 * extra)

    def test_concurrent_writers_all_durable(self):
        ns = unique()
        errors = []

        def writer(n):
            try:
                for i in range(50):
                    era_storage.kv.set(ns, f"t{n}-{i}", str(i))
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(list(era_storage.kv.iter(ns))), 800)

    def test_reads_see_each_acknowledged_write_at_once(self):
        # The second read of a key is answered from the store's read cache (on the server's I/O
        # thread, locally): it must never be older than a write or delete acknowledged before it.
        ns = unique()
        rounds = 40 if backend() == "local" else 3  # Cloudflare spaces writes to one key
        for i in range(rounds):
            era_storage.kv.set(ns, "hot", f"v{i}", metadata={"i": i})
            for _ in range(2):
                self.assertEqual(era_storage.kv.get_with_metadata(ns, "hot"), {"value": f"v{i}", "metadata": {"i": i}})
            if i % 4 == 3:
                era_storage.kv.delete(ns, "hot")
                for _ in range(2):
                    self.assertIsNone(era_storage.kv.get(ns, "hot"))
        # HEAD of a cached key answers as GET does, without a body.
        era_storage.kv.set(ns, "h", "v")
        era_storage.kv.get(ns, "h")
        status, headers, data = self.proxy.request("HEAD", f"/api/storage/kv/{ns}/h")
        self.assertEqual((status, data), (200, b""))

    def test_unknown_route_and_method(self):
        self.assertError(self.proxy.call("GET", "/api/nothing"), 404, "not_found")
        self.assertError(self.proxy.call("POST", "/api/storage/kv/ns/key", {"value": "v"}), 405, "method_not_allowed")
        self.assertEqual(self.proxy.call("GET", "/healthz")[0], 200)

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        ns = unique()
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=30)
        conn.connect()
        sock = conn.sock
        for i in range(200):
            conn.request("PUT", f"/api/storage/kv/{ns}/k{i}", body=json.dumps({"value": str(i)}),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(resp.status, 200)
            self.assertIs(conn.sock, sock, f"connection was closed after {i} requests")
        conn.close()

    def test_log_lines_carry_no_token_or_body(self):
        ns = unique()
        secret_value = "body-" + uuid.uuid4().hex
        # A real session token: with auth off a call without one is allowed, but one that is sent is
        # still checked (so a session's code stays in its namespaces in local development too).
        status, session = self.proxy.call("POST", "/api/sessions", {"namespaces": [ns]})
        self.assertEqual(status, 201, session)
        token = session["token"]
        status, _ = self.proxy.call("PUT", f"/api/storage/kv/{ns}/k", {"value": secret_value},
                                    {"Authorization": f"Bearer {token}"})
        self.assertEqual(status, 200)
        log = self.proxy.log()
        self.assertNotIn(secret_value, log)
        self.assertNotIn(token, log)
        self.assertRegex(log, r"req=\S+ PUT /api/storage/kv/\{ns\}/\{key\.\.\.\} 200 [0-9.]+ms")


class KvQuotaTest(ProxyTestCase):
    """quota.kv_bytes: a namespace's value bytes are capped; a write past the quota changes nothing."""

    proxy_env = {"ERA_PROXY_QUOTA_KV_BYTES": "1000"}

    def test_writes_past_the_quota_are_507_and_change_nothing(self):
        ns, other = unique(), unique()
        era_storage.kv.set(ns, "a", "x" * 600)
        era_storage.kv.set(ns, "b", "y" * 400)  # exactly the quota
        for key, value in (("c", "z"), ("a", "x" * 601), ("b", "y" * 401)):
            with self.subTest(key=key, size=len(value)):
                with self.assertRaises(StorageError) as cm:
                    era_storage.kv.set(ns, key, value)
                self.assertEqual((cm.exception.status, cm.exception.code), (507, "quota_exceeded"))
                self.assertIn(ns, str(cm.exception))
        self.assertEqual(era_storage.kv.get(ns, "a"), "x" * 600)
        self.assertEqual(era_storage.kv.get(ns, "b"), "y" * 400)
        self.assertIsNone(era_storage.kv.get(ns, "c"))
        # Replacing a value counts the old one as freed; a smaller one fits, and so does the space freed.
        era_storage.kv.set(ns, "a", "x" * 100)
        era_storage.kv.set(ns, "c", "z" * 500)
        # Deletes always work, and free their bytes.
        era_storage.kv.delete(ns, "b")
        era_storage.kv.set(ns, "d", "w" * 400)
        # Each namespace has its own quota.
        era_storage.kv.set(other, "a", "q" * 1000)
        self.assertEqual(era_storage.resources.stats(namespace=ns)["total_size"], 1000)


class KvDurabilityTest(unittest.TestCase):
    def test_acknowledged_writes_survive_sigkill(self):
        proxy = Proxy()
        try:
            proxy.start()
            os.environ["ERA_STORAGE_URL"] = proxy.url
            ns = unique()
            for i in range(200):
                era_storage.kv.set(ns, f"k{i}", f"v{i}")
            proxy.kill()  # SIGKILL right after the last 200
            proxy.start()  # same port: the SDK's kept-alive connection now points at a dead socket
            os.environ["ERA_STORAGE_URL"] = proxy.url
            # A non-idempotent call first: the SDK must notice the closed connection before sending.
            era_storage.d1.exec(ns, "CREATE TABLE after_restart (x)")
            for i in range(200):
                self.assertEqual(era_storage.kv.get(ns, f"k{i}"), f"v{i}")
        finally:
            proxy.close()

    def test_sigterm_finishes_in_flight_request_and_exits_zero(self):
        proxy = Proxy()
        try:
            proxy.start()
            ns = unique()
            big = json.dumps({"value": "x" * (20 * 1024 * 1024)}).encode()
            result = {}
            signalled = threading.Event()

            def slow_put():
                conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=slack(60))
                conn.putrequest("PUT", f"/api/storage/kv/{ns}/big")
                conn.putheader("Content-Type", "application/json")
                conn.putheader("Content-Length", str(len(big)))
                conn.endheaders()
                conn.send(big[:1024])
                signalled.wait(slack(60))  # the signal arrives while the body is still coming
                conn.send(big[1024:])
                resp = conn.getresponse()
                result["status"] = resp.status
                resp.read()
                conn.close()

            t = threading.Thread(target=slow_put)
            t.start()
            # The proxy is handling the PUT before the signal is sent: an event, not a guess of how
            # long a loaded machine takes to get there.
            proxy.wait_in_flight(1, slack(60))
            proxy.proc.send_signal(signal.SIGTERM)
            signalled.set()
            t.join(slack(60))
            self.assertEqual(proxy.proc.wait(30), 0)
            proxy.proc = None
            self.assertEqual(result.get("status"), 200)
            self.assertIn("stopped cleanly", proxy.log())
            proxy.start()
            os.environ["ERA_STORAGE_URL"] = proxy.url
            self.assertEqual(len(era_storage.kv.get(ns, "big")), 20 * 1024 * 1024)
        finally:
            proxy.close()


class DataDirLockTest(unittest.TestCase):
    def test_a_second_proxy_on_the_same_data_dir_refuses_to_start(self):
        """Local mode: one proxy per data dir (its stores live there). Cloudflare mode, deliberately, does
        not lock it (docs/operations.md, "Backends"): the stores are Cloudflare's, shared by replicas."""
        first = Proxy()
        second = None
        try:
            first.start()
            os.environ["ERA_STORAGE_URL"] = first.url
            ns = unique()
            era_storage.kv.set(ns, "k", "v1")
            self.assertEqual(era_storage.kv.get(ns, "k"), "v1")
            if backend() == "cloudflare":
                second = Proxy(data_dir=first.data_dir).start()  # starts; reads what the first wrote
                status, doc = second.call("GET", f"/api/storage/kv/{ns}/k")
                self.assertEqual((status, doc.get("value")), (200, "v1"))
                return
            env = {k: v for k, v in os.environ.items() if not k.startswith("ERA_")}
            r = subprocess.run([BIN, "serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", first.data_dir,
                                "--backend", "local"], capture_output=True, env=env, timeout=60)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(f"is in use by another era-storage-proxy (pid {first.proc.pid})", r.stderr.decode())
            self.assertEqual(era_storage.kv.get(ns, "k"), "v1")  # the first one serves on
            # Once the first has stopped (a crash would do too: the kernel drops the lock), the dir is free.
            first.kill()
            second = Proxy(data_dir=first.data_dir).start()
            os.environ["ERA_STORAGE_URL"] = second.url
            self.assertEqual(era_storage.kv.get(ns, "k"), "v1")
            era_storage.kv.set(ns, "k", "v2")
            self.assertEqual(era_storage.kv.get(ns, "k"), "v2")
        finally:
            if second:
                second.close()
            first.close()


class ConfigStartupTest(unittest.TestCase):
    def run_bin(self, args, env=None, timeout=20):
        return subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, **(env or {})))

    def test_bad_flag_value_names_the_key(self):
        r = self.run_bin(["serve", "--port", "99999"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("server.port", r.stderr)
        self.assertIn("0 to 65535", r.stderr)

    def test_bad_env_and_toml_values_name_the_key(self):
        r = self.run_bin(["serve"], {"ERA_PROXY_BACKEND": "s3"})
        self.assertEqual(r.returncode, 2)
        self.assertIn("backend", r.stderr)
        self.assertIn("ERA_PROXY_BACKEND", r.stderr)
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write('[server]\nthreads = "many"\n')
        try:
            r = self.run_bin(["serve", "--config", f.name])
            self.assertEqual(r.returncode, 2)
            self.assertIn("server.threads", r.stderr)
            with open(f.name, "w") as g:
                g.write('[server]\nprot = 1\n')
            r = self.run_bin(["serve", "--config", f.name])
            self.assertEqual(r.returncode, 2)
            self.assertIn("unknown setting 'server.prot'", r.stderr)
        finally:
            os.unlink(f.name)

    @unittest.skipIf(backend() == "cloudflare", "config precedence does not depend on the backend: the local run covers it")
    def test_flags_override_env_override_file(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "c.toml")
            with open(cfg, "w") as f:
                f.write(f'[server]\nport = 1\n[storage]\ndata_dir = "{d}/from-file"\n')
            p = Proxy(["--config", cfg], env={"ERA_PROXY_DATA_DIR": f"{d}/from-env"}, data_dir=f"{d}/from-flag")
            p.start()
            try:
                self.assertTrue(os.path.exists(f"{d}/from-flag/meta.sqlite3"))
                self.assertFalse(os.path.exists(f"{d}/from-env"))
            finally:
                p.stop()

    def test_example_config_is_valid_and_complete(self):
        example = os.path.join(os.path.dirname(BIN), "..", "config.example.toml")
        example = os.path.join(os.environ.get("ERA_SOURCE_DIR", os.path.dirname(example)), "config.example.toml")
        with tempfile.TemporaryDirectory() as d:
            p = Proxy(["--config", example], data_dir=d)
            p.start()
            p.stop()


if __name__ == "__main__":
    unittest.main()
