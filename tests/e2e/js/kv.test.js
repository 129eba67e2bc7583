'use strict';
// KV end to end through the JavaScript SDK against the real binary.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const http = require('http');
const { startProxy, rawRequest, SDK } = require('./harness');

const { KVStorage, StorageError } = require(SDK);
const unique = (name = 'js') => `${name}_${crypto.randomBytes(4).toString('hex')}`;

let proxy;
test.before(async () => { proxy = await startProxy(); });
test.after(async () => { await proxy.stop(); });

test('set/get/delete return what the guide shows', async () => {
  const ns = unique();
  assert.equal(await KVStorage.set(ns, 'config:api', JSON.stringify({ timeout: 30 })), true);
  assert.equal(JSON.parse(await KVStorage.get(ns, 'config:api')).timeout, 30);
  assert.deepEqual((await KVStorage.list(ns, 'config:', 100)).map((k) => k.name), ['config:api']);
  assert.equal(await KVStorage.delete(ns, 'config:api'), true);
  assert.equal(await KVStorage.get(ns, 'config:api'), null);
  assert.equal(await KVStorage.delete(ns, 'config:api'), true);
});

test('unusual keys are percent-encoded and round-trip', async () => {
  const ns = unique();
  const keys = ['a/b', 'sp ace', 'q?', 'h#', '100%', 'ü✓', "it's (ok)*!", '../x'];
  for (const k of keys) await KVStorage.set(ns, k, `v:${k}`);
  for (const k of keys) assert.equal(await KVStorage.get(ns, k), `v:${k}`);
  const listed = (await KVStorage.list(ns)).map((k) => k.name);
  assert.deepEqual(listed, [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
});

test('metadata and expiration options', async () => {
  const ns = unique();
  const now = Math.floor(Date.now() / 1000);
  await KVStorage.set(ns, 'k', 'v', { a: 1 }, { expiration: now + 600 });
  // Both backends report the expiration (the emulator's KV Worker serves it as Cloudflare does).
  assert.deepEqual(await KVStorage.getWithMetadata(ns, 'k'), { value: 'v', metadata: { a: 1 }, expiration: now + 600 });
  await assert.rejects(KVStorage.set(ns, 'k2', 'v', null, { expirationTtl: 10 }),
    (e) => e instanceof StorageError && e instanceof Error && e.status === 400 && e.code === 'invalid_expiration');
});

test('errors reject with StorageError carrying status and code', async () => {
  await assert.rejects(KVStorage.set('bad/ns', 'k', 'v'),
    (e) => e instanceof StorageError && e.status === 400 && e.code === 'invalid_namespace' && /1 to 64/.test(e.message));
  await assert.rejects(KVStorage.set(unique(), 'k', 42), (e) => e instanceof StorageError);
  const res = await rawRequest(proxy.url, 'GET', '/api/storage/kv/x/missing');
  assert.equal(res.status, 404);
  assert.deepEqual([res.json.success, res.json.code], [false, 'key_not_found']);
});

test('listPage and iterate walk every page exactly once', async () => {
  const ns = unique();
  const names = Array.from({ length: 250 }, (_, i) => `k${String(i).padStart(4, '0')}`);
  await Promise.all(names.map((n) => KVStorage.set(ns, n, 'v')));
  const page = await KVStorage.listPage(ns, '', 100);
  assert.equal(page.keys.length, 100);
  assert.equal(page.list_complete, false);
  const seen = [];
  for await (const k of KVStorage.iterate(ns, 'k', 60)) seen.push(k.name);
  assert.deepEqual(seen, names);
});

test('the SDK keeps connections alive across calls', async () => {
  const ns = unique();
  const sockets = new Set();
  const orig = http.ClientRequest.prototype.onSocket;
  http.ClientRequest.prototype.onSocket = function onSocket(socket, ...rest) {
    sockets.add(socket);
    return orig.call(this, socket, ...rest);
  };
  try {
    for (let i = 0; i < 50; i += 1) await KVStorage.set(ns, `k${i}`, 'v');
  } finally {
    http.ClientRequest.prototype.onSocket = orig;
  }
  assert.ok(sockets.size <= 2, `used ${sockets.size} sockets for 50 sequential calls`);
});

test('ERA_STORAGE_TOKEN is sent as a bearer token', async () => {
  // A tiny server that records the Authorization header the SDK sends.
  let seen = null;
  const server = http.createServer((req, res) => {
    seen = req.headers.authorization;
    res.setHeader('Content-Type', 'application/json');
    res.end('{"success": true}');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const saved = [process.env.ERA_STORAGE_URL, process.env.ERA_STORAGE_TOKEN];
  process.env.ERA_STORAGE_URL = `http://127.0.0.1:${server.address().port}`;
  process.env.ERA_STORAGE_TOKEN = 'secret-token';
  try {
    await KVStorage.set('ns', 'k', 'v');
  } finally {
    [process.env.ERA_STORAGE_URL] = saved;
    if (saved[1] === undefined) delete process.env.ERA_STORAGE_TOKEN; else process.env.ERA_STORAGE_TOKEN = saved[1];
    server.close();
  }
  assert.equal(seen, 'Bearer secret-token');
});
