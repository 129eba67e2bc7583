"""R2 end to end: the real binary, over HTTP, through the Python SDK and raw requests."""

import base64
import hashlib
import http.client
import io
import json
import os
import random
import socket
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

from harness import Proxy, ProxyTestCase, backend

import era_storage
from era_storage import StorageError

Q = lambda s: urllib.parse.quote(s, safe="").replace(".", "%2E")  # noqa: E731
MD5 = lambda b: hashlib.md5(b).hexdigest()  # noqa: E731


def unique(name="ns"):
    return f"{name}_{uuid.uuid4().hex[:8]}"


def path(ns, key):
    return f"/api/storage/r2/{ns}/{Q(key)}"


class Unseekable(io.RawIOBase):
    """A stream of unknown length (a pipe, a socket): the SDK must send it chunked."""

    def __init__(self, data, step=70001):
        self._data, self._pos, self._step = data, 0, step

    def readable(self):
        return True

    def seekable(self):
        return False

    def read(self, n=-1):
        n = self._step if n is None or n < 0 else min(n, self._step)
        chunk = self._data[self._pos:self._pos + n]
        self._pos += len(chunk)
        return chunk


def stored_files(data_dir):
    """Every file under data_dir/objects, relative to it."""
    root = os.path.join(data_dir, "objects")
    out = []
    for d, _, files in os.walk(root):
        out += [os.path.relpath(os.path.join(d, f), root) for f in files]
    return sorted(out)


