"""Running a session's code end to end: the guide's Testing section, and hostile code, in a real sandbox.

Every safety case checks three things: the code was contained (it could not do the thing), the run
reports what happened (exit code, the limit hit, partial output), and the proxy is unharmed (it still
serves, its data is intact).
"""

import base64
import json
import os
import stat
import subprocess
import threading
import time
import uuid

from harness import BIN, ProxyTestCase, backend, slack

import era_storage

MiB = 1 << 20

# Sandboxed helper: every file under / whose name starts with `prefix` (not under /proc, /sys or /usr:
# /proc links back to / and would loop, and /usr is the host's read-only system).
FIND = """
import os
import stat
import subprocess
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
import stat
import subprocess
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
        self.assertLess(time.monotonic() - start, slack(30))
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
        self.assertLess(doc["duration"], slack(15))
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
""", timeout=slack(3))  # long enough for the interpreter to start and print on a busy machine
        self.assertEqual((doc["limit"], doc["stdout"]), ("timeout", "before\n"), doc)
        self.assertLess(doc["duration"], slack(5))
        # The working directory may be a disk image the host cannot read: look through later runs,
        # which take at least the child's 0.1 s period between them.
        read = "import time\nprint(open('still_alive').read())\ntime.sleep(0.3)"
        last = self.run_code(sid, read)["stdout"]
        self.assertTrue(last.strip(), "the child never wrote")
        self.assertEqual(self.run_code(sid, read)["stdout"], last, "a process of the run outlived its timeout")
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



class HostileEnvTest(RunTestCase):
    """A run's `env` never reaches the host side of the sandbox, and names that steer the loader or
    libc are refused outright (issue 12, critical #1)."""

    def preload_library(self):
        path = os.path.join(os.path.dirname(BIN), "era_test_preload.so")
        self.assertTrue(os.path.exists(path), f"{path} is built with the unit tests (target era_test_preload)")
        with open(path, "rb") as f:
            return f.read()

    def test_ld_preload_of_a_library_the_tenant_wrote_is_refused(self):
        sid = self.session()
        library = self.preload_library()
        doc = self.run_code(sid, f"import base64\nopen('evil.so', 'wb').write(base64.b64decode({base64.b64encode(library).decode()!r}))")
        self.assertEqual(doc["exit_code"], 0, doc)
        workdir = os.path.join(self.proxy.data_dir, "sessions", sid)
        marker = os.path.join(self.proxy.data_dir, unique("escaped"))
        for name, value in (("LD_PRELOAD", "/home/session/evil.so"), ("LD_PRELOAD", os.path.join(workdir, "evil.so")),
                            ("LD_LIBRARY_PATH", "/home/session"), ("LD_AUDIT", "/home/session/evil.so"),
                            ("ld_preload", "/home/session/evil.so"), ("GCONV_PATH", "/home/session"),
                            ("GLIBC_TUNABLES", "glibc.malloc.check=3"), ("MALLOC_CHECK_", "3"), ("LOCPATH", "/home/session")):
            status, err = self.proxy.call("POST", f"/api/sessions/{sid}/run", {
                "code": "open('ran', 'w').write('x')", "env": {name: value, "ESCAPE_MARKER": marker}})
            self.assertError((status, err), 400, "unsafe_env")
            self.assertIn(name, err["error"])
            self.assertIn("refused", err["error"])
        self.assertFalse(os.path.exists(marker), "the library was loaded on the host")
        # Nothing ran: the refused code would have left 'ran'.
        doc = self.run_code(sid, "import os\nprint(sorted(os.listdir('.')))")
        self.assertEqual(doc["stdout"], "['era_storage.js', 'era_storage.py', 'evil.so']\n", doc)
        self.assertProxyHealthy()

    def test_a_harmless_variable_is_visible_and_host_paths_are_not(self):
        sid = self.session()
        self.run_code(sid, "open('mine.txt', 'w').write('x')")
        workdir = os.path.join(self.proxy.data_dir, "sessions", sid)
        doc = self.run_code(sid, f"""
import os
import stat
import subprocess
print(os.environ.get("GREETING"), os.environ.get("PYTHONPATH"))
for p in ({workdir!r}, {os.path.join(workdir, "mine.txt")!r}, {self.proxy.data_dir!r}, {BIN!r},
          {os.path.dirname(BIN)!r}, "/proc/1/root" + {workdir!r}, "/root", "/var", "/etc/passwd"):
    print(p, os.path.exists(p))
""", env={"GREETING": "hello", "PYTHONPATH": "/home/session"})
        lines = doc["stdout"].splitlines()
        self.assertEqual(lines[0], "hello /home/session", doc)
        self.assertTrue(all(line.endswith(" False") for line in lines[1:]), doc)
        self.assertEqual(len(lines), 10, doc)

    def test_env_values_that_look_like_options_stay_values(self):
        sid = self.session()
        doc = self.run_code(sid, "import os\nprint(os.environ['A'], os.environ['B'], os.path.exists('/etc/passwd'))",
                            env={"A": "--bind", "B": "/", "C": "--", "D": "--ro-bind"})
        self.assertEqual(doc["stdout"], "--bind / False\n", doc)

    def test_bad_names_and_values(self):
        sid = self.session()
        path = f"/api/sessions/{sid}/run"
        for env in ({"A=B": "x"}, {"": "x"}, {"A\u0000B": "x"}, {"A": "x\u0000y"}, {"1A": "x"}, {"A B": "x"},
                    {"A-B": "x"}, {"É": "x"}):
            status, err = self.proxy.call("POST", path, {"code": "open('ran', 'w').write('x')", "env": env})
            self.assertError((status, err), 400, "invalid_env")
        self.assertFalse(os.path.exists(os.path.join(self.proxy.data_dir, "sessions", sid)))

    def test_seccomp_holds_inside_and_ordinary_code_runs(self):
        sid = self.session()
        doc = self.run_code(sid, """
import ctypes, errno, threading
libc = ctypes.CDLL(None, use_errno=True)
out = []
for name, nr, args in (("ptrace", 101, (0, 0, 0, 0)), ("mount", 165, (0, 0, 0, 0, 0)), ("keyctl", 250, (0, 0, 0, 0, 0)),
                       ("bpf", 321, (0, 0, 0)), ("unshare", 272, (0x10000000,))):
    rc = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    out.append((name, rc, errno.errorcode.get(ctypes.get_errno())))
t = threading.Thread(target=out.append, args=("thread",)); t.start(); t.join()
print(out)
""")
        self.assertEqual(doc["stdout"], "[('ptrace', -1, 'EPERM'), ('mount', -1, 'EPERM'), ('keyctl', -1, 'EPERM'), "
                                        "('bpf', -1, 'EPERM'), ('unshare', -1, 'EPERM'), 'thread']\n", doc)
        js = self.session("javascript")
        doc = self.run_code(js, "const { Worker } = require('worker_threads');\n"
                                "const w = new Worker('require(\"worker_threads\").parentPort.postMessage(6*7)', {eval: true});\n"
                                "console.log(await new Promise((ok) => w.on('message', ok)));\n"
                                "console.log(require('child_process').execFileSync('/bin/echo', ['child']).toString().trim());")
        self.assertEqual((doc["stdout"], doc["exit_code"]), ("42\nchild\n", 0), doc)


