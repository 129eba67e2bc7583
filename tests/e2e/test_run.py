"""Running a session's code end to end: the guide's Testing section, and hostile code, in a real sandbox.

Every safety case checks three things: the code was contained (it could not do the thing), the run
reports what happened (exit code, the limit hit, partial output), and the proxy is unharmed (it still
serves, its data is intact).
"""

import json
import os
import threading
import time
import uuid

from harness import ProxyTestCase

import era_storage

MiB = 1 << 20

# Sandboxed helper: every file under / whose name starts with `prefix` (not under /proc, /sys or /usr:
# /proc links back to / and would loop, and /usr is the host's read-only system).
FIND = """
import os
def find(prefix):
    out = []
    for root, dirs, files in os.walk("/"):
        if root == "/":
            dirs[:] = [d for d in dirs if d not in ("proc", "sys", "usr")]
        out += [os.path.join(root, f) for f in files if f.startswith(prefix)]
    return out
"""


def unique(name="run"):
    return f"{name}_{uuid.uuid4().hex[:8]}"


class RunTestCase(ProxyTestCase):
    def session(self, language="python", **extra):
        status, doc = self.proxy.call("POST", "/api/sessions", dict({"language": language}, **extra))
        self.assertIn(status, (200, 201), doc)
        return doc["session_id"]

    def run_code(self, sid, code, expect=200, **fields):
        status, doc = self.proxy.call("POST", f"/api/sessions/{sid}/run", dict({"code": code}, **fields))
        self.assertEqual(status, expect, doc)
        return doc

    def assertProxyHealthy(self):
        status, doc = self.proxy.call("GET", "/healthz")
        self.assertEqual((status, doc["status"]), (200, "ok"))
        ns = unique("health")
        era_storage.kv.set(ns, "k", "still here")
        self.assertEqual(era_storage.kv.get(ns, "k"), "still here")
        self.assertIsNone(self.proxy.proc.poll(), "the proxy process died")


class GuideTestingFlowTest(RunTestCase):
    """The guide's "Testing" section, call for call (curl-equivalent raw HTTP)."""

    def test_python_as_in_the_guide(self):
        status, doc = self.proxy.call("POST", "/api/sessions", {"language": "python"})
        self.assertIn(status, (200, 201), doc)
        session = doc["session_id"]
        status, doc = self.proxy.call("POST", f"/api/sessions/{session}/run", {
            "code": "import era_storage\nera_storage.kv.set(\"test\", \"hello\", \"world\")\n"
                    "print(era_storage.kv.get(\"test\", \"hello\"))"})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["stdout"], "world\n", doc)
        self.assertEqual(doc["stderr"], "")
        self.assertEqual(doc["exit_code"], 0)
        self.assertEqual(doc["session_id"], session)
        self.assertIsInstance(doc["duration"], float)
        self.assertGreater(doc["duration"], 0)
        self.assertIsNone(doc["limit"])
        self.assertIs(doc["stdout_truncated"], False)

        status, stats = self.proxy.call("GET", "/api/resources/stats")
        self.assertEqual(status, 200, stats)
        self.assertGreaterEqual(stats["by_type"]["kv"], 1)
        status, one = self.proxy.call("GET", "/api/resources/stats?namespace=test")
        self.assertEqual((status, one["by_type"]["kv"]), (200, 1), one)
        status, listing = self.proxy.call("GET", "/api/resources/list?namespace=test")
        self.assertEqual([(r["type"], r["key"]) for r in listing["resources"]], [("kv", "hello")])
        # And the value is really in the store, seen from outside the sandbox.
        self.assertEqual(era_storage.kv.get("test", "hello"), "world")

    def test_javascript_as_in_the_guide(self):
        ns = unique("jsguide")
        sid = self.session("javascript")
        doc = self.run_code(sid, (
            "const { KVStorage } = require('./era_storage.js');\n"
            f"await KVStorage.set(\"{ns}\", \"hello\", \"world\");\n"
            f"const value = await KVStorage.get(\"{ns}\", \"hello\");\n"
            "console.log(value);\n"))
        self.assertEqual((doc["stdout"], doc["stderr"], doc["exit_code"]), ("world\n", "", 0), doc)
        status, stats = self.proxy.call("GET", f"/api/resources/stats?namespace={ns}")
        self.assertEqual((status, stats["by_type"]["kv"]), (200, 1), stats)

    def test_the_guide_environment(self):
        sid = self.session()
        doc = self.run_code(sid, "import os, json\nprint(json.dumps({k: v for k, v in os.environ.items() "
                                 "if k.startswith('ERA_') or k == 'MY_VAR'}))", env={"MY_VAR": "mine"})
        env = json.loads(doc["stdout"])
        self.assertEqual(env["ERA_SESSION"], "true")
        self.assertEqual(env["ERA_SESSION_ID"], sid)
        self.assertEqual(env["ERA_LANGUAGE"], "python")
        self.assertEqual(env["ERA_STORAGE_URL"], "unix:///run/era/storage.sock")
        self.assertTrue(env["ERA_STORAGE_TOKEN"])
        self.assertEqual(env["MY_VAR"], "mine")

    def test_files_persist_across_runs_and_go_with_the_session(self):
        sid = self.session()
        self.run_code(sid, "open('notes.txt', 'w').write('from run one')")
        doc = self.run_code(sid, "import os\nprint(open('notes.txt').read(), sorted(os.listdir('.')))")
        self.assertEqual(doc["stdout"], "from run one ['era_storage.js', 'era_storage.py', 'notes.txt']\n")
        workdir = os.path.join(self.proxy.data_dir, "sessions", sid)
        self.assertTrue(os.path.isdir(workdir))
        status, _ = self.proxy.call("DELETE", f"/api/sessions/{sid}")
        self.assertEqual(status, 200)
        self.assertFalse(os.path.exists(workdir))
        self.assertError(self.proxy.call("POST", f"/api/sessions/{sid}/run", {"code": "print(1)"}), 404)


