"""The connection layer end to end, over raw sockets: what hostile, slow or unusual HTTP/1.1 clients
get from the real binary (issue 15).

Everything here speaks bytes on a socket (no HTTP library between the test and the proxy), so a
request can be cut, trickled, pipelined or left unread exactly as a client would. Limits are configured
small (a 1 s head time limit, a few connections per peer, one worker) so each case is quick; every wait
is for an event (an answer, a close, a refused connect) with a generous bound for a loaded machine.

The connection layer does not depend on the storage backend: these tests run in local mode only.
"""

import json
import os
import queue
import signal
import socket
import threading
import time
import unittest
import uuid

from harness import Proxy, backend

# The connection layer does not depend on the backend: these suites run once, in the local run (the
# cloudflare run of the same files leaves them out, by design).
local_run_only = unittest.skipIf(backend() == "cloudflare", "the connection layer does not depend on the backend: "
                                 "the local run covers it")

# Generous bounds for one event on a loaded 2-core machine (sanitized builds included).
WAIT = 30.0
MiB = 1 << 20

# The configuration names of the connection layer (docs/operations.md, config.example.toml).
HEAD_TIMEOUT_MS = "ERA_PROXY_HEAD_TIMEOUT_MS"
MAX_HEAD_BYTES = "ERA_PROXY_MAX_HEAD_BYTES"
MAX_HEADERS = "ERA_PROXY_MAX_HEADERS"
WORKERS = "ERA_PROXY_WORKERS"
QUEUE = "ERA_PROXY_QUEUE"
MAX_CONNECTIONS = "ERA_PROXY_MAX_CONNECTIONS"
MAX_PER_PEER = "ERA_PROXY_MAX_CONNECTIONS_PER_PEER"


def unique(name="raw"):
    return f"{name}_{uuid.uuid4().hex[:8]}"


