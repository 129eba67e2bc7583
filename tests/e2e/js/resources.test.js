'use strict';
// ResourcesAPI through the JavaScript SDK against the real binary.
const baseTest = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const { startProxy, SDK } = require('./harness');

const { KVStorage, ResourcesAPI, StorageError } = require(SDK);
const unique = (name = 'jsres') => `${name}_${crypto.randomBytes(4).toString('hex')}`;

const test = baseTest;

let proxy;
baseTest.before(async () => { proxy = await startProxy(); });
baseTest.after(async () => { if (proxy) await proxy.stop(); });

test('list, iterate and stats reflect what was written', async () => {
  const ns = unique();
  for (let i = 0; i < 7; i += 1) await KVStorage.set(ns, `k${i}`, 'abc', { i });
  const stats = await ResourcesAPI.stats(ns);
  assert.deepEqual([stats.total, stats.total_size, stats.by_type.kv, stats.by_namespace[ns]], [7, 21, 7, 7]);
  const page = await ResourcesAPI.list({ namespace: ns, limit: 3 });
  assert.deepEqual(page.resources.map((r) => r.key), ['k0', 'k1', 'k2']);
  assert.equal(page.total, 7);
  assert.equal(page.has_more, true);
  assert.deepEqual(page.resources[1].metadata, { i: 1 });
  const all = [];
  for await (const r of ResourcesAPI.iterate({ namespace: ns }, 2)) all.push(r.key);
  assert.equal(all.length, 7);
  await KVStorage.delete(ns, 'k0');
  assert.equal((await ResourcesAPI.stats(ns)).total, 6);
  await assert.rejects(ResourcesAPI.list({ type: 'nope' }), (e) => e instanceof StorageError && e.status === 400);
});
