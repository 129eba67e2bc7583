'use strict';
// era_storage: the storage SDK injected into every ERA session (Node's own modules only).
//
//   const { KVStorage, D1Storage, R2Storage } = require('./era_storage.js');
//   await KVStorage.set('myapp', 'user:123', '{"theme": "dark"}');
//
// The proxy is found through ERA_STORAGE_URL (default http://localhost:8787): an http:// or https://
// URL, or unix:///path/to/socket for a proxy listening on a Unix socket (how code run by the proxy's
// own sandbox reaches it: that sandbox has no network). ERA_STORAGE_TOKEN, when set, is sent as a
// bearer token. Connections are kept alive and pooled. Every failure rejects with
// StorageError (an Error) carrying .status, .code and the server's message.

const http = require('http');
const https = require('https');

const DEFAULT_URL = 'http://localhost:8787';
const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);

class StorageError extends Error {
  constructor(message, status = 0, code = 'error') {
    super(message);
    this.name = 'StorageError';
    this.status = status;
    this.code = code;
  }
}

const agents = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: 64 }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: 64 }),
  'unix:': new http.Agent({ keepAlive: true, maxSockets: 64 }),
};

function target() {
  const raw = process.env.ERA_STORAGE_URL || DEFAULT_URL;
  let url;
  try {
    url = new URL(raw);
  } catch (e) {
    throw new StorageError(`ERA_STORAGE_URL is not a URL: ${raw}`, 0, 'bad_url');
  }
  if (url.protocol === 'unix:') {
    if (url.host || !url.pathname || url.pathname === '/') {
      throw new StorageError(`ERA_STORAGE_URL must be unix:///path/to/socket, got ${raw}`, 0, 'bad_url');
    }
    return url;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new StorageError(`ERA_STORAGE_URL must be an http:// or unix:// URL, got ${raw}`, 0, 'bad_url');
  }
  return url;
}

function quote(segment) {
  return encodeURIComponent(String(segment));
}