class Conn:
    """One client connection with a byte-level HTTP/1.1 response reader."""

    def __init__(self, target, source=None, rcvbuf=None):
        if isinstance(target, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if source:
                self.sock.bind((source, 0))
            if rcvbuf:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(WAIT)
        self.sock.connect(target)
        self.buf = bytearray()  # appended to in place: a 64 MiB body arrives in many small reads

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def close(self):
        self.sock.close()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the proxy closed the connection")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return bytes(line).decode("latin-1")

    def _exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = bytes(self.buf[:n]), self.buf[n:]
        return data

    def response(self, head_only=False):
        """(status, headers with lower-case names, body) of the next response; 1xx answers are
        returned like any other (the caller decides what comes next)."""
        status_line = self._line()
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise AssertionError(f"not an HTTP/1.x status line: {status_line!r}")
        status = int(parts[1])
        headers = {}
        while True:
            line = self._line()
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if head_only or status < 200 or status in (204, 304):
            return status, headers, b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self._line().split(";")[0], 16)
                if size == 0:
                    while self._line():  # trailers
                        pass
                    return status, headers, body
                body += self._exactly(size)
                self._exactly(2)
        if "content-length" in headers:
            return status, headers, self._exactly(int(headers["content-length"]))
        # No length: the body runs to the close.
        try:
            while True:
                self._fill()
        except ConnectionError:
            pass
        body, self.buf = bytes(self.buf), bytearray()
        return status, headers, body

    def closed_by_peer(self):
        """True once the proxy has closed the connection (waits for it up to WAIT); any bytes the proxy
        sent first (e.g. a 408) are kept in self.buf."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def get(path, host="localhost"):
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"


def put_json(path, doc, extra=""):
    body = json.dumps(doc)
    return (f"PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n{body}")


def error_code(body):
    doc = json.loads(body)
    assert doc.get("success") is False and doc.get("error"), doc
    return doc.get("code")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@local_run_only
class RawHttpTest(unittest.TestCase):
    """One proxy with small head limits for the cases that do not need settings of their own."""

    @classmethod
    def setUpClass(cls):
        cls.proxy = Proxy.configured({HEAD_TIMEOUT_MS: "1000", MAX_HEAD_BYTES: "8192", MAX_HEADERS: "50",
                                      "ERA_PROXY_R2_MAX_OBJECT_SIZE": str(80 * MiB)})

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()

    def conn(self, **kw):
        c = Conn(("127.0.0.1", self.proxy.port), **kw)
        self.addCleanup(c.close)
        return c

    def assertServing(self):
        c = self.conn()
        c.send(get("/healthz"))
        self.assertEqual(c.response()[0], 200)

    # ------------------------------------------------------------ slow and oversized heads
    def test_slow_head_is_cut_at_the_head_time_limit(self):
        # A client that trickles its head (a byte well within any per-read gap) is still cut once the
        # whole head has taken longer than the limit: with 408, or by a plain close.
        c = self.conn()
        c.sock.settimeout(0.25)
        head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 4000
        deadline = time.monotonic() + WAIT
        closed = False
        i = 0
        while time.monotonic() < deadline and not closed:
            try:
                c.sock.sendall(head[i:i + 1] if i < len(head) else b"b")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            i += 1
            try:
                chunk = c.sock.recv(65536)
                c.buf += chunk
                closed = not chunk
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed = True
        self.assertTrue(closed, "a head trickled for 30 s was never cut")
        if c.buf:
            self.assertTrue(c.buf.startswith(b"HTTP/1.1 408"), c.buf[:200])
        self.assertServing()

    def test_silent_connection_is_closed_at_the_head_time_limit(self):
        # Connected, nothing sent: closed without an answer or with 408, within the bound.
        c = self.conn()
        self.assertTrue(c.closed_by_peer())
        if c.buf:
            self.assertTrue(c.buf.startswith(b"HTTP/1.1 408"), c.buf[:200])

    def test_oversized_head_gets_431(self):
        for name, value in (("X-Big", "a" * 12000), ("Cookie", "c=" + "d" * 20000)):
            c = self.conn()
            c.send(f"GET /healthz HTTP/1.1\r\nHost: localhost\r\n{name}: {value}\r\n\r\n")
            status, headers, body = c.response()
            self.assertEqual(status, 431, body)
            self.assertTrue(c.closed_by_peer())
        # A request line past the limit is refused the same way (414 or 431).
        c = self.conn()
        c.send(get("/healthz?" + "q" * 12000))
        self.assertIn(c.response()[0], (414, 431))
        self.assertServing()

    def test_too_many_headers_gets_431(self):
        c = self.conn()
        c.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + "".join(f"X-H{i}: v\r\n" for i in range(200)) + "\r\n")
        status, _, body = c.response()
        self.assertEqual(status, 431, body)
        # Just within the limit is served.
        c = self.conn()
        c.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + "".join(f"X-H{i}: v\r\n" for i in range(40)) + "\r\n")
        self.assertEqual(c.response()[0], 200)

    # ------------------------------------------------------------ framing
    def test_content_length_with_transfer_encoding_is_refused(self):
        ns = unique()
        body = json.dumps({"value": "smuggled"})
        chunked = f"{len(body):x}\r\n{body}\r\n0\r\n\r\n"
        for order in ("CL first", "TE first"):
            c = self.conn()
            cl = f"Content-Length: {len(chunked)}\r\n"
            te = "Transfer-Encoding: chunked\r\n"
            c.send(f"PUT /api/storage/kv/{ns}/k HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                   + (cl + te if order == "CL first" else te + cl) + "\r\n" + chunked)
            status, _, answer = c.response()
            self.assertEqual(status, 400, (order, answer))
            self.assertTrue(c.closed_by_peer(), order)
        c = self.conn()
        c.send(get(f"/api/storage/kv/{ns}/k"))
        self.assertEqual(c.response()[0], 404, "the refused request wrote the key")

    def test_pipelined_requests_are_answered_in_order(self):
        ns = unique()
        c = self.conn()
        values = [f"value {i} " + "x" * (i * 300) for i in range(6)]
        # Writes, a read, a miss and the reads of every write, in one send.
        wire = "".join(put_json(f"/api/storage/kv/{ns}/k{i}", {"value": v}) for i, v in enumerate(values))
        wire += get("/healthz") + get(f"/api/storage/kv/{ns}/missing")
        wire += "".join(get(f"/api/storage/kv/{ns}/k{i}") for i in range(len(values)))
        c.send(wire)
        for i in range(len(values)):
            self.assertIn(c.response()[0], (200, 201), f"put {i}")
        status, _, body = c.response()
        self.assertEqual((status, json.loads(body)["status"]), (200, "ok"))
        self.assertEqual(c.response()[0], 404)
        for i, v in enumerate(values):
            status, _, body = c.response()
            self.assertEqual((status, json.loads(body)["value"]), (200, v), f"get {i}")

    def test_chunked_request_body(self):
        ns = unique()
        body = json.dumps({"value": "chunked " + "y" * 5000}).encode()
        pieces = [body[:1], body[1:4000], body[4000:]]
        wire = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"
        c = self.conn()
        c.send(f"PUT /api/storage/kv/{ns}/k HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
               "Transfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(wire), 1000):  # in several sends, cutting chunk headers too
            c.send(wire[i:i + 1000])
        self.assertIn(c.response()[0], (200, 201))
        c.send(get(f"/api/storage/kv/{ns}/k"))
        status, _, got = c.response()
        self.assertEqual((status, json.loads(got)["value"]), (200, json.loads(body)["value"]))
        # A raw R2 upload in chunks, read back byte-exact.
        blob = os.urandom(300000)
        c.send(f"PUT /api/storage/r2/{ns}/obj HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n"
               "Transfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(blob), 70000):
            part = blob[i:i + 70000]
            c.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        c.send(b"0\r\n\r\n")
        self.assertIn(c.response()[0], (200, 201))
        c.send(get(f"/api/storage/r2/{ns}/obj?raw=1"))
        status, _, got = c.response()
        self.assertEqual((status, got == blob), (200, True))

    def test_malformed_chunked_body_is_refused(self):
        ns = unique()
        c = self.conn()
        c.send(f"PUT /api/storage/kv/{ns}/k HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
               "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
        status, _, _ = c.response()
        self.assertEqual(status, 400)
        c = self.conn()
        c.send(get(f"/api/storage/kv/{ns}/k"))
        self.assertEqual(c.response()[0], 404)

    def test_head(self):
        c = self.conn()
        c.send("HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status, headers, _ = c.response(head_only=True)
        self.assertEqual(status, 200)
        # No body bytes follow the head: the next answer on the connection starts right there.
        c.send(get("/healthz"))
        status, headers2, body = c.response()
        self.assertEqual((status, json.loads(body)["status"]), (200, "ok"))
        if "content-length" in headers:
            self.assertEqual(headers["content-length"], headers2.get("content-length"))

    def test_connection_close_from_the_client(self):
        c = self.conn()
        c.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        status, headers, _ = c.response()
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("connection", "").lower(), "close")
        self.assertTrue(c.closed_by_peer())
        # HTTP/1.0 without keep-alive closes too; with keep-alive it stays open.
        c = self.conn()
        c.send("GET /healthz HTTP/1.0\r\n\r\n")
        self.assertEqual(c.response()[0], 200)
        self.assertTrue(c.closed_by_peer())
        c = self.conn()
        c.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        self.assertEqual(c.response()[0], 200)
        c.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        self.assertEqual(c.response()[0], 200)

    def test_request_after_connection_close_is_not_served(self):
        # Pipelined behind a Connection: close: the second request must not be answered.
        ns = unique()
        c = self.conn()
        c.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
               + put_json(f"/api/storage/kv/{ns}/k", {"value": "after close"}))
        self.assertEqual(c.response()[0], 200)
        self.assertTrue(c.closed_by_peer())
        self.assertEqual(c.buf, b"")
        c = self.conn()
        c.send(get(f"/api/storage/kv/{ns}/k"))
        self.assertEqual(c.response()[0], 404)

    def test_error_on_a_broken_request_closes_the_connection(self):
        # The server says Connection: close when it cannot trust the framing, and closes.
        c = self.conn()
        c.send("PUT /api/storage/kv/x/k HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: banana\r\n\r\n")
        status, headers, _ = c.response()
        self.assertEqual(status, 400)
        self.assertEqual(headers.get("connection", "").lower(), "close")
        self.assertTrue(c.closed_by_peer())

    # ------------------------------------------------------------ Expect: 100-continue
    def test_expect_continue_past_the_route_limit_is_refused_before_the_body(self):
        ns = unique()
        cases = [
            (f"PUT /api/storage/r2/{ns}/big", "application/octet-stream", 81 * MiB),  # configured R2 max
            # KV's body limit: twice its 25 MiB value limit (JSON escapes) and 64 KiB.
            (f"PUT /api/storage/kv/{ns}/big", "application/json", 51 * MiB),
        ]
        for target, ctype, size in cases:
            c = self.conn()
            c.send(f"{target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {ctype}\r\nContent-Length: {size}\r\n"
                   "Expect: 100-continue\r\n\r\n")
            # Nothing of the body is sent: the answer must come on the head alone.
            status, _, body = c.response()
            self.assertEqual(status, 413, (target, body))
            self.assertTrue(error_code(body))
        c = self.conn()
        c.send(get(f"/api/storage/r2/{ns}/big?raw=1"))
        self.assertEqual(c.response()[0], 404)

    def test_expect_continue_within_the_limit_gets_100_then_the_answer(self):
        ns = unique()
        blob = os.urandom(200000)
        c = self.conn()
        c.send(f"PUT /api/storage/r2/{ns}/obj HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n"
               f"Content-Length: {len(blob)}\r\nExpect: 100-continue\r\n\r\n")
        status, _, _ = c.response()
        self.assertEqual(status, 100)
        c.send(blob)
        self.assertIn(c.response()[0], (200, 201))
        # The same connection goes on.
        c.send(get(f"/api/storage/r2/{ns}/obj?raw=1"))
        status, _, got = c.response()
        self.assertEqual((status, got == blob), (200, True))
        # A KV put with Expect too.
        body = json.dumps({"value": "expected"})
        c.send(f"PUT /api/storage/kv/{ns}/k HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n")
        self.assertEqual(c.response()[0], 100)
        c.send(body)
        self.assertIn(c.response()[0], (200, 201))

    # ------------------------------------------------------------ a reader that stops
    def test_client_that_stops_reading_a_large_get(self):
        ns = unique()
        size = 64 * MiB
        block = os.urandom(MiB)
        c = self.conn()
        c.send(f"PUT /api/storage/r2/{ns}/big HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n"
               f"Content-Length: {size}\r\n\r\n")
        for _ in range(size // MiB):
            c.send(block)
        self.assertIn(c.response()[0], (200, 201))
        before = rss_kib(self.proxy.proc.pid)
        stalled = []
        for _ in range(3):  # several stalled readers at once
            s = self.conn(rcvbuf=16384)
            s.send(get(f"/api/storage/r2/{ns}/big?raw=1"))
            s.buf += s.sock.recv(4096)  # the answer has started; then nothing more is read
            stalled.append(s)
        # Meanwhile every other client is served, on new and on kept-alive connections.
        other = self.conn()
        for i in range(50):
            other.send(put_json(f"/api/storage/kv/{ns}/k{i}", {"value": str(i)}))
            self.assertIn(other.response()[0], (200, 201))
            self.assertServing()
        # Whatever the proxy could send has been sent by now (the loop above took many round trips);
        # it holds no copy of the object per stalled reader.
        grown = rss_kib(self.proxy.proc.pid) - before
        self.assertLess(grown, 48 * 1024, f"the proxy's RSS grew by {grown} KiB for 3 stalled readers")
        # A stalled reader that resumes gets the whole object intact.
        s = stalled[0]
        s.sock.settimeout(WAIT)
        status, _, got = s.response()
        self.assertEqual((status, len(got), got == block * (size // MiB)), (200, size, True))


@local_run_only
class ConnectionCapsTest(unittest.TestCase):
    def held(self, proxy, source="127.0.0.1"):
        """A connection that has been served once (so the proxy has surely accepted and counted it)."""
        c = Conn(("127.0.0.1", proxy.port), source=source)
        self.addCleanup(c.close)
        c.send(get("/healthz"))
        self.assertEqual(c.response()[0], 200)
        return c

    def assertRefused(self, proxy, source):
        """A new connection from `source` is refused: closed at once, or answered 503, never served."""
        try:
            c = Conn(("127.0.0.1", proxy.port), source=source)
        except ConnectionError:
            return
        self.addCleanup(c.close)
        try:
            c.send(get("/healthz"))
            status, headers, body = c.response()
        except (ConnectionError, BrokenPipeError):
            return
        self.assertEqual(status, 503, body)
        self.assertTrue(error_code(body))

    def test_per_peer_cap(self):
        proxy = Proxy.configured({MAX_PER_PEER: "3", MAX_CONNECTIONS: "1000"})
        self.addCleanup(proxy.close)
        mine = [self.held(proxy) for _ in range(3)]
        self.assertRefused(proxy, "127.0.0.1")
        # Another peer address is not held back by the first one's connections.
        self.held(proxy, source="127.0.0.2")
        # The held connections still work, and one closing frees a place.
        mine[0].send(get("/healthz"))
        self.assertEqual(mine[0].response()[0], 200)
        mine[1].close()
        deadline = time.monotonic() + WAIT
        while True:  # the proxy notices the close asynchronously
            try:
                self.held(proxy)
                break
            except (AssertionError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def test_total_cap(self):
        proxy = Proxy.configured({MAX_PER_PEER: "100", MAX_CONNECTIONS: "16"})
        self.addCleanup(proxy.close)
        for i in range(16):  # from four peer addresses
            self.held(proxy, f"127.0.0.{i % 4 + 1}")
        self.assertRefused(proxy, "127.0.0.5")

    def test_unix_socket_has_no_per_peer_cap(self):
        proxy = Proxy.configured({MAX_PER_PEER: "2"})
        self.addCleanup(proxy.close)
        path = os.path.join(proxy.data_dir, "proxy.sock")
        conns = []
        for _ in range(6):
            c = Conn(path)
            self.addCleanup(c.close)
            c.send(get("/healthz"))
            status, _, body = c.response()
            self.assertEqual((status, json.loads(body)["status"]), (200, "ok"))
            conns.append(c)
        # Keep-alive and pipelining work there too (the socket is the sandboxes': a session token is needed).
        status, doc = proxy.call("POST", "/api/sessions", {"language": "python", "namespaces": "*",
                                                            "permissions": "read_write"})
        self.assertIn(status, (200, 201), doc)
        auth = f"Authorization: Bearer {doc['token']}\r\n"
        ns = unique()
        conns[-1].send(put_json(f"/api/storage/kv/{ns}/k", {"value": "over unix"}, auth)
                      + get(f"/api/storage/kv/{ns}/k").replace("\r\n\r\n", "\r\n" + auth + "\r\n"))
        self.assertIn(conns[-1].response()[0], (200, 201))
        status, _, body = conns[-1].response()
        self.assertEqual(json.loads(body)["value"], "over unix")


@local_run_only
class OverloadTest(unittest.TestCase):
    def test_busy_workers_and_full_queue_get_503_with_retry_after(self):
        proxy = Proxy.configured({WORKERS: "2", QUEUE: "1", "ERA_PROXY_D1_STATEMENT_TIMEOUT_MS": "120000"})
        self.addCleanup(proxy.close)  # SIGKILL: the runaway statements end with the process
        bomb = json.dumps({"sql": "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) "
                                  "SELECT count(*) FROM r"})
        busy = []
        for i in range(2):  # one runaway statement per worker, each in its own database
            c = Conn(("127.0.0.1", proxy.port))
            self.addCleanup(c.close)
            c.send(f"POST /api/storage/d1/{unique('busy')}/query HTTP/1.1\r\nHost: localhost\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(bomb)}\r\n\r\n{bomb}")
            busy.append(c)
        # Probes until one is refused: the first may take the queue's one place (and wait there).
        answers = queue.Queue()

        def probe():
            c = Conn(("127.0.0.1", proxy.port))
            self.addCleanup(c.close)
            c.send(get(f"/api/storage/kv/{unique()}/k"))
            try:
                answers.put(c.response())
            except (ConnectionError, OSError) as e:
                answers.put(e)

        got = None
        for _ in range(20):
            threading.Thread(target=probe, daemon=True).start()
            try:
                got = answers.get(timeout=1.0)
            except queue.Empty:
                continue
            if isinstance(got, tuple) and got[0] == 503:
                break
        self.assertIsInstance(got, tuple, f"no probe was answered: {got!r}")
        status, headers, body = got
        self.assertEqual(status, 503, body)
        self.assertTrue(headers.get("retry-after", "").isdigit(), headers)
        self.assertTrue(error_code(body))


    def test_stalled_readers_do_not_hold_the_workers(self):
        # More stalled readers of a large GET than there are workers: a response waiting for its
        # reader must not keep a worker, or a handful of such clients stop the proxy for everyone.
        proxy = Proxy.configured({WORKERS: "2", QUEUE: "4"})
        self.addCleanup(proxy.close)
        ns = unique()
        block = os.urandom(MiB)
        c = Conn(("127.0.0.1", proxy.port))
        self.addCleanup(c.close)
        c.send(f"PUT /api/storage/r2/{ns}/big HTTP/1.1\r\nHost: localhost\r\n"
               f"Content-Type: application/octet-stream\r\nContent-Length: {32 * MiB}\r\n\r\n")
        for _ in range(32):
            c.send(block)
        self.assertIn(c.response()[0], (200, 201))
        for i in range(4):
            s = Conn(("127.0.0.1", proxy.port), rcvbuf=16384)
            self.addCleanup(s.close)
            s.send(get(f"/api/storage/r2/{ns}/big?raw=1"))
            try:
                s.buf += s.sock.recv(4096)  # the answer has started; then nothing more is read
            except socket.timeout:
                self.fail(f"GET {i + 1} was not answered in {WAIT:g} s while {i} stalled readers held "
                          "the proxy's 2 workers")
        # Others are answered (well within the 60 s a stalled reader may pause).
        other = Conn(("127.0.0.1", proxy.port))
        self.addCleanup(other.close)
        other.sock.settimeout(WAIT / 2)
        for i in range(5):
            other.send(get(f"/api/storage/kv/{ns}/k{i}"))
            self.assertEqual(other.response()[0], 404)


@local_run_only
class BodyGapTest(unittest.TestCase):
    def test_a_body_that_stops_is_cut_and_stores_nothing(self):
        proxy = Proxy.configured({"ERA_PROXY_READ_TIMEOUT": "1"})
        self.addCleanup(proxy.close)
        ns = unique()
        for target, ctype, head in ((f"/api/storage/r2/{ns}/obj", "application/octet-stream", b"x" * 1000),
                                    (f"/api/storage/kv/{ns}/k", "application/json", b'{"value": "abc')):
            c = Conn(("127.0.0.1", proxy.port))
            self.addCleanup(c.close)
            c.send(f"PUT {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {ctype}\r\n"
                   f"Content-Length: {100000}\r\n\r\n".encode() + head)
            # Then nothing: the proxy gives up after the gap limit, with an error answer or a close.
            self.assertTrue(c.closed_by_peer(), target)
            if c.buf:
                self.assertRegex(bytes(c.buf[:12]), rb"^HTTP/1\.1 4(00|08)$", c.buf[:300])
        c = Conn(("127.0.0.1", proxy.port))
        self.addCleanup(c.close)
        for target in (f"/api/storage/r2/{ns}/obj?raw=1", f"/api/storage/kv/{ns}/k"):
            c.send(get(target))
            self.assertEqual(c.response()[0], 404, f"a cut body stored {target}")


@local_run_only
class DrainTest(unittest.TestCase):
    def test_sigterm_finishes_in_flight_closes_idle_refuses_new(self):
        proxy = Proxy.configured({})
        port = proxy.port
        self.addCleanup(proxy.close)
        ns = unique()
        idle = Conn(("127.0.0.1", port))
        self.addCleanup(idle.close)
        idle.send(get("/healthz"))
        self.assertEqual(idle.response()[0], 200)
        # An upload in flight: head and half the body sent.
        blob = os.urandom(2 * MiB)
        busy = Conn(("127.0.0.1", port))
        self.addCleanup(busy.close)
        busy.send(f"PUT /api/storage/r2/{ns}/obj HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n"
                  f"Content-Length: {len(blob)}\r\n\r\n")
        busy.send(blob[:MiB])
        # The proxy has taken the upload in (a worker runs its handler) before the signal: a head
        # not yet read would count as an idle connection, which the drain closes at once.
        self.assertTrue(proxy.wait_in_flight(1, WAIT), "the upload never reached a handler")
        proxy.proc.send_signal(signal.SIGTERM)
        # The idle connection is closed at once (well within the keep-alive timeout it had).
        self.assertTrue(idle.closed_by_peer())
        # New connections are refused once the listener is closed.
        deadline = time.monotonic() + WAIT
        refused = False
        while time.monotonic() < deadline and not refused:
            try:
                c = Conn(("127.0.0.1", port))
                c.close()
                time.sleep(0.05)
            except ConnectionRefusedError:
                refused = True
        self.assertTrue(refused, "the proxy kept accepting after SIGTERM")
        # The in-flight upload finishes and is answered.
        busy.send(blob[MiB:])
        status, headers, _ = busy.response()
        self.assertIn(status, (200, 201))
        self.assertEqual(proxy.proc.wait(WAIT), 0)
        proxy.proc = None
        # Acknowledged means stored: the object is there after a restart on the same data dir.
        proxy.start()
        c = Conn(("127.0.0.1", proxy.port))
        self.addCleanup(c.close)
        c.send(get(f"/api/storage/r2/{ns}/obj?raw=1"))
        status, _, got = c.response()
        self.assertEqual((status, got == blob), (200, True))


if __name__ == "__main__":
    unittest.main()
