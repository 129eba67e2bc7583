// The proxy's HTTP API, as the explorer calls it. The admin token lives in this tab's sessionStorage
// (gone when the tab closes) and travels only in the Authorization header: never in a URL, never in
// a cookie. Requests are same-origin; JSON bodies are sent as application/json.

const TOKEN_KEY = 'era-explorer-token';
let token = sessionStorage.getItem(TOKEN_KEY) || '';

export function setToken(t) {
  token = t || '';
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}
export const hasToken = () => token !== '';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra) {
  const h = new Headers(extra || {});
  if (token) h.set('Authorization', `Bearer ${token}`);
  return h;
}

async function errorOf(res) {
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch { body = null; }
  const message = (body && typeof body.error === 'string') ? body.error : `${res.status} ${res.statusText}`;
  return new ApiError(res.status, (body && typeof body.code === 'string') ? body.code : `http_${res.status}`, message);
}

// JSON in (optional), JSON out. `raw: true` returns the Response (for bytes and headers).
export async function call(method, path, { json, body, headers: extra, raw = false } = {}) {
  const h = headers(extra);
  let payload = body;
  if (json !== undefined) {
    h.set('Content-Type', 'application/json');
    payload = JSON.stringify(json);
  }
  const res = await fetch(path, { method, headers: h, body: payload, credentials: 'omit', cache: 'no-store', redirect: 'error' });
  if (!res.ok && !(raw && res.status === 304)) throw await errorOf(res);
  if (raw) return res;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

// Path segments: percent-encode everything, '.' too, so no one on the way resolves '..' as a path step.
export const seg = (s) => encodeURIComponent(s).replace(/\./g, '%2E');

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

// Streams `file` (a File or Blob: the browser reads it from disk as it sends) as the body of a PUT,
// reporting progress; XMLHttpRequest because fetch() reports no upload progress.
export function upload(path, file, contentType, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('PUT', path);
    if (token) x.setRequestHeader('Authorization', `Bearer ${token}`);
    x.setRequestHeader('Content-Type', contentType || 'application/octet-stream');
    x.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    x.onload = () => {
      let body = null;
      try { body = JSON.parse(x.responseText); } catch { body = null; }
      if (x.status >= 200 && x.status < 300) resolve(body);
      else reject(new ApiError(x.status, body?.code || `http_${x.status}`, body?.error || `upload failed: ${x.status}`));
    };
    x.onerror = () => reject(new ApiError(0, 'network_error', 'the upload failed: the connection broke'));
    x.onabort = () => reject(new ApiError(0, 'aborted', 'the upload was cancelled'));
    x.send(file);
  });
}