function queryString(query) {
  const parts = [];
  for (const [k, v] of Object.entries(query || {})) {
    if (v === undefined || v === null || v === '') continue;
    parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

// Sends one request. body: Buffer | string | readable stream | undefined. Resolves
// { status, headers, body: Buffer } — or { status, headers, stream } when opts.stream is set.
function request(method, path, opts = {}) {
  const url = target();
  const unix = url.protocol === 'unix:';
  const base = unix ? '' : url.pathname.replace(/\/+$/, '');  // a unix URL's path is the socket
  const headers = { Accept: 'application/json', ...(opts.headers || {}) };
  const token = process.env.ERA_STORAGE_TOKEN;
  if (token) headers.Authorization = `Bearer ${token}`;
  const body = opts.body;
  const streaming = body && typeof body.pipe === 'function';
  if (body !== undefined && !streaming) {
    headers['Content-Length'] = Buffer.byteLength(body);
  }
  const send = (attempt) => new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    const where = unix
      ? { socketPath: decodeURIComponent(url.pathname) }
      : { protocol: url.protocol, hostname: url.hostname, port: url.port || (url.protocol === 'https:' ? 443 : 80) };
    let answered = false;
    const req = mod.request({
      ...where,
      method,
      path: base + path + queryString(opts.query),
      headers,
      agent: agents[url.protocol],
    }, (res) => {
      answered = true;
      if (opts.stream) {
        resolve({ status: res.statusCode, headers: res.headers, stream: res });
        return;
      }
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', (err) => {
      // The proxy answered before reading the whole body (413, 412) and closed the connection while
      // the body was still being sent: its answer is the result, not the failed write.
      if (answered) return;
      // A kept-alive socket the proxy had already closed: resend idempotent calls once.
      if (attempt === 0 && req.reusedSocket && IDEMPOTENT.has(method) && !streaming &&
          (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
        send(1).then(resolve, reject);
        return;
      }
      const at = unix ? url.href : url.origin;
      reject(new StorageError(`cannot reach the storage proxy at ${at}: ${err.message}`, 0, 'unreachable'));
    });
    if (streaming) {
      body.on('error', (err) => req.destroy(err));
      body.pipe(req);
    } else {
      req.end(body);
    }
  });
  return send(0);
}

function decode(res) {
  let doc = null;
  try {
    doc = res.body.length ? JSON.parse(res.body.toString('utf8')) : {};
  } catch (e) {
    doc = null;
  }
  if (res.status >= 200 && res.status < 300 && doc !== null && typeof doc === 'object') return doc;
  if (doc && typeof doc === 'object' && doc.error) {
    throw new StorageError(String(doc.error), res.status, String(doc.code || 'error'));
  }
  throw new StorageError(`storage proxy answered HTTP ${res.status}`, res.status, 'http_error');
}

async function jsonCall(method, path, payload, { query, allow404 = false } = {}) {
  const opts = { query };
  if (payload !== undefined) {
    opts.body = JSON.stringify(payload);
    opts.headers = { 'Content-Type': 'application/json' };
  }
  const res = await request(method, path, opts);
  if (allow404 && res.status === 404) return null;
  return decode(res);
}

class KVStorage {
  // Stores value (a string) under key; resolves true once it is durable.
  // options: { expiration (unix seconds) | expirationTtl (seconds >= 60) }
  static async set(namespace, key, value, metadata = null, options = {}) {
    if (typeof value !== 'string') throw new StorageError('value must be a string', 400, 'invalid_value');
    const payload = { value, metadata: metadata === undefined ? null : metadata };
    if (options.expiration !== undefined) payload.expiration = options.expiration;
    if (options.expirationTtl !== undefined) payload.expiration_ttl = options.expirationTtl;
    await jsonCall('PUT', `/api/storage/kv/${quote(namespace)}/${quote(key)}`, payload);
    return true;
  }

  // The value, or null if the key does not exist (or has expired).
  static async get(namespace, key) {
    const doc = await KVStorage.getWithMetadata(namespace, key);
    return doc === null ? null : doc.value;
  }

  // { value, metadata, expiration? } or null.
  static async getWithMetadata(namespace, key) {
    return jsonCall('GET', `/api/storage/kv/${quote(namespace)}/${quote(key)}`, undefined, { allow404: true });
  }

  static async delete(namespace, key) {
    await jsonCall('DELETE', `/api/storage/kv/${quote(namespace)}/${quote(key)}`);
    return true;
  }

  // One page: { keys, list_complete, cursor }.
  static async listPage(namespace, prefix = '', limit = 1000, cursor = null) {
    return jsonCall('GET', `/api/storage/kv/${quote(namespace)}`, undefined, { query: { prefix, limit, cursor } });
  }

  // Keys as [{ name, metadata, expiration? }] in byte order: one page of at most limit.
  static async list(namespace, prefix = '', limit = 1000, cursor = null) {
    return (await KVStorage.listPage(namespace, prefix, limit, cursor)).keys;
  }

  // Every key under prefix, across all pages.
  static async *iterate(namespace, prefix = '', pageSize = 1000) {
    let cursor = null;
    for (;;) {
      const page = await KVStorage.listPage(namespace, prefix, pageSize, cursor);
      yield* page.keys;
      if (page.list_complete) return;
      cursor = page.cursor;
    }
  }
}

// --- R2 ------------------------------------------------------------------------------------------

// '.' is encoded too, so keys like '..' or 'a/../b' reach the proxy as they are, never as path steps
// that something on the way (new URL(), a proxy) could resolve.
function quoteKey(key) {
  return quote(key).replace(/\./g, '%2E');
}

function r2Path(namespace, key) {
  return `/api/storage/r2/${quote(namespace)}/${quoteKey(key)}`;
}

function etagHeader(etag) {
  return etag === '*' ? '*' : `"${etag}"`;
}

// R2's range shapes: { offset, length? } | { suffix }.
function rangeHeader(range) {
  if (range.suffix !== undefined) return `bytes=-${Number(range.suffix)}`;
  const offset = Number(range.offset || 0);
  if (range.length !== undefined && range.length !== null) return `bytes=${offset}-${offset + Number(range.length) - 1}`;
  return `bytes=${offset}-`;
}

// The object info the proxy sends as headers on a raw GET or HEAD, in the JSON form's shape.
function infoFromHeaders(key, headers) {
  const contentRange = headers['content-range']; // "bytes a-b/size" on a ranged read
  const size = contentRange ? contentRange.split('/').pop() : headers['content-length'];
  const meta = headers['x-era-metadata'];
  return {
    key,
    size: Number(size || 0),
    etag: String(headers.etag || '').replace(/^"|"$/g, ''),
    uploaded: headers['x-era-uploaded'] || null,
    customMetadata: meta ? JSON.parse(meta) : {},
    httpMetadata: { contentType: headers['content-type'] || null },
  };
}

// The body as something request() sends: a Buffer, or a readable stream (sent chunked unless its
// size is known).
function r2Body(data, options) {
  if (typeof data === 'string') return { body: Buffer.from(data, 'utf8') };
  if (Buffer.isBuffer(data)) return { body: data };
  if (data instanceof Uint8Array) return { body: Buffer.from(data.buffer, data.byteOffset, data.byteLength) };
  if (data instanceof ArrayBuffer) return { body: Buffer.from(data) };
  if (data && typeof data.pipe === 'function') {
    let size = options.size;
    // A whole file read by fs.createReadStream(path): its size is the file's.
    if (size === undefined && typeof data.path === 'string' && data.start === undefined && data.end === Infinity) {
      try {
        size = require('fs').statSync(data.path).size;
      } catch (e) {
        size = undefined;
      }
    }
    return { body: data, size };
  }
  throw new StorageError('data must be a Buffer, string, Uint8Array, ArrayBuffer or readable stream', 400, 'invalid_value');
}

async function readError(res) {
  const chunks = [];
  for await (const c of res.stream) chunks.push(c);
  return decode({ status: res.status, body: Buffer.concat(chunks) });
}

class R2Storage {
  // Stores data under key; resolves the object's info ({ key, size, etag, uploaded, ... }) once durable.
  // data: Buffer | string (UTF-8) | Uint8Array | ArrayBuffer | readable stream (streamed).
  // options: { contentType, ifMatch, ifNoneMatch (an etag or '*'; 412 when not met), size (of a stream) }
  static async put(namespace, key, data, metadata = null, options = {}) {
    const { body, size } = r2Body(data, options);
    const headers = { 'Content-Type': options.contentType || 'application/octet-stream' };
    if (size !== undefined) headers['Content-Length'] = String(size);
    if (metadata && Object.keys(metadata).length) {
      // ASCII-only JSON, so any name or value survives as a header.
      headers['X-Era-Metadata'] = JSON.stringify(metadata).replace(/[\u007f-\uffff]/g,
        (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    }
    if (options.ifMatch !== undefined) headers['If-Match'] = etagHeader(options.ifMatch);
    if (options.ifNoneMatch !== undefined) headers['If-None-Match'] = etagHeader(options.ifNoneMatch);
    const res = await request('PUT', r2Path(namespace, key), { body, headers, query: { raw: '1' } });
    const doc = decode(res);
    delete doc.success;
    return doc;
  }

  // The object's bytes as a Buffer (or a range's: { offset, length? } | { suffix }), or null if missing.
  static async get(namespace, key, options = {}) {
    const obj = await R2Storage.getStream(namespace, key, options);
    if (obj === null) return null;
    const chunks = [];
    for await (const c of obj.stream) chunks.push(c);
    const data = Buffer.concat(chunks);
    if (data.length !== obj.length) throw new StorageError('the download ended early', 0, 'incomplete_body');
    return data;
  }

  // { stream, info, length } to read a large object in pieces, or null if missing. options: { range }
  static async getStream(namespace, key, options = {}) {
    const headers = { Accept: 'application/octet-stream' };
    if (options.range) headers.Range = rangeHeader(options.range);
    const res = await request('GET', r2Path(namespace, key), { headers, query: { raw: '1' }, stream: true });
    if (res.status === 404) {
      res.stream.resume();
      return null;
    }
    if (res.status !== 200 && res.status !== 206) return readError(res);
    return { stream: res.stream, info: infoFromHeaders(key, res.headers), length: Number(res.headers['content-length'] || 0) };
  }

  // The object's info without its body, or null if missing.
  static async head(namespace, key) {
    const res = await request('HEAD', r2Path(namespace, key));
    if (res.status === 404) return null;
    if (res.status !== 200) throw new StorageError(`storage proxy answered HTTP ${res.status}`, res.status, 'http_error');
    return infoFromHeaders(key, res.headers);
  }

  // Deletes the object (a missing one is not an error); resolves true.
  static async delete(namespace, key) {
    await jsonCall('DELETE', r2Path(namespace, key));
    return true;
  }

  // One page: { objects, truncated, cursor, delimitedPrefixes }.
  static async listPage(namespace, prefix = '', limit = 1000, cursor = null, delimiter = null) {
    return jsonCall('GET', `/api/storage/r2/${quote(namespace)}`, undefined,
      { query: { prefix, limit, cursor, delimiter } });
  }

  // Objects as [{ key, size, etag, uploaded, customMetadata, httpMetadata }] in byte order: one page.
  static async list(namespace, prefix = '', limit = 1000, cursor = null, delimiter = null) {
    return (await R2Storage.listPage(namespace, prefix, limit, cursor, delimiter)).objects;
  }

  // Every object under prefix, across all pages.
  static async *iterate(namespace, prefix = '', pageSize = 1000) {
    let cursor = null;
    for (;;) {
      const page = await R2Storage.listPage(namespace, prefix, pageSize, cursor);
      yield* page.objects;
      if (!page.truncated) return;
      cursor = page.cursor;
    }
  }
}

// params as JSON: Buffers, typed arrays and ArrayBuffers become BLOBs (arrays of byte values, as D1
// returns them); booleans bind as 1/0 on the server.
function sqlParams(params) {
  if (params === undefined || params === null) return [];
  if (!Array.isArray(params)) throw new StorageError('params must be an array', 400, 'invalid_params');
  return params.map((p) => {
    if (p instanceof ArrayBuffer) return Array.from(new Uint8Array(p));
    if (ArrayBuffer.isView(p)) return Array.from(new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
    if (typeof p === 'bigint') {
      if (p > BigInt(Number.MAX_SAFE_INTEGER) || p < BigInt(Number.MIN_SAFE_INTEGER)) {
        throw new StorageError('a BigInt beyond 2^53 cannot travel as a JSON number: bind it as a string', 400,
          'invalid_param');
      }
      return Number(p);
    }
    return p;
  });
}

function sqlStatement(st) {
  if (typeof st === 'string') return { sql: st, params: [] };
  if (Array.isArray(st)) return { sql: st[0], params: sqlParams(st[1]) };
  return { sql: st.sql, params: sqlParams(st.params) };
}

// SQL storage (Cloudflare D1): each namespace has its own tables, named as if the database were its own.
// Integers beyond 2^53 come back as JSON numbers and lose precision in JSON.parse, as in D1: select
// them CAST(... AS TEXT) when exactness matters. BLOBs come back as arrays of byte values.
class D1Storage {
  // Runs one statement; resolves to its rows (objects keyed by column name).
  static async query(namespace, sql, params = []) {
    return (await D1Storage.queryWithMeta(namespace, sql, params)).results;
  }

  // Like query, with the meta: { results, meta: { changes, last_row_id, duration, rows_read, ... } }.
  static async queryWithMeta(namespace, sql, params = []) {
    const doc = await jsonCall('POST', `/api/storage/d1/${quote(namespace)}/query`, { sql, params: sqlParams(params) });
    return { results: doc.results, meta: doc.meta };
  }

  // Runs one statement, or several separated by ';' (then without params). Resolves to the meta,
  // summed over the statements, with count (statements run).
  static async exec(namespace, sql, params = []) {
    const doc = await jsonCall('POST', `/api/storage/d1/${quote(namespace)}/exec`, { sql, params: sqlParams(params) });
    return { ...doc.meta, count: doc.count };
  }

  // Runs statements in one transaction (all or nothing). statements: [{ sql, params }], [sql, params]
  // pairs or SQL strings. Resolves to one { results, meta } per statement.
  static async batch(namespace, statements) {
    const doc = await jsonCall('POST', `/api/storage/d1/${quote(namespace)}/batch`,
      { statements: statements.map(sqlStatement) });
    return doc.results.map((r) => ({ results: r.results, meta: r.meta }));
  }
}

class ResourcesAPI {
  // One page: { resources, total, offset, limit, has_more, cursor }.
  // filters: { type, namespace, key_prefix, limit, offset, cursor }
  static async list(filters = {}) {
    const { type, namespace, key_prefix: keyPrefix, limit, offset, cursor } = filters;
    return jsonCall('GET', '/api/resources/list', undefined,
      { query: { type, namespace, key_prefix: keyPrefix, limit, offset, cursor } });
  }

  // Every resource matching the filters, across all pages.
  static async *iterate(filters = {}, pageSize = 1000) {
    let cursor = null;
    for (;;) {
      const page = await ResourcesAPI.list({ ...filters, limit: pageSize, offset: undefined, cursor });
      yield* page.resources;
      if (!page.has_more) return;
      cursor = page.cursor;
    }
  }

  // { total, total_size, by_type: { kv, d1, r2 }, by_namespace }
  static async stats(namespace = undefined) {
    return jsonCall('GET', '/api/resources/stats', undefined, { query: { namespace } });
  }
}

module.exports = { KVStorage, D1Storage, R2Storage, ResourcesAPI, StorageError, _internal: { request, jsonCall, decode, quote } };