class RunRequestTest(RunTestCase):
    def test_bad_requests_change_nothing(self):
        sid = self.session()
        path = f"/api/sessions/{sid}/run"
        self.assertError(self.proxy.call("POST", path, {}), 400, "invalid_code")
        self.assertError(self.proxy.call("POST", path, {"code": 5}), 400, "invalid_code")
        self.assertError(self.proxy.call("POST", path, {"code": "", "language": "ruby"}), 400, "unknown_field")
        self.assertError(self.proxy.call("POST", path, {"code": "", "timeout": "10"}), 400, "invalid_timeout")
        self.assertError(self.proxy.call("POST", path, {"code": "", "timeout": 0}), 400, "invalid_timeout")
        self.assertError(self.proxy.call("POST", path, {"code": "", "timeout": 100000}), 400, "invalid_timeout")
        self.assertError(self.proxy.call("POST", path, {"code": "", "env": []}), 400, "invalid_env")
        self.assertError(self.proxy.call("POST", path, {"code": "", "env": {"X": 1}}), 400, "invalid_env")
        self.assertError(self.proxy.call("POST", path, {"code": "", "env": {"A=B": "x"}}), 400, "invalid_env")
        self.assertError(self.proxy.call("POST", path, {"code": "", "env": {"ERA_STORAGE_TOKEN": "x"}}), 400,
                         "reserved_env")
        status, _, data = self.proxy.request("POST", path, b"not json", {"Content-Type": "application/json"})
        self.assertEqual(status, 400, data)
        self.assertError(self.proxy.call("POST", path, {"code": "#" * (MiB + 1)}), 413)
        self.assertError(self.proxy.call("POST", "/api/sessions/ses_nope/run", {"code": "print(1)"}), 404)
        # None of it created the session's directory.
        self.assertFalse(os.path.exists(os.path.join(self.proxy.data_dir, "sessions", sid)))

    def test_exit_code_and_stderr_are_the_codes_own(self):
        sid = self.session()
        doc = self.run_code(sid, "import sys\nprint('partial')\nraise SystemExit('bad things')")
        self.assertEqual((doc["exit_code"], doc["stdout"], doc["stderr"]), (1, "partial\n", "bad things\n"))
        doc = self.run_code(sid, "raise ValueError('nope')")
        self.assertEqual(doc["exit_code"], 1)
        self.assertIn("ValueError: nope", doc["stderr"])
        self.assertIsNone(doc["limit"])

    def test_output_that_is_not_utf8_is_still_json(self):
        sid = self.session()
        doc = self.run_code(sid, "import sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe end')")
        self.assertEqual(doc["stdout"], "ok \ufffd\ufffd end")

    def test_runs_of_one_session_take_turns(self):
        sid = self.session()
        results = []

        def one():
            results.append(self.run_code(sid, "import time\nt = time.time()\ntime.sleep(1)\nprint(t, time.time())"))

        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        spans = sorted(tuple(map(float, r["stdout"].split())) for r in results)
        self.assertEqual(len(spans), 2)
        self.assertLessEqual(spans[0][1], spans[1][0], f"runs of one session overlapped: {spans}")


