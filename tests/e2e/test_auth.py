"""Sessions and authentication, end to end against the real binary (issue 6).

The matrix: every storage and resource route x every kind of caller (no token, garbled, bad
signature, wrong secret, expired, revoked, other namespace, read-only write, read-write, admin),
each with its expected status and code, and — for every refusal — a check that nothing changed.
Every surface (KV, D1, R2, resources) is in the matrix: none may be missing.
"""
import base64
import json
import os
import subprocess
import tempfile
import time
import unittest

import harness

BIN = harness.BIN
SOURCE = harness.ROOT
ADMIN = "e2e-admin-credential-0123456789"


class Proxy(harness.Proxy):
    """The harness's proxy (free port, backend from ERA_TEST_BACKEND) on a given data dir, started."""

    def __init__(self, data_dir, args=(), env=None):
        super().__init__(args, env, data_dir)
        self.start()

    def raw(self, method, path):
        status, headers, data = self.request(method, path)
        return status, data, headers

    def api(self, method, path, token=None, body=None, headers=None, raw_auth=None):
        """(status, parsed JSON, headers), as `token` (or with a raw Authorization header)."""
        h = dict(headers or {})
        if raw_auth is not None:
            h["Authorization"] = raw_auth
        elif token is not None:
            h["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        status, resp_headers, data = self.request(method, path, body, h)
        return status, (json.loads(data) if data else None), resp_headers


def mint(data_dir, session, namespaces, permissions="read_write", ttl=3600, env=None):
    """A token from the CLI, which finds the secret exactly as serve does."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ERA_")}
    full_env.update(env or {})
    out = subprocess.run([BIN, "token", "--data-dir", data_dir, "--session", session, "--namespaces",
                          namespaces, "--permissions", permissions, "--ttl", str(ttl)],
                         capture_output=True, env=full_env, check=True)
    return out.stdout.decode().strip()


def tamper(token):
    """The same token with one MAC byte flipped (a character in the middle of the MAC)."""
    head, mac = token.rsplit(".", 1)
    i = len(mac) // 2
    return head + "." + mac[:i] + ("A" if mac[i] != "A" else "B") + mac[i + 1:]


MINE, THEIRS = "mine", "theirs"

# Each route: (surface, method, path template, body, writes). {ns} is filled per case.
KV_ROUTES = [
    ("kv", "GET", "/api/storage/kv/{ns}/k", None, False),
    ("kv", "GET", "/api/storage/kv/{ns}", None, False),
    ("kv", "PUT", "/api/storage/kv/{ns}/k", {"value": "changed"}, True),
    ("kv", "DELETE", "/api/storage/kv/{ns}/k", None, True),
]
D1_ROUTES = [
    ("d1", "POST", "/api/storage/d1/{ns}/query", {"sql": "SELECT * FROM t"}, False),
    ("d1", "POST", "/api/storage/d1/{ns}/exec", {"sql": "INSERT INTO t (v) VALUES ('changed')"}, True),
    ("d1", "POST", "/api/storage/d1/{ns}/query", {"sql": "DELETE FROM t"}, True),
    ("d1", "POST", "/api/storage/d1/{ns}/batch",
     {"statements": [{"sql": "SELECT 1"}, {"sql": "INSERT INTO t (v) VALUES ('changed')"}]}, True),
]
R2_ROUTES = [
    ("r2", "GET", "/api/storage/r2/{ns}/obj", None, False),
    ("r2", "GET", "/api/storage/r2/{ns}", None, False),
    ("r2", "PUT", "/api/storage/r2/{ns}/obj", {"content": base64.b64encode(b"changed").decode()}, True),
    ("r2", "DELETE", "/api/storage/r2/{ns}/obj", None, True),
]
RESOURCE_ROUTES = [
    ("resources", "GET", "/api/resources/list?namespace={ns}", None, False),
    ("resources", "GET", "/api/resources/stats?namespace={ns}", None, False),
]


class AuthMatrix(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="era-auth-")
        cls.proxy = Proxy(cls.tmp.name, ["--auth", "token"], {"ERA_ADMIN_TOKEN": ADMIN})
        p = cls.proxy
        cls.seed()

        def session(namespaces, permissions, ttl=3600):
            status, body, _ = p.api("POST", "/api/sessions", ADMIN,
                                     {"namespaces": namespaces, "permissions": permissions,
                                      "ttl_seconds": ttl, "language": "python"})
            assert status == 201, body
            return body

        cls.rw = mint(cls.tmp.name, "cli-rw", MINE, "read_write")  # the CLI's token is the read-write one
        cls.ro = session([MINE], "read")["token"]
        revoked = session([MINE], "read_write")
        cls.revoked = revoked["token"]
        assert p.api("DELETE", "/api/sessions/" + revoked["session_id"], ADMIN)[0] == 200
        cls.expired = session([MINE], "read_write", ttl=1)["token"]
        with tempfile.TemporaryDirectory() as other:
            cls.wrong_secret = mint(other, "cli-rw", MINE, "read_write")  # same claims, another secret
        time.sleep(1.5)  # the ttl=1 session is now past its expiry (there is no grace period)

    @classmethod
    def seed(cls):
        p = cls.proxy
        for ns in (MINE, THEIRS):
            assert p.api("PUT", f"/api/storage/kv/{ns}/k", ADMIN, {"value": "orig"})[0] == 200
            p.api("POST", f"/api/storage/d1/{ns}/exec", ADMIN, {"sql": "DROP TABLE IF EXISTS t"})
            assert p.api("POST", f"/api/storage/d1/{ns}/exec", ADMIN,
                          {"sql": "CREATE TABLE t (v TEXT); INSERT INTO t (v) VALUES ('orig')"})[0] == 200
            assert p.api("PUT", f"/api/storage/r2/{ns}/obj", ADMIN,
                          {"content": base64.b64encode(b"orig").decode()})[0] == 200

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.tmp.cleanup()

    def snapshot(self):
        """Everything the matrix could change, read as the admin."""
        p, out = self.proxy, {}
        for ns in (MINE, THEIRS):
            out["kv", ns] = p.api("GET", f"/api/storage/kv/{ns}/k", ADMIN)[1]
            out["d1", ns] = p.api("POST", f"/api/storage/d1/{ns}/query", ADMIN,
                                   {"sql": "SELECT v FROM t ORDER BY v"})[1].get("results")
            out["r2", ns] = p.api("GET", f"/api/storage/r2/{ns}/obj", ADMIN)[1].get("content")
        return out

    def routes(self):
        for group in (KV_ROUTES, D1_ROUTES, R2_ROUTES, RESOURCE_ROUTES):
            yield from group

    def refused(self, token, ns, status, codes, raw_auth=None, writes_only=False):
        before = self.snapshot()
        self.assertEqual(before["kv", MINE]["value"], "orig")
        for surface, method, path, body, writes in self.routes():
            if writes_only and not writes:
                continue
            with self.subTest(route=f"{method} {path}", body=body):
                got, resp, headers = self.proxy.api(method, path.format(ns=ns), token, body, raw_auth=raw_auth)
                self.assertEqual(got, status, resp)
                self.assertIn(resp["code"], codes)
                self.assertIs(resp["success"], False)
                if status == 401:
                    self.assertIn("Bearer", headers.get("WWW-Authenticate", ""))
        self.assertEqual(self.snapshot(), before)

    def test_no_token(self):
        self.refused(None, MINE, 401, {"missing_token"})

    def test_garbled_tokens(self):
        for raw in ("Bearer garbage", "Bearer era1.e30.AAAA", "Basic " + base64.b64encode(b"a:b").decode(),
                    "Bearer", "Bearer " + "A" * 5000, self.rw):
            with self.subTest(raw=raw[:40]):
                self.refused(None, MINE, 401, {"invalid_token"}, raw_auth=raw)

    def test_bad_signature(self):
        self.refused(tamper(self.rw), MINE, 401, {"invalid_token"})

    def test_wrong_secret(self):
        self.refused(self.wrong_secret, MINE, 401, {"invalid_token"})

    def test_expired(self):
        self.refused(self.expired, MINE, 401, {"token_expired"})

    def test_revoked(self):
        self.refused(self.revoked, MINE, 401, {"token_revoked"})

    def test_other_namespace(self):
        self.refused(self.rw, THEIRS, 403, {"namespace_forbidden"})
        self.refused(self.ro, THEIRS, 403, {"namespace_forbidden"})

    def test_read_only_write(self):
        self.refused(self.ro, MINE, 403, {"read_only_token"}, writes_only=True)

    def test_read_only_reads(self):
        for surface, method, path, body, writes in self.routes():
            if writes:
                continue
            with self.subTest(route=f"{method} {path}"):
                status, resp, _ = self.proxy.api(method, path.format(ns=MINE), self.ro, body)
                self.assertEqual(status, 200, resp)

    def test_read_write_and_admin_succeed(self):
        # Last in effect: these change data, so each route's data is re-seeded after.
        try:
            for token, ns in ((self.rw, MINE), (ADMIN, THEIRS)):
                for surface, method, path, body, writes in self.routes():
                    with self.subTest(token="admin" if token == ADMIN else "rw", route=f"{method} {path}"):
                        status, resp, _ = self.proxy.api(method, path.format(ns=ns), token, body)
                        self.assertEqual(status, 200, resp)
                    self.seed()
        finally:
            self.seed()

    def test_scope_filter_on_resources(self):
        status, body, _ = self.proxy.api("GET", "/api/resources/list", self.rw)
        self.assertEqual(status, 200, body)
        self.assertTrue(body["resources"])
        self.assertEqual({r["namespace"] for r in body["resources"]}, {MINE})
        status, body, _ = self.proxy.api("GET", "/api/resources/stats", self.rw)
        self.assertEqual(set(body["by_namespace"]), {MINE})
        status, body, _ = self.proxy.api("GET", "/api/resources/stats", ADMIN)
        self.assertLessEqual({MINE, THEIRS}, set(body["by_namespace"]))

    def test_healthz_and_sdk_are_open(self):
        self.assertEqual(self.proxy.api("GET", "/healthz")[0], 200)
        for name, rel in (("era_storage.py", "sdk/python/era_storage.py"), ("era_storage.js", "sdk/js/era_storage.js")):
            with self.subTest(name=name):
                path = os.path.join(SOURCE, rel)
                status, raw, headers = self.proxy.raw("GET", "/api/sdk/" + name)
                if not os.path.exists(path):
                    self.assertEqual(status, 404)
                    continue
                with open(path, "rb") as f:
                    expected = f.read()
                self.assertEqual(status, 200)
                self.assertEqual(raw, expected)
                self.assertIn("python" if name.endswith(".py") else "javascript", headers["Content-Type"])
        self.assertEqual(self.proxy.api("GET", "/api/sdk/..%2Fmeta.sqlite3")[0], 404)

    def test_refusal_keeps_the_connection_usable(self):
        # A refused write leaves its body unread; the next request on the same client connection
        # must still be answered as itself (the proxy closes rather than parse the leftover bytes).
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=30)
        try:
            body = json.dumps({"value": "x" * 100000}).encode()
            for token, want in ((self.ro, 403), (None, 401), (self.rw, 403)):
                headers = {"Content-Type": "application/json"}
                if token:
                    headers["Authorization"] = "Bearer " + token
                path = f"/api/storage/kv/{THEIRS if token == self.rw else MINE}/k"
                conn.request("PUT", path, body=body, headers=headers)
                resp = conn.getresponse()
                self.assertEqual(resp.status, want)
                resp.read()
                conn.request("GET", f"/api/storage/kv/{MINE}/k", headers={"Authorization": "Bearer " + self.ro})
                resp = conn.getresponse()
                self.assertEqual((resp.status, json.loads(resp.read())["value"]), (200, "orig"))
        finally:
            conn.close()

    def test_tokens_never_logged(self):
        log = self.proxy.log()
        self.assertIn("/api/storage/kv/", log)
        for token in (self.rw, self.ro, self.revoked, self.expired, ADMIN):
            self.assertNotIn(token, log)
            self.assertNotIn(token.rsplit(".", 1)[-1], log)


class Sessions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="era-sessions-")
        cls.proxy = Proxy(cls.tmp.name, ["--auth", "token"], {"ERA_ADMIN_TOKEN": ADMIN})

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.tmp.cleanup()

    def create(self, body, token=ADMIN):
        return self.proxy.api("POST", "/api/sessions", token, body)

    def test_create_returns_token_and_env(self):
        status, s, _ = self.create({"language": "node", "namespaces": ["a", "b"], "permissions": "read",
                                    "ttl_seconds": 600, "metadata": {"vm": 7}})
        self.assertEqual(status, 201, s)
        self.assertEqual(s["language"], "javascript")
        self.assertEqual(s["namespaces"], ["a", "b"])
        self.assertEqual(s["permissions"], "read")
        self.assertEqual(s["metadata"], {"vm": 7})
        self.assertAlmostEqual(s["expires_at"], time.time() + 600, delta=5)
        self.assertEqual(s["env"]["ERA_STORAGE_TOKEN"], s["token"])
        self.assertEqual(s["env"]["ERA_STORAGE_URL"], f"http://127.0.0.1:{self.proxy.port}")
        # The token works, and the session is visible to the admin and to itself, never with its token.
        self.assertEqual(self.proxy.api("GET", "/api/storage/kv/a", s["token"])[0], 200)
        for token in (ADMIN, s["token"]):
            status, got, _ = self.proxy.api("GET", "/api/sessions/" + s["session_id"], token)
            self.assertEqual(status, 200, got)
            self.assertEqual(got["namespaces"], ["a", "b"])
            self.assertNotIn("token", got)
        status, listing, _ = self.proxy.api("GET", "/api/sessions", ADMIN)
        self.assertIn(s["session_id"], [x["session_id"] for x in listing["sessions"]])

    def test_defaults_follow_the_guide(self):
        status, s, _ = self.create({"language": "python"})
        self.assertEqual(status, 201, s)
        self.assertTrue(s["session_id"])
        self.assertEqual(s["namespaces"], "*")
        self.assertEqual(s["permissions"], "read_write")

    def test_bad_requests_change_nothing(self):
        before = self.proxy.api("GET", "/api/sessions?limit=1000", ADMIN)[1]
        cases = [
            ({"language": "ruby"}, "invalid_language"),
            ({"language": 3}, "invalid_language"),
            ({"namespaces": ["ok", "bad/ns"]}, "invalid_namespace"),
            ({"namespaces": []}, "invalid_namespaces"),
            ({"namespaces": "all"}, "invalid_namespaces"),
            ({"permissions": "admin"}, "invalid_permissions"),
            ({"ttl_seconds": 0}, "invalid_ttl"),
            ({"ttl_seconds": 10 ** 12}, "invalid_ttl"),
            ({"ttl_seconds": 1.5}, "invalid_ttl"),
            ({"session_id": "../x"}, "invalid_session_id"),
            ({"metadata": [1]}, "invalid_metadata"),
            ({"admin": True}, "unknown_field"),
        ]
        for body, code in cases:
            with self.subTest(body=body):
                status, resp, _ = self.create(body)
                self.assertEqual(status, 400, resp)
                self.assertEqual(resp["code"], code)
        status, resp, _ = self.proxy.api("POST", "/api/sessions", ADMIN, b"{not json",
                                         {"Content-Type": "application/json"})
        self.assertEqual((status, resp["code"]), (400, "invalid_json"))
        status, resp, _ = self.proxy.api("POST", "/api/sessions", ADMIN, b'{"language": "python"}')
        self.assertEqual((status, resp["code"]), (415, "unsupported_media_type"))
        self.assertEqual(self.proxy.api("GET", "/api/sessions?limit=1000", ADMIN)[1], before)

    def test_session_ids_are_not_reused(self):
        self.assertEqual(self.create({"session_id": "fixed-1"})[0], 201)
        self.assertEqual(self.create({"session_id": "fixed-1"})[0], 409)
        self.assertEqual(self.proxy.api("DELETE", "/api/sessions/fixed-1", ADMIN)[0], 200)
        self.assertEqual(self.create({"session_id": "fixed-1"})[0], 409)
        self.assertEqual(self.proxy.api("GET", "/api/sessions/fixed-1", ADMIN)[0], 404)

    def test_who_may_manage_sessions(self):
        status, s, _ = self.create({"namespaces": ["a"]})
        _, other, _ = self.create({"namespaces": ["a"]})
        token = s["token"]
        self.assertEqual(self.create({"namespaces": ["a"]}, token)[0], 403)
        self.assertEqual(self.create({"namespaces": ["a"]}, None)[0], 401)
        self.assertEqual(self.proxy.api("GET", "/api/sessions", token)[0], 403)
        self.assertEqual(self.proxy.api("GET", "/api/sessions/" + other["session_id"], token)[0], 403)
        self.assertEqual(self.proxy.api("DELETE", "/api/sessions/" + s["session_id"], token)[0], 403)
        self.assertEqual(self.proxy.api("DELETE", "/api/sessions/" + other["session_id"], token)[0], 403)
        self.assertEqual(self.proxy.api("GET", "/api/storage/kv/a", token)[0], 200)  # still live
        self.assertEqual(self.proxy.api("GET", "/api/storage/kv/a", other["token"])[0], 200)

    def test_revocation_is_immediate_and_survives_restart(self):
        _, s, _ = self.create({"namespaces": ["a"]})
        minted = mint(self.tmp.name, "offline-1", "a")
        self.assertEqual(self.proxy.api("GET", "/api/storage/kv/a", minted)[0], 200)
        status, resp, _ = self.proxy.api("DELETE", "/api/sessions/" + s["session_id"], ADMIN)
        self.assertEqual(status, 200, resp)
        self.assertTrue(resp["existed"])
        status, resp, _ = self.proxy.api("DELETE", "/api/sessions/offline-1", ADMIN)
        self.assertEqual(status, 200, resp)
        self.assertFalse(resp["existed"])
        for token in (s["token"], minted):
            self.assertEqual(self.proxy.api("GET", "/api/storage/kv/a", token)[1]["code"], "token_revoked")
        self.proxy.stop()
        self.__class__.proxy = Proxy(self.tmp.name, ["--auth", "token"], {"ERA_ADMIN_TOKEN": ADMIN})
        for token in (s["token"], minted):
            self.assertEqual(self.proxy.api("GET", "/api/storage/kv/a", token)[1]["code"], "token_revoked")
        # The generated secret was kept: a token minted before the restart still works.
        _, live, _ = self.create({"namespaces": ["a"]})
        self.assertEqual(self.proxy.api("GET", "/api/storage/kv/a", live["token"])[0], 200)


    def test_a_token_in_use_is_refused_from_its_revocation_and_its_expiry_on(self):
        # The authenticator keeps the claims of tokens it has verified (auth/authenticator.h); a token
        # used many times must still be refused at once when revoked, and from its expiry on.
        _, s, _ = self.create({"namespaces": ["a"], "permissions": "read"})
        _, short, _ = self.create({"namespaces": ["a"], "permissions": "read", "ttl_seconds": 2})
        for _ in range(3):
            self.assertEqual(self.proxy.api("GET", "/api/storage/kv/a", s["token"])[0], 200)
            self.assertEqual(self.proxy.api("GET", "/api/storage/kv/a", short["token"])[0], 200)
        # Still only its scope and its permissions.
        self.assertEqual(self.proxy.api("GET", "/api/storage/kv/b", s["token"])[1]["code"], "namespace_forbidden")
        self.assertEqual(self.proxy.api("PUT", "/api/storage/kv/a/k", s["token"], {"value": "v"})[1]["code"],
                         "read_only_token")
        self.assertEqual(self.proxy.api("DELETE", "/api/sessions/" + s["session_id"], ADMIN)[0], 200)
        self.assertEqual(self.proxy.api("GET", "/api/storage/kv/a", s["token"])[1]["code"], "token_revoked")
        # The short session expires (there is no grace period): wait for that, bounded.
        deadline = time.monotonic() + 60
        while True:
            status, body, _ = self.proxy.api("GET", "/api/storage/kv/a", short["token"])
            if status != 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual((status, body.get("code")), (401, "token_expired"))
        self.assertGreaterEqual(time.time(), short["expires_at"])


class StartUpPolicy(unittest.TestCase):
    def start(self, args, env=None):
        with tempfile.TemporaryDirectory() as d:
            full_env = {k: v for k, v in os.environ.items() if not k.startswith("ERA_")}
            full_env.update(env or {})
            proc = subprocess.run([BIN, "serve", "--port", "0", "--data-dir", d, *args], capture_output=True,
                                  env=full_env, timeout=30)
            return proc.returncode, proc.stderr.decode()

    def test_off_refused_on_a_public_address(self):
        for env in ({}, {"ERA_ADMIN_TOKEN": ADMIN}):
            code, err = self.start(["--host", "0.0.0.0"], env)
            self.assertNotEqual(code, 0)
            self.assertIn("not a loopback address", err)
        code, err = self.start(["--host", "0.0.0.0"], {"ERA_PROXY_AUTH": "off"})
        self.assertNotEqual(code, 0)

    def test_token_mode_on_a_public_address_needs_an_admin(self):
        code, err = self.start(["--host", "0.0.0.0", "--auth", "token"])
        self.assertNotEqual(code, 0)
        self.assertIn("no admin credential", err)

    def test_readable_credential_files_are_refused(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "admin")
            with open(path, "w") as f:
                f.write(ADMIN + "\n")
            os.chmod(path, 0o644)
            code, err = self.start(["--auth", "token", "--admin-token-file", path])
            self.assertNotEqual(code, 0)
            self.assertIn("readable or writable by others", err)
            self.assertNotIn(ADMIN, err)
            os.chmod(path, 0o600)
            d2 = tempfile.mkdtemp(dir=d)
            p = Proxy(d2, ["--auth", "token", "--admin-token-file", path])
            try:
                self.assertEqual(p.api("GET", "/api/sessions", ADMIN)[0], 200)
            finally:
                p.stop()

    def test_off_on_loopback_warns_and_still_checks_presented_tokens(self):
        with tempfile.TemporaryDirectory() as d:
            p = Proxy(d)
            try:
                self.assertIn("auth is off", p.log())
                self.assertEqual(p.api("PUT", "/api/storage/kv/x/k", None, {"value": "v"})[0], 200)
                _, s, _ = p.api("POST", "/api/sessions", None, {"language": "python", "namespaces": ["a"]})
                status, resp, _ = p.api("PUT", "/api/storage/kv/x/k", s["token"], {"value": "w"})
                self.assertEqual((status, resp["code"]), (403, "namespace_forbidden"))
                self.assertEqual(p.api("GET", "/api/storage/kv/x/k", "garbage")[0], 401)
                self.assertEqual(p.api("GET", "/api/storage/kv/x/k")[1]["value"], "v")
            finally:
                p.stop()


class SdkSendsTheToken(unittest.TestCase):
    """The Python SDK sends ERA_STORAGE_TOKEN as a bearer token (the JS one: js/auth.test.js)."""

    def test_python_sdk(self):
        import era_storage  # harness put sdk/python on the path

        saved = {k: os.environ.get(k) for k in ("ERA_STORAGE_URL", "ERA_STORAGE_TOKEN")}
        with tempfile.TemporaryDirectory() as d:
            p = Proxy(d, ["--auth", "token"], {"ERA_ADMIN_TOKEN": ADMIN})
            try:
                _, s, _ = p.api("POST", "/api/sessions", ADMIN, {"namespaces": ["sdk"]})
                os.environ.update(s["env"])
                self.assertEqual(os.environ["ERA_STORAGE_URL"], p.url)
                era_storage.kv.set("sdk", "k", "v")
                self.assertEqual(era_storage.kv.get("sdk", "k"), "v")
                with self.assertRaises(era_storage.StorageError) as cm:
                    era_storage.kv.set("other", "k", "v")
                self.assertEqual((cm.exception.status, cm.exception.code), (403, "namespace_forbidden"))
                del os.environ["ERA_STORAGE_TOKEN"]
                with self.assertRaises(era_storage.StorageError) as cm:
                    era_storage.kv.get("sdk", "k")
                self.assertEqual((cm.exception.status, cm.exception.code), (401, "missing_token"))
            finally:
                p.stop()
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v


class TokenCommand(unittest.TestCase):
    def run_token(self, d, *args, env=None):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ERA_")}
        full_env.update(env or {})
        return subprocess.run([BIN, "token", "--data-dir", d, *args], capture_output=True, env=full_env)

    def test_json_output_and_refusals(self):
        with tempfile.TemporaryDirectory() as d:
            out = self.run_token(d, "--session", "s-1", "--namespaces", "b,a", "--permissions", "read", "--ttl", "60",
                                 "--json")
            self.assertEqual(out.returncode, 0, out.stderr)
            claims = json.loads(out.stdout)
            self.assertEqual((claims["session_id"], claims["namespaces"], claims["permissions"]),
                             ("s-1", ["a", "b"], "read"))
            self.assertAlmostEqual(claims["expires_at"], time.time() + 60, delta=5)
            # The secret it generated is the one serve then uses: the token works there, read-only.
            p = Proxy(d, ["--auth", "token"], {"ERA_ADMIN_TOKEN": ADMIN})
            try:
                self.assertEqual(p.api("GET", "/api/storage/kv/a", claims["token"])[0], 200)
                self.assertEqual(p.api("PUT", "/api/storage/kv/a/k", claims["token"], {"value": "v"})[0], 403)
                self.assertEqual(p.api("GET", "/api/storage/kv/c", claims["token"])[0], 403)
            finally:
                p.stop()
            # ERA_TOKEN_SECRET wins over the data dir, for serve and token alike.
            env = {"ERA_TOKEN_SECRET": "s" * 40}
            tok = self.run_token(d, "--session", "s-2", "--namespaces", "*", env=env).stdout.decode().strip()
            p = Proxy(d, ["--auth", "token"], dict(env, ERA_ADMIN_TOKEN=ADMIN))
            try:
                self.assertEqual(p.api("GET", "/api/storage/kv/anything", tok)[0], 200)
                self.assertEqual(p.api("GET", "/api/storage/kv/a", claims["token"])[0], 401)
            finally:
                p.stop()
            for args in (["--session", "bad/id", "--namespaces", "a"], ["--session", "s", "--namespaces", "a,,b"],
                         ["--session", "s", "--namespaces", "a", "--permissions", "write"],
                         ["--session", "s", "--namespaces", "a", "--ttl", "0"],
                         ["--session", "s", "--namespaces", "a", "--ttl", str(10 ** 9)], ["--namespaces", "a"]):
                with self.subTest(args=args):
                    out = self.run_token(d, *args)
                    self.assertNotEqual(out.returncode, 0)
                    self.assertEqual(out.stdout, b"")


class RateLimits(unittest.TestCase):
    def test_request_and_byte_buckets(self):
        with tempfile.TemporaryDirectory() as d:
            p = Proxy(d, ["--auth", "token"], {"ERA_ADMIN_TOKEN": ADMIN, "ERA_PROXY_RATE_LIMIT": "1",
                                               "ERA_PROXY_RATE_BURST": "3", "ERA_PROXY_WRITE_BYTES_PER_SEC": "100",
                                               "ERA_PROXY_WRITE_BURST_BYTES": "100"})
            try:
                token = mint(d, "limited", "a")
                other = mint(d, "other", "a")
                # One large write is admitted (the byte bucket goes into debt)...
                self.assertEqual(p.api("PUT", "/api/storage/kv/a/k", token, {"value": "x" * 1000})[0], 200)
                # ...then the session waits for the debt to be paid, whatever it sends.
                status, resp, headers = p.api("GET", "/api/storage/kv/a/k", token)
                self.assertEqual((status, resp["code"]), (429, "rate_limited"))
                self.assertGreaterEqual(int(headers["Retry-After"]), 5)
                # Another session has its own buckets; the admin has none.
                for _ in range(3):
                    self.assertEqual(p.api("GET", "/api/storage/kv/a/k", other)[0], 200)
                status, resp, headers = p.api("GET", "/api/storage/kv/a/k", other)
                self.assertEqual(status, 429)
                self.assertEqual(headers["Retry-After"], "1")
                for _ in range(10):
                    self.assertEqual(p.api("GET", "/api/storage/kv/a/k", ADMIN)[0], 200)
                time.sleep(1.1)
                self.assertEqual(p.api("GET", "/api/storage/kv/a/k", other)[0], 200)
            finally:
                p.stop()


def vm_hwm_kib(pid):
    """The process's peak resident set (VmHWM), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def raw_exchange(port, head, body_chunks=()):
    """Sends a request head and then body chunks on a raw socket; returns (status, parsed JSON body)."""
    import http.client
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        s.sendall(head)
        try:
            for chunk in body_chunks:
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = http.client.HTTPResponse(s)
        resp.begin()
        return resp.status, json.loads(resp.read())


class HostileBodies(unittest.TestCase):
    """Issue 12 #4: no request may make the proxy hold memory out of proportion to the limits."""

    @classmethod
    def setUpClass(cls):
        cls.proxy = harness.Proxy().start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()

    def head(self, path, extra):
        return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"{extra}\r\n").encode()

    def test_the_64_mib_params_array_is_refused_and_memory_stays_small(self):
        path = "/api/storage/d1/hostile/query"
        prefix, suffix = b'{"sql":"SELECT length(?)","params":[[0', b']]}'
        # 64 MiB announced: refused from the Content-Length, before a byte of the body is read.
        status, doc = raw_exchange(self.proxy.port, self.head(path, f"Content-Length: {64 << 20}\r\n"))
        self.assertEqual((status, doc["code"], doc["success"]), (413, "payload_too_large", False))
        # The same sent chunked (no length): cut off once past the route's limit while reading.
        piece = b",0" * (1 << 19)  # 1 MiB
        chunks = [prefix] + [piece] * 40 + [suffix]
        framed = [b"%x\r\n%s\r\n" % (len(c), c) for c in chunks] + [b"0\r\n\r\n"]
        status, doc = raw_exchange(self.proxy.port, self.head(path, "Transfer-Encoding: chunked\r\n"), framed)
        self.assertEqual((status, doc["code"]), (413, "payload_too_large"))
        # Under the byte limit but millions of values: refused while parsing, before the tree is built.
        body = prefix + b",0" * (7 << 20) + suffix
        status, doc = raw_exchange(self.proxy.port, self.head(path, f"Content-Length: {len(body)}\r\n"), [body])
        self.assertEqual((status, doc["code"]), (413, "json_too_large"))
        # Deep nesting: refused at the depth limit.
        body = b'{"sql":"SELECT 1","params":' + b"[" * 100000 + b"]" * 100000 + b"}"
        status, doc = raw_exchange(self.proxy.port, self.head(path, f"Content-Length: {len(body)}\r\n"), [body])
        self.assertEqual((status, doc["code"]), (400, "json_too_deep"))
        # The proxy's peak memory stayed far below the 1.1 GiB one such request used to cost (a
        # sanitized proxy's bound adds the sanitizer's own memory, still well under that cost).
        peak = vm_hwm_kib(self.proxy.proc.pid)
        self.assertLess(peak, harness.rss_bound_kib(192), f"VmHWM {peak} KiB (sanitizer: {harness.SANITIZER or 'none'})")
        # And a body at the limit still works: a 2,000,000-byte BLOB as an array of byte values.
        blob = [7] * 2000000
        status, doc = self.proxy.call("POST", path, {"sql": "SELECT length(?) AS n", "params": [blob]})
        self.assertNotIn(doc.get("code"), ("payload_too_large", "json_too_large", "json_too_deep"), doc)
        if harness.backend() == "local":  # the emulator's own request limits are not the proxy's
            self.assertEqual((status, doc["results"]), (200, [{"n": 2000000}]), str(doc)[:300])

    def test_every_json_route_bounds_its_body(self):
        # Each JSON route refuses an oversized declared body before reading it.
        for path, method in (("/api/sessions", "POST"), ("/api/storage/kv/hostile/k", "PUT"),
                             ("/api/storage/d1/hostile/exec", "POST"), ("/api/storage/d1/hostile/batch", "POST")):
            with self.subTest(path=path):
                head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {1 << 30}\r\n\r\n").encode()
                status, doc = raw_exchange(self.proxy.port, head)
                self.assertEqual((status, doc["code"]), (413, "payload_too_large"))


