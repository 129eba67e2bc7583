// The Workers KV REST endpoints Miniflare's local explorer lacks or serves short of Cloudflare's
// documented behaviour, served on the real KV binding (the data lives in workerd's KV store, the same
// one the explorer reads), in the request and response shapes of Cloudflare's API reference
// (developers.cloudflare.com/api/resources/kv/subresources/namespaces/...). Run by emulator.mjs in the
// same Miniflare as the explorer; see README.md for which endpoint is here and why.
//
// This Worker answers at /client/v4/accounts/<account id>/..., the production path, and is the API base
// the tests give the proxy. What it does not serve itself it forwards unchanged to the explorer at
// /cdn-cgi/explorer/api/... (D1, R2 REST, KV list, the KV namespace itself).
//
// Served here (Cloudflare's shapes):
//   PUT    .../storage/kv/namespaces/:ns/values/:key   raw body or multipart (value, metadata);
//          ?expiration= / ?expiration_ttl= honoured (the explorer ignores them)
//   GET    .../storage/kv/namespaces/:ns/values/:key   raw value, with the `expiration` header
//   GET    .../storage/kv/namespaces/:ns/metadata/:key {"result": <metadata or null>}
//   PUT    .../storage/kv/namespaces/:ns/bulk          [{key, value, base64?, metadata?, expiration?, expiration_ttl?}]
//   POST   .../storage/kv/namespaces/:ns/bulk/delete   ["key", ...]   (and the older DELETE .../bulk)
//   POST   .../storage/kv/namespaces/:ns/bulk/get      {keys, type?, withMetadata?}

const MAX_BULK_WRITE = 10000;
const MAX_BULK_GET = 100;
const MAX_BULK_BYTES = 100 * 1000 * 1000;
const MIN_TTL = 60;