class R2SdkTest(ProxyTestCase):
    def test_guide_example(self):
        ns = unique("myapp")
        image = bytes(range(256)) * 1024
        info = era_storage.r2.put(ns, "avatars/user123.jpg", image,
                                  metadata={"user_id": "123", "uploaded_by": "web_ui"})
        self.assertEqual(info["size"], len(image))
        self.assertEqual(info["etag"], MD5(image))
        self.assertEqual(era_storage.r2.get(ns, "avatars/user123.jpg"), image)
        objects = era_storage.r2.list(ns, prefix="avatars/", limit=50)
        self.assertEqual([(o["key"], o["size"]) for o in objects], [("avatars/user123.jpg", len(image))])
        self.assertEqual(objects[0]["customMetadata"], {"user_id": "123", "uploaded_by": "web_ui"})
        self.assertIs(era_storage.r2.delete(ns, "avatars/user123.jpg"), True)
        self.assertIsNone(era_storage.r2.get(ns, "avatars/user123.jpg"))
        self.assertEqual(era_storage.r2.list(ns, prefix="avatars/", limit=50), [])
        self.assertIs(era_storage.r2.delete(ns, "avatars/user123.jpg"), True)  # idempotent

    def test_byte_exact_round_trips_of_random_sizes(self):
        ns = unique()
        rng = random.Random(4)
        sizes = [0, 1, 2, 3, 255, 256, 4095, 4096, 4097, 49151, 49152, 49153, 65537, (1 << 20) + 3]
        sizes += [rng.randrange(1, 8 << 20) for _ in range(4)]
        for i, size in enumerate(sizes):
            data = os.urandom(size)
            key = f"obj/{i}"
            # bytes, a seekable file (Content-Length) and an unseekable stream (chunked) alike
            kind = i % 3
            body = data if kind == 0 else io.BytesIO(data) if kind == 1 else Unseekable(data)
            info = era_storage.r2.put(ns, key, body)
            self.assertEqual((info["size"], info["etag"]), (size, MD5(data)), (size, kind))
            got = era_storage.r2.get(ns, key)
            self.assertEqual(len(got), size)
            self.assertTrue(got == data, f"size {size} kind {kind} differs")
            # The JSON form of the same object, streamed as base64 by the proxy.
            status, doc = self.proxy.call("GET", path(ns, key))
            self.assertEqual(status, 200)
            self.assertEqual(base64.b64decode(doc["content"]), data)
            self.assertEqual((doc["size"], doc["etag"]), (size, MD5(data)))

    def test_file_upload_and_download_stream_through_files(self):
        ns = unique()
        data = os.urandom(5 * 1024 * 1024 + 11)
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "src.bin")
            with open(src, "wb") as f:
                f.write(data)
            with open(src, "rb") as f:
                f.read(11)  # the upload starts at the file's position, as a stream read would
                era_storage.r2.put(ns, "f", f, content_type="application/x-test")
            dst = os.path.join(d, "dst.bin")
            with open(dst, "wb") as f:
                info = era_storage.r2.download(ns, "f", f)
            with open(dst, "rb") as f:
                self.assertTrue(f.read() == data[11:])
            self.assertEqual(info["size"], len(data) - 11)
            self.assertEqual(info["httpMetadata"]["contentType"], "application/x-test")
            with era_storage.r2.open(ns, "f") as obj:
                self.assertEqual(obj.read(100), data[11:111])
            # The connection is usable again after a partly read body was closed.
            self.assertEqual(era_storage.r2.get(ns, "f", range={"offset": 0, "length": 3}), data[11:14])
            self.assertIsNone(era_storage.r2.download(ns, "missing", io.BytesIO()))

    def test_ranges(self):
        ns = unique()
        data = bytes(range(256)) * 40  # 10240 bytes
        era_storage.r2.put(ns, "r", data)
        p = path(ns, "r") + "?raw=1"
        for rng, lo, hi in (("bytes=0-9", 0, 9), ("bytes=10-", 10, 10239), ("bytes=-5", 10235, 10239),
                            ("bytes=10000-99999", 10000, 10239), ("bytes=-99999", 0, 10239)):
            status, headers, body = self.proxy.request("GET", p, headers={"Range": rng})
            self.assertEqual(status, 206, rng)
            self.assertEqual(body, data[lo:hi + 1], rng)
            self.assertEqual(headers["Content-Range"], f"bytes {lo}-{hi}/10240", rng)
            self.assertEqual(int(headers["Content-Length"]), hi - lo + 1)
        status, headers, body = self.proxy.request("GET", p, headers={"Range": "bytes=10240-"})
        self.assertEqual(status, 416)
        self.assertEqual(headers["Content-Range"], "bytes */10240")
        self.assertEqual(json.loads(body)["code"], "range_not_satisfiable")
        for bad in ("bytes=5-1", "bytes=0-1,5-6", "items=0-1", "bytes=x-"):
            self.assertError(self.proxy.call("GET", p, headers={"Range": bad}), 416, "invalid_range")
        # The SDK's R2-shaped ranges.
        self.assertEqual(era_storage.r2.get(ns, "r", range={"offset": 100, "length": 10}), data[100:110])
        self.assertEqual(era_storage.r2.get(ns, "r", range={"suffix": 7}), data[-7:])
        self.assertEqual(era_storage.r2.get(ns, "r", range={"offset": 10230}), data[10230:])
        with self.assertRaises(StorageError) as e:
            era_storage.r2.get(ns, "r", range={"offset": 20000})
        self.assertEqual(e.exception.status, 416)
        # A Range on an error response is not applied to the error body.
        status, _, body = self.proxy.request("GET", path(ns, "missing") + "?raw=1", headers={"Range": "bytes=2-5"})
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(body)["code"], "object_not_found")

    def test_conditional_requests(self):
        ns = unique()
        v1 = era_storage.r2.put(ns, "c", b"one")
        p = path(ns, "c")
        etag = f'"{v1["etag"]}"'
        status, headers, body = self.proxy.request("GET", p + "?raw=1", headers={"If-None-Match": etag})
        self.assertEqual((status, body), (304, b""))
        self.assertEqual(headers["ETag"], etag)
        status, _, body = self.proxy.request("GET", p + "?raw=1", headers={"If-None-Match": '"other", W/"x"'})
        self.assertEqual((status, body), (200, b"one"))
        self.assertEqual(self.proxy.request("HEAD", p, headers={"If-None-Match": etag})[0], 304)
        self.assertError(self.proxy.call("GET", p + "?raw=1", headers={"If-Match": '"other"'}), 412,
                         "precondition_failed")
        self.assertEqual(self.proxy.request("GET", p + "?raw=1", headers={"If-Match": etag})[0], 200)

        # Compare-and-swap on PUT.
        self.assertError(self.proxy.call("PUT", p, b"two", {"If-Match": '"stale"'}), 412, "precondition_failed")
        self.assertEqual(era_storage.r2.get(ns, "c"), b"one")
        with self.assertRaises(StorageError) as e:
            era_storage.r2.put(ns, "c", b"two", if_match="stale")
        self.assertEqual((e.exception.status, e.exception.code), (412, "precondition_failed"))
        v2 = era_storage.r2.put(ns, "c", b"two", if_match=v1["etag"])
        self.assertEqual(era_storage.r2.get(ns, "c"), b"two")
        with self.assertRaises(StorageError):
            era_storage.r2.put(ns, "c", b"three", if_match=v1["etag"])  # stale now
        # Create-only.
        with self.assertRaises(StorageError):
            era_storage.r2.put(ns, "c", b"three", if_none_match="*")
        era_storage.r2.put(ns, "fresh", b"new", if_none_match="*")
        with self.assertRaises(StorageError):
            era_storage.r2.put(ns, "absent", b"x", if_match="*")
        self.assertIsNone(era_storage.r2.head(ns, "absent"))
        self.assertEqual(era_storage.r2.head(ns, "c")["etag"], v2["etag"])
        # A big body refused by an If-Match is not read: the answer comes at once.
        status, doc = self.proxy.call("PUT", p, os.urandom(8 << 20), {"If-Match": '"stale"'})
        self.assertEqual(status, 412)

    def test_metadata_and_content_type(self):
        ns = unique()
        meta = {"user_id": "123", "Mixed-Case": "Kept", "ünïcode name": "välue ✓", "empty": ""}
        era_storage.r2.put(ns, "m", b"x", metadata=meta, content_type="image/png")
        head = era_storage.r2.head(ns, "m")
        self.assertEqual(head["customMetadata"], meta)
        self.assertEqual(head["httpMetadata"]["contentType"], "image/png")
        self.assertEqual(head["size"], 1)
        listed = era_storage.r2.list(ns)[0]
        self.assertEqual(listed["customMetadata"], meta)
        self.assertEqual(listed["uploaded"], head["uploaded"])
        status, doc = self.proxy.call("GET", path(ns, "m"))
        self.assertEqual(doc["customMetadata"], meta)
        self.assertEqual(doc["httpMetadata"], {"contentType": "image/png"})
        status, headers, _ = self.proxy.request("GET", path(ns, "m") + "?raw=1")
        self.assertEqual(headers["Content-Type"], "image/png")
        self.assertEqual(json.loads(headers["X-Era-Metadata"]), meta)
        self.assertTrue(headers["Last-Modified"].endswith(" GMT"))
        # A new put replaces the metadata too.
        era_storage.r2.put(ns, "m", b"y")
        self.assertEqual(era_storage.r2.head(ns, "m")["customMetadata"], {})
        # Bad metadata is refused and changes nothing.
        p = path(ns, "m")
        for bad in ("not json", "[1]", '{"a": 1}', '{"": "x"}'):
            self.assertError(self.proxy.call("PUT", p, b"z", {"X-Era-Metadata": bad}), 400, "invalid_metadata")
        big = json.dumps({f"k{i}": "v" * 100 for i in range(90)})  # > 8192 bytes of names and values
        self.assertError(self.proxy.call("PUT", p, {"content": "eg==", "metadata": json.loads(big)}), 413,
                         "metadata_too_large")
        with self.assertRaises(StorageError):
            era_storage.r2.put(ns, "m", b"z", metadata={"n": 1})
        self.assertEqual(era_storage.r2.get(ns, "m"), b"y")
        self.assertError(self.proxy.call("PUT", p, b"z", {"Content-Type": "bad\x7f"}), 400)

    @unittest.skipIf(backend() == "cloudflare", "cloudflare backend refuses keys with . or .. segments (URLs resolve them); covered by test_cloudflare_r2")
    def test_hostile_keys_are_just_keys(self):
        ns = unique()
        keys = ["../../etc/passwd", "/etc/passwd", "..", ".", "./x", "a\x00b", "k" * 1024, "é" * 512, "dir/",
                "a//b", "with space?&#%+=", "😀/☃", "\\windows\\system32", "~root", "-rf"]
        for k in keys:
            era_storage.r2.put(ns, k, k.encode())
        for k in keys:
            self.assertEqual(era_storage.r2.get(ns, k), k.encode(), repr(k))
        listed = [o["key"] for o in era_storage.r2.list(ns)]
        self.assertEqual(listed, sorted(keys, key=lambda s: s.encode()))
        for f in stored_files(self.proxy.data_dir):  # only xx/<32 hex digits>, nothing of any key
            self.assertRegex(f, r"^[0-9a-f]{2}/[0-9a-f]{32}$")
        self.assertFalse(os.path.exists(os.path.join(self.proxy.data_dir, "etc")))
        self.assertError(self.proxy.call("PUT", path(ns, "k" * 1025), b"x"), 400, "key_too_long")
        self.assertError(self.proxy.call("PUT", f"/api/storage/r2/{ns}/bad%FFutf8", b"x"), 400, "invalid_key")
        self.assertError(self.proxy.call("PUT", f"/api/storage/r2/bad.ns/k", b"x"), 400, "invalid_namespace")
        self.assertEqual(self.proxy.call("GET", f"/api/storage/r2/{ns}/")[0], 404)
        for k in keys:
            era_storage.r2.delete(ns, k)
        self.assertEqual(era_storage.r2.list(ns), [])

    def test_namespaces_are_isolated(self):
        a, b = unique("a"), unique("b")
        era_storage.r2.put(a, "k", b"a")
        self.assertIsNone(era_storage.r2.get(b, "k"))
        self.assertEqual(era_storage.r2.list(b), [])
        era_storage.r2.delete(b, "k")
        self.assertEqual(era_storage.r2.get(a, "k"), b"a")

    def test_concurrent_writers_to_one_key(self):
        ns = unique()
        bodies = [bytes([65 + t]) * (300000 + 7919 * t) for t in range(6)]
        errors = []
        torn = []

        def writer(t):
            try:
                for _ in range(4):
                    era_storage.r2.put(ns, "hot", bodies[t])
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        def reader():
            try:
                for _ in range(20):
                    got = era_storage.r2.get(ns, "hot")
                    if got is not None and got not in bodies:
                        torn.append(len(got))
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
        threads += [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(torn, [])
        final = era_storage.r2.get(ns, "hot")
        self.assertIn(final, bodies)
        self.assertEqual(era_storage.r2.head(ns, "hot")["etag"], MD5(final))

    def test_base64_json_form(self):
        ns = unique()
        data = bytes(range(256)) * 3 + b"\x00\xff"
        p = path(ns, "b64")
        status, doc = self.proxy.call("PUT", p, {"content": base64.b64encode(data).decode(),
                                                 "metadata": {"a": "b"}})
        self.assertEqual(status, 200, doc)
        self.assertIs(doc["success"], True)
        self.assertEqual(doc["size"], len(data))
        status, doc = self.proxy.call("GET", p)
        self.assertEqual(base64.b64decode(doc["content"]), data)
        self.assertEqual(doc["size"], len(data))
        self.assertEqual(doc["etag"], MD5(data))
        self.assertEqual(doc["customMetadata"], {"a": "b"})
        self.assertEqual(doc["httpMetadata"], {"contentType": "application/octet-stream"})
        self.assertRegex(doc["uploaded"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(era_storage.r2.get(ns, "b64"), data)  # the same object over raw bytes
        status, doc = self.proxy.call("PUT", p, {"content": "", "httpMetadata": {"contentType": "text/plain"}})
        self.assertEqual((status, doc["size"]), (200, 0))
        self.assertEqual(self.proxy.call("GET", p)[1]["content"], "")
        for bad, code in (({"content": "***"}, "invalid_content"), ({"content": "abc"}, "invalid_content"),
                          ({}, "invalid_content"), ({"content": 5}, "invalid_content"),
                          ({"content": "", "extra": 1}, "unknown_field"),
                          ({"content": "", "metadata": "x"}, "invalid_metadata"),
                          ({"content": "", "metadata": {"a": 1}}, "invalid_metadata")):
            self.assertError(self.proxy.call("PUT", p, bad), 400, code)
        self.assertError(self.proxy.call("PUT", p, b"{not json", {"Content-Type": "application/json"}), 400,
                         "invalid_json")
        self.assertEqual(self.proxy.call("GET", p)[1]["httpMetadata"], {"contentType": "text/plain"})
        # JSON bytes can still be stored raw: ?raw=1 overrides the Content-Type.
        status, _ = self.proxy.call("PUT", p + "?raw=1", b'{"a": 1}', {"Content-Type": "application/json"})
        self.assertEqual(status, 200)
        status, headers, body = self.proxy.request("GET", p, headers={"Accept": "application/octet-stream"})
        self.assertEqual((body, headers["Content-Type"]), (b'{"a": 1}', "application/json"))

    def test_list_pages_and_delimiter(self):
        ns = unique()
        keys = [f"logs/{i:03d}" for i in range(23)] + ["a.txt", "photos/2024/a.jpg", "photos/2025/b.jpg", "z"]
        for k in keys:
            era_storage.r2.put(ns, k, b"x")
        seen, cursor = [], None
        for _ in range(10):
            page = era_storage.r2.list_page(ns, prefix="logs/", limit=5, cursor=cursor)
            self.assertLessEqual(len(page["objects"]), 5)
            seen += [o["key"] for o in page["objects"]]
            if not page["truncated"]:
                self.assertIsNone(page["cursor"])
                break
            cursor = page["cursor"]
        self.assertEqual(seen, [f"logs/{i:03d}" for i in range(23)])
        self.assertEqual(len(list(era_storage.r2.iter(ns, page_size=7))), len(keys))
        page = era_storage.r2.list_page(ns, delimiter="/")
        self.assertEqual([o["key"] for o in page["objects"]], ["a.txt", "z"])
        self.assertEqual(page["delimitedPrefixes"], ["logs/", "photos/"])
        page = era_storage.r2.list_page(ns, prefix="photos/", delimiter="/")
        self.assertEqual(page["delimitedPrefixes"], ["photos/2024/", "photos/2025/"])
        base = f"/api/storage/r2/{ns}"
        for q in ("limit=0", "limit=1001", "limit=x", "cursor=%%%", "prefix=%FF"):
            status, doc = self.proxy.call("GET", f"{base}?{q}")
            self.assertEqual(status, 400, q)

    def test_head_and_errors_are_json(self):
        ns = unique()
        self.assertIsNone(era_storage.r2.head(ns, "nope"))
        self.assertError(self.proxy.call("GET", path(ns, "nope")), 404, "object_not_found")
        self.assertError(self.proxy.call("PATCH", path(ns, "nope"), b"x"), 405, "method_not_allowed")
        era_storage.r2.put(ns, "h", b"12345")
        status, headers, body = self.proxy.request("HEAD", path(ns, "h"))
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(headers["Content-Length"], "5")
        self.assertEqual(headers["ETag"], f'"{MD5(b"12345")}"')


class R2LimitTest(ProxyTestCase):
    """storage.r2_max_object_size: 413 past it, with nothing stored."""

    proxy_env = {"ERA_PROXY_R2_MAX_OBJECT_SIZE": str(1 << 20)}

    def assertNothingLeft(self):
        if backend() == "cloudflare":
            return  # no local files in cloudflare mode; the object checks of each test still apply
        self.assertEqual(os.listdir(os.path.join(self.proxy.data_dir, "objects", "tmp")), [])

    def test_too_large_is_413_and_stores_nothing(self):
        ns = unique()
        era_storage.r2.put(ns, "k", b"old")
        era_storage.r2.put(ns, "exact", b"x" * (1 << 20))  # the limit itself is fine
        too_big = os.urandom((1 << 20) + 1)
        for body in (too_big, io.BytesIO(too_big), Unseekable(too_big)):
            with self.assertRaises(StorageError) as e:
                era_storage.r2.put(ns, "k", body)
            self.assertEqual((e.exception.status, e.exception.code), (413, "object_too_large"))
        self.assertEqual(era_storage.r2.get(ns, "k"), b"old")
        with self.assertRaises(StorageError):
            era_storage.r2.put(ns, "new", too_big)
        self.assertIsNone(era_storage.r2.head(ns, "new"))
        status, doc = self.proxy.call("PUT", path(ns, "k"), {"content": base64.b64encode(too_big).decode()})
        self.assertEqual((status, doc["code"]), (413, "object_too_large"))
        self.assertEqual(era_storage.r2.get(ns, "k"), b"old")
        self.assertNothingLeft()

    def test_declared_length_is_refused_before_the_body(self):
        ns = unique()
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=30) as s:
            s.sendall(f"PUT {path(ns, 'big')} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {10 << 30}\r\n\r\n".encode())
            resp = http.client.HTTPResponse(s)  # the answer comes without a byte of the body sent
            resp.begin()
            doc = json.loads(resp.read())
        self.assertEqual((resp.status, doc["code"]), (413, "object_too_large"))
        self.assertEqual(resp.getheader("Connection"), "close")
        self.assertIsNone(era_storage.r2.head(ns, "big"))
        self.assertNothingLeft()


    def test_a_refused_body_is_never_read_as_the_next_request(self):
        ns = unique()
        smuggled = f"DELETE {path(ns, 'victim')} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".encode()
        era_storage.r2.put(ns, "victim", b"still here")
        # A small refused body (412 before reading it) is read and dropped: the connection goes on.
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=30) as s:
            s.sendall(f"PUT {path(ns, 'victim')} HTTP/1.1\r\nHost: localhost\r\nIf-Match: \"stale\"\r\n"
                      f"Content-Length: {len(smuggled)}\r\n\r\n".encode() + smuggled)
            first = http.client.HTTPResponse(s)
            first.begin()
            first.read()
            # Only now: each HTTPResponse reads through its own buffer, which must not swallow the next.
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            second = http.client.HTTPResponse(s)
            second.begin()
            self.assertEqual((first.status, second.status), (412, 200))
            self.assertEqual(json.loads(second.read())["status"], "ok")
        # A large one ends the connection after the answer: what follows is never parsed as a request.
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=30) as s:
            s.sendall(f"PUT {path(ns, 'x')} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {10 << 30}\r\n\r\n".encode())
            resp = http.client.HTTPResponse(s)
            resp.begin()
            resp.read()
            self.assertEqual(resp.status, 413)
            try:
                s.sendall(smuggled)
                self.assertEqual(s.recv(65536), b"")  # closed, nothing answered
            except (BrokenPipeError, ConnectionResetError):
                pass
        self.assertEqual(era_storage.r2.get(ns, "victim"), b"still here")


