'use strict';
// D1 end to end through the JavaScript SDK against the real binary.
const baseTest = require('node:test');
const cloudflare = process.env.ERA_TEST_BACKEND === 'cloudflare';
const skip = false;
const test = (name, fn) => baseTest(name, fn);
const assert = require('node:assert/strict');
const crypto = require('crypto');
const { startProxy, SDK } = require('./harness');

const { D1Storage, StorageError } = require(SDK);
const unique = (name = 'js') => `${name}_${crypto.randomBytes(4).toString('hex')}`;

let proxy;
baseTest.before(async () => { if (!skip) proxy = await startProxy(); });
baseTest.after(async () => { if (proxy) await proxy.stop(); });

test('the guide flow: exec, query, update', async () => {
  const app = unique('myapp');
  await D1Storage.exec(app, `
    CREATE TABLE IF NOT EXISTS todos (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      title TEXT NOT NULL,
      completed BOOLEAN DEFAULT 0,
      created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
    )`);
  const meta = await D1Storage.exec(app, 'INSERT INTO todos (title) VALUES (?)', ['Write storage docs']);
  assert.equal(meta.changes, 1);
  assert.equal(meta.last_row_id, 1);
  assert.equal(meta.count, 1);
  const todos = await D1Storage.query(app, 'SELECT * FROM todos WHERE completed = ?', [false]);
  assert.deepEqual(todos.map((t) => t.title), ['Write storage docs']);
  await D1Storage.exec(app, 'UPDATE todos SET completed = 1 WHERE id = ?', [todos[0].id]);
  assert.deepEqual(await D1Storage.query(app, 'SELECT * FROM todos WHERE completed = ?', [0]), []);
});

test('a row\'s keys come in the SELECT\'s order (query and batch), as D1 gives them', async () => {
  const ns = unique();
  assert.deepEqual(Object.keys((await D1Storage.query(ns, 'SELECT 2 AS b, 1 AS a'))[0]), ['b', 'a']);
  await D1Storage.exec(ns, 'CREATE TABLE t (zeta, alpha, mid); INSERT INTO t VALUES (1, 2, 3)');
  assert.deepEqual(Object.keys((await D1Storage.query(ns, 'SELECT * FROM t'))[0]), ['zeta', 'alpha', 'mid']);
  const [first, second] = await D1Storage.batch(ns, [{ sql: 'SELECT mid, zeta FROM t' }, { sql: 'SELECT 2 AS b, 1 AS a' }]);
  assert.deepEqual(first.results, [{ mid: 3, zeta: 1 }]);
  assert.deepEqual(Object.keys(first.results[0]), ['mid', 'zeta']);
  assert.deepEqual(Object.keys(second.results[0]), ['b', 'a']);
});

test('types: blobs from Buffers and typed arrays, safe BigInts, exact small integers', async () => {
  const ns = unique();
  await D1Storage.exec(ns, 'CREATE TABLE v (b BLOB, i INTEGER)');
  await D1Storage.exec(ns, 'INSERT INTO v VALUES (?, ?)', [Buffer.from([0, 1, 255]), 5n]);
  await D1Storage.exec(ns, 'INSERT INTO v VALUES (?, ?)', [new Uint8Array([9]), Number.MAX_SAFE_INTEGER]);
  assert.deepEqual(await D1Storage.query(ns, 'SELECT b, i FROM v ORDER BY rowid'),
    [{ b: [0, 1, 255], i: 5 }, { b: [9], i: Number.MAX_SAFE_INTEGER }]);
  await assert.rejects(D1Storage.exec(ns, 'INSERT INTO v VALUES (?, ?)', [null, 2n ** 60n]),
    (e) => e instanceof StorageError && e.code === 'invalid_param');
  // Exact beyond 2^53 when selected as text.
  assert.deepEqual(await D1Storage.query(ns, 'SELECT CAST(9223372036854775807 AS TEXT) AS big'),
    [{ big: '9223372036854775807' }]);
});

test('batch is all or nothing, errors are StorageError with status and code', async () => {
  const ns = unique();
  await D1Storage.exec(ns, 'CREATE TABLE t (k TEXT PRIMARY KEY)');
  const res = await D1Storage.batch(ns, [['INSERT INTO t VALUES (?)', ['a']], { sql: 'SELECT k FROM t' }]);
  assert.deepEqual(res[1].results, [{ k: 'a' }]);
  await assert.rejects(D1Storage.batch(ns, ['INSERT INTO t VALUES (\'b\')', 'INSERT INTO t VALUES (\'a\')']),
    (e) => e instanceof Error && e.status === 400 && e.code === 'sql_error');
  // Cloudflare's emulator runs a /raw batch statement by statement (docs/api.md): the first insert stays.
  assert.deepEqual(await D1Storage.query(ns, 'SELECT count(*) AS n FROM t'), [{ n: cloudflare ? 2 : 1 }]);
  await assert.rejects(D1Storage.query(ns, 'SELECT * FROM todos'),
    (e) => e instanceof StorageError && e.message === 'no such table: todos');
  await assert.rejects(D1Storage.query(ns, 'ATTACH DATABASE \'/tmp/x\' AS x'),
    (e) => e instanceof StorageError && e.status === 403);
});
