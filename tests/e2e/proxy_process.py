"""Starts the real proxy binary (ERA_PROXY_BIN) on a free loopback port with the given environment,
for the cloudflare-mode suites. Standard library only."""

import os
import re
import subprocess
import tempfile
import threading

SOURCE_DIR = os.environ.get("ERA_SOURCE_DIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("ERA_PROXY_BIN") or os.path.join(SOURCE_DIR, "build", "era-storage-proxy")


class Proxy:
    def __init__(self, env, args=()):
        self.tmp = tempfile.TemporaryDirectory(prefix="era-e2e-")
        full = {k: v for k, v in os.environ.items() if not k.startswith(("ERA_CF_", "ERA_PROXY_"))}
        full.update({"ERA_PROXY_PORT": "0", "ERA_PROXY_DATA_DIR": self.tmp.name, "ERA_PROXY_LOG_LEVEL": "warn"})
        full.update(env)
        self.proc = subprocess.Popen([BIN, "serve", *args], env=full, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.stderr = []
        line = self.proc.stdout.readline()
        m = re.search(r"http://([0-9.]+):(\d+)", line)
        if not m:
            err = self.proc.stderr.read()
            self.proc.wait()
            raise RuntimeError(f"proxy did not start: {line!r} {err}")
        self.url = f"http://{m.group(1)}:{m.group(2)}"
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self._drainer.join(timeout=5)
        self.proc.stderr.close()
        self.tmp.cleanup()
