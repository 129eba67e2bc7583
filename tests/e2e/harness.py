"""The one launcher of the real proxy binary for every end-to-end suite, and one HTTP helper.

    with Proxy() as proxy:            # free port, temporary data dir, backend from ERA_TEST_BACKEND
        proxy.url                      # http://127.0.0.1:PORT
        proxy.kill(); proxy.start()    # SIGKILL and restart on the same data dir
    Proxy.configured(env)              # started, configured by `env` alone (see there)
    call("GET", proxy.url + "/healthz")                 # (status, parsed JSON body)
    request("PUT", url, b"bytes", {"X-A": "b"})          # (status, headers, raw body)

ERA_PROXY_BIN names the binary (ctest sets it); default build/era-storage-proxy. Extra environment for
the proxy (e.g. the cloudflare backend's settings) is inherited from this process.
"""

import http.client
import json
import urllib.parse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import warnings

# SDK connections kept alive by finished worker threads are closed by the interpreter; not a bug.
warnings.simplefilter("ignore", ResourceWarning)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ERA_PROXY_BIN") or os.path.join(ROOT, "build", "era-storage-proxy")
sys.path.insert(0, os.path.join(ROOT, "sdk", "python"))


def backend():
    return os.environ.get("ERA_TEST_BACKEND", "local")


# The sanitizer the proxy under test was built with: "asan" (AddressSanitizer + UBSan), "tsan"
# (ThreadSanitizer) or "" (ctest sets it from the build tree; see tests/e2e/tests.cmake). A bound on the
# proxy's memory or time must allow for the sanitizer's own cost: ASan keeps freed memory in a
# quarantine (256 MiB) and shadows every byte; TSan shadows memory 4-8 times over and runs code
# several times slower.
SANITIZER = os.environ.get("ERA_TEST_SANITIZER", "")


def rss_bound_kib(unsanitized_mib):
    """A bound on the proxy's peak resident set for this build, from the bound for a plain build."""
    extra = {"asan": 512, "tsan": 1024}.get(SANITIZER, 0)
    return (unsanitized_mib + extra) * 1024


def slack(seconds):
    """A bound on how long the proxy may take, scaled for this build (a sanitized proxy is slower, and
    the sanitized suites run on a machine that is busy with other work)."""
    return seconds * {"asan": 3, "tsan": 6}.get(SANITIZER, 1)


def request(method, url, body=None, headers=None, timeout=120):
    """(status, headers dict, raw body) of one request to an absolute URL; a dict or list body is sent
    as JSON with its Content-Type. Never raises for an HTTP error status."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        path = parts.path + ("?" + parts.query if parts.query else "")
        conn.request(method, path or "/", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def call(method, url, body=None, headers=None):
    """(status, parsed JSON body or None) of one request to an absolute URL."""
    status, _, data = request(method, url, body, headers)
    return status, (json.loads(data) if data else None)


class Proxy:
    def __init__(self, args=(), env=None, data_dir=None, clean_env=False):
        """`clean_env`: the proxy is configured by `env` alone: no inherited ERA_PROXY_* / ERA_CF_*
        setting and no --backend flag (the cloudflare suites point it at their own upstreams)."""
        self.args = list(args)
        self.clean_env = clean_env
        self.env = {k: v for k, v in os.environ.items()
                    if not (clean_env and k.startswith(("ERA_CF_", "ERA_PROXY_")))}
        if clean_env:
            self.env["ERA_PROXY_LOG_LEVEL"] = "warn"
        self.env.update(env or {})
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="era-e2e-")
        os.makedirs(self.data_dir, exist_ok=True)
        self.proc = None
        self.url = None
        self.port = None
        self.log_path = os.path.join(self.data_dir, "proxy.log")
        self._stdout_lines = []

    @classmethod
    def configured(cls, env, args=()):
        """A started proxy configured by `env` alone (clean_env)."""
        return cls(args, env, clean_env=True).start()

    def command(self):
        cmd = [BIN, "serve", "--host", "127.0.0.1", "--port", str(self.port or 0), "--data-dir", self.data_dir]
        return cmd + ([] if self.clean_env else ["--backend", backend()]) + self.args

    def start(self, timeout=30):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=log, env=self.env)
        log.close()
        line = self._read_line(timeout)
        if not line or "listening on http://" not in line:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"proxy did not start: {line!r}\n{self.log()[-4000:]}")
        self.url = line.split("listening on ", 1)[1].split()[0]
        self.port = int(self.url.rsplit(":", 1)[1])
        # Keep draining stdout so the proxy never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _read_line(self, timeout):
        result = []
        t = threading.Thread(target=lambda: result.append(self.proc.stdout.readline().decode()), daemon=True)
        t.start()
        t.join(timeout)
        return result[0] if result else None

    def _drain(self):
        for raw in self.proc.stdout:
            self._stdout_lines.append(raw.decode(errors="replace"))

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    @property
    def stderr(self):
        """The proxy's log (its stderr) so far, as lines."""
        return self.log().splitlines(keepends=True)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def kill(self):
        return self.stop(signal.SIGKILL)

    def close(self):
        # SIGKILL: fast, and harmless here (graceful stop has tests of its own).
        self.kill()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # Raw HTTP, for tests that look at statuses and headers rather than SDK results.
    def request(self, method, path, body=None, headers=None):
        return request(method, f"http://127.0.0.1:{self.port}{path}", body, headers)

    def api(self, method, path, token=None, body=None, headers=None):
        """(status, response headers, raw body) of a request sent as `token` (a bearer credential)."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        return self.request(method, path, body, h)

    def call(self, method, path, body=None, headers=None):
        """(status, parsed JSON body) for a raw request."""
        return call(method, f"http://127.0.0.1:{self.port}{path}", body, headers)

    def wait_in_flight(self, n, timeout):
        """Waits until the proxy handles at least `n` requests besides the /metrics scrape that asks
        (an event to wait on before signalling a proxy mid-request); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, _, body = self.request("GET", "/metrics")
            for line in body.decode().splitlines():
                if line.startswith("era_http_requests_in_flight ") and float(line.split()[1]) >= n + 1:
                    return True
            time.sleep(0.02)
        return False


class ProxyTestCase(unittest.TestCase):
    """One proxy for the whole class; the SDK is pointed at it through ERA_STORAGE_URL."""

    proxy_args = ()
    proxy_env = None

    @classmethod
    def setUpClass(cls):
        cls.proxy = Proxy(cls.proxy_args, cls.proxy_env).start()
        cls._saved_url = os.environ.get("ERA_STORAGE_URL")
        os.environ["ERA_STORAGE_URL"] = cls.proxy.url

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        if cls._saved_url is None:
            os.environ.pop("ERA_STORAGE_URL", None)
        else:
            os.environ["ERA_STORAGE_URL"] = cls._saved_url

    def assertError(self, result, status, code=None):
        got_status, doc = result
        self.assertEqual(got_status, status, doc)
        self.assertIs(doc.get("success"), False, doc)
        self.assertTrue(doc.get("error"), doc)
        if code:
            self.assertEqual(doc.get("code"), code, doc)
