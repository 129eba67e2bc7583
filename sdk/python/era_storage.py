"""era_storage: the storage SDK injected into every ERA session (standard library only).

    import era_storage
    era_storage.kv.set("myapp", "user:123", '{"theme": "dark"}')
    era_storage.kv.get("myapp", "user:123")
    era_storage.d1.query("myapp", "SELECT * FROM todos WHERE completed = ?", [0])

The proxy is found through ERA_STORAGE_URL (default http://localhost:8787): an http:// or https:// URL,
or unix:///path/to/socket for a proxy listening on a Unix socket (how code run by the proxy's own
sandbox reaches it: that sandbox has no network). ERA_STORAGE_TOKEN, when set, is sent as a bearer
token. Connections are kept alive, one per thread. Every failure raises
StorageError (an Exception) carrying .status, .code and the server's message.
"""

import http.client
import json
import os
import select
import socket
import threading
import time
import urllib.parse

__all__ = ["StorageError", "KVStorage", "D1Storage", "R2Storage", "R2Object", "ResourcesAPI", "kv", "d1", "r2",
           "resources"]

DEFAULT_URL = "http://localhost:8787"
# Reconnect before reusing a connection idle for this share of the keep-alive timeout the proxy
# announces ("Keep-Alive: timeout=N"), so a request is never sent on a connection being closed.
_IDLE_SHARE = 0.8
_DEFAULT_IDLE_SECONDS = 4.0
_IDEMPOTENT = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}