ADMIN = "e2e-run-admin-credential-0123456789"


def token_claims(token):
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


class RunTokenScopeTest(RunTestCase):
    """A run's token never exceeds the rights of the caller that started it (issue 12, #10)."""

    proxy_args = ("--auth", "token")
    proxy_env = {"ERA_ADMIN_TOKEN": ADMIN}

    def api(self, method, path, token, body=None):
        return self.proxy.call(method, path, body, {"Authorization": "Bearer " + token})

    def mint(self, session, namespaces, permissions, ttl):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ERA_")}
        out = subprocess.run([BIN, "token", "--data-dir", self.proxy.data_dir, "--session", session, "--namespaces",
                              namespaces, "--permissions", permissions, "--ttl", str(ttl)],
                             capture_output=True, env=env, check=True)
        return out.stdout.decode().strip()

    PROBE = """
import base64, json, os, era_storage
tok = os.environ["ERA_STORAGE_TOKEN"].split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)))
print(json.dumps({"ns": claims["ns"], "perm": claims["perm"], "exp": claims["exp"]}))
for ns in (A, B):
    try:
        era_storage.kv.set(ns, "k", "written by the run")
        print(ns, "write ok")
    except era_storage.StorageError as e:
        print(ns, "write", e.status)
    try:
        era_storage.kv.get(ns, "k")
        print(ns, "read ok")
    except era_storage.StorageError as e:
        print(ns, "read", e.status)
"""

    def probe(self, a, b):
        return f"A, B = {a!r}, {b!r}\n" + self.PROBE

    def test_read_only_or_narrower_callers_get_read_only_or_narrower_runs(self):
        a, b = unique("a"), unique("b")
        status, s = self.api("POST", "/api/sessions", ADMIN, {"language": "python", "ttl_seconds": 7200})
        self.assertEqual(status, 201, s)
        sid = s["session_id"]
        probe = self.probe(a, b)

        def run(token):
            status, doc = self.api("POST", f"/api/sessions/{sid}/run", token, {"code": probe})
            self.assertEqual(status, 200, doc)
            self.assertEqual(doc["exit_code"], 0, doc)
            first, *rest = doc["stdout"].splitlines()
            return json.loads(first), rest

        # A read-only token cannot start a run at all (running code is a write: the route is declared
        # so); nothing runs.
        status, doc = self.api("POST", f"/api/sessions/{sid}/run", self.mint(sid, "*", "read", 600), {"code": probe})
        self.assertEqual((status, doc["code"]), (403, "read_only_token"), doc)
        # A token scoped to one namespace gets a run scoped to it, expiring with the caller's token.
        claims, lines = run(self.mint(sid, a, "read_write", 600))
        self.assertLessEqual(claims["exp"], time.time() + 605)
        self.assertEqual((claims["ns"], claims["perm"]), ([a], "read_write"))
        self.assertEqual(lines, [f"{a} write ok", f"{a} read ok", f"{b} write 403", f"{b} read 403"])
        # The session's own token, and the admin, pass the session's rights on (and its expiry).
        for token in (s["token"], ADMIN):
            claims, lines = run(token)
            self.assertEqual((claims["ns"], claims["perm"], claims["exp"]), ("*", "read_write", s["expires_at"]))
            self.assertEqual(lines, [f"{a} write ok", f"{a} read ok", f"{b} write ok", f"{b} read ok"])

    def test_a_read_only_session_stays_read_only_whoever_runs_it(self):
        a = unique("ro")
        status, s = self.api("POST", "/api/sessions", ADMIN, {"language": "python", "permissions": "read",
                                                              "namespaces": [a]})
        self.assertEqual(status, 201, s)
        # Its own (read-only) token cannot start a run; the admin, and even a read_write token minted
        # for it, run with no more than the session's own rights.
        status, doc = self.api("POST", f"/api/sessions/{s['session_id']}/run", s["token"],
                               {"code": self.probe(a, unique("other"))})
        self.assertEqual((status, doc["code"]), (403, "read_only_token"), doc)
        for token in (ADMIN, self.mint(s["session_id"], "*", "read_write", 600)):
            status, doc = self.api("POST", f"/api/sessions/{s['session_id']}/run", token,
                                   {"code": self.probe(a, unique("other"))})
            self.assertEqual(status, 200, doc)
            claims = json.loads(doc["stdout"].splitlines()[0])
            self.assertEqual((claims["ns"], claims["perm"]), ([a], "read"), doc)

    def test_session_url_never_comes_from_the_host_header(self):
        for host in ("evil.example", "evil.example:8787", "127.0.0.1:1", "[::1]:9", ""):
            status, s = self.api("POST", "/api/sessions", ADMIN, {"language": "python"}) if not host else \
                self.proxy.call("POST", "/api/sessions", {"language": "python"},
                                {"Authorization": "Bearer " + ADMIN, "Host": host})
            self.assertEqual(status, 201, s)
            self.assertEqual(s["env"]["ERA_STORAGE_URL"], f"http://127.0.0.1:{self.proxy.port}", host)


