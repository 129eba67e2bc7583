'use strict';
// Measures the explorer on a big namespace (a measurement, not a test): seeds namespace `million` with
// N KV keys through the API (local backend, auth off, loopback; a bounded loop of keep-alive PUTs) into
// a data dir that is kept (build/bench-explorer/ by default) so later runs measure without seeding
// again, then times in chromium how long the KV screen takes from navigation to its first page of keys
// on screen, and a prefix search, a page turn and the Namespaces screen. Prints one line per figure.
//
//   node tests/browser/bench_1m.js [keys=1000000] [runs=7] [data_dir]
// ERA_PROXY_BIN picks the binary (default build/era-storage-proxy).
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const http = require('http');
const { chromium } = require('playwright-core');
const { ROOT } = require('../e2e/js/harness');

const KEYS = Number(process.argv[2] || 1000000);
const RUNS = Number(process.argv[3] || 7);
const DATA_DIR = path.resolve(process.argv[4] || path.join(ROOT, 'build', 'bench-explorer'));
const BIN = process.env.ERA_PROXY_BIN || path.join(ROOT, 'build', 'era-storage-proxy');
const NS = 'million';
const CONCURRENCY = 32;
const key = (i) => `user:${String(i).padStart(7, '0')}`;

function startProxy() {
  fs.mkdirSync(DATA_DIR, { recursive: true });
  const proc = spawn(BIN, ['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', DATA_DIR, '--backend', 'local',
    '--auth', 'off'], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, ERA_PROXY_LOG_LEVEL: 'warn' } });
  return new Promise((resolve, reject) => {
    let buf = '';
    proc.stdout.on('data', (d) => {
      buf += d;
      const m = buf.match(/listening on (http:\/\/\S+)/);
      if (m) resolve({ url: m[1], stop: () => new Promise((r) => { proc.on('exit', r); proc.kill('SIGTERM'); }) });
    });
    proc.on('exit', (code) => reject(new Error(`proxy exited with ${code}`)));
  });
}

function getJson(url) {
  return new Promise((resolve, reject) => http.get(url, (res) => {
    let b = '';
    res.on('data', (d) => { b += d; });
    res.on('end', () => resolve(JSON.parse(b)));
  }).on('error', reject));
}

async function seed(url, from) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const u = new URL(url);
  const put = (i) => new Promise((resolve, reject) => {
    const body = JSON.stringify({ value: `{"id":${i},"name":"user ${i}"}`, metadata: { n: i } });
    const req = http.request({ hostname: u.hostname, port: u.port, method: 'PUT', agent,
      path: `/api/storage/kv/${NS}/${encodeURIComponent(key(i))}`,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`PUT ${i}: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
  let next = from;
  const started = Date.now();
  const worker = async () => {
    while (next < KEYS) {
      const i = next++;
      await put(i);
      if (i % 100000 === 0) process.stderr.write(`seeded ${i} keys, ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  agent.destroy();
  return (Date.now() - started) / 1000;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const proxy = await startProxy();
  try {
    const have = (await getJson(`${proxy.url}/api/resources/stats?namespace=${NS}`)).by_type.kv;
    if (have < KEYS) {
      const seconds = await seed(proxy.url, have);  // keys are numbered, so a partial seed resumes
      console.log(`seeded ${KEYS - have} keys into ${NS} in ${seconds.toFixed(0)} s`);
    }
    const stats = await getJson(`${proxy.url}/api/resources/stats?namespace=${NS}`);
    console.log(`stats: ${stats.by_type.kv} KV keys in ${NS} (${DATA_DIR})`);
    const browser = await chromium.launch({ executablePath: process.env.ERA_CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const figures = { first_page: [], first_page_api_call: [], first_page_empty_namespace: [], prefix_search: [], next_page: [], namespaces: [] };
    for (let r = 0; r < RUNS; r += 1) {
      await page.goto('about:blank');
      let t = Date.now();
      await page.goto(`${proxy.url}/explorer#/kv/${NS}`);
      await page.waitForFunction(() => document.querySelectorAll('#kv-keys tbody tr').length === 100);
      figures.first_page.push(Date.now() - t);
      figures.first_page_api_call.push(Number((await page.textContent('#kv-status')).match(/in (\d+) ms/)[1]));
      // The same screen on a namespace with no keys: what the page costs without the million.
      await page.goto('about:blank');
      t = Date.now();
      await page.goto(`${proxy.url}/explorer#/kv/empty`);
      await page.waitForSelector('#kv-status[data-loaded]');
      figures.first_page_empty_namespace.push(Date.now() - t);
      await page.goto(`${proxy.url}/explorer#/kv/${NS}`);
      await page.waitForFunction(() => document.querySelectorAll('#kv-keys tbody tr').length === 100);
      t = Date.now();
      await page.fill('#kv-prefix', `user:05${r}`);
      await page.waitForFunction((p) => document.querySelector('#kv-keys td.key')?.textContent.startsWith(p), `user:05${r}`);
      figures.prefix_search.push(Date.now() - t - 200);  // minus the page's 200 ms typing pause
      t = Date.now();
      const first = await page.textContent('#kv-keys td.key');
      await page.click('.pager button:has-text("Next")');
      await page.waitForFunction((f) => document.querySelector('#kv-keys td.key')?.textContent !== f, first);
      figures.next_page.push(Date.now() - t);
      t = Date.now();
      await page.goto(`${proxy.url}/explorer#/namespaces`);
      await page.reload();
      await page.waitForSelector(`#namespaces tr[data-ns="${NS}"]`);
      figures.namespaces.push(Date.now() - t);
    }
    console.log(`load average during the runs: ${require('os').loadavg().map((x) => x.toFixed(1)).join(' ')} (${require('os').cpus().length} cores)`);
    for (const [name, xs] of Object.entries(figures))
      console.log(`${name}: median ${median(xs)} ms, max ${Math.max(...xs)} ms over ${xs.length} runs`);
    await browser.close();
  } finally {
    await proxy.stop();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
