// SDK cost for scripts/bench: JavaScript KV get calls per second, one process, sequential, through the
// era_storage SDK against raw keep-alive HTTP (node:http with a keep-alive Agent) from the same process.
//
// usage: node sdk_cost.js ROOT NAMESPACE KEY EXPECTED_VALUE SECONDS   (ERA_STORAGE_URL, ERA_STORAGE_TOKEN set)
// Prints results.tsv rows (see scripts/bench). Loops are bounded by time and by a call count, and
// alternate in ten short rounds each so that drift on a shared machine hits both alike.
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const MAX_CALLS = 200000;
const ROUNDS = 10; // short alternating rounds: load from other jobs hits both loops alike
const [root, ns, key, expected, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg);
const base = new URL(process.env.ERA_STORAGE_URL);
const token = process.env.ERA_STORAGE_TOKEN || '';
const headers = token ? { Authorization: `Bearer ${token}` } : {};
const reqPath = `/api/storage/kv/${encodeURIComponent(ns)}/${encodeURIComponent(key)}`;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function raw() {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: base.hostname, port: base.port, path: reqPath, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200 || JSON.parse(body).value !== expected) {
          reject(new Error(`raw GET answered ${res.statusCode}: ${body.slice(0, 200)}`));
        } else resolve();
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

async function measure(call, secs) {
  const lat = [];
  const end = performance.now() + secs * 1000;
  while (lat.length < MAX_CALLS) {
    const t0 = performance.now();
    await call();
    const t1 = performance.now();
    lat.push(t1 - t0);
    if (t1 >= end) break;
  }
  return lat;
}

function row(name, server, lat, note) {
  const sorted = [...lat].sort((a, b) => a - b);
  const total = lat.reduce((a, b) => a + b, 0);
  const p = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return [name, server, 1, lat.length, (lat.length / (total / 1000)).toFixed(0), p(0.5).toFixed(3),
    p(0.99).toFixed(3), 0, 0, note].join('\t');
}

async function main() {
  const sdkFile = path.join(root, 'sdk', 'js', 'era_storage.js');
  let sdkGet = null;
  if (fs.existsSync(sdkFile)) {
    const { KVStorage } = require(sdkFile);
    sdkGet = async () => {
      if ((await KVStorage.get(ns, key)) !== expected) throw new Error('SDK get returned a wrong value');
    };
  }
  let rawLat = [], sdkLat = [];
  for (let round = 0; round < ROUNDS; round++) {
    rawLat = rawLat.concat(await measure(raw, seconds / ROUNDS));
    if (sdkGet) sdkLat = sdkLat.concat(await measure(sdkGet, seconds / ROUNDS));
  }
  console.log(row('sdk_js_kv_get', 'raw', rawLat, 'node:http, keep-alive Agent'));
  if (sdkGet) console.log(row('sdk_js_kv_get', 'sdk', sdkLat, 'KVStorage.get'));
  else console.log('sdk_js_kv_get\tsdk\t-\t0\t0\t0\t0\t0\t0\tskipped: SDK not built yet (no sdk/js/era_storage.js)');
  agent.destroy();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
