"""Two proxies in cloudflare mode on one account (Cloudflare's emulator) agree on sessions,
revocations and the resource registry: those live in the D1 database ("era:sessions",
"era:revocations", "era:resources", "era:resource_counters"), not per replica."""

import json
import os
import time
import unittest
import urllib.error
import urllib.request

from cf_emulator import Emulator
from harness import Proxy, slack

ADMIN = "replica-admin-credential-0123456789"
SECRET = "replica-token-secret-0123456789abcdef0123456789"


def api(base, method, path, token=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@unittest.skipIf(os.environ.get("ERA_TEST_BACKEND") == "cloudflare",
                 "starts its own emulator: runs once, in the local-mode run")
class CloudflareReplicasTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator().start()
        env = dict(cls.emu.proxy_env(), ERA_PROXY_AUTH="token", ERA_ADMIN_TOKEN=ADMIN, ERA_TOKEN_SECRET=SECRET,
                   ERA_PROXY_REVOCATION_REFRESH="1")
        cls.a = Proxy.configured(env)
        cls.b = Proxy.configured(env)

    @classmethod
    def tearDownClass(cls):
        cls.a.close()
        cls.b.close()
        cls.emu.stop()

    def test_a_session_made_on_one_replica_is_revoked_on_every_replica(self):
        status, s = api(self.a.url, "POST", "/api/sessions", ADMIN,
                        {"namespaces": ["replns"], "permissions": "read_write"})
        self.assertEqual(status, 201, s)
        token, sid = s["token"], s["session_id"]
        # Both replicas accept it, and B lists the session A made.
        for p in (self.a, self.b):
            self.assertEqual(api(p.url, "PUT", "/api/storage/kv/replns/k", token, {"value": "v"})[0], 200)
        status, listed = api(self.b.url, "GET", "/api/sessions", ADMIN)
        self.assertEqual(status, 200, listed)
        self.assertIn(sid, json.dumps(listed))
        # The session id is taken for every replica.
        status, body = api(self.b.url, "POST", "/api/sessions", ADMIN,
                           {"session_id": sid, "namespaces": ["replns"], "permissions": "read"})
        self.assertEqual((status, body["code"]), (409, "session_exists"))
        # Revoked on A: refused by B once B reloads its revocations (every second here).
        self.assertEqual(api(self.a.url, "DELETE", f"/api/sessions/{sid}", ADMIN)[0], 200)
        deadline = time.monotonic() + slack(15)
        status = 200
        while time.monotonic() < deadline:
            status, body = api(self.b.url, "GET", "/api/storage/kv/replns/k", token)
            if status == 401:
                break
            time.sleep(0.3)
        self.assertEqual(status, 401)
        self.assertEqual(body["code"], "token_revoked")
        # Stored where the docs say, outside every user namespace.
        status, env = self.emu.d1_raw('SELECT id FROM "era:revocations" WHERE id = ?', [sid])
        self.assertEqual(env["result"][0]["results"]["rows"], [[sid]])

    def test_two_replicas_see_the_same_resources_and_stats(self):
        ns = "replres"
        # Written through A, deleted through B: each replica's answer is the registry both share.
        for i in range(3):
            self.assertEqual(api(self.a.url, "PUT", f"/api/storage/kv/{ns}/k{i}", ADMIN, {"value": "x" * (i + 1)})[0], 200)
        self.assertEqual(api(self.b.url, "DELETE", f"/api/storage/kv/{ns}/k0", ADMIN)[0], 200)
        # Each replica flushes its registry changes once per interval (cloudflare.registry_flush_ms, 1 s)
        # and before answering a listing: each sees the other's writes within that interval.
        deadline = time.monotonic() + slack(15)
        while time.monotonic() < deadline:
            totals = [api(p.url, "GET", f"/api/resources/stats?namespace={ns}", ADMIN)[1].get("total")
                      for p in (self.a, self.b)]
            if totals == [2, 2]:
                break
            time.sleep(0.2)
        answers = [api(p.url, "GET", f"/api/resources/stats?namespace={ns}", ADMIN) for p in (self.a, self.b)]
        for status, stats in answers:
            self.assertEqual(status, 200, stats)
            self.assertEqual((stats["total"], stats["total_size"], stats["by_type"]["kv"]), (2, 5, 2), stats)
        self.assertEqual(answers[0][1], answers[1][1])
        for p in (self.a, self.b):
            status, listed = api(p.url, "GET", f"/api/resources/list?namespace={ns}", ADMIN)
            self.assertEqual(status, 200, listed)
            self.assertEqual([r["key"] for r in listed["resources"]], ["k1", "k2"])
        # Kept where the docs say: a D1 table outside every user namespace.
        status, env = self.emu.d1_raw('SELECT count, bytes FROM "era:resource_counters" WHERE type = ? AND ns = ?',
                                      ["kv", ns])
        self.assertEqual(env["result"][0]["results"]["rows"], [[2, 5]])


if __name__ == "__main__":
    unittest.main()
