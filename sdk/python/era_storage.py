"""era_storage: the storage SDK injected into every ERA session (standard library only).

    import era_storage
    era_storage.kv.set("myapp", "user:123", '{"theme": "dark"}')
    era_storage.kv.get("myapp", "user:123")
    era_storage.d1.query("myapp", "SELECT * FROM todos WHERE completed = ?", [0])

The proxy is found through ERA_STORAGE_URL (default http://localhost:8787); ERA_STORAGE_TOKEN, when
set, is sent as a bearer token. Connections are kept alive, one per thread. Every failure raises
StorageError (an Exception) carrying .status, .code and the server's message.
"""

import http.client
import json
import os
import threading
import time
import urllib.parse

__all__ = ["StorageError", "KVStorage", "D1Storage", "ResourcesAPI", "kv", "d1", "resources"]

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


def _quote(segment):
    return urllib.parse.quote(segment, safe="")


class _Transport:
    """HTTP to the proxy: one kept-alive connection per thread, re-resolved if the URL changes."""

    def __init__(self):
        self._local = threading.local()

    def _target(self):
        url = os.environ.get("ERA_STORAGE_URL") or DEFAULT_URL
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StorageError(f"ERA_STORAGE_URL must be an http:// URL, got {url!r}", 0, "bad_url")
        return parts

    def _connection(self, parts):
        local = self._local
        key = (parts.scheme, parts.hostname, parts.port)
        conn = getattr(local, "conn", None)
        if conn is not None and (local.key != key or time.monotonic() - local.used > local.idle):
            conn.close()
            conn = None
        if conn is None:
            cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            conn = cls(parts.hostname, parts.port, timeout=float(os.environ.get("ERA_STORAGE_TIMEOUT", "300")))
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
        base = parts.path.rstrip("/")
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
                conn.request(method, base + path, body=body, headers=hdrs)
                resp = conn.getresponse()
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                self._drop()
                # A kept-alive connection the proxy had already closed: safe to resend idempotent calls.
                if attempt == 0 and reused and method in _IDEMPOTENT and not hasattr(body, "read"):
                    continue
                raise StorageError(f"cannot reach the storage proxy at {parts.geturl()}: {e}", 0,
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


def _idle_seconds(keep_alive):
    for part in (keep_alive or "").split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() == "timeout" and value.isdigit():
            return int(value) * _IDLE_SHARE
    return _DEFAULT_IDLE_SECONDS


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
