#!/usr/bin/env node
// Every JavaScript example of the storage guide, run against a live proxy through the project's own SDK,
// each with the assertions the guide's text implies.
//
//   ERA_STORAGE_URL=http://127.0.0.1:8787 node tests/e2e/guide/guide_examples.js
//
// ERA_STORAGE_SDK overrides the SDK file (default: sdk/js/era_storage.js of this checkout); the SDK reads
// ERA_STORAGE_TOKEN itself; ERA_GUIDE_RUN suffixes every namespace (random by default). Prints one line
// per example and 'N passed, N failed' last; exits 1 on any failure. Node's own modules only.
'use strict';
const assert = require('assert/strict');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const sdkPath = path.resolve(process.env.ERA_STORAGE_SDK ||
                             path.join(__dirname, '..', '..', '..', 'sdk', 'js', 'era_storage.js'));
const { KVStorage, D1Storage, R2Storage } = require(sdkPath);
const RUN = process.env.ERA_GUIDE_RUN || crypto.randomBytes(4).toString('hex');
const ns = (name) => `${name}_${RUN}`;

const examples = {
  async quickStart() {
    await KVStorage.set(ns('myapp'), 'user:123', '{"theme": "dark"}');
    const prefs = await KVStorage.get(ns('myapp'), 'user:123');
    assert.equal(prefs, '{"theme": "dark"}');
  },

  async kvStorage() {
    const app = ns('myapp');
    const success = await KVStorage.set(app, 'config:api', JSON.stringify({ timeout: 30 }));
    assert.equal(success, true);
    const config = JSON.parse(await KVStorage.get(app, 'config:api'));
    assert.equal(config.timeout, 30);
    await KVStorage.set(app, 'other:x', '1');
    const keys = await KVStorage.list(app, 'config:', 100);
    assert.deepEqual(keys.map((k) => k.name), ['config:api']);
    await KVStorage.delete(app, 'config:api');
    assert.equal(await KVStorage.get(app, 'config:api'), null);
    assert.deepEqual(await KVStorage.list(app, 'config:', 100), []);
  },

  async d1Database() {
    const app = ns('myapp');
    await D1Storage.exec(app, `
      CREATE TABLE IF NOT EXISTS todos (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        title TEXT NOT NULL,
        completed BOOLEAN DEFAULT 0,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
      )`);
    await D1Storage.exec(app, 'INSERT INTO todos (title) VALUES (?)', ['Write storage docs']);
    const todos = await D1Storage.query(app, 'SELECT * FROM todos WHERE completed = ?', [0]);
    assert.deepEqual(todos.map((t) => t.title), ['Write storage docs']);
    assert.deepEqual(Object.keys(todos[0]).sort(), ['completed', 'created_at', 'id', 'title']);
    await D1Storage.exec(app, 'UPDATE todos SET completed = 1 WHERE id = ?', [todos[0].id]);
    assert.deepEqual(await D1Storage.query(app, 'SELECT * FROM todos WHERE completed = ?', [0]), []);
  },

  async r2Storage() {
    const app = ns('myapp');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'era-guide-'));
    try {
      const imageData = Buffer.concat([crypto.randomBytes(5000), Buffer.from([0, 255])]);
      fs.writeFileSync(path.join(dir, 'avatar.jpg'), imageData);
      const read = fs.readFileSync(path.join(dir, 'avatar.jpg'));
      await R2Storage.put(app, 'avatars/user123.jpg', read, { user_id: '123', uploaded_by: 'web_ui' });
      const avatarData = await R2Storage.get(app, 'avatars/user123.jpg');
      assert.ok(avatarData, 'the object comes back');
      fs.writeFileSync(path.join(dir, 'downloaded_avatar.jpg'), avatarData);
      assert.ok(fs.readFileSync(path.join(dir, 'downloaded_avatar.jpg')).equals(imageData), 'byte-exact');
      await R2Storage.put(app, 'other/readme.txt', Buffer.from('x'));
      const objects = await R2Storage.list(app, 'avatars/', 50);
      assert.deepEqual(objects.map((o) => [o.key, o.size]), [['avatars/user123.jpg', imageData.length]]);
      await R2Storage.delete(app, 'avatars/user123.jpg');
      assert.equal(await R2Storage.get(app, 'avatars/user123.jpg'), null);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },

  async errorHandling() {
    await assert.rejects(KVStorage.set('not a valid namespace!', 'key', 'value'),
                         (e) => e instanceof Error && e.message.length > 0);
  },

  async environmentVariables() {
    assert.ok(process.env.ERA_STORAGE_URL, 'the SDK reads ERA_STORAGE_URL');
  },
};

(async () => {
  let passed = 0;
  let failed = 0;
  for (const [name, fn] of Object.entries(examples)) {
    try {
      await fn();
      passed += 1;
      console.log(`ok   ${name}`);
    } catch (e) {
      failed += 1;
      console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
