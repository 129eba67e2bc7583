'use strict';
// The JavaScript SDK sends ERA_STORAGE_TOKEN as a bearer token, and a session is held to its scope.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const { startProxy, rawRequest, SDK } = require('./harness');

const { KVStorage, StorageError } = require(SDK);
const ADMIN = crypto.randomBytes(24).toString('hex');

let proxy;
test.before(async () => { proxy = await startProxy(['--auth', 'token'], { ERA_ADMIN_TOKEN: ADMIN }); });
test.after(async () => {
  delete process.env.ERA_STORAGE_TOKEN;
  await proxy.stop();
});

test('the session env from POST /api/sessions is all the SDK needs', async () => {
  const res = await rawRequest(proxy.url, 'POST', '/api/sessions',
    JSON.stringify({ language: 'node', namespaces: ['jsauth'], permissions: 'read_write' }),
    { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' });
  assert.equal(res.status, 201);
  assert.equal(res.json.language, 'javascript');
  Object.assign(process.env, res.json.env);
  assert.equal(process.env.ERA_STORAGE_URL, proxy.url);

  assert.equal(await KVStorage.set('jsauth', 'k', 'v'), true);
  assert.equal(await KVStorage.get('jsauth', 'k'), 'v');
  await assert.rejects(KVStorage.set('other', 'k', 'v'),
    (e) => e instanceof StorageError && e.status === 403 && e.code === 'namespace_forbidden');

  delete process.env.ERA_STORAGE_TOKEN;
  await assert.rejects(KVStorage.get('jsauth', 'k'),
    (e) => e instanceof StorageError && e.status === 401 && e.code === 'missing_token');
  process.env.ERA_STORAGE_TOKEN = 'era1.forged.token';
  await assert.rejects(KVStorage.get('jsauth', 'k'),
    (e) => e instanceof StorageError && e.status === 401 && e.code === 'invalid_token');
});

test('the SDK files are served as built', async () => {
  const fs = require('fs');
  const res = await rawRequest(proxy.url, 'GET', '/api/sdk/era_storage.js');
  assert.equal(res.status, 200);
  assert.ok(res.body.equals(fs.readFileSync(SDK)));
});
