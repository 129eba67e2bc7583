'use strict';
// The /explorer page in a real browser: playwright-core driving Debian's chromium against the real
// binary (local backend, or cloudflare against the emulator when ERA_TEST_BACKEND says so). Every
// screen is saved as a screenshot under ERA_BROWSER_OUT (build/browser/<backend>/ by default).
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');
const { startProxy, rawRequest, ROOT } = require('../e2e/js/harness');

const BACKEND = process.env.ERA_TEST_BACKEND || 'local';
const OUT = process.env.ERA_BROWSER_OUT || path.join(ROOT, 'build', 'browser', BACKEND);
const CHROMIUM = process.env.ERA_CHROMIUM || '/usr/bin/chromium';
const ADMIN = crypto.randomBytes(24).toString('hex');
const HOSTILE = '<img src=x onerror=alert(1)>';
const unique = (name) => `${name}_${crypto.randomBytes(3).toString('hex')}`;
const seg = (s) => encodeURIComponent(s).replace(/\./g, '%2E');

let proxy;
let browser;
const seen = { dialogs: [], requests: [], problems: [] };

async function api(method, p, body, { token = ADMIN, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  let payload = body;
  if (body !== undefined && !Buffer.isBuffer(body)) {
    h['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  return rawRequest(proxy.url, method, p, payload, h);
}

// A page that records every dialog, request, page error and policy violation, for the whole run.
async function newPage() {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  page.on('dialog', (d) => {
    seen.dialogs.push({ type: d.type(), message: d.message() });
    if (d.type() === 'confirm') d.accept(); else d.dismiss();
  });
  page.on('request', (r) => seen.requests.push(r.url()));
  page.on('pageerror', (e) => seen.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') seen.problems.push(`console: ${m.text()}`); });
  return page;
}

async function shot(page, name) {
  fs.mkdirSync(OUT, { recursive: true });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(OUT, `${name}.png`) });
}

async function login(page) {
  await page.goto(`${proxy.url}/explorer`);
  await page.fill('#token', ADMIN);
  await page.click('form.login button[type=submit]');
  await page.waitForSelector('header nav a.active');
}

test.before(async () => {
  proxy = await startProxy([], { ERA_PROXY_AUTH: 'token', ERA_ADMIN_TOKEN: ADMIN });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});
test.after(async () => {
  if (browser) await browser.close();
  if (proxy) await proxy.stop();
});

test('the page and its files are served with a strict policy, and without a token', async () => {
  const page = await rawRequest(proxy.url, 'GET', '/explorer');
  assert.equal(page.status, 200);
  assert.match(page.headers['content-type'], /^text\/html; charset=utf-8/);
  const csp = page.headers['content-security-policy'];
  for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' blob: data:",
    "frame-ancestors 'none'", "object-src 'none'", "require-trusted-types-for 'script'"]) assert.ok(csp.includes(d), `${d} in ${csp}`);
  assert.ok(!/unsafe-inline|unsafe-eval|https?:|\*/.test(csp), csp);
  assert.equal(page.headers['x-content-type-options'], 'nosniff');
  assert.match(page.body.toString(), /<script type="module" src="\/explorer\/app.js"><\/script>/);
  assert.ok(!/<script>|\son\w+=/.test(page.body.toString()), 'no inline script or handler in the page');
  for (const [file, type] of [['app.js', 'text/javascript'], ['style.css', 'text/css'], ['favicon.svg', 'image/svg+xml']]) {
    const r = await rawRequest(proxy.url, 'GET', `/explorer/${file}`);
    assert.equal(r.status, 200, file);
    assert.ok(r.headers['content-type'].startsWith(type), `${file}: ${r.headers['content-type']}`);
    assert.equal(r.headers['content-security-policy'], csp);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
  }
  const missing = await rawRequest(proxy.url, 'GET', '/explorer/nope.js');
  assert.equal(missing.status, 404);
  assert.equal(missing.json.code, 'explorer_file_not_found');
  assert.equal(missing.headers['content-security-policy'], csp);
  assert.equal((await rawRequest(proxy.url, 'GET', '/explorer/..%2Fapp.js')).status, 404);
  // The page is open; the API behind it is not.
  assert.equal((await rawRequest(proxy.url, 'GET', '/api/resources/stats')).status, 401);
});