class SandboxSafetyTest(RunTestCase):
    """Hostile code: contained, reported, the proxy unharmed."""

    def test_no_tcp_connection_to_anything(self):
        sid = self.session()
        doc = self.run_code(sid, f"""
import socket, urllib.request
for host, port in (("127.0.0.1", {self.proxy.port}), ("localhost", {self.proxy.port}), ("1.1.1.1", 80),
                   ("10.0.0.1", 80), ("::1", {self.proxy.port})):
    try:
        socket.create_connection((host, port), timeout=2).close()
        print("CONNECTED", host, port)
    except OSError as e:
        print("blocked", host, e.__class__.__name__)
try:
    urllib.request.urlopen("{self.proxy.url}/healthz", timeout=2)
    print("CONNECTED http")
except OSError as e:
    print("blocked http")
""")
        self.assertEqual(doc["exit_code"], 0, doc)
        self.assertNotIn("CONNECTED", doc["stdout"])
        self.assertEqual(doc["stdout"].count("blocked"), 6, doc)
        self.assertProxyHealthy()

    def test_cannot_read_the_proxys_data_dir_or_config(self):
        config = os.path.join(self.proxy.data_dir, "config.toml")
        with open(config, "w") as f:
            f.write('auth_secret = "do-not-leak"\n')
        sid = self.session()
        doc = self.run_code(sid, FIND + f"""
for p in ({self.proxy.data_dir!r}, {config!r}, {os.path.join(self.proxy.data_dir, "meta.sqlite3")!r},
          "/proc/1/root" + {config!r}, "/proc/1/cwd/../../..", "/etc/shadow", "/root"):
    try:
        print("READ", p, open(p).read()[:20] if os.path.isfile(p) else os.listdir(p))
    except OSError as e:
        print("denied", p)
print(find("meta.sqlite3"), find("config.toml"))
""")
        self.assertEqual(doc["exit_code"], 0, doc)
        self.assertNotIn("READ", doc["stdout"].replace("READ /proc/1/cwd/../../..", ""), doc)
        self.assertNotIn("do-not-leak", doc["stdout"])
        self.assertTrue(doc["stdout"].endswith("[] []\n"), doc)
        self.assertProxyHealthy()

    def test_cannot_write_outside_its_working_directory(self):
        sid = self.session()
        marker = unique("escape")
        doc = self.run_code(sid, f"""
import os
for d in ("/", "/usr", "/etc", "/home", "/run/era", "/dev", {self.proxy.data_dir!r}, "/proc/1/root"):
    try:
        with open(os.path.join(d, {marker!r}), "w") as f:
            f.write("x")
        print("WROTE", d)
    except OSError:
        print("refused", d)
open("/tmp/scratch", "w").write("tmp is private and per run")
""")
        self.assertEqual(doc["exit_code"], 0, doc)
        self.assertNotIn("WROTE", doc["stdout"])
        self.assertFalse(os.path.exists(os.path.join(self.proxy.data_dir, marker)))
        self.assertFalse(os.path.exists(os.path.join("/", marker)))
        doc = self.run_code(sid, "import os\nprint(os.path.exists('/tmp/scratch'))")
        self.assertEqual(doc["stdout"], "False\n")
        self.assertProxyHealthy()

    def test_fork_bomb(self):
        sid = self.session()
        start = time.monotonic()
        doc = self.run_code(sid, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
                            timeout=3)
        self.assertLess(time.monotonic() - start, 30)
        self.assertNotEqual(doc["exit_code"], 0)
        self.assertIn(doc["limit"], ("processes", "timeout"), doc)
        self.assertIn("timeout", doc["limits"])
        if doc["cgroup"]:
            self.assertEqual(doc["limit"], "processes", doc)
        self.assertProxyHealthy()

    def test_unbounded_allocation(self):
        sid = self.session()
        doc = self.run_code(sid, "chunks = []\nwhile True:\n    chunks.append(b'x' * (16 << 20))", timeout=20)
        self.assertNotEqual(doc["exit_code"], 0, doc)
        if doc["cgroup"]:
            self.assertEqual(doc["limit"], "memory", doc)
        else:
            self.assertIn("MemoryError", doc["stderr"])
        self.assertProxyHealthy()

    def test_printing_forever(self):
        sid = self.session()
        doc = self.run_code(sid, "print('started', flush=True)\nwhile True:\n    print('y' * 1000)", timeout=20)
        self.assertEqual(doc["limit"], "output", doc["limits"])
        self.assertIs(doc["stdout_truncated"], True)
        self.assertIs(doc["stderr_truncated"], False)
        self.assertEqual(len(doc["stdout"].encode()), MiB)
        self.assertTrue(doc["stdout"].startswith("started\n"))
        self.assertLess(doc["duration"], 15)
        self.assertProxyHealthy()

    def test_timeout_kills_the_whole_tree_and_keeps_partial_output(self):
        sid = self.session()
        doc = self.run_code(sid, """
import os, time
print("before", flush=True)
if os.fork() == 0:
    os.setsid()
    while True:
        open("still_alive", "w").write(str(time.time()))
        time.sleep(0.1)
while True:
    pass
""", timeout=1)
        self.assertEqual((doc["limit"], doc["stdout"]), ("timeout", "before\n"), doc)
        self.assertLess(doc["duration"], 5)
        path = os.path.join(self.proxy.data_dir, "sessions", sid, "still_alive")
        with open(path) as f:
            last = f.read()
        time.sleep(0.5)
        with open(path) as f:
            self.assertEqual(f.read(), last, "a process of the run outlived its timeout")
        self.assertProxyHealthy()

    def test_cannot_read_another_sessions_directory(self):
        victim = self.session()
        self.run_code(victim, "open('secret.txt', 'w').write('victim secret')")
        thief = self.session()
        doc = self.run_code(thief, FIND + f"""
found = []
for p in ("../{victim}/secret.txt", "/home/{victim}/secret.txt", "/proc/1/root/../{victim}/secret.txt"):
    try:
        found.append(open(p).read())
    except OSError:
        pass
print(found, find("secret.txt"))
""")
        self.assertEqual(doc["stdout"], "[] []\n", doc)

    def test_session_scope_holds_inside_the_sandbox(self):
        mine, other = unique("mine"), unique("other")
        sid = self.session(namespaces=[mine])
        doc = self.run_code(sid, f"""
import os, era_storage
era_storage.kv.set({mine!r}, "k", "allowed")
print(era_storage.kv.get({mine!r}, "k"))
try:
    era_storage.kv.set({other!r}, "k", "forbidden")
    print("WROTE other")
except era_storage.StorageError as e:
    print("refused", e.status)
del os.environ["ERA_STORAGE_TOKEN"]
try:
    era_storage.kv.set({other!r}, "k", "no token")
    print("WROTE without token")
except era_storage.StorageError as e:
    print("refused", e.status)
""")
        self.assertEqual(doc["stdout"], "allowed\nrefused 403\nrefused 401\n", doc)
        self.assertIsNone(era_storage.kv.get(other, "k"))


