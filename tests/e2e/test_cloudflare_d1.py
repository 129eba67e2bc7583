"""D1 through the proxy in cloudflare mode, against Cloudflare's own emulator: a table written through the
proxy is read back directly from the emulator under the documented physical name "ns_table", and hostile
SQL is refused by the proxy's guard with nothing of it sent upstream (the proxy's REST calls pass through
a recording forwarder on loopback)."""

import http.server
import json
import os
import threading
import unittest
import urllib.error
import urllib.request

from cf_emulator import Emulator
from harness import Proxy, call




class Recorder(http.server.ThreadingHTTPServer):
    """Forwards every request to the emulator's REST base and keeps each request body."""
    daemon_threads = True

    def __init__(self, upstream):
        self.upstream = upstream
        self.bodies = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Forward)

    def sent(self):
        with self.lock:
            return b"\n".join(self.bodies).decode(errors="replace")


class Forward(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def relay(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        with self.server.lock:
            self.server.bodies.append(body or b"")
        req = urllib.request.Request(self.server.upstream + self.path, data=body, method=self.command)
        for k in ("Content-Type", "Authorization"):
            if self.headers.get(k):
                req.add_header(k, self.headers[k])
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, data, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, data, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        self.send_response(status)
        self.send_header("Content-Type", ctype or "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = relay


@unittest.skipIf(os.environ.get("ERA_TEST_BACKEND") == "cloudflare",
                 "starts its own upstream: runs once, in the local-mode run")
class CloudflareD1Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator().start()
        cls.rec = Recorder(cls.emu.info["api_base"])
        threading.Thread(target=cls.rec.serve_forever, daemon=True).start()
        env = dict(cls.emu.proxy_env(), ERA_CF_API_BASE=f"http://127.0.0.1:{cls.rec.server_address[1]}")
        cls.proxy = Proxy.configured(env)
        cls.base = cls.proxy.url

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        cls.rec.shutdown()
        cls.rec.server_close()
        cls.emu.stop()

    def d1(self, ns, op, body):
        return call("POST", f"{self.base}/api/storage/d1/{ns}/{op}", body)

    def test_table_lands_under_ns_underscore_table(self):
        status, _ = self.d1("cfd1a", "exec", {"sql": "CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT, n)"})
        self.assertEqual(status, 200)
        status, _ = self.d1("cfd1a", "exec", {"sql": "INSERT INTO todos (title, n) VALUES (?, ?), (?, ?)",
                                              "params": ["it's ?1 -- not SQL", 2**53, None, -1.5]})
        self.assertEqual(status, 200)
        status, doc = self.emu.d1_raw('SELECT id, title, n, typeof(n) FROM "cfd1a_todos" ORDER BY id')
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["result"][0]["results"]["rows"],
                         [[1, "it's ?1 -- not SQL", 2**53, "integer"], [2, None, -1.5, "real"]])
        status, doc = self.d1("cfd1a", "query", {"sql": "SELECT title FROM todos WHERE n = ?", "params": [2**53]})
        self.assertEqual((status, doc["results"]), (200, [{"title": "it's ?1 -- not SQL"}]))
        # Ownership is kept in D1, outside every namespace: another namespace cannot take the name.
        status, doc = self.emu.d1_raw('SELECT ns, type FROM "era:d1_objects" WHERE physical = ?', ["cfd1a_todos"])
        self.assertEqual(doc["result"][0]["results"]["rows"], [["cfd1a", "table"]])
        status, doc = self.d1("CFD1A", "exec", {"sql": "CREATE TABLE TODOS (x)"})
        self.assertEqual((status, doc["code"]), (409, "name_conflict"))

    def test_hostile_sql_never_reaches_cloudflare(self):
        self.assertEqual(self.d1("cfd1victim", "exec", {"sql": "CREATE TABLE secrets (s)"})[0], 200)
        self.assertEqual(self.d1("cfd1victim", "exec", {"sql": "INSERT INTO secrets VALUES ('x')"})[0], 200)
        self.assertEqual(self.d1("cfd1evil", "exec", {"sql": "CREATE TABLE mine (s)"})[0], 200)
        hostile = [
            ("SELECT * FROM cfd1victim_secrets", None),
            ('DELETE FROM "cfd1victim_secrets"', None),
            ("DROP TABLE cfd1victim_secrets", None),
            ("ATTACH DATABASE 'hostile_marker.db' AS x", "attach_denied"),
            ("UPDATE sqlite_master SET sql = 'hostile_marker'", None),
            ("PRAGMA writable_schema = 1", "pragma_denied"),
            ("PRAGMA table_info(cfd1victim_secrets)", None),
            ("INSERT INTO mine SELECT s FROM cfd1victim_secrets", None),
            ("CREATE TRIGGER t AFTER INSERT ON mine BEGIN DELETE FROM cfd1victim_secrets; END", None),
        ]
        # Names are rewritten into the caller's namespace, so another namespace's table is simply not
        # there (refused on the shadow schema); what the rewrite cannot hide, the guard refuses.
        before = self.rec.sent()
        for sql, code in hostile:
            with self.subTest(sql=sql):
                status, doc = self.d1("cfd1evil", "exec", {"sql": sql})
                self.assertIn(status, (400, 403, 409), doc)
                if code:
                    self.assertEqual(doc["code"], code)
        sent = self.rec.sent()[len(before):]
        for sql, _ in hostile:
            self.assertNotIn(json.dumps(sql)[1:-1], sent)
        self.assertNotIn("hostile_marker", sent)
        self.assertNotIn("cfd1victim_secrets", sent)
        status, doc = self.emu.d1_raw('SELECT s FROM "cfd1victim_secrets"')
        self.assertEqual(doc["result"][0]["results"]["rows"], [["x"]])

    def test_refused_calls_send_nothing_upstream(self):
        self.assertEqual(self.d1("cfd1nul", "query", {"sql": "SELECT 1"})[0], 200)  # the schema is loaded
        before = self.rec.sent()
        for op, body, code in [("exec", {"sql": "SELECT 1;\u0000"}, "nul_in_sql"),
                               ("query", {"sql": "SELECT 1 \u0000"}, "nul_in_sql"),
                               ("batch", {"statements": [{"sql": "SELECT 2"}, {"sql": "SELECT 1;\u0000"}]},
                                "nul_in_sql"),
                               ("batch", {"statements": [{"sql": "SELECT 1"}] * 1001}, "too_many_statements"),
                               ("exec", {"sql": "SELECT 1;" * 1001}, "too_many_statements")]:
            with self.subTest(op=op, code=code):
                status, doc = self.d1("cfd1nul", op, body)
                self.assertEqual((status, doc["code"]), (400, code), doc)
        # Nothing of those calls went up. The proxy's own background work (session expiry, the
        # revocation reload) may have sent its bookkeeping meanwhile, on a slow (sanitized) build:
        # statements on its "era:" tables are not the calls' and are left out.
        sent = []
        for line in self.rec.sent()[len(before):].splitlines():
            try:
                doc = json.loads(line) if line.strip() else {"batch": []}
                sent += [st["sql"] for st in doc.get("batch", [doc])]
            except (ValueError, KeyError, TypeError, AttributeError):
                sent.append(line)  # not a D1 body: it counts
        self.assertEqual([sql for sql in sent if '"era:' not in sql], [])

    def test_limits_are_checked_on_what_would_be_sent(self):
        self.assertEqual(self.d1("cfd1lim", "query", {"sql": "SELECT 1"})[0], 200)  # the schema is loaded
        before = self.rec.sent()
        # A BLOB travels as hex text: 1,000,001 bytes are 2,000,002 characters, past D1's value limit.
        status, doc = self.d1("cfd1lim", "query", {"sql": "SELECT length(?) AS blob_marker",
                                                    "params": [[7] * 1000001]})
        self.assertEqual((status, doc["code"]), (413, "value_too_large"), doc)
        self.assertIn("1000000 bytes", doc["error"])
        # Within the SQL limit as given, past D1's 100,000 bytes once the integers are literals.
        sql = "SELECT 'long_marker" + "x" * 99000 + "'" + ", ?" * 100
        self.assertLess(len(sql), 100000)
        status, doc = self.d1("cfd1lim", "query", {"sql": sql, "params": [-2**63] * 100})
        self.assertEqual((status, doc["code"]), (413, "statement_too_large"), doc)
        sent = self.rec.sent()[len(before):]
        self.assertNotIn("blob_marker", sent)
        self.assertNotIn("long_marker", sent)
        # At the limits, both go up and run.
        status, doc = self.d1("cfd1lim", "query", {"sql": "SELECT length(?) AS n", "params": [[7] * 1000000]})
        self.assertEqual((status, doc["results"]), (200, [{"n": 1000000}]), doc)


if __name__ == "__main__":
    unittest.main()
