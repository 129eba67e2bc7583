"""R2 through the proxy in cloudflare mode, against Cloudflare's emulator, whose S3 endpoint verifies
our SigV4 signatures: objects land under "ns/key" byte for byte (read back directly from the emulator),
large ones go up as multipart, metadata round-trips exactly, conditions and ranges work, and bad keys
are refused before any upstream call."""

import hashlib
import json
import os
import unittest
import urllib.error
import urllib.parse
import urllib.request

from cf_emulator import Emulator
from harness import Proxy

PART_MIB = 5


def request(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


@unittest.skipIf(os.environ.get("ERA_TEST_BACKEND") == "cloudflare",
                 "starts its own upstream: runs once, in the local-mode run")
class CloudflareR2Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator().start()
        env = cls.emu.proxy_env()
        env["ERA_CF_R2_PART_SIZE_MIB"] = str(PART_MIB)
        cls.proxy = Proxy.configured(env)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        cls.emu.stop()

    def url(self, ns, key="", query=""):
        path = f"{self.proxy.url}/api/storage/r2/{ns}"
        if key:
            path += "/" + urllib.parse.quote(key, safe="/")
        return path + query

    def put(self, ns, key, data, headers=None):
        status, body, _ = request("PUT", self.url(ns, key), data, headers)
        return status, json.loads(body)

    def get_raw(self, ns, key, headers=None):
        return request("GET", self.url(ns, key, "?raw=1"), None, headers)

    def test_object_lands_under_ns_slash_key_with_exact_metadata(self):
        data = bytes(range(256)) * 40
        meta = {"user_id": "123", "Uploaded By": "wéb % ui", "trailing ": " spaced ", "ctrl": "a\tb"}
        status, body = self.put("cfr1", "avatars/user 123.jpg", data,
                                {"Content-Type": "image/jpeg", "X-Era-Metadata": json.dumps(meta)})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["etag"], hashlib.md5(data).hexdigest())
        self.assertEqual(self.emu.r2_get("cfr1/avatars/user 123.jpg"), data)
        status, got, headers = self.get_raw("cfr1", "avatars/user 123.jpg")
        self.assertEqual((status, got), (200, data))
        self.assertEqual(headers["Content-Type"], "image/jpeg")
        self.assertEqual(json.loads(headers["X-Era-Metadata"]), meta)
        status, body, _ = request("GET", self.url("cfr1", "avatars/user 123.jpg"))
        self.assertEqual(json.loads(body)["customMetadata"], meta)

    def test_large_object_goes_up_in_parts_and_reads_back_whole(self):
        data = os.urandom(2 * PART_MIB * 1024 * 1024 + 12345)
        status, body = self.put("cfr2", "big.bin", data)
        self.assertEqual(status, 200, body)
        self.assertTrue(body["etag"].endswith("-3"), body["etag"])  # three parts
        self.assertEqual(body["size"], len(data))
        self.assertEqual(self.emu.r2_get("cfr2/big.bin"), data)
        status, got, _ = self.get_raw("cfr2", "big.bin")
        self.assertEqual(got, data)
        status, got, headers = self.get_raw("cfr2", "big.bin", {"Range": "bytes=5242870-5242889"})
        self.assertEqual((status, got), (206, data[5242870:5242890]))

    def test_exactly_one_part_is_a_single_put(self):
        data = os.urandom(PART_MIB * 1024 * 1024)
        status, body = self.put("cfr2b", "edge.bin", data)
        self.assertEqual(body["etag"], hashlib.md5(data).hexdigest())

    def test_ranges(self):
        data = b"0123456789abcdef"
        self.put("cfr3", "r", data)
        for rng, want in [("bytes=2-5", b"2345"), ("bytes=10-", b"abcdef"), ("bytes=-3", b"def"), ("bytes=14-99", b"ef")]:
            with self.subTest(rng=rng):
                status, got, _ = self.get_raw("cfr3", "r", {"Range": rng})
                self.assertEqual((status, got), (206, want))
        status, body, _ = self.get_raw("cfr3", "r", {"Range": "bytes=16-"})
        self.assertEqual(status, 416)

    def test_conditional_writes_are_atomic_upstream(self):
        status, first = self.put("cfr4", "c", b"one", {"If-None-Match": "*"})
        self.assertEqual(status, 200)
        status, body = self.put("cfr4", "c", b"two", {"If-None-Match": "*"})
        self.assertEqual((status, body["code"]), (412, "precondition_failed"))
        status, body = self.put("cfr4", "c", b"three", {"If-Match": '"%s"' % first["etag"]})
        self.assertEqual(status, 200)
        status, body = self.put("cfr4", "c", b"four", {"If-Match": '"%s"' % first["etag"]})
        self.assertEqual(status, 412)
        self.assertEqual(self.emu.r2_get("cfr4/c"), b"three")

    def test_list_pages_delimiters_and_namespace_isolation(self):
        keys = ["a/1", "a/2", "b", "c/x/y", "d"]
        for k in keys:
            self.put("cfr5", k, b"v")
        self.put("cfr5x", "a/1", b"other")
        status, body, _ = request("GET", self.url("cfr5", query="?delimiter=/"))
        page = json.loads(body)
        self.assertEqual([o["key"] for o in page["objects"]], ["b", "d"])
        self.assertEqual(page["delimitedPrefixes"], ["a/", "c/"])
        seen, cursor = [], None
        for _ in range(10):
            q = "?limit=2" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
            page = json.loads(request("GET", self.url("cfr5", query=q))[1])
            seen += [o["key"] for o in page["objects"]]
            if not page["truncated"]:
                break
            cursor = page["cursor"]
        self.assertEqual(seen, keys)

    def test_delete_and_missing(self):
        self.put("cfr6", "gone", b"x")
        self.assertEqual(request("DELETE", self.url("cfr6", "gone"))[0], 200)
        self.assertIsNone(self.emu.r2_get("cfr6/gone"))
        self.assertEqual(self.get_raw("cfr6", "gone")[0], 404)
        self.assertEqual(request("HEAD", self.url("cfr6", "gone"))[0], 404)

    def test_hostile_keys_are_data(self):
        for key in ["a%2Fb", "nul\x00byte", "q?x#y+z", "sp ace/ü/😀", "semi;colon=eq&amp"]:
            with self.subTest(key=key):
                status, body = self.put("cfr7", key, key.encode())
                self.assertEqual(status, 200, body)
                self.assertEqual(self.emu.r2_get("cfr7/" + key), key.encode())
                self.assertEqual(self.get_raw("cfr7", key)[1], key.encode())

    def test_refused_before_any_upstream_call(self):
        status, body = self.put("cfr8", "x" * 1020, b"v")  # "cfr8/" + 1020 > 1024 bytes
        self.assertEqual((status, body["code"]), (400, "key_too_long"))
        status, body = self.put("cfr8", "a/../b", b"v")
        self.assertEqual((status, body["code"]), (400, "invalid_key"))
        self.assertEqual(self.emu.r2_names("cfr8/"), [])

    def test_metadata_is_measured_as_sent(self):
        # 4,001 bytes as given (within 8,192), but each non-ASCII byte goes up as "%XX": 12,001 bytes.
        json_form = {"Content-Type": "application/json"}
        meta = {"a": "\u00e9" * 2000}
        status, body = self.put("cfr9", "m", json.dumps({"content": "eA==", "metadata": meta}).encode(), json_form)
        self.assertEqual((status, body["code"]), (413, "metadata_too_large"), body)
        self.assertIn("once encoded", body["error"])
        self.assertEqual(self.emu.r2_names("cfr9/"), [])
        # ASCII travels as is (2,000 bytes: the emulator's R2 takes about 2 KiB; production 8 KiB).
        status, body = self.put("cfr9", "m", json.dumps({"content": "eA==", "metadata": {"a": "e" * 2000}}).encode(),
                                json_form)
        self.assertEqual(status, 200, body)
        self.assertEqual(self.emu.r2_names("cfr9/"), ["cfr9/m"])


if __name__ == "__main__":
    unittest.main()