class StorageError(Exception):
    """A storage call failed. status is the HTTP status (0 if the proxy could not be reached)."""

    def __init__(self, message, status=0, code="error"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    def __repr__(self):
        return f"StorageError(status={self.status}, code={self.code!r}, message={self.message!r})"


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix stream socket (ERA_STORAGE_URL=unix:///path/to/socket)."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _quote(segment):
    return urllib.parse.quote(segment, safe="")


class _Transport:
    """HTTP to the proxy: one kept-alive connection per thread, re-resolved if the URL changes."""

    def __init__(self):
        self._local = threading.local()

    def _target(self):
        url = os.environ.get("ERA_STORAGE_URL") or DEFAULT_URL
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "unix":
            if parts.netloc or not parts.path:
                raise StorageError(f"ERA_STORAGE_URL must be unix:///path/to/socket, got {url!r}", 0, "bad_url")
            return parts
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StorageError(f"ERA_STORAGE_URL must be an http:// or unix:// URL, got {url!r}", 0, "bad_url")
        return parts

    def _connection(self, parts):
        local = self._local
        key = (parts.scheme, parts.hostname, parts.port, parts.path if parts.scheme == "unix" else None)
        conn = getattr(local, "conn", None)
        if conn is not None and (local.key != key or time.monotonic() - local.used > local.idle
                                 or _dropped(conn)):
            conn.close()
            conn = None
        if conn is None:
            timeout = float(os.environ.get("ERA_STORAGE_TIMEOUT", "300"))
            if parts.scheme == "unix":
                conn = _UnixConnection(urllib.parse.unquote(parts.path), timeout)
            else:
                cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
                conn = cls(parts.hostname, parts.port, timeout=timeout)
            local.conn, local.key, local.fresh = conn, key, True
        return conn

    def _drop(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def request(self, method, path, body=None, headers=None, query=None, stream=False):
        """Sends one request; returns (status, headers, body bytes) — or the open response if stream."""
        parts = self._target()
        base = "" if parts.scheme == "unix" else parts.path.rstrip("/")  # a unix URL's path is the socket
        if query:
            items = [(k, v) for k, v in query.items() if v is not None]
            if items:
                path += "?" + urllib.parse.urlencode(items, quote_via=urllib.parse.quote)
        hdrs = {"Accept": "application/json"}
        token = os.environ.get("ERA_STORAGE_TOKEN")
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        if headers:
            hdrs.update(headers)
        for attempt in (0, 1):
            conn = self._connection(parts)
            reused = not getattr(self._local, "fresh", True)
            try:
                try:
                    conn.request(method, base + path, body=body, headers=hdrs)
                except (ConnectionError, OSError):
                    # The proxy may have answered before reading the whole body (413, 412) and closed
                    # the connection while we were still sending: that answer is the result.
                    resp = _early_response(conn)
                    if resp is None:
                        raise
                else:
                    resp = conn.getresponse()
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                self._drop()
                # A kept-alive connection the proxy had already closed: safe to resend idempotent calls
                # whose body can be sent again (not a stream that is partly consumed).
                if attempt == 0 and reused and method in _IDEMPOTENT and _resendable(body):
                    continue
                where = "unix://" + parts.path if parts.scheme == "unix" else parts.geturl()
                raise StorageError(f"cannot reach the storage proxy at {where}: {e}", 0,
                                   "unreachable") from None
            self._local.fresh = False
            self._local.used = time.monotonic()
            self._local.idle = _idle_seconds(resp.getheader("Keep-Alive"))
            if stream:
                return resp
            data = resp.read()
            if resp.getheader("Connection", "").lower() == "close":
                self._drop()
            return resp.status, resp.headers, data
        raise AssertionError("unreachable")

    def json(self, method, path, payload=None, query=None, allow_404=False):
        body = None
        headers = None
        if payload is not None:
            body = json.dumps(payload).encode("utf-8")
            headers = {"Content-Type": "application/json"}
        status, _, data = self.request(method, path, body=body, headers=headers, query=query)
        if allow_404 and status == 404:
            return None
        return _decode(status, data)


def _dropped(conn):
    """True if the proxy has closed this kept-alive connection (e.g. it restarted): the socket then
    reads as end-of-file. Checked before reuse, so a non-idempotent call is never sent into it."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)  # an idle HTTP connection has nothing to read unless it was closed


def _idle_seconds(keep_alive):
    for part in (keep_alive or "").split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() == "timeout" and value.isdigit():
            return int(value) * _IDLE_SHARE
    return _DEFAULT_IDLE_SECONDS


def _resendable(body):
    return body is None or isinstance(body, (bytes, bytearray, memoryview, str))


def _early_response(conn):
    try:
        return conn.getresponse()
    except Exception:  # noqa: BLE001 - no answer arrived: the send error stands
        return None


def _decode(status, data):
    try:
        doc = json.loads(data) if data else {}
    except ValueError:
        doc = None
    if 200 <= status < 300 and isinstance(doc, (dict, list)):
        return doc
    if isinstance(doc, dict) and doc.get("error"):
        raise StorageError(str(doc["error"]), status, str(doc.get("code", "error")))
    raise StorageError(f"storage proxy answered HTTP {status}", status, "http_error")


_transport = _Transport()


class KVStorage:
    """Key-value storage (Cloudflare KV): string values, optional JSON metadata and expiration."""

    def set(self, namespace, key, value, metadata=None, expiration=None, expiration_ttl=None):
        """Stores value (a str) under key; returns True once it is durable."""
        if not isinstance(value, str):
            raise StorageError("value must be a str", 400, "invalid_value")
        payload = {"value": value, "metadata": metadata}
        if expiration is not None:
            payload["expiration"] = int(expiration)
        if expiration_ttl is not None:
            payload["expiration_ttl"] = int(expiration_ttl)
        _transport.json("PUT", f"/api/storage/kv/{_quote(namespace)}/{_quote(key)}", payload)
        return True

    def get(self, namespace, key):
        """The value, or None if the key does not exist (or has expired)."""
        doc = self.get_with_metadata(namespace, key)
        return None if doc is None else doc["value"]

    def get_with_metadata(self, namespace, key):
        """{"value", "metadata", "expiration"?} or None."""
        return _transport.json("GET", f"/api/storage/kv/{_quote(namespace)}/{_quote(key)}", allow_404=True)

    def delete(self, namespace, key):
        """Deletes key (a missing key is not an error); returns True."""
        _transport.json("DELETE", f"/api/storage/kv/{_quote(namespace)}/{_quote(key)}")
        return True

    def list_page(self, namespace, prefix="", limit=1000, cursor=None):
        """One page: {"keys": [...], "list_complete": bool, "cursor": str|None}."""
        query = {"prefix": prefix or None, "limit": limit, "cursor": cursor}
        return _transport.json("GET", f"/api/storage/kv/{_quote(namespace)}", query=query)

    def list(self, namespace, prefix="", limit=1000, cursor=None):
        """Keys as [{"name", "metadata", "expiration"?}], in byte order; one page of at most limit."""
        return self.list_page(namespace, prefix, limit, cursor)["keys"]

    def iter(self, namespace, prefix="", page_size=1000):
        """Every key under prefix, across all pages."""
        cursor = None
        while True:
            page = self.list_page(namespace, prefix, page_size, cursor)
            yield from page["keys"]
            if page["list_complete"]:
                return
            cursor = page["cursor"]


class ResourcesAPI:
    """What the namespaces hold, across KV, D1 and R2 (GET /api/resources/list and /stats)."""

    def list(self, type=None, namespace=None, key_prefix=None, limit=None, offset=None, cursor=None):
        """One page: {"resources": [...], "total", "offset", "limit", "has_more", "cursor"}."""
        query = {"type": type, "namespace": namespace, "key_prefix": key_prefix, "limit": limit,
                 "offset": offset, "cursor": cursor}
        return _transport.json("GET", "/api/resources/list", query=query)

    def iter(self, type=None, namespace=None, key_prefix=None, page_size=1000):
        """Every resource matching the filters, across all pages (cursor paging)."""
        cursor = None
        while True:
            page = self.list(type, namespace, key_prefix, page_size, None, cursor)
            yield from page["resources"]
            if not page["has_more"]:
                return
            cursor = page["cursor"]

    def stats(self, namespace=None):
        """{"total", "total_size", "by_type": {"kv", "d1", "r2"}, "by_namespace": {...}}."""
        return _transport.json("GET", "/api/resources/stats", query={"namespace": namespace})


kv = KVStorage()


def _sql_params(params):
    """params as JSON: bytes-like values become BLOBs (arrays of byte values, as D1 returns them)."""
    if params is None:
        return []
    if isinstance(params, (str, bytes, dict)) or not hasattr(params, "__iter__"):
        raise StorageError("params must be a list", 400, "invalid_params")
    return [list(p) if isinstance(p, (bytes, bytearray, memoryview)) else p for p in params]


def _statement(stmt):
    if isinstance(stmt, str):
        return {"sql": stmt, "params": []}
    if isinstance(stmt, dict):
        return {"sql": stmt.get("sql"), "params": _sql_params(stmt.get("params"))}
    sql, *rest = stmt
    return {"sql": sql, "params": _sql_params(rest[0] if rest else None)}


class D1Storage:
    """SQL storage (Cloudflare D1): each namespace has its own tables, named as if the database were its own.

    Values keep SQLite's types: integers come back exact (Python ints), BLOBs as lists of byte values;
    pass bytes to bind a BLOB, True/False bind as 1/0.
    """

    def query(self, namespace, sql, params=None):
        """Runs one statement; returns its rows as a list of dicts (column name -> value)."""
        doc = _transport.json("POST", f"/api/storage/d1/{_quote(namespace)}/query",
                              {"sql": sql, "params": _sql_params(params)})
        return doc["results"]

    def query_with_meta(self, namespace, sql, params=None):
        """Like query, but returns {"results": [...], "meta": {...}} (changes, last_row_id, duration, ...)."""
        doc = _transport.json("POST", f"/api/storage/d1/{_quote(namespace)}/query",
                              {"sql": sql, "params": _sql_params(params)})
        return {"results": doc["results"], "meta": doc["meta"]}

    def exec(self, namespace, sql, params=None):
        """Runs one statement, or several separated by ';' (then without params).

        Returns the meta of the call: {"changes", "last_row_id", "duration", "rows_read",
        "rows_written", ...} summed over the statements, plus "count" (statements run).
        """
        doc = _transport.json("POST", f"/api/storage/d1/{_quote(namespace)}/exec",
                              {"sql": sql, "params": _sql_params(params)})
        return dict(doc["meta"], count=doc["count"])

    def batch(self, namespace, statements):
        """Runs statements in one transaction: all take effect or none does.

        statements: a list of (sql, params) tuples, {"sql", "params"} dicts or plain SQL strings.
        Returns one {"results": [...], "meta": {...}} per statement, in order.
        """
        payload = {"statements": [_statement(s) for s in statements]}
        doc = _transport.json("POST", f"/api/storage/d1/{_quote(namespace)}/batch", payload)
        return [{"results": r["results"], "meta": r["meta"]} for r in doc["results"]]


d1 = D1Storage()
resources = ResourcesAPI()


# --- R2 -------------------------------------------------------------------------------------------

_CHUNK = 1 << 20  # bytes read from a file-like body per send


def _quote_key(key):
    # '.' is encoded too, so keys like ".." or "a/../b" reach the proxy as they are, never as path
    # steps that something on the way could resolve.
    return _quote(key).replace(".", "%2E")


def _r2_path(namespace, key):
    return f"/api/storage/r2/{_quote(namespace)}/{_quote_key(key)}"


def _range_header(rng):
    """R2's range shapes: {"offset", "length"?} | {"suffix"}; also (start, end_inclusive)."""
    if rng is None:
        return None
    if isinstance(rng, (tuple, list)) and len(rng) == 2:
        return f"bytes={int(rng[0])}-{int(rng[1])}"
    if "suffix" in rng:
        return f"bytes=-{int(rng['suffix'])}"
    offset = int(rng.get("offset", 0))
    if rng.get("length") is not None:
        return f"bytes={offset}-{offset + int(rng['length']) - 1}"
    return f"bytes={offset}-"


def _info_from_headers(key, headers):
    """The object info the proxy sends as headers on a raw GET or HEAD, in the JSON form's shape."""
    meta = headers.get("X-Era-Metadata")
    content_range = headers.get("Content-Range")  # "bytes a-b/size" on a ranged read
    size = content_range.rsplit("/", 1)[1] if content_range else headers.get("Content-Length")
    return {
        "key": key,
        "size": int(size or 0),
        "etag": (headers.get("ETag") or "").strip('"'),
        "uploaded": headers.get("X-Era-Uploaded"),
        "customMetadata": json.loads(meta) if meta else {},
        "httpMetadata": {"contentType": headers.get("Content-Type")},
    }


def _file_length(f):
    """The bytes left in a seekable file object, or None (then the body is sent chunked)."""
    try:
        if not f.seekable():
            return None
        pos = f.tell()
        end = f.seek(0, 2)
        f.seek(pos)
        return end - pos
    except (AttributeError, OSError, ValueError):
        return None


def _chunks(f):
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            return
        if isinstance(chunk, str):
            raise StorageError("a file-like body must be opened in binary mode", 400, "invalid_value")
        yield chunk


class R2Object:
    """An object's body being downloaded: read(n) / iteration / context manager, plus .info."""

    def __init__(self, resp, info):
        self._resp = resp
        self.info = info

    def read(self, n=-1):
        return self._resp.read() if n is None or n < 0 else self._resp.read(n)

    def __iter__(self):
        while True:
            chunk = self._resp.read(_CHUNK)
            if not chunk:
                return
            yield chunk

    def close(self):
        # Unread bytes leave the connection mid-response: it cannot carry another request.
        if not self._resp.isclosed():
            _transport._drop()
        self._resp.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class R2Storage:
    """Object storage (Cloudflare R2): bytes of any size, streamed both ways, with custom metadata.

    Bodies travel as raw bytes (not base64), so a file object is sent from disk in chunks and a large
    download can be written to a file without being held in memory (open() / download())."""

    def put(self, namespace, key, data, metadata=None, content_type=None, if_match=None, if_none_match=None):
        """Stores data under key; returns the object's info ({"key", "size", "etag", "uploaded", ...}) once
        it is durable.

        data: bytes, bytearray, memoryview, str (UTF-8) or a binary file object (streamed; its length is
        sent when it is seekable). metadata: a dict of strings. if_match / if_none_match: an etag (or "*")
        the current object must (not) have, else StorageError 412: compare-and-swap."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        headers = {"Content-Type": content_type or "application/octet-stream"}
        if isinstance(data, (bytes, bytearray, memoryview)):
            body = data
            headers["Content-Length"] = str(memoryview(data).nbytes)
        elif hasattr(data, "read"):
            length = _file_length(data)
            body = _chunks(data)
            if length is not None:
                headers["Content-Length"] = str(length)
        else:
            raise StorageError("data must be bytes, str or a binary file object", 400, "invalid_value")
        if metadata:
            # ASCII-only JSON: any name or value survives as a header.
            headers["X-Era-Metadata"] = json.dumps(metadata, ensure_ascii=True, separators=(",", ":"))
        if if_match is not None:
            headers["If-Match"] = _etag_header(if_match)
        if if_none_match is not None:
            headers["If-None-Match"] = _etag_header(if_none_match)
        status, _, resp = _transport.request("PUT", _r2_path(namespace, key), body=body, headers=headers,
                                             query={"raw": "1"})
        doc = _decode(status, resp)
        doc.pop("success", None)
        return doc

    def get(self, namespace, key, range=None):  # noqa: A002 - R2's name for it
        """The object's bytes (or the range's: {"offset", "length"?} or {"suffix"}), or None if missing."""
        obj = self.open(namespace, key, range)
        if obj is None:
            return None
        with obj:
            data = obj.read()
        if len(data) != obj.info["length"]:
            raise StorageError("the download ended early", 0, "incomplete_body")
        return data

    def open(self, namespace, key, range=None):  # noqa: A002
        """An R2Object to read the body from in pieces, or None if missing. Close it (or use `with`)."""
        headers = {"Accept": "application/octet-stream"}
        if range is not None:
            headers["Range"] = _range_header(range)
        resp = _transport.request("GET", _r2_path(namespace, key), headers=headers, query={"raw": "1"},
                                  stream=True)
        if resp.status not in (200, 206):
            data = resp.read()
            if resp.getheader("Connection", "").lower() == "close":
                _transport._drop()
            if resp.status == 404:
                return None
            _decode(resp.status, data)
        info = _info_from_headers(key, resp.headers)
        info["length"] = int(resp.getheader("Content-Length") or 0)
        if resp.status == 206:
            info["range"] = resp.getheader("Content-Range")
        return R2Object(resp, info)

    def download(self, namespace, key, fileobj):
        """Writes the object into a binary file object in chunks; returns its info, or None if missing."""
        obj = self.open(namespace, key)
        if obj is None:
            return None
        with obj:
            written = 0
            for chunk in obj:
                fileobj.write(chunk)
                written += len(chunk)
        if written != obj.info["length"]:
            raise StorageError("the download ended early", 0, "incomplete_body")
        return obj.info

    def head(self, namespace, key):
        """The object's info without its body, or None if missing."""
        status, headers, data = _transport.request("HEAD", _r2_path(namespace, key))
        if status == 404:
            return None
        if status != 200:
            raise StorageError(f"storage proxy answered HTTP {status}", status, "http_error")
        return _info_from_headers(key, headers)

    def delete(self, namespace, key):
        """Deletes the object (a missing one is not an error); returns True."""
        _transport.json("DELETE", _r2_path(namespace, key))
        return True

    def list_page(self, namespace, prefix="", limit=1000, cursor=None, delimiter=None):
        """One page: {"objects", "truncated", "cursor", "delimitedPrefixes"}."""
        query = {"prefix": prefix or None, "limit": limit, "cursor": cursor, "delimiter": delimiter or None}
        return _transport.json("GET", f"/api/storage/r2/{_quote(namespace)}", query=query)

    def list(self, namespace, prefix="", limit=1000, cursor=None, delimiter=None):
        """Objects as [{"key", "size", "etag", "uploaded", "customMetadata", ...}] in byte order: one page."""
        return self.list_page(namespace, prefix, limit, cursor, delimiter)["objects"]

    def iter(self, namespace, prefix="", page_size=1000):
        """Every object under prefix, across all pages."""
        cursor = None
        while True:
            page = self.list_page(namespace, prefix, page_size, cursor)
            yield from page["objects"]
            if not page["truncated"]:
                return
            cursor = page["cursor"]


def _etag_header(etag):
    return "*" if etag == "*" else f'"{etag}"'


r2 = R2Storage()
