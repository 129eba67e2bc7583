"""A counting pass-through between the proxy and Cloudflare's emulator: every request the proxy sends
upstream goes through it and is counted by endpoint class at the emulator side (not by the proxy's own
counters), which is what Cloudflare's rate limit sees. It can also answer the next REST calls with 429
itself, as Cloudflare does once a token is over its limit.

    with Emulator() as emu, Counter(emu.proxy_env()) as counter:
        env = counter.proxy_env()          # the same, with the API base and R2 endpoint through here
        counter.counts()                   # {"kv": n, "d1": n, "r2_s3": n, "other": n, "429": n, ...}
        counter.by_endpoint()              # {"kv PUT values": n, "d1 POST raw": n, ...}
        counter.inject_429(n=1, retry_after=2)
        counter.reset()

Classes: "kv" and "d1" are REST calls (they count against Cloudflare's limit), "r2_s3" is R2's S3 API
(it does not), "other" any other REST path. "429" counts the 429 answers sent (injected or from the
emulator). S3 requests keep their Host header, so SigV4 signatures still verify. Standard library only.
"""

import http.client
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Hop-by-hop headers are not forwarded (RFC 9110 7.6.1); Content-Length is set from the body read.
HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
       "content-length"}


def classify(path):
    """(class, endpoint) of an upstream request path."""
    p = urllib.parse.urlsplit(path).path
    if "/cdn-cgi/local/r2/s3" in p:
        return "r2_s3", "S3"
    if "/storage/kv/namespaces/" in p:
        rest = p.split("/storage/kv/namespaces/", 1)[1].split("/")
        return "kv", "/".join(rest[1:3]) if len(rest) > 2 and rest[1] == "bulk" else (rest[1] if len(rest) > 1 else "")
    if "/d1/database/" in p:
        rest = p.split("/d1/database/", 1)[1].split("/")
        return "d1", rest[1] if len(rest) > 1 else ""
    return "other", p.rsplit("/", 1)[-1]


class Counter:
    def __init__(self, env):
        """`env`: the proxy's ERA_CF_* settings pointing at the emulator (Emulator.proxy_env(), or the
        environment with_emulator.py sets)."""
        self.env = {k: v for k, v in env.items() if k.startswith("ERA_CF_") or k == "ERA_PROXY_BACKEND"}
        up = urllib.parse.urlsplit(self.env["ERA_CF_API_BASE"])
        self.up_host, self.up_port = up.hostname, up.port
        self.lock = threading.Lock()
        self._counts = {}
        self._endpoints = {}
        self._inject = []  # Retry-After values of the 429s to answer next, in order
        self.local = threading.local()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _reply(self, status, headers, body):
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                cls, endpoint = classify(self.path)
                injected = None
                with outer.lock:
                    if cls in ("kv", "d1", "other") and outer._inject:
                        injected = outer._inject.pop(0)
                    outer._count(cls, f"{cls} {self.command} {endpoint}", 429 if injected is not None else None)
                if injected is not None:
                    env = b'{"success":false,"errors":[{"code":971,"message":"Please wait and consider throttling your request speed"}],"messages":[],"result":null}'
                    return self._reply(429, [("Content-Type", "application/json"), ("Retry-After", str(injected))], env)
                status, headers, data = outer._forward(self.command, self.path, self.headers, body, cls == "r2_s3")
                if status == 429:
                    with outer.lock:
                        outer._count(None, None, 429)
                self._reply(status, headers, data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that went away mid-request is not the counter's problem

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _count(self, cls, endpoint, status):
        if cls:
            self._counts[cls] = self._counts.get(cls, 0) + 1
            self._endpoints[endpoint] = self._endpoints.get(endpoint, 0) + 1
        if status == 429:
            self._counts["429"] = self._counts.get("429", 0) + 1

    def _forward(self, method, path, headers, body, keep_host):
        # S3 requests keep their Host (it is signed); REST requests name the emulator's own host, so
        # that whatever the emulator forwards internally (its Worker hands D1 calls to the explorer on
        # the request's host) stays inside it and is not counted twice here.
        conn = getattr(self.local, "conn", None)
        for attempt in range(2):  # a kept-alive connection the emulator closed: once more on a new one
            if conn is None:
                conn = http.client.HTTPConnection(self.up_host, self.up_port, timeout=120)
                self.local.conn = conn
            try:
                conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                if not keep_host:
                    conn.putheader("Host", f"{self.up_host}:{self.up_port}")
                for k, v in headers.items():
                    if k.lower() not in HOP and (keep_host or k.lower() != "host"):
                        conn.putheader(k, v)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, resp.getheaders(), data
            except (http.client.HTTPException, OSError):
                conn.close()
                conn = None
                self.local.conn = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def proxy_env(self):
        """The emulator's proxy environment with KV, D1 and R2 going through this counter."""
        env = dict(self.env)
        mine = f"127.0.0.1:{self.port}"
        theirs = f"{self.up_host}:{self.up_port}"
        env["ERA_CF_API_BASE"] = env["ERA_CF_API_BASE"].replace(theirs, mine)
        env["ERA_CF_R2_ENDPOINT"] = env["ERA_CF_R2_ENDPOINT"].replace(theirs, mine)
        return env

    def counts(self):
        with self.lock:
            out = {"kv": 0, "d1": 0, "r2_s3": 0, "other": 0, "429": 0}
            out.update(self._counts)
            out["rest"] = out["kv"] + out["d1"] + out["other"]
            return out

    def by_endpoint(self):
        with self.lock:
            return dict(self._endpoints)

    def inject_429(self, n=1, retry_after=2):
        """The next `n` REST calls get 429 with this Retry-After (seconds) instead of reaching the emulator."""
        with self.lock:
            self._inject += [retry_after] * n

    def reset(self):
        with self.lock:
            self._counts.clear()
            self._endpoints.clear()