class CrossOrigin(unittest.TestCase):
    """Issue 12 #5: with auth off (scripts/run's default) a web page must not drive the proxy."""

    @classmethod
    def setUpClass(cls):
        cls.proxy = harness.Proxy().start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()

    def sessions(self):
        return len(self.proxy.call("GET", "/api/sessions?limit=1000")[1]["sessions"])

    def post(self, headers, body=b'{"language": "python"}'):
        status, _, data = self.proxy.request("POST", "/api/sessions", body, headers)
        return status, json.loads(data)

    def test_foreign_origins_hosts_and_content_types_are_refused_and_change_nothing(self):
        before = self.sessions()
        own = f"127.0.0.1:{self.proxy.port}"
        cases = [
            ({"Origin": "null", "Content-Type": "application/json"}, 403, "origin_forbidden"),
            ({"Origin": "http://evil.example", "Content-Type": "application/json"}, 403, "origin_forbidden"),
            ({"Origin": "HTTP://EVIL.EXAMPLE", "Content-Type": "application/json"}, 403, "origin_forbidden"),
            ({"Origin": f"http://evil.example:{self.proxy.port}", "Content-Type": "application/json"}, 403,
             "origin_forbidden"),
            ({"Origin": "http://127.0.0.1:1", "Content-Type": "application/json"}, 403, "origin_forbidden"),
            ({"Host": "evil.example", "Content-Type": "application/json"}, 403, "host_forbidden"),
            ({"Host": f"127.0.0.1.evil.example:{self.proxy.port}", "Content-Type": "application/json"}, 403,
             "host_forbidden"),
            ({"Host": "evil.example", "Origin": "http://evil.example", "Content-Type": "application/json"}, 403,
             "host_forbidden"),  # DNS rebinding: the page's own origin, the proxy's address
            ({"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
            ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
            ({"Content-Type": "multipart/form-data; boundary=b"}, 415, "unsupported_media_type"),
            ({}, 415, "unsupported_media_type"),
            ({"Origin": f"http://{own}", "Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        ]
        for headers, status, code in cases:
            with self.subTest(headers=headers):
                got, doc = self.post(headers)
                self.assertEqual((got, doc["code"], doc["success"]), (status, code, False), doc)
                self.assertTrue(doc["error"])
        self.assertEqual(self.sessions(), before)
        # The explorer's same-origin requests carry the proxy's own origin, and are served.
        for origin in (f"http://{own}", f"http://localhost:{self.proxy.port}"):
            host = origin.split("//", 1)[1]
            got, doc = self.post({"Origin": origin, "Host": host, "Content-Type": "application/json"})
            self.assertEqual(got, 201, doc)
        got, doc = self.post({"Host": f"[::1]:{self.proxy.port}", "Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(got, 201, doc)

    def test_allowed_origins_are_configurable(self):
        with harness.Proxy(env={"ERA_PROXY_ALLOWED_ORIGINS": "https://app.example"}) as p:
            status, _, data = p.request("GET", "/healthz", None, {"Origin": "https://app.example"})
            self.assertEqual(status, 200, data)
            status, _, data = p.request("GET", "/healthz", None, {"Origin": "https://other.example"})
            self.assertEqual((status, json.loads(data)["code"]), (403, "origin_forbidden"))


class BusyPort(unittest.TestCase):
    """Issue 12 #10: a second proxy on a port in use must not start (SO_REUSEPORT would split traffic)."""

    def test_second_start_on_a_busy_port_fails_clearly(self):
        with harness.Proxy() as first, tempfile.TemporaryDirectory() as d:
            full_env = {k: v for k, v in os.environ.items() if not k.startswith("ERA_")}
            proc = subprocess.run([BIN, "serve", "--host", "127.0.0.1", "--port", str(first.port), "--data-dir", d,
                                   "--backend", "local"], capture_output=True, env=full_env, timeout=60)
            self.assertNotEqual(proc.returncode, 0)
            self.assertIn(f"cannot bind 127.0.0.1:{first.port}", proc.stderr.decode())
            for _ in range(20):  # every connection still reaches the first proxy
                self.assertEqual(first.call("GET", "/healthz")[0], 200)


class WidestSession(unittest.TestCase):
    """Issue 12 #10: a session with 1,000 namespaces of 64 bytes has a token every route accepts."""

    def test_max_scope_token_works_on_every_route(self):
        with tempfile.TemporaryDirectory() as d:
            p = Proxy(d, ["--auth", "token"], {"ERA_ADMIN_TOKEN": ADMIN})
            try:
                names = sorted(f"{i:04d}" + "n" * 60 for i in range(1000))
                status, s, _ = p.api("POST", "/api/sessions", ADMIN, {"namespaces": names})
                self.assertEqual(status, 201, s)
                token = s["token"]
                self.assertLess(len(token), 4096)
                ns = names[-1]
                kv, r2, d1 = (f"/api/storage/{t}/{ns}" for t in ("kv", "r2", "d1"))
                calls = [
                    ("PUT", kv + "/k", {"value": "v"}, 200), ("GET", kv + "/k", None, 200), ("GET", kv, None, 200),
                    ("DELETE", kv + "/k", None, 200),
                    ("PUT", r2 + "/o", {"content": "aGk="}, 200), ("GET", r2 + "/o", None, 200),
                    ("HEAD", r2 + "/o", None, 200), ("GET", r2, None, 200), ("DELETE", r2 + "/o", None, 200),
                    ("POST", d1 + "/exec", {"sql": "CREATE TABLE t (a)"}, 200),
                    ("POST", d1 + "/query", {"sql": "SELECT count(*) AS n FROM t"}, 200),
                    ("POST", d1 + "/batch", {"statements": [{"sql": "INSERT INTO t VALUES (1)"}]}, 200),
                    ("GET", f"/api/resources/list?namespace={ns}", None, 200),
                    ("GET", "/api/resources/stats", None, 200),
                    ("GET", "/api/sessions/" + s["session_id"], None, 200),
                ]
                for method, path, body, want in calls:
                    with self.subTest(call=f"{method} {path}"):
                        status, doc, _ = p.api(method, path, token, body)
                        self.assertEqual(status, want, doc)
                # Still held to its scope.
                status, doc, _ = p.api("GET", "/api/storage/kv/outside", token)
                self.assertEqual((status, doc["code"]), (403, "namespace_forbidden"))
            finally:
                p.stop()


if __name__ == "__main__":
    unittest.main()