class R2QuotaTest(ProxyTestCase):
    """quota.r2_bytes: a namespace's object bytes are capped, declared or streamed."""

    proxy_env = {"ERA_PROXY_QUOTA_R2_BYTES": str(100000)}

    def test_uploads_past_the_quota_are_507_and_keep_the_previous_object(self):
        ns, other = unique(), unique()
        era_storage.r2.put(ns, "a", b"a" * 60000)
        era_storage.r2.put(ns, "b", b"b" * 40000)  # exactly the quota
        too_much = b"c" * 1000
        # Declared length (bytes), unknown length (an unseekable stream goes chunked), the JSON form.
        for body in (too_much, Unseekable(too_much)):
            with self.assertRaises(StorageError) as cm:
                era_storage.r2.put(ns, "c", body)
            self.assertEqual((cm.exception.status, cm.exception.code), (507, "quota_exceeded"))
        status, doc = self.proxy.call("PUT", path(ns, "c"), {"content": base64.b64encode(too_much).decode()})
        self.assertEqual((status, doc["code"]), (507, "quota_exceeded"))
        self.assertIsNone(era_storage.r2.head(ns, "c"))
        # Growing an object past the quota keeps the old one, streamed or not.
        for body in (b"a" * 60001, Unseekable(b"a" * 60001)):
            with self.assertRaises(StorageError) as cm:
                era_storage.r2.put(ns, "a", body)
            self.assertEqual(cm.exception.status, 507)
        self.assertEqual(era_storage.r2.get(ns, "a"), b"a" * 60000)
        # Replacing with a smaller object frees space; deletes always work.
        era_storage.r2.put(ns, "a", b"a" * 10000)
        era_storage.r2.put(ns, "c", Unseekable(b"c" * 50000))
        era_storage.r2.delete(ns, "b")
        era_storage.r2.put(ns, "d", b"d" * 40000)
        era_storage.r2.put(other, "a", b"o" * 100000)
        self.assertEqual(era_storage.resources.stats(namespace=ns)["total_size"], 100000)


