'use strict';
// Starts the real proxy binary for node:test suites: free port, temporary data dir.
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = process.env.ERA_PROXY_BIN || path.join(ROOT, 'build', 'era-storage-proxy');
const SDK = path.join(ROOT, 'sdk', 'js', 'era_storage.js');

async function startProxy(args = [], env = {}) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'era-e2e-js-'));
  const logPath = path.join(dataDir, 'proxy.log');
  const log = fs.openSync(logPath, 'a');
  const proc = spawn(BIN, ['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir,
    '--backend', process.env.ERA_TEST_BACKEND || 'local', ...args],
  { stdio: ['ignore', 'pipe', log], env: { ...process.env, ...env } });
  fs.closeSync(log);
  const url = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('proxy did not start')), 30000);
    proc.stdout.on('data', (d) => {
      buf += d.toString();
      const m = buf.match(/listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => reject(new Error(`proxy exited with ${code}: ${fs.readFileSync(logPath, 'utf8')}`)));
  });
  proc.stdout.resume();
  process.env.ERA_STORAGE_URL = url;
  return {
    url,
    dataDir,
    proc,
    log: () => fs.readFileSync(logPath, 'utf8'),
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.on('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// Raw HTTP for status/header checks: resolves { status, headers, body (Buffer), json }.
function rawRequest(url, method, p, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request({ hostname: u.hostname, port: u.port, method, path: p, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        let json = null;
        try { json = JSON.parse(buf.toString()); } catch (e) { json = null; }
        resolve({ status: res.statusCode, headers: res.headers, body: buf, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

module.exports = { startProxy, rawRequest, SDK, ROOT };