class PublicUrlTest(RunTestCase):
    proxy_args = ("--public-url", "https://storage.example.internal")

    def test_configured_public_url_wins(self):
        # A loopback Host naming another port (auth is off: a foreign Host is refused outright, 403).
        status, s = self.proxy.call("POST", "/api/sessions", {"language": "python"}, {"Host": "127.0.0.1:1"})
        self.assertEqual(status, 201, s)
        self.assertEqual(s["env"]["ERA_STORAGE_URL"], "https://storage.example.internal")


class FileModesTest(RunTestCase):
    """Tenants' data is the proxy's alone: no file or directory the proxy makes is open to other local
    users (issue 12, #10). The harness's own proxy.log is not the proxy's."""

    def test_data_dir_and_everything_in_it(self):
        ns = unique("modes")
        era_storage.kv.set(ns, "k", "kv secret")
        era_storage.r2.put(ns, "obj", b"r2 secret")
        era_storage.d1.exec(ns, "CREATE TABLE t (v TEXT)")
        era_storage.d1.exec(ns, "INSERT INTO t VALUES ('d1 secret')")
        sid = self.session()
        self.run_code(sid, "import os\nos.mkdir('sub')\nopen('sub/f', 'w').write('run secret')")
        seen = []
        mode = os.stat(self.proxy.data_dir).st_mode & 0o777
        self.assertEqual(mode & 0o077, 0, oct(mode))
        for root, dirs, files in os.walk(self.proxy.data_dir):
            for name in dirs + files:
                path = os.path.join(root, name)
                if path == self.proxy.log_path:
                    continue
                st = os.lstat(path)
                if stat.S_ISSOCK(st.st_mode):
                    # Connectable by the sandbox's uid (it is bound into the sandbox), reached only
                    # through the 0700 data dir on the host.
                    continue
                seen.append(name)
                self.assertEqual(st.st_mode & 0o077, 0, f"{path} is {oct(st.st_mode & 0o777)}")
        for expected in ("sessions", sid, "token_secret"):
            self.assertIn(expected, seen)
        # The session's files, on the host or (with a disk quota) in its image.
        self.assertTrue({"era_storage.py", "sub", "f"} <= set(seen) or "disk.img" in seen, seen)
        doc = self.run_code(sid, "import os\nprint([oct(os.stat(p).st_mode & 0o777) for p in "
                                 "('.', 'sub', 'sub/f', 'era_storage.py', 'era_storage.js')])")
        self.assertEqual(doc["stdout"], "['0o700', '0o700', '0o600', '0o600', '0o600']\n", doc)
        if backend() == "local":
            self.assertIn("meta.sqlite3", seen)
            self.assertTrue(any(n.endswith("-wal") for n in seen), seen)

    def test_a_new_data_dir_is_0700_and_an_open_one_is_narrowed(self):
        import tempfile
        with tempfile.TemporaryDirectory() as parent:
            os.chmod(parent, 0o755)
            opened = os.path.join(parent, "open")
            os.mkdir(opened)
            os.chmod(opened, 0o755)
            for data_dir in (os.path.join(parent, "new", "nested"), opened):
                # Started directly: the harness would make the directory (and its log) itself.
                proc = subprocess.Popen([BIN, "serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", data_dir,
                                         "--backend", "local"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                try:
                    self.assertIn("listening on", proc.stdout.readline().decode())
                    self.assertEqual(os.stat(data_dir).st_mode & 0o777, 0o700, data_dir)
                    for name in os.listdir(data_dir):
                        st = os.lstat(os.path.join(data_dir, name))
                        if not stat.S_ISSOCK(st.st_mode):
                            self.assertEqual(st.st_mode & 0o077, 0, f"{name} is {oct(st.st_mode & 0o777)}")
                finally:
                    proc.kill()
                    proc.wait()
                    proc.stdout.close()


class DiskQuotaTest(RunTestCase):
    """A session's working directory holds at most runner.disk_quota_mb on disk (issue 12, #11)."""

    proxy_env = {"ERA_PROXY_RUNNER_DISK_QUOTA_MB": "16"}

    def test_writing_past_the_quota_fails_cleanly_and_fills_nothing(self):
        if os.geteuid() != 0:
            self.assertIn("disk quota of sessions' working directories is NOT enforced", self.proxy.log())
            return
        sid = self.session()
        doc = self.run_code(sid, "open('keep.bin', 'wb').write(b'k' * (4 << 20))\nprint('kept')")
        self.assertEqual((doc["stdout"], doc["limits"]), ("kept\n", []), doc)
        self.assertLessEqual(doc["disk"]["size_bytes"], 16 << 20)
        doc = self.run_code(sid, """
import errno
try:
    with open('big.bin', 'wb') as f:
        while True:
            f.write(b'x' * (1 << 20))
            f.flush()
except OSError as e:
    print('stopped:', errno.errorcode[e.errno], e.strerror)
""")
        self.assertEqual(doc["stdout"], "stopped: ENOSPC No space left on device\n", doc)
        self.assertEqual((doc["limit"], doc["exit_code"]), ("disk", 0), doc)
        image = os.path.join(self.proxy.data_dir, "sessions", sid, "disk.img")
        self.assertLessEqual(os.stat(image).st_blocks * 512, 16 << 20)
        # The session keeps working, its files kept; freeing space frees it.
        doc = self.run_code(sid, "import os, era_storage\nos.remove('big.bin')\n"
                                 "print(os.path.getsize('keep.bin'), callable(era_storage.kv.get))")
        self.assertEqual((doc["stdout"], doc["limits"]), ("4194304 True\n", []), doc)
        self.assertProxyHealthy()
        status, _ = self.proxy.call("DELETE", f"/api/sessions/{sid}")
        self.assertEqual(status, 200)
        self.assertFalse(os.path.exists(image))