function envelope(result, status = 200, headers = {}) {
  return new Response(JSON.stringify({ success: true, errors: [], messages: [], result }), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

function failure(status, code, message) {
  return new Response(JSON.stringify({ success: false, errors: [{ code, message }], messages: [], result: null }), {
    status,
    headers: { "content-type": "application/json" },
  });
}

class Refused extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const keyNotFound = (op) => failure(404, 10009, `${op}: 'key not found'`);

function checkKey(key) {
  if (key === "" || key === "." || key === "..")
    throw new Refused(400, 10019, `Invalid key name: "${key}" is not allowed as a key`);
  if (new TextEncoder().encode(key).length > 512)
    throw new Refused(414, 10025, "Key name too long: the limit is 512 bytes");
}

// Put options from Cloudflare's expiration fields (query parameters or bulk item fields); a TTL wins.
function expirationOptions(expiration, ttl) {
  const now = Math.floor(Date.now() / 1000);
  if (ttl !== undefined && ttl !== null && ttl !== "") {
    const n = Number(ttl);
    if (!Number.isInteger(n) || n < MIN_TTL)
      throw new Refused(400, 10011, `Invalid expiration_ttl of ${ttl}. Expiration TTL must be at least ${MIN_TTL}.`);
    return { expirationTtl: n };
  }
  if (expiration !== undefined && expiration !== null && expiration !== "") {
    const n = Number(expiration);
    if (!Number.isInteger(n) || n < now + MIN_TTL)
      throw new Refused(400, 10010,
        `Invalid expiration of ${expiration}. Expiration times must be at least ${MIN_TTL} seconds in the future.`);
    return { expiration: n };
  }
  return {};
}

function parseMetadata(text) {
  try {
    return JSON.parse(text);
  } catch {
    throw new Refused(400, 10001, "metadata must be a JSON text");
  }
}

// The KV binding reports no expiration on reads; its list does, so read it from the key's own entry
// (the exact name sorts first among the names it prefixes).
async function expirationOf(kv, key) {
  const page = await kv.list({ prefix: key, limit: 1 });
  const entry = page.keys[0];
  return entry && entry.name === key && entry.expiration !== undefined ? entry.expiration : undefined;
}

async function putValue(kv, key, request, url) {
  checkKey(key);
  const options = expirationOptions(url.searchParams.get("expiration"), url.searchParams.get("expiration_ttl"));
  const type = request.headers.get("content-type") || "";
  let value;
  if (type.startsWith("multipart/form-data")) {
    const form = await request.formData();
    const v = form.get("value");
    if (v === null) throw new Refused(400, 10001, "multipart put request does not contain required form field 'value'");
    value = typeof v === "string" ? v : await v.arrayBuffer();
    const m = form.get("metadata");
    if (m !== null) options.metadata = parseMetadata(typeof m === "string" ? m : await m.text());
  } else {
    value = await request.arrayBuffer();
  }
  await kv.put(key, value, options);
  return envelope({});
}

async function getValue(kv, key) {
  checkKey(key);
  const value = await kv.get(key, "arrayBuffer");
  if (value === null) return keyNotFound("get");
  const expiration = await expirationOf(kv, key);
  const headers = { "content-type": "application/octet-stream" };
  if (expiration !== undefined) headers.expiration = String(expiration);
  return new Response(value, { status: 200, headers });
}

async function getMetadata(kv, key) {
  checkKey(key);
  const { value, metadata } = await kv.getWithMetadata(key, "arrayBuffer");
  if (value === null) return keyNotFound("get metadata");
  return envelope(metadata ?? null);
}

function base64Bytes(text) {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

async function jsonBody(request) {
  const text = await request.text();
  if (text.length > MAX_BULK_BYTES) throw new Refused(413, 10046, "request body too large: at most 100 MB");
  try {
    return JSON.parse(text);
  } catch {
    throw new Refused(400, 10001, "the body is not JSON");
  }
}

async function bulkWrite(kv, request) {
  const items = await jsonBody(request);
  if (!Array.isArray(items)) throw new Refused(400, 10001, "the body must be an array of key-value pairs");
  if (items.length > MAX_BULK_WRITE) throw new Refused(400, 10001, `at most ${MAX_BULK_WRITE} pairs a request`);
  // Validate every item before writing any, as one request.
  const writes = items.map((item, i) => {
    if (!item || typeof item !== "object" || typeof item.key !== "string" || typeof item.value !== "string")
      throw new Refused(400, 10001, `item ${i}: key and value must be strings`);
    checkKey(item.key);
    const options = expirationOptions(item.expiration, item.expiration_ttl);
    if (item.metadata !== undefined && item.metadata !== null) options.metadata = item.metadata;
    let value = item.value;
    if (item.base64 === true) {
      try {
        value = base64Bytes(item.value);
      } catch {
        throw new Refused(400, 10001, `item ${i}: value is not base64`);
      }
    }
    return [item.key, value, options];
  });
  for (const [key, value, options] of writes) await kv.put(key, value, options);
  return envelope({ successful_key_count: writes.length, unsuccessful_keys: [] });
}

async function bulkDelete(kv, request) {
  const keys = await jsonBody(request);
  if (!Array.isArray(keys) || keys.some((k) => typeof k !== "string"))
    throw new Refused(400, 10001, "the body must be an array of key names");
  if (keys.length > MAX_BULK_WRITE) throw new Refused(400, 10001, `at most ${MAX_BULK_WRITE} keys a request`);
  keys.forEach(checkKey);
  for (const key of keys) await kv.delete(key);
  return envelope({ successful_key_count: keys.length, unsuccessful_keys: [] });
}

async function bulkGet(kv, request) {
  const body = await jsonBody(request);
  const keys = body && body.keys;
  if (!Array.isArray(keys) || keys.length === 0 || keys.some((k) => typeof k !== "string"))
    throw new Refused(400, 10001, "keys must be a non-empty array of key names");
  if (keys.length > MAX_BULK_GET) throw new Refused(400, 10001, `at most ${MAX_BULK_GET} keys a request`);
  const type = body.type ?? "text";
  if (type !== "text" && type !== "json") throw new Refused(400, 10001, 'type must be "text" or "json"');
  keys.forEach(checkKey);
  const values = {};
  for (const key of keys) {
    const { value, metadata } = await kv.getWithMetadata(key, "text");
    let v = value;
    if (v !== null && type === "json") {
      try {
        v = JSON.parse(v);
      } catch {
        throw new Refused(400, 10001, `the value of ${key} is not JSON`);
      }
    }
    if (!body.withMetadata || v === null) {
      values[key] = v;
      continue;
    }
    const entry = { value: v, metadata: metadata ?? null };
    const expiration = await expirationOf(kv, key);
    if (expiration !== undefined) entry.expiration = expiration;
    values[key] = entry;
  }
  return envelope({ values });
}

async function serveKv(env, request, url, rest) {
  // rest: ["values" | "metadata", key] or ["bulk"] or ["bulk", "get" | "delete"]
  const [what, ...tail] = rest;
  const m = request.method;
  if ((what === "values" || what === "metadata") && tail.length === 1) {
    const key = decodeURIComponent(tail[0]);
    if (what === "values" && m === "PUT") return putValue(env.KV, key, request, url);
    if (what === "values" && m === "GET") return getValue(env.KV, key);
    if (what === "metadata" && m === "GET") return getMetadata(env.KV, key);
  }
  if (what === "bulk" && tail.length === 0 && m === "PUT") return bulkWrite(env.KV, request);
  if (what === "bulk" && tail.length === 0 && m === "DELETE") return bulkDelete(env.KV, request);
  if (what === "bulk" && tail[0] === "delete" && tail.length === 1 && m === "POST") return bulkDelete(env.KV, request);
  if (what === "bulk" && tail[0] === "get" && tail.length === 1 && m === "POST") return bulkGet(env.KV, request);
  return null;  // not ours: the explorer's
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const prefix = `/client/v4/accounts/${env.ACCOUNT_ID}/`;
    if (!url.pathname.startsWith(prefix))
      return failure(404, 7003, "Could not route to " + url.pathname + ", perhaps your object identifier is invalid?");
    // Split on the raw path: a key's %2F must stay inside its segment.
    const parts = url.pathname.slice(prefix.length).split("/");
    try {
      if (parts[0] === "storage" && parts[1] === "kv" && parts[2] === "namespaces" && parts.length >= 5) {
        const kvRest = parts.slice(4);
        const ours = ["values", "metadata", "bulk"].includes(kvRest[0]);
        if (ours && decodeURIComponent(parts[3]) !== env.KV_NAMESPACE_ID)
          return failure(404, 10013, "get: 'namespace not found'");
        if (ours) {
          const answer = await serveKv(env, request, url, kvRest);
          if (answer) return answer;
        }
      }
    } catch (e) {
      if (e instanceof Refused) return failure(e.status, e.code, e.message);
      return failure(500, 10001, `emulator: ${e && e.message ? e.message : e}`);
    }
    // Everything else: Miniflare's local explorer, which serves Cloudflare's REST paths under this base.
    const target = `${url.origin}/cdn-cgi/explorer/api/${parts.join("/")}${url.search}`;
    return fetch(new Request(target, request));
  },
};