test('no explorer source builds markup from strings or evaluates code', () => {
  const dir = path.join(ROOT, 'explorer');
  const index = fs.readFileSync(path.join(dir, 'index.html'), 'utf8');
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.js'))) {
    const src = fs.readFileSync(path.join(dir, f), 'utf8');
    assert.ok(!/innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|srcdoc/.test(src), f);
    // Every module is preloaded by the page (else it is fetched only when its importer has loaded).
    if (f !== 'app.js') assert.ok(index.includes(`<link rel="modulepreload" href="/explorer/${f}">`), `${f} preloaded`);
  }
});

test('login: wrong and session tokens are refused, the admin token opens the explorer', async () => {
  const page = await newPage();
  await page.goto(`${proxy.url}/explorer`);
  await page.waitForSelector('form.login');
  await shot(page, 'login');
  await page.fill('#token', 'not-the-token');
  await page.click('form.login button[type=submit]');
  await page.waitForSelector('form.login p.error:not(:empty)');
  const session = await api('POST', '/api/sessions', { namespaces: ['a'] });
  await page.fill('#token', session.json.token);
  await page.click('form.login button[type=submit]');
  await page.waitForFunction(() => document.querySelector('form.login p.error').textContent.includes('session token'));
  await page.fill('#token', ADMIN);
  await page.click('form.login button[type=submit]');
  await page.waitForSelector('#namespaces');
  // The token is in this tab's storage and headers only: never in a URL.
  assert.ok(seen.requests.every((u) => !u.includes(ADMIN)));
  assert.ok(!page.url().includes(ADMIN));
  await page.reload();
  await page.waitForSelector('#namespaces');  // still logged in (sessionStorage)
  await page.click('header button.ghost');  // log out
  await page.waitForSelector('form.login');
  await page.close();
});

test('namespaces: counts and sizes per type, and a chart', async () => {
  const ns = unique('shop');
  await api('PUT', `/api/storage/kv/${ns}/greeting`, { value: 'hello' });
  await api('PUT', `/api/storage/r2/${ns}/logo.bin?raw=1`, Buffer.alloc(2048, 1), { headers: { 'Content-Type': 'application/octet-stream' } });
  await api('POST', `/api/storage/d1/${ns}/exec`, { sql: 'CREATE TABLE t (x)' });
  // A few more namespaces of different shapes, for the chart.
  for (const [name, kv, r2, tables] of [['analytics', 14, 1, 2], ['media', 2, 6, 0], ['billing', 6, 0, 3]]) {
    const other = unique(name);
    for (let i = 0; i < kv; i += 1) await api('PUT', `/api/storage/kv/${other}/k${i}`, { value: 'x'.repeat(40 * (i + 1)) });
    for (let i = 0; i < r2; i += 1) await api('PUT', `/api/storage/r2/${other}/o${i}?raw=1`, Buffer.alloc(1000 * (i + 1)), { headers: { 'Content-Type': 'image/png' } });
    for (let i = 0; i < tables; i += 1) await api('POST', `/api/storage/d1/${other}/exec`, { sql: `CREATE TABLE t${i} (x)` });
  }
  const page = await newPage();
  await login(page);
  const row = page.locator(`#namespaces tr[data-ns="${ns}"] td`);
  await row.first().waitFor();
  assert.deepEqual((await row.allTextContents()).slice(0, 6), [ns, '1', '5 B', '1', '1', '2.0 KiB']);
  assert.ok(await page.locator('svg.chart rect.bar').count() >= 3);
  await shot(page, 'namespaces');
  await page.close();
});