class RunMetricsTest(RunTestCase):
    """Runs are counted in GET /metrics by outcome, and timed (issue 16)."""

    def scrape(self):
        import prom_text

        status, _, data = self.proxy.request("GET", "/metrics")
        self.assertEqual(status, 200, data)
        return prom_text.parse(data.decode())

    def test_runs_by_outcome_and_duration(self):
        sid = self.session()
        before = self.scrape()
        self.assertEqual(self.run_code(sid, "print('ok')")["exit_code"], 0)
        self.assertEqual(self.run_code(sid, "import sys; sys.exit(3)")["exit_code"], 3)
        self.assertEqual(self.run_code(sid, "while True: pass", timeout=1)["limit"], "timeout")
        self.run_code(sid, "print(1)", expect=400, env={"ERA_X": "1"})  # refused before it runs
        after = self.scrape()
        runs = "era_runner_runs_total"

        def delta(**labels):
            return after[runs].value(**labels) - (before[runs].value(**labels) if runs in before else 0)

        self.assertEqual(delta(outcome="exit_zero"), 1)
        self.assertEqual(delta(outcome="exit_nonzero"), 1)
        self.assertEqual(delta(outcome="timeout"), 1)
        self.assertEqual(delta(outcome="reserved_env"), 1)
        h = "era_runner_run_duration_seconds"
        self.assertEqual(after[h].value(h + "_count") - before[h].value(h + "_count"), 3)
        self.assertGreaterEqual(after[h].value(h + "_sum") - before[h].value(h + "_sum"), 1.0)
        req = "era_http_requests_total"
        self.assertEqual(after[req].value(surface="run", method="POST", status_class="2xx")
                         - before[req].value(surface="run", method="POST", status_class="2xx"), 3)
