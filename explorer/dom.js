// The only way the explorer builds its page. Everything shown comes from storage that sandboxes wrote,
// so it is hostile: strings only ever become text nodes (or attribute values set one by one); no code
// here or elsewhere parses markup, and the page's policy (Trusted Types with no policy) makes any
// assignment of a string to an HTML sink throw if one ever slipped in.

const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'readOnly', 'multiple']);
// URLs the page itself makes; an attribute that can navigate or load never takes a stored string.
const URL_ATTRS = new Set(['href', 'src', 'action', 'formaction', 'xlink:href']);
const SAFE_URL = /^(#|\/explorer|blob:)/;

function setProps(el, props) {
  if (!props) return;
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (PROPS.has(k)) {
      el[k] = v;
    } else {
      if (URL_ATTRS.has(k) && !SAFE_URL.test(String(v))) throw new Error(`refused URL attribute ${k}`);
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// h('div.card.wide', {title: 'x', onclick: f}, 'text', child, [more]) -> HTMLElement
export function h(tag, props, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name);
  if (classes.length) el.className = classes.join(' ');
  setProps(el, props);
  return append(el, children);
}

const SVG = 'http://www.w3.org/2000/svg';
export function svg(tag, props, ...children) {
  const el = document.createElementNS(SVG, tag);
  setProps(el, props);
  return append(el, children);
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function replace(el, ...children) {
  return append(clear(el), children);
}

// --- formatting ---------------------------------------------------------------------------------

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function count(n) {
  return Number(n || 0).toLocaleString('en-US');
}

// An ISO 8601 string or unix seconds -> "2026-11-29 21:19:16 UTC".
export function when(t) {
  if (t === null || t === undefined || t === '') return '—';
  const d = typeof t === 'number' ? new Date(t * 1000) : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

// Unix seconds -> "in 3 h", "5 min ago".
export function relative(unix) {
  if (!unix) return '';
  const s = Math.round(unix - Date.now() / 1000);
  const a = Math.abs(s);
  const v = a < 120 ? `${a} s` : a < 5400 ? `${Math.round(a / 60)} min` : a < 172800 ? `${Math.round(a / 3600)} h`
    : `${Math.round(a / 86400)} d`;
  return s >= 0 ? `in ${v}` : `${v} ago`;
}

// A classic hex dump: offset, 16 bytes, their printable ASCII.
export function hexdump(u8, limit = 65536) {
  const n = Math.min(u8.length, limit);
  const lines = [];
  for (let off = 0; off < n; off += 16) {
    const row = u8.subarray(off, Math.min(off + 16, n));
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  |${ascii}|`);
  }
  if (u8.length > n) lines.push(`… ${count(u8.length - n)} more bytes`);
  return lines.join('\n');
}

// Text a person can read: no control characters but tab and line breaks, no replacement characters.
export function looksLikeText(s) {
  // eslint-disable-next-line no-control-regex
  return !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\ufffd]/.test(s);
}

export function plural(n, noun) {
  return `${count(n)} ${noun}${n === 1 ? '' : 's'}`;
}

export function truncate(s, n) {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}