test('kv: a key made through the API is found in the page, edited there and read back', async () => {
  const ns = unique('kv');
  for (let i = 0; i < 120; i += 1) await api('PUT', `/api/storage/kv/${ns}/item:${String(i).padStart(3, '0')}`, { value: `v${i}`, metadata: i % 3 ? null : { batch: i % 7 } });
  const put = await api('PUT', `/api/storage/kv/${ns}/user:42`, { value: '{"name":"Ada","roles":["admin"]}', metadata: { owner: 'alice' }, expiration_ttl: 3600 });
  assert.equal(put.status, 200);
  const page = await newPage();
  await login(page);
  await page.goto(`${proxy.url}/explorer#/kv/${ns}`);
  await page.waitForSelector('#kv-status[data-loaded]');
  assert.equal(await page.locator('#kv-keys tbody tr').count(), 100);  // the first page of 121
  await page.click('.pager button:has-text("Next")');
  await page.waitForSelector('#kv-keys td.key:has-text("user:42")');
  assert.equal(await page.locator('#kv-keys tbody tr').count(), 21);
  await page.click('#kv-keys td.key:has-text("user:42")');
  await page.waitForSelector('#kv-value');
  assert.match(await page.textContent('#kv-value'), /"roles": \[\n\s+"admin"/);  // pretty-printed JSON
  assert.match(await page.textContent('#kv-detail'), /alice/);
  await shot(page, 'kv');
  await page.fill('#kv-prefix', 'user:');
  await page.waitForFunction(() => document.querySelectorAll('#kv-keys tbody tr').length === 1);
  await page.click('#kv-detail button[data-tab=hex]');
  assert.match(await page.textContent('#kv-value'), /^00000000 {2}7b 22 6e 61/);
  await page.click('#kv-detail button[data-tab=text]');
  assert.equal(await page.textContent('#kv-value'), '{"name":"Ada","roles":["admin"]}');
  await page.click('#kv-edit');
  await page.fill('#kv-edit-value', 'edited in the browser ✓');
  await page.click('#kv-save');
  await page.waitForFunction(() => document.querySelector('#kv-value')?.textContent === 'edited in the browser ✓');
  const back = await api('GET', `/api/storage/kv/${ns}/user:42`);
  assert.equal(back.json.value, 'edited in the browser ✓');
  assert.deepEqual(back.json.metadata, { owner: 'alice' });
  assert.ok(back.json.expiration === undefined || back.json.expiration > Date.now() / 1000);
  // A new key from the page, then delete it (confirmed).
  await page.click('#kv-new');
  await page.fill('#kv-edit-name', 'made:in-page');
  await page.fill('#kv-edit-value', 'new');
  await page.click('#kv-save');
  await page.waitForSelector('#kv-key:has-text("made:in-page")');
  assert.equal((await api('GET', `/api/storage/kv/${ns}/made:in-page`)).json.value, 'new');
  await page.click('#kv-delete');
  await page.waitForSelector('#kv-detail:has-text("Deleted.")');
  assert.ok(seen.dialogs.some((d) => d.type === 'confirm' && d.message.includes('made:in-page')));
  assert.equal((await api('GET', `/api/storage/kv/${ns}/made:in-page`)).status, 404);
  await page.close();
});

test('hostile names and values render as text: no dialog, no request to x', async () => {
  const ns = unique('evil');
  await api('PUT', `/api/storage/kv/${ns}/${seg(HOSTILE)}`, { value: '<script>alert(2)</script><img src=x onerror=alert(3)>', metadata: { '<b>': HOSTILE } });
  await api('PUT', `/api/storage/r2/${ns}/${seg(HOSTILE)}?raw=1`, Buffer.from('<img src=x onerror=alert(4)>'), { headers: { 'Content-Type': 'text/html' } });
  await api('POST', `/api/storage/d1/${ns}/exec`, { sql: 'CREATE TABLE "<img src=x onerror=alert(5)>" (v TEXT)' });
  await api('POST', `/api/storage/d1/${ns}/query`, { sql: 'INSERT INTO "<img src=x onerror=alert(5)>" VALUES (?)', params: [HOSTILE] });
  const before = seen.dialogs.length;
  const page = await newPage();
  await login(page);
  await page.goto(`${proxy.url}/explorer#/kv/${ns}`);
  await page.waitForSelector('#kv-keys td.key');
  assert.equal(await page.textContent('#kv-keys td.key'), HOSTILE);
  await page.click('#kv-keys td.key');
  await page.waitForSelector('#kv-value');
  assert.equal(await page.textContent('#kv-key'), HOSTILE);
  assert.equal(await page.textContent('#kv-value'), '<script>alert(2)</script><img src=x onerror=alert(3)>');
  await page.goto(`${proxy.url}/explorer#/r2/${ns}`);
  await page.click('#r2-objects tbody tr');
  await page.waitForSelector('#r2-preview pre');
  assert.equal(await page.textContent('#r2-preview pre'), '<img src=x onerror=alert(4)>');
  await page.goto(`${proxy.url}/explorer#/d1/${ns}`);
  await page.click('#d1-tables li');
  await page.waitForSelector('#d1-results td');
  assert.equal(await page.textContent('#d1-results td'), HOSTILE);
  await page.goto(`${proxy.url}/explorer#/namespaces`);
  await page.waitForSelector(`#namespaces tr[data-ns="${ns}"]`);
  assert.equal(await page.locator('main img').count(), 0, 'no element was made from stored markup');
  assert.equal(await page.evaluate(() => document.querySelectorAll('script:not([src])').length), 0);
  assert.deepEqual(seen.dialogs.slice(before), [], 'no dialog fired');
  const base = new URL(proxy.url);
  for (const u of seen.requests) {
    const url = new URL(u);
    if (url.protocol === 'blob:' || url.protocol === 'data:') continue;
    assert.equal(url.host, base.host, `a request left the origin: ${u}`);
    assert.ok(!/\/x$/.test(url.pathname), `a request to x: ${u}`);
  }
  await page.close();
});

test('d1: tables with their schema, SQL in the namespace through the same guard, paged results', async () => {
  const ns = unique('sql');
  await api('POST', `/api/storage/d1/${ns}/exec`, { sql: 'CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL, done INTEGER DEFAULT 0)' });
  const rows = Array.from({ length: 120 }, (_, i) => ({ sql: 'INSERT INTO todos (title) VALUES (?)', params: [`task ${i}`] }));
  assert.equal((await api('POST', `/api/storage/d1/${ns}/batch`, { statements: rows })).status, 200);
  const page = await newPage();
  await login(page);
  await page.goto(`${proxy.url}/explorer#/d1/${ns}`);
  await page.click('#d1-tables li[data-table="todos"]');
  await page.waitForSelector('#d1-schema td:has-text("title")');
  assert.match(await page.textContent('#d1-schema'), /CREATE TABLE/);
  await page.waitForSelector('#d1-results');
  assert.equal(await page.locator('#d1-results tbody tr').count(), 50);  // 120 rows, 50 a page
  await page.fill('#d1-sql', "SELECT count(*) AS n FROM todos WHERE title LIKE 'task 1%'");
  await page.click('#d1-run');
  await page.waitForFunction(() => document.querySelector('#d1-results tbody td')?.textContent === '31');
  assert.match(await page.textContent('#d1-meta'), /^1 row ·/);
  await shot(page, 'd1');
  await page.fill('#d1-sql', "ATTACH DATABASE 'other.db' AS other");
  await page.click('#d1-run');
  await page.waitForSelector('#d1-error');
  assert.match(await page.textContent('#d1-error'), /attach_denied/);
  await page.fill('#d1-sql', "INSERT INTO todos (title) VALUES ('from the page')");
  await page.click('#d1-run');
  await page.waitForFunction(() => /changes 1/.test(document.querySelector('#d1-meta').textContent));
  const back = await api('POST', `/api/storage/d1/${ns}/query`, { sql: "SELECT count(*) AS n FROM todos WHERE title = 'from the page'" });
  assert.equal(back.json.results[0].n, 1);
  await page.close();
});

test('r2: browse by folder, upload with progress and download byte-exact, preview, delete', async () => {
  const ns = unique('files');
  const page = await newPage();
  await login(page);
  await page.goto(`${proxy.url}/explorer#/namespaces`);
  await page.waitForSelector('#namespaces');
  const png = await page.screenshot();
  await api('PUT', `/api/storage/r2/${ns}/images/screen.png?raw=1`, png, { headers: { 'Content-Type': 'image/png', 'X-Era-Metadata': '{"by":"test"}' } });
  await api('PUT', `/api/storage/r2/${ns}/notes/readme.txt?raw=1`, Buffer.from('plain text notes'), { headers: { 'Content-Type': 'text/plain' } });
  await page.goto(`${proxy.url}/explorer#/r2/${ns}`);
  await page.waitForSelector('#r2-objects tr.folder');
  assert.deepEqual(await page.locator('#r2-objects tr.folder td.key').allTextContents(), ['▸ images/', '▸ notes/']);
  await page.click('#r2-objects tr.folder:has-text("images/")');
  await page.waitForSelector('#r2-objects tr[data-key="images/screen.png"]');
  await page.click('#r2-objects tr[data-key="images/screen.png"]');
  await page.waitForFunction(() => document.querySelector('#r2-preview img')?.naturalWidth > 0);
  assert.match(await page.textContent('#r2-detail'), /"by": "test"/);
  await shot(page, 'r2');

  const data = crypto.randomBytes(3 * 1024 * 1024 + 17);
  await page.setInputFiles('#r2-file', { name: 'blob.bin', mimeType: 'application/octet-stream', buffer: data });
  assert.equal(await page.inputValue('#r2-upload-key'), 'images/blob.bin');
  await page.click('#r2-upload');
  await page.waitForSelector('#r2-progress[data-done]');
  assert.match(await page.textContent('#r2-progress'), /uploaded 3\.0 MiB/);
  const stored = await api('GET', `/api/storage/r2/${ns}/images/blob.bin?raw=1`);
  assert.equal(stored.status, 200);
  assert.ok(stored.body.equals(data), 'uploaded bytes differ');
  await page.waitForSelector('#r2-key:has-text("images/blob.bin")');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#r2-download')]);
  assert.equal(download.suggestedFilename(), 'blob.bin');
  assert.ok(fs.readFileSync(await download.path()).equals(data), 'downloaded bytes differ');
  await page.click('#r2-delete');
  await page.waitForSelector('#r2-detail:has-text("Deleted.")');
  assert.equal((await api('GET', `/api/storage/r2/${ns}/images/blob.bin?raw=1`)).status, 404);
  await page.click('#r2-crumbs button.link');
  await page.waitForSelector('#r2-objects tr.folder:has-text("notes/")');
  await page.close();
});

test('sessions: listed with scope and expiry, revoked from the page', async () => {
  const made = await api('POST', '/api/sessions', { namespaces: ['alpha', 'beta'], permissions: 'read', ttl_seconds: 7200, metadata: { note: HOSTILE } });
  assert.equal(made.status, 201);
  const id = made.json.session_id;
  assert.equal((await api('GET', '/api/storage/kv/alpha', undefined, { token: made.json.token })).status, 200);
  const page = await newPage();
  await login(page);
  await page.goto(`${proxy.url}/explorer#/sessions`);
  const row = page.locator(`#sessions tr[data-session="${id}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), /alpha, beta.*read.*in 2 h/);
  await shot(page, 'sessions');
  await row.locator('button.revoke').click();
  await row.waitFor({ state: 'detached' });
  assert.ok(seen.dialogs.some((d) => d.type === 'confirm' && d.message.includes(id)));
  const refused = await api('GET', '/api/storage/kv/alpha', undefined, { token: made.json.token });
  assert.equal(refused.status, 401);
  assert.equal(refused.json.code, 'token_revoked');
  await page.close();
});

test('with auth off on loopback the page opens without a login', async () => {
  const open = await startProxy([], { ERA_PROXY_AUTH: 'off' });
  try {
    const page = await newPage();
    await page.goto(`${open.url}/explorer`);
    await page.waitForSelector('#namespaces');
    assert.match(await page.textContent('header .who'), /auth off/);
    assert.equal(await page.locator('form.login').count(), 0);
    await page.close();
  } finally {
    await open.stop();
  }
});

test('nothing went wrong in the page during the run', () => {
  assert.deepEqual(seen.problems.filter((p) => !/401|403|404|Unauthorized|Forbidden|Not Found/.test(p)), []);
  assert.deepEqual(seen.dialogs.filter((d) => d.type !== 'confirm'), []);
});
