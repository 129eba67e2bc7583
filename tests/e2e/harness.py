"""Starts the real proxy binary for end-to-end tests.

    with Proxy() as proxy:            # free port, temporary data dir, backend from ERA_TEST_BACKEND
        proxy.url                      # http://127.0.0.1:PORT
        proxy.kill(); proxy.start()    # SIGKILL and restart on the same data dir

ERA_PROXY_BIN names the binary (ctest sets it); default build/era-storage-proxy. Extra environment for
the proxy (e.g. the cloudflare backend's settings) is inherited from this process.
"""

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import unittest
import warnings

# SDK connections kept alive by finished worker threads are closed by the interpreter; not a bug.
warnings.simplefilter("ignore", ResourceWarning)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ERA_PROXY_BIN") or os.path.join(ROOT, "build", "era-storage-proxy")
sys.path.insert(0, os.path.join(ROOT, "sdk", "python"))


def backend():
    return os.environ.get("ERA_TEST_BACKEND", "local")


class Proxy:
    def __init__(self, args=(), env=None, data_dir=None):
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="era-e2e-")
        os.makedirs(self.data_dir, exist_ok=True)
        self.proc = None
        self.url = None
        self.port = None
        self.log_path = os.path.join(self.data_dir, "proxy.log")
        self._stdout_lines = []

    def command(self):
        return [BIN, "serve", "--host", "127.0.0.1", "--port", str(self.port or 0), "--data-dir", self.data_dir,
                "--backend", backend()] + self.args

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
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = dict(headers or {}, **{"Content-Type": "application/json"})
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), data
        finally:
            conn.close()

    def call(self, method, path, body=None, headers=None):
        """(status, parsed JSON body) for a raw request."""
        status, _, data = self.request(method, path, body, headers)
        return status, (json.loads(data) if data else None)


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
