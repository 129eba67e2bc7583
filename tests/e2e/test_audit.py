"""The audit trail end to end (issue 16), in both backends: writes, deletes and denials each leave one
JSON line with who, what and how it ended; GET /api/audit (admin only) reads them back, filtered and
paged, across rotated files; nothing secret is written."""

import glob
import json
import os
import time
import unittest

import harness

ADMIN = "e2e-admin-credential-0123456789"


Proxy = harness.Proxy  # its api() sends a token


def new_session(proxy, namespaces, permissions="read_write"):
    status, headers, data = proxy.api("POST", "/api/sessions", ADMIN,
                                      {"namespaces": namespaces, "permissions": permissions})
    assert status == 201, data
    doc = json.loads(data)
    return doc["session_id"], doc["token"], headers["X-Request-Id"]


class AuditTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proxy = Proxy(["--auth", "token"], {"ERA_ADMIN_TOKEN": ADMIN})
        cls.audit_path = os.path.join(cls.proxy.data_dir, "audit", "audit.log")
        cls.proxy.args += ["--audit-file", cls.audit_path]
        cls.proxy.env.update({"ERA_PROXY_AUDIT_MAX_BYTES": "4096", "ERA_PROXY_AUDIT_KEEP": "50"})
        cls.proxy.start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()

    def trail(self, query="", token=ADMIN, want=200):
        """Every event the query matches, through all pages (cursor); the pages' sizes, too."""
        events, cursor = [], None
        for _ in range(1000):
            q = query + ("&" if query else "") + (f"cursor={cursor}" if cursor else "")
            status, _, data = self.proxy.api("GET", "/api/audit" + ("?" + q if q else ""), token)
            self.assertEqual(status, want, data)
            doc = json.loads(data)
            if want != 200:
                return doc
            events += doc["events"]
            cursor = doc["cursor"]
            if cursor is None:
                return events
        self.fail("paging never ended")

    def test_writes_deletes_and_denials_are_in_the_trail_with_who_what_and_outcome(self):
        p = self.proxy
        sid, token, create_rid = new_session(p, ["alpha"])
        ro_sid, ro_token, _ = new_session(p, ["alpha"], "read")

        steps = []  # (request id, expected fields)

        def do(method, path, tok, body=None, headers=None, want=200, **expect):
            status, h, data = p.api(method, path, tok, body, headers)
            self.assertEqual(status, want, data)
            if expect:
                steps.append((h["X-Request-Id"], expect))

        value = {"value": "v" * 50}
        do("PUT", "/api/storage/kv/alpha/k1", token, value, surface="kv", operation="put", object="k1",
           outcome="ok", status=200, bytes=len(json.dumps(value)), namespace="alpha", session_id=sid,
           principal="session", code=None)
        do("GET", "/api/storage/kv/alpha/k1", token)  # a read: not audited
        do("PUT", "/api/storage/r2/alpha/dir/obj.bin", token, b"\x00" * 1234,
           {"Content-Type": "application/octet-stream"}, surface="r2", operation="put", object="dir/obj.bin",
           bytes=1234, outcome="ok")
        do("DELETE", "/api/storage/kv/alpha/k1", token, surface="kv", operation="delete", object="k1", outcome="ok")
        do("POST", "/api/storage/d1/alpha/exec", token, {"sql": "CREATE TABLE IF NOT EXISTS notes (id INTEGER)"},
           surface="d1", operation="exec", outcome="ok")
        do("POST", "/api/storage/d1/alpha/query", token, {"sql": "SELECT * FROM notes"})  # changes nothing
        do("PUT", "/api/storage/kv/beta/x", token, {"value": "no"}, want=403, surface="kv", operation="put",
           namespace="beta", object="x", outcome="denied", status=403, code="namespace_forbidden", session_id=sid)
        do("PUT", "/api/storage/kv/alpha/y", ro_token, {"value": "no"}, want=403, outcome="denied",
           code="read_only_token", session_id=ro_sid)
        do("POST", "/api/storage/d1/alpha/exec", ro_token, {"sql": "INSERT INTO notes VALUES (1)"}, want=403,
           outcome="denied", code="read_only_token", surface="d1")
        do("DELETE", "/api/storage/kv/alpha/k1", None, want=401, outcome="denied", code="missing_token",
           principal="anonymous", session_id=None)
        do("GET", "/api/audit", token, want=403, outcome="denied", code="admin_required", operation="audit",
           session_id=sid)
        do("PUT", "/api/storage/kv/alpha/bad", token, {"value": 5}, want=400)  # refused, changed nothing
        do("DELETE", f"/api/sessions/{ro_sid}", ADMIN, surface="sessions", operation="revoke", object=ro_sid,
           principal="admin", session_id=None, outcome="ok")
        # A key of another namespace that the store holds in memory (the admin just read it, so a read
        # of it is answered on the server's I/O thread) is refused and audited all the same.
        do("PUT", "/api/storage/kv/beta/hot", ADMIN, {"value": "h"}, surface="kv", operation="put",
           namespace="beta", principal="admin", outcome="ok")
        do("GET", "/api/storage/kv/beta/hot", ADMIN)
        do("GET", "/api/storage/kv/beta/hot", ADMIN)  # from memory: not audited either
        do("GET", "/api/storage/kv/beta/hot", token, want=403, surface="kv", operation="get", namespace="beta",
           object="hot", outcome="denied", status=403, code="namespace_forbidden", session_id=sid)

        everything = self.trail()
        by_rid = {e["request_id"]: e for e in everything}
        for rid, expect in steps:
            self.assertIn(rid, by_rid, expect)
            e = by_rid[rid]
            for k, v in expect.items():
                self.assertEqual(e[k], v, (k, e))
            for field in ("seq", "time", "request_id", "session_id", "principal", "namespace", "surface",
                          "operation", "object", "bytes", "status", "outcome", "code"):
                self.assertIn(field, e)
        created = by_rid[create_rid]
        self.assertEqual((created["operation"], created["principal"], created["object"]), ("create", "admin", sid))
        # Exactly the audited steps of this test, no read, no 400: the trail since the first one.
        mine = [e for e in everything if e["seq"] >= created["seq"]]
        rids = [e["request_id"] for e in mine]
        self.assertEqual(len(mine), 2 + len(steps), [(e["operation"], e["status"]) for e in mine])
        self.assertEqual(len(set(rids)), len(rids))
        seqs = [e["seq"] for e in mine]
        self.assertEqual(seqs, sorted(seqs))

        # Filters.
        only = self.trail("session=" + sid)
        self.assertTrue(only and all(e["session_id"] == sid for e in only))
        self.assertEqual([e["request_id"] for e in self.trail("namespace=beta")],
                         [steps[4][0], steps[-2][0], steps[-1][0]])
        self.assertEqual(self.trail("since=2999-01-01T00:00:00Z"), [])
        self.assertEqual(len(self.trail("since=" + str(int(time.time()) - 3600) + "&session=" + sid)), len(only))
        self.assertEqual(self.trail("limit=1"), everything)  # paging: same events, in order, none twice
        for bad in ("since=yesterday", "since=2026-13-01T00:00:00Z", "limit=0", "limit=1001", "cursor=abc",
                    "namespace=a/b", "session=a%20b"):
            doc = self.trail(bad, want=400)
            self.assertIs(doc["success"], False, bad)

        # Nothing secret on disk.
        text = ""
        for name in glob.glob(self.audit_path + "*"):
            with open(name, encoding="utf-8") as f:
                text += f.read()
        for secret in (token, ro_token, ADMIN, "v" * 50):
            self.assertNotIn(secret, text)

    def test_rotation_keeps_every_line_readable_through_the_api(self):
        p = self.proxy
        _, token, _ = new_session(p, ["rot"])
        rids = []
        for i in range(40):  # ~300 bytes a line: about ten 4 KiB files
            status, h, _ = p.api("PUT", f"/api/storage/kv/rot/key-{i}", token, {"value": str(i)})
            self.assertEqual(status, 200)
            rids.append(h["X-Request-Id"])
        rotated = glob.glob(self.audit_path + ".*")
        self.assertGreaterEqual(len(rotated), 2, rotated)
        for f in rotated + [self.audit_path]:
            self.assertLessEqual(os.path.getsize(f), 4096, f)
        events = self.trail("namespace=rot")
        self.assertEqual([e["request_id"] for e in events], rids)
        everything = self.trail()
        seqs = [e["seq"] for e in everything]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))  # nothing lost across the rotations


class AuditOffTest(unittest.TestCase):
    def test_without_an_audit_file_the_api_says_so(self):
        with Proxy(["--auth", "token"], {"ERA_ADMIN_TOKEN": ADMIN}) as p:
            status, _, data = p.api("GET", "/api/audit", ADMIN)
            self.assertEqual((status, json.loads(data)["code"]), (404, "audit_disabled"))


if __name__ == "__main__":
    unittest.main()
