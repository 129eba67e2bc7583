"""scripts/provision-cloudflare and `era-storage-proxy check`'s token verification against a stand-in for Cloudflare's v4 REST API on loopback (the shapes
of the API reference: envelopes, KV namespaces by title, D1 databases by name, R2 buckets), pointed at
by CLOUDFLARE_API_BASE_URL: it checks R2 before creating anything, creates each resource once, finishes
a run that failed half-way when run again, and prints the config block and how to get the S3 keys."""

import http.server
import json
import os
import subprocess
import threading
import unittest
import urllib.parse
import uuid

SCRIPT = os.path.join(os.environ.get("ERA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")),
                      "scripts", "provision-cloudflare")
ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "test-token-value"
USER_TOKEN = "user-owned-token-value"  # verifies at /user/tokens/verify only


class FakeCloudflare(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        self.lock = threading.Lock()
        self.kv = {}        # title -> id
        self.d1 = {}        # name -> uuid
        self.buckets = set()
        self.r2_enabled = True
        self.fail = set()   # "kv", "d1", "r2": the next create of that kind answers 500
        self.calls = []     # (method, path)
        self.bad_auth = []
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def base(self):
        return f"http://127.0.0.1:{self.server_address[1]}/client/v4"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, result=None, errors=(), result_info=None):
        env = {"success": not errors, "errors": [{"code": c, "message": m} for c, m in errors], "messages": [],
               "result": result}
        if result_info:
            env["result_info"] = result_info
        data = json.dumps(env).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        s = self.server
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n)) if n else None
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        path = url.path
        with s.lock:
            s.calls.append((self.command, path))
            auth = self.headers.get("Authorization")
            active = {"id": "tok-id", "status": "active"}
            if (self.command, path) == ("GET", "/client/v4/user/tokens/verify"):
                if auth == "Bearer " + USER_TOKEN:
                    return self.answer(200, active)
                return self.answer(401, errors=[(1000, "Invalid API Token")])
            if (self.command, path) == ("GET", f"/client/v4/accounts/{ACCOUNT}/tokens/verify"):
                if auth == "Bearer " + TOKEN:
                    return self.answer(200, active)
                return self.answer(401, errors=[(1000, "Invalid API Token")])
            if auth != "Bearer " + TOKEN:
                s.bad_auth.append(path)
                return self.answer(401, errors=[(10000, "Authentication error")])
            prefix = f"/client/v4/accounts/{ACCOUNT}"
            if not path.startswith(prefix):
                return self.answer(404, errors=[(7003, "Could not route")])
            rest = path[len(prefix):]
            if rest.startswith("/r2/") and not s.r2_enabled:
                return self.answer(403, errors=[(10042, "Please enable R2 through the Cloudflare Dashboard.")])
            if (self.command, rest) == ("GET", "/r2/buckets"):
                return self.answer(200, {"buckets": [{"name": b, "creation_date": "2026-01-01T00:00:00Z"}
                                                     for b in sorted(s.buckets)]})
            if (self.command, rest) == ("POST", "/r2/buckets"):
                if "r2" in s.fail:
                    s.fail.discard("r2")
                    return self.answer(500, errors=[(10001, "internal error")])
                if body["name"] in s.buckets:
                    return self.answer(409, errors=[(10004, "The bucket you tried to create already exists")])
                s.buckets.add(body["name"])
                return self.answer(200, {"name": body["name"]})
            if (self.command, rest) == ("GET", "/storage/kv/namespaces"):
                # Pages of 2 whatever per_page says, so the script must follow total_pages.
                items = [{"id": i, "title": t} for t, i in sorted(s.kv.items())]
                page, per = int(q.get("page", 1)), 2
                pages = max(1, (len(items) + per - 1) // per)
                return self.answer(200, items[(page - 1) * per:page * per],
                                   result_info={"page": page, "per_page": per, "total_pages": pages,
                                                "count": len(items[(page - 1) * per:page * per]),
                                                "total_count": len(items)})
            if (self.command, rest) == ("POST", "/storage/kv/namespaces"):
                if "kv" in s.fail:
                    s.fail.discard("kv")
                    return self.answer(500, errors=[(10001, "internal error")])
                if body["title"] in s.kv:
                    return self.answer(400, errors=[(10014, "A namespace with this account ID and title already exists")])
                s.kv[body["title"]] = uuid.uuid4().hex
                return self.answer(200, {"id": s.kv[body["title"]], "title": body["title"]})
            if (self.command, rest) == ("GET", "/d1/database"):
                items = [{"uuid": u, "name": n} for n, u in sorted(s.d1.items()) if q.get("name", "") in n]
                return self.answer(200, items)
            if (self.command, rest) == ("POST", "/d1/database"):
                if "d1" in s.fail:
                    s.fail.discard("d1")
                    return self.answer(500, errors=[(7500, "internal error")])
                if body["name"] in s.d1:
                    return self.answer(400, errors=[(7502, "database already exists")])
                s.d1[body["name"]] = str(uuid.uuid4())
                return self.answer(200, {"uuid": s.d1[body["name"]], "name": body["name"]})
            return self.answer(404, errors=[(7003, "Could not route")])

    do_GET = do_POST = handle_any


class WithFakeCloudflare(unittest.TestCase):
    def setUp(self):
        self.cf = FakeCloudflare()
        threading.Thread(target=self.cf.serve_forever, daemon=True).start()

    def tearDown(self):
        self.cf.shutdown()
        self.cf.server_close()


@unittest.skipIf(os.environ.get("ERA_TEST_BACKEND") == "cloudflare", "no proxy involved: runs once, in the local run")
class ProvisionTest(WithFakeCloudflare):

    def run_script(self, *args, token=TOKEN):
        env = dict(os.environ, CLOUDFLARE_ACCOUNT_ID=ACCOUNT, CLOUDFLARE_API_TOKEN=token,
                   CLOUDFLARE_API_BASE_URL=self.cf.base)
        return subprocess.run([SCRIPT, *args], capture_output=True, text=True, env=env, timeout=120)

    def creates(self):
        return [(m, p.split(ACCOUNT, 1)[1]) for m, p in self.cf.calls if m == "POST"]

    def test_fresh_account_gets_all_three_and_the_config_block(self):
        self.cf.kv = {"other-a": "a" * 32, "other-b": "b" * 32}  # a second KV page
        r = self.run_script("era-test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.cf.bad_auth, [])
        self.assertEqual(sorted(self.creates()), [("POST", "/d1/database"), ("POST", "/r2/buckets"),
                                                  ("POST", "/storage/kv/namespaces")])
        self.assertIn(f'kv_namespace_id = "{self.cf.kv["era-test"]}"', r.stdout)
        self.assertIn(f'd1_database_id = "{self.cf.d1["era-test"]}"', r.stdout)
        self.assertIn('r2_bucket = "era-test"', r.stdout)
        self.assertIn(f'account_id = "{ACCOUNT}"', r.stdout)
        # How to get the S3 keys, and never the token itself.
        self.assertIn("Manage R2 API Tokens", r.stderr)
        self.assertIn("ERA_CF_API_TOKEN_ID", r.stderr)
        self.assertNotIn(TOKEN, r.stdout + r.stderr)
        # R2 was checked before anything was created.
        first_post = next(i for i, (m, _) in enumerate(self.cf.calls) if m == "POST")
        self.assertTrue(any(p.endswith("/r2/buckets") and m == "GET" for m, p in self.cf.calls[:first_post]))

    def test_r2_not_enabled_creates_nothing(self):
        self.cf.r2_enabled = False
        r = self.run_script("era-test")
        self.assertEqual(r.returncode, 1)
        self.assertIn("code 10042: Please enable R2 through the Cloudflare Dashboard.", r.stderr)
        self.assertIn("enable R2", r.stderr)
        self.assertEqual(self.creates(), [])
        self.assertEqual((self.cf.kv, self.cf.d1, self.cf.buckets), ({}, {}, set()))

    def test_a_run_that_failed_half_way_is_finished_by_running_it_again(self):
        for failing in ("d1", "r2", "kv"):
            with self.subTest(failing=failing):
                name = f"era-{failing}-half"
                self.cf.fail = {failing}
                r = self.run_script(name)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("HTTP 500", r.stderr)
                created_before = dict(self.cf.kv), dict(self.cf.d1), set(self.cf.buckets)
                r = self.run_script(name)
                self.assertEqual(r.returncode, 0, r.stderr)
                # Each exists exactly once; what the first run made was reused, not made again.
                self.assertIn(name, self.cf.kv)
                self.assertIn(name, self.cf.d1)
                self.assertIn(name, self.cf.buckets)
                if name in created_before[0]:
                    self.assertEqual(self.cf.kv[name], created_before[0][name])
                    self.assertIn(f"KV namespace {name} exists", r.stderr)
                self.assertIn(f'kv_namespace_id = "{self.cf.kv[name]}"', r.stdout)
                self.assertIn(f'd1_database_id = "{self.cf.d1[name]}"', r.stdout)

    def test_rerun_after_success_creates_nothing_and_prints_the_same_ids(self):
        first = self.run_script("era-again")
        self.assertEqual(first.returncode, 0, first.stderr)
        posts = len(self.creates())
        second = self.run_script("era-again")
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertEqual(len(self.creates()), posts)
        self.assertEqual(first.stdout, second.stdout)
        self.assertEqual(second.stderr.count("reused"), 3)

    def test_dry_run_only_reads(self):
        r = self.run_script("--dry-run", "era-dry")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.creates(), [])
        self.assertEqual(r.stderr.count("would be created"), 3)

    def test_bad_token_and_bad_name_are_refused_before_creating(self):
        r = self.run_script("era-test", token="wrong")
        self.assertEqual(r.returncode, 1)
        self.assertIn("code 10000", r.stderr)
        self.assertEqual(self.creates(), [])
        for bad in ("Era", "a", "-era", "era_x", "x" * 64, "era'; rm -rf /"):
            with self.subTest(name=bad):
                r = self.run_script(bad)
                self.assertEqual(r.returncode, 2)
                self.assertIn("not a valid R2 bucket name", r.stderr)
        self.assertEqual(self.creates(), [])


@unittest.skipIf(os.environ.get("ERA_TEST_BACKEND") == "cloudflare", "no emulator involved: runs once, in the local run")
class CheckTokenTest(WithFakeCloudflare):
    """`era-storage-proxy check` verifies account-owned tokens, then user-owned ones, and says which."""


    def check(self, token):
        from harness import BIN
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ERA_CF_", "ERA_PROXY_"))}
        env.update({"ERA_PROXY_BACKEND": "cloudflare", "ERA_CF_ACCOUNT_ID": ACCOUNT, "ERA_CF_API_TOKEN": token,
                    "ERA_CF_KV_NAMESPACE_ID": "k" * 32, "ERA_CF_D1_DATABASE_ID": str(uuid.uuid4()),
                    "ERA_CF_R2_BUCKET": "era-test", "ERA_CF_R2_ACCESS_KEY_ID": "a", "ERA_CF_R2_SECRET_ACCESS_KEY": "s",
                    "ERA_CF_API_BASE": f"{self.cf.base}/accounts/{ACCOUNT}",
                    "ERA_CF_R2_ENDPOINT": f"http://127.0.0.1:{self.cf.server_address[1]}", "ERA_CF_MAX_ATTEMPTS": "1"})
        out = subprocess.run([BIN, "check"], capture_output=True, text=True, env=env, timeout=120)
        line = next(l for l in out.stdout.splitlines() if "API token" in l)
        return line, out.stdout + out.stderr

    def test_account_owned_token(self):
        line, everything = self.check(TOKEN)
        self.assertEqual(line, "ok    API token (an account-owned token, active)")
        self.assertNotIn(("GET", "/client/v4/user/tokens/verify"), self.cf.calls)
        self.assertNotIn(TOKEN, everything)

    def test_user_owned_token(self):
        line, everything = self.check(USER_TOKEN)
        self.assertEqual(line, "ok    API token (a user-owned token, active)")
        self.assertIn(("GET", f"/client/v4/accounts/{ACCOUNT}/tokens/verify"), self.cf.calls)
        self.assertIn(("GET", "/client/v4/user/tokens/verify"), self.cf.calls)
        self.assertNotIn(USER_TOKEN, everything)

    def test_a_token_refused_by_both(self):
        line, everything = self.check("not-a-token")
        self.assertTrue(line.startswith("FAIL  API token: the token verified neither as an account-owned token"), line)
        self.assertIn("code 1000: Invalid API Token", line)
        self.assertNotIn("not-a-token", everything)


if __name__ == "__main__":
    unittest.main()
