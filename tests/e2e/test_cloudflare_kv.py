"""KV through the proxy in cloudflare mode, against Cloudflare's own emulator: what the proxy writes is
read back directly from the emulator under the documented internal name "ns:key", and by Cloudflare's
official npm client; limits are enforced before anything reaches the upstream."""

import json
import os
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

from cf_emulator import NODE22, WRANGLER_DIR, Emulator
from harness import Proxy, call, request
import prom_text




def key_url(base, ns, key):
    return f"{base}/api/storage/kv/{ns}/" + urllib.parse.quote(key, safe="")


@unittest.skipIf(os.environ.get("ERA_TEST_BACKEND") == "cloudflare",
                 "starts its own upstream: runs once, in the local-mode run")
class CloudflareKvTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator().start()
        cls.proxy = Proxy.configured(cls.emu.proxy_env())
        cls.base = cls.proxy.url
        # A second replica on the same account, without a read cache: it reads what Cloudflare holds.
        cls.other = Proxy.configured(dict(cls.emu.proxy_env(), ERA_CF_KV_CACHE_TTL_S="0"))

    @classmethod
    def tearDownClass(cls):
        cls.other.close()
        cls.proxy.close()
        cls.emu.stop()

    def kv_calls(self):
        """KV calls the first replica made to Cloudflare so far (every attempt, any outcome)."""
        status, _, data = request("GET", self.proxy.url + "/metrics")
        self.assertEqual(status, 200, data)
        fam = prom_text.parse(data.decode()).get("era_upstream_requests_total")
        return sum(v for _, labels, v in fam.samples if labels.get("api") == "kv") if fam else 0

    def put(self, ns, key, body):
        return call("PUT", key_url(self.base, ns, key), body)

    def get(self, ns, key):
        return call("GET", key_url(self.base, ns, key))

    def test_value_lands_under_ns_colon_key_byte_for_byte(self):
        value = "héllo\u0000wörld ✓ \U0001F600"
        status, body = self.put("cfkv1", "user:123", {"value": value, "metadata": {"by": "test", "n": 1}})
        self.assertEqual((status, body), (200, {"success": True}))
        self.assertEqual(self.emu.kv_get("cfkv1:user:123"), value.encode())
        status, body = self.get("cfkv1", "user:123")
        self.assertEqual(status, 200)
        self.assertEqual(body["value"], value)
        self.assertEqual(body["metadata"], {"by": "test", "n": 1})

    def test_awkward_keys_are_percent_encoded_exactly_once(self):
        for key in ["a/b/c", "100% sure", "q?x=1&y=2#frag", "sp ace", "plus+sign", "ü/😀", "..a", "semi;colon"]:
            with self.subTest(key=key):
                status, _ = self.put("cfkv2", key, {"value": "v:" + key})
                self.assertEqual(status, 200)
                self.assertEqual(self.emu.kv_get("cfkv2:" + key), ("v:" + key).encode())
                self.assertEqual(self.get("cfkv2", key)[1]["value"], "v:" + key)

    def test_overwrite_replaces_value_and_metadata(self):
        self.put("cfkv3", "k", {"value": "one", "metadata": {"v": 1}})
        self.put("cfkv3", "k", {"value": "two"})
        status, body = self.get("cfkv3", "k")
        self.assertEqual(body["value"], "two")
        self.assertIsNone(body["metadata"])

    def test_delete_and_missing(self):
        self.put("cfkv4", "gone", {"value": "x"})
        self.assertEqual(call("DELETE", key_url(self.base, "cfkv4", "gone")), (200, {"success": True}))
        self.assertIsNone(self.emu.kv_get("cfkv4:gone"))
        status, body = self.get("cfkv4", "gone")
        self.assertEqual((status, body["code"]), (404, "key_not_found"))
        self.assertEqual(call("DELETE", key_url(self.base, "cfkv4", "never-was"))[0], 200)

    def test_list_pages_walk_every_key_once_in_order_and_stay_in_the_namespace(self):
        keys = sorted(f"item:{i:03d}" for i in range(23))
        for k in keys:
            self.put("cfkv5", k, {"value": k, "metadata": {"k": k}})
        # Neighbours that a sloppy prefix would leak: another namespace starting the same way.
        self.put("cfkv5x", "item:000", {"value": "other"})
        self.put("cfkv", "5:item:999", {"value": "other"})
        for limit in (1, 3, 10, 11, 1000):
            with self.subTest(limit=limit):
                seen, cursor = [], None
                for _ in range(100):
                    q = f"?prefix=item:&limit={limit}" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
                    status, page = call("GET", f"{self.base}/api/storage/kv/cfkv5{q}")
                    self.assertEqual(status, 200, page)
                    self.assertLessEqual(len(page["keys"]), limit)
                    seen += [k["name"] for k in page["keys"]]
                    for k in page["keys"]:
                        self.assertEqual(k["metadata"], {"k": k["name"]})
                    if page["list_complete"]:
                        self.assertIsNone(page["cursor"])
                        break
                    cursor = page["cursor"]
                self.assertEqual(seen, keys)

    def test_bad_cursor_is_a_clear_400(self):
        status, body = call("GET", f"{self.base}/api/storage/kv/cfkv6?cursor=notacursor")
        self.assertEqual((status, body["code"]), (400, "invalid_cursor"))

    def test_limits_are_enforced_before_any_upstream_call(self):
        ns = "cfkv7"
        # 512-byte key: fine locally, but "cfkv7:" + key would exceed Cloudflare's 512-byte name limit.
        status, body = self.put(ns, "k" * 512, {"value": "x"})
        self.assertEqual((status, body["code"]), (400, "key_too_long"))
        self.assertIn("506 bytes", body["error"])
        status, _ = self.put(ns, "k" * 506, {"value": "fits"})
        self.assertEqual(status, 200)
        status, body = self.put(ns, "meta", {"value": "x", "metadata": {"m": "x" * 1100}})
        self.assertEqual((status, body["code"]), (413, "metadata_too_large"))
        status, body = self.put(ns, "ttl", {"value": "x", "expiration_ttl": 30})
        self.assertEqual(status, 400)
        self.assertEqual(self.emu.kv_names(ns + ":"), [ns + ":" + "k" * 506])

    def test_resource_discovery_answers_from_the_shared_registry(self):
        # Served from the registry tables in D1 (and D1's own ownership registry for tables).
        for path in ("/api/resources/list", "/api/resources/stats"):
            status, body = call("GET", self.base + path)
            self.assertEqual(status, 200, body)
        self.assertIn("d1", body["by_type"])

    def test_read_your_writes_on_the_replica_that_wrote(self):
        ns = "cfkv9"
        for i in range(3):
            self.assertEqual(self.put(ns, "k", {"value": f"v{i}", "metadata": {"i": i}})[0], 200)
            status, body = self.get(ns, "k")
            self.assertEqual((status, body["value"], body["metadata"]), (200, f"v{i}", {"i": i}))
            self.assertEqual(self.emu.kv_get(ns + ":k"), f"v{i}".encode())
        self.assertEqual(call("DELETE", key_url(self.base, ns, "k"))[0], 200)
        self.assertEqual(self.get(ns, "k")[0], 404)
        self.assertIsNone(self.emu.kv_get(ns + ":k"))
        self.assertEqual(self.put(ns, "k", {"value": "back"})[0], 200)
        self.assertEqual(self.get(ns, "k")[1]["value"], "back")
        # Served from this replica's cache: reading it again costs no call to Cloudflare.
        before = self.kv_calls()
        for _ in range(5):
            self.assertEqual(self.get(ns, "k")[1]["value"], "back")
        self.assertEqual(self.kv_calls(), before)
        # The other replica reads what Cloudflare holds.
        self.assertEqual(call("GET", key_url(self.other.url, ns, "k"))[1]["value"], "back")

    def test_expiration_ttl_60_is_passed_through_and_reported(self):
        t0 = int(time.time())
        status, body = self.put("cfkv10", "ttl", {"value": "x", "expiration_ttl": 60})
        self.assertEqual((status, body), (200, {"success": True}))
        t1 = int(time.time())
        status, body = call("GET", key_url(self.other.url, "cfkv10", "ttl"))
        self.assertEqual(status, 200, body)
        self.assertGreaterEqual(body["expiration"], t0 + 60)
        self.assertLessEqual(body["expiration"], t1 + 61)
        # An absolute expiration at the 60 s minimum is accepted too (stored a few seconds later).
        at = int(time.time()) + 60
        self.assertEqual(self.put("cfkv10", "abs", {"value": "y", "expiration": at})[0], 200)
        status, body = call("GET", key_url(self.other.url, "cfkv10", "abs"))
        self.assertEqual(status, 200, body)
        self.assertGreaterEqual(body["expiration"], at)
        self.assertLessEqual(body["expiration"], int(time.time()) + 71)
        # A far one is kept exactly.
        far = int(time.time()) + 86400
        self.assertEqual(self.put("cfkv10", "far", {"value": "z", "expiration": far})[0], 200)
        self.assertEqual(call("GET", key_url(self.other.url, "cfkv10", "far"))[1]["expiration"], far)

    def test_metadata_round_trip_through_another_replica(self):
        meta = {"owner": "bob", "tags": ["a", "b"], "n": 1.5, "nested": {"x": None, "ü": "✓"}}
        self.assertEqual(self.put("cfkv11", "doc", {"value": "body", "metadata": meta})[0], 200)
        status, body = call("GET", key_url(self.other.url, "cfkv11", "doc"))
        self.assertEqual((status, body["value"], body["metadata"]), (200, "body", meta))
        self.assertNotIn("expiration", body)
        # Overwritten without metadata: none is left, on either replica.
        self.assertEqual(self.put("cfkv11", "doc", {"value": "plain"})[0], 200)
        for url in (self.base, self.other.url):
            status, body = call("GET", key_url(url, "cfkv11", "doc"))
            self.assertEqual((status, body["value"], body["metadata"]), (200, "plain", None))

    def test_concurrent_writes_are_all_acknowledged_and_readable(self):
        n = 48
        deleters = set(range(3, n, 4))
        for i in deleters:  # what the deleters remove exists first
            self.assertEqual(self.put("cfkv12", f"d{i}", {"value": "old"})[0], 200)
        results = [None] * n
        start = threading.Barrier(n)

        def write(i):
            start.wait()
            if i in deleters:
                results[i] = call("DELETE", key_url(self.base, "cfkv12", f"d{i}"))[0]
            else:
                results[i] = self.put("cfkv12", f"k{i}", {"value": f"v{i}", "metadata": {"i": i}})[0]

        before = self.kv_calls()
        threads = [threading.Thread(target=write, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        calls = self.kv_calls() - before
        self.assertEqual(results, [200] * n)
        self.assertLessEqual(calls, n)  # never more calls than writes; concurrent ones share calls
        print(f"\n{n} concurrent KV writes and deletes: {calls} upstream calls", flush=True)
        for i in range(n):
            with self.subTest(i=i):
                if i in deleters:
                    self.assertIsNone(self.emu.kv_get(f"cfkv12:d{i}"))
                    self.assertEqual(call("GET", key_url(self.other.url, "cfkv12", f"d{i}"))[0], 404)
                    self.assertEqual(self.get("cfkv12", f"d{i}")[0], 404)
                    continue
                self.assertEqual(self.emu.kv_get(f"cfkv12:k{i}"), f"v{i}".encode())
                status, body = call("GET", key_url(self.other.url, "cfkv12", f"k{i}"))
                self.assertEqual((status, body["value"], body["metadata"]), (200, f"v{i}", {"i": i}))

    def test_official_cloudflare_client_reads_what_the_proxy_wrote(self):
        self.put("cfkv8", "shared:doc", {"value": "from the proxy", "metadata": {"owner": "alice"}})
        i = self.emu.info
        # The emulator serves Cloudflare's own paths under <base>/client/v4: the official client talks
        # to it unchanged.
        script = r"""
const Cloudflare = require('cloudflare');
const [base, account, ns] = process.argv.slice(1);
const client = new Cloudflare({ apiToken: 'era-emulator-token', baseURL: base + '/client/v4', maxRetries: 0 });
(async () => {
  const res = await client.kv.namespaces.values.get('cfkv8:shared:doc', { account_id: account, namespace_id: ns });
  const keys = [];
  for await (const k of client.kv.namespaces.keys.list(ns, { account_id: account, prefix: 'cfkv8:' })) keys.push(k);
  const meta = await client.kv.namespaces.metadata.get('cfkv8:shared:doc', { account_id: account, namespace_id: ns });
  console.log(JSON.stringify({ value: await res.text(), keys, meta }));
})().catch((e) => { console.error(e); process.exit(1); });
"""
        out = subprocess.run([NODE22, "-e", script, i["base"], i["account_id"], i["kv_namespace_id"]],
                             cwd=WRANGLER_DIR, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        got = json.loads(out.stdout)
        self.assertEqual(got["value"], "from the proxy")
        self.assertEqual(got["keys"], [{"name": "cfkv8:shared:doc", "metadata": {"owner": "alice"}}])
        self.assertEqual(got["meta"], {"owner": "alice"})


if __name__ == "__main__":
    unittest.main()
