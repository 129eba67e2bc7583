"""The call budget end to end, cloudflare mode: the proxy talks to Cloudflare's emulator through a counting
pass-through (cf_counter.py), which sees every REST call as Cloudflare's rate limit would.

- With a low budget (60 calls per 5 minutes) the proxy never sends more than that: once it is spent,
  clients get 503 with Retry-After, the refused write changed nothing, and every acknowledged write is
  in the store (read back by a second proxy that does not go through the counter).
- A 429 from Cloudflare is absorbed: it reaches the proxy once, every call pauses until its Retry-After,
  then they all go through; none is lost.
"""

import concurrent.futures
import json
import os
import unittest
import uuid

from cf_counter import Counter
from harness import Proxy, request


def emulator_env():
    return {k: v for k, v in os.environ.items() if k.startswith("ERA_CF_") or k == "ERA_PROXY_BACKEND"}


@unittest.skipUnless(os.environ.get("ERA_TEST_BACKEND") == "cloudflare",
                     "needs Cloudflare's emulator: runs in the cloudflare-mode run")
class CloudflareBudgetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # A direct proxy, outside the counter, with the default budget: reads back what was stored.
        cls.reader = Proxy.configured(emulator_env())

    @classmethod
    def tearDownClass(cls):
        cls.reader.close()

    def read_back(self, ns, key):
        status, _, raw = request("GET", f"{self.reader.url}/api/storage/kv/{ns}/{key}")
        return status, (json.loads(raw) if raw else None)

    def test_low_budget_gives_503_with_retry_after_and_loses_nothing(self):
        with Counter(emulator_env()) as counter:
            env = dict(counter.proxy_env(), ERA_CF_CALL_BUDGET="60", ERA_CF_BUDGET_MAX_WAIT_MS="500")
            proxy = Proxy.configured(env)
            try:
                ns = "budget_" + uuid.uuid4().hex[:8]
                acked, refused = [], None
                for i in range(300):
                    key = f"k{i}"
                    status, headers, raw = request("PUT", f"{proxy.url}/api/storage/kv/{ns}/{key}",
                                                   {"value": f"v{i}"})
                    if status == 200:
                        acked.append(key)
                        continue
                    self.assertEqual(status, 503, raw)
                    body = json.loads(raw)
                    self.assertIs(body["success"], False)
                    self.assertEqual(body["code"], "call_budget_exhausted", body)
                    self.assertIn("budget", body["error"])
                    retry_after = int(headers["Retry-After"])
                    self.assertGreaterEqual(retry_after, 1)
                    self.assertLessEqual(retry_after, 300)
                    refused = key
                    break
                self.assertIsNotNone(refused, "the budget never ran out")
                self.assertGreater(len(acked), 0)
                # Reads that need Cloudflare are refused the same way while the budget is spent (one the
                # replica's read cache holds would still be answered), and nothing more goes out.
                sent = counter.counts()["rest"]
                status, headers, _ = request("GET", f"{proxy.url}/api/storage/kv/{ns}/never-written")
                self.assertEqual(status, 503)
                self.assertIn("Retry-After", headers)
                # D1 too (its errors pass through the SQL layer): 503 with Retry-After.
                status, headers, raw = request("POST", f"{proxy.url}/api/storage/d1/{ns}/query",
                                               {"sql": "SELECT 1", "params": []})
                self.assertEqual(status, 503, raw)
                self.assertGreaterEqual(int(headers["Retry-After"]), 1)
                counts = counter.counts()
                self.assertEqual(counts["rest"], sent)
                self.assertLessEqual(counts["rest"], 60, counts)  # never past the budget, start-up included
                self.assertEqual(counts["429"], 0)
            finally:
                proxy.close()
        for i, key in enumerate(acked):
            status, body = self.read_back(ns, key)
            self.assertEqual((status, body and body.get("value")), (200, f"v{i}"), key)
        status, _ = self.read_back(ns, refused)
        self.assertEqual(status, 404)  # the refused write was never sent

    def test_a_429_reaches_the_proxy_once_pauses_every_call_and_nothing_is_lost(self):
        with Counter(emulator_env()) as counter:
            proxy = Proxy.configured(counter.proxy_env())
            try:
                ns = "pause_" + uuid.uuid4().hex[:8]
                counter.inject_429(n=1, retry_after=2)

                def put(i):
                    return request("PUT", f"{proxy.url}/api/storage/kv/{ns}/k{i}", {"value": f"v{i}"})[0]

                with concurrent.futures.ThreadPoolExecutor(8) as pool:
                    statuses = list(pool.map(put, range(16)))
                self.assertEqual(statuses, [200] * 16)
                self.assertEqual(counter.counts()["429"], 1)  # the pause held: no second 429
                status, _, raw = request("GET", f"{proxy.url}/metrics")
                self.assertEqual(status, 200)
                self.assertIn("era_cf_budget_throttled_total 1", raw.decode())
            finally:
                proxy.close()
        for i in range(16):
            status, body = self.read_back(ns, f"k{i}")
            self.assertEqual((status, body and body.get("value")), (200, f"v{i}"))


if __name__ == "__main__":
    unittest.main()