@unittest.skipIf(backend() == "cloudflare", "inspects the local backend's files")
class R2CrashTest(unittest.TestCase):
    def test_sigkill_mid_upload_leaves_no_partial_object_and_no_temp_file(self):
        with Proxy() as proxy:
            os.environ["ERA_STORAGE_URL"] = proxy.url
            try:
                ns = unique()
                era_storage.r2.put(ns, "k", b"old version")
                tmp_dir = os.path.join(proxy.data_dir, "objects", "tmp")
                socks = []
                for key in ("k", "new"):  # a replacement and a new object, both cut off
                    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
                    s.sendall(f"PUT {path(ns, key)} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {64 << 20}\r\n\r\n"
                              .encode())
                    s.sendall(os.urandom(4 << 20))
                    socks.append(s)
                deadline = time.monotonic() + 20
                while len(os.listdir(tmp_dir)) < 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertEqual(len(os.listdir(tmp_dir)), 2, "the uploads should be in progress")
                proxy.kill()
                for s in socks:
                    s.close()
                self.assertEqual(len(os.listdir(tmp_dir)), 2)  # what the crash left...
                proxy.start()
                self.assertEqual(os.listdir(tmp_dir), [])  # ...is gone after the restart
                self.assertEqual(era_storage.r2.get(ns, "k"), b"old version")
                self.assertIsNone(era_storage.r2.head(ns, "new"))
                self.assertEqual([o["key"] for o in era_storage.r2.list(ns)], ["k"])
                self.assertEqual(len(stored_files(proxy.data_dir)), 1)
                self.assertIn("removed 2 temp files", proxy.log())
            finally:
                os.environ.pop("ERA_STORAGE_URL", None)

    def test_acknowledged_puts_survive_sigkill(self):
        with Proxy() as proxy:
            os.environ["ERA_STORAGE_URL"] = proxy.url
            try:
                ns = unique()
                data = {f"k{i}": os.urandom(1000 * i) for i in range(20)}
                for k, v in data.items():
                    era_storage.r2.put(ns, k, v)
                proxy.kill()
                proxy.start()
                for k, v in data.items():
                    self.assertEqual(era_storage.r2.get(ns, k), v)
            finally:
                os.environ.pop("ERA_STORAGE_URL", None)


if __name__ == "__main__":
    unittest.main()
