// KV: keys of one namespace with prefix search and cursor paging (GET /api/storage/kv/{ns}), a value
// viewer (text, pretty JSON, hex), metadata and expiration, and edit, create and delete.
import * as api from './api.js';
import { bytes, count, h, hexdump, looksLikeText, plural, relative, replace, truncate, when } from './dom.js';
import { clearFlash, confirmAction, flash, go, guard, namespaceField } from './ui.js';
import { Pager } from './pager.js';

const TEXT_LIMIT = 1 << 20;  // characters shown as text; past it the view says how much is left out

const kvPath = (ns, key) => `/api/storage/kv/${api.seg(ns)}/${api.seg(key)}`;

function valueViews(value) {
  const views = { text: value.length > TEXT_LIMIT ? `${value.slice(0, TEXT_LIMIT)}\n… ${count(value.length - TEXT_LIMIT)} more characters` : value };
  try {
    const parsed = JSON.parse(value);
    if (parsed !== null && typeof parsed === 'object') views.json = JSON.stringify(parsed, null, 2);
  } catch { /* not JSON */ }
  views.hex = hexdump(new TextEncoder().encode(value));
  views.initial = views.json ? 'json' : looksLikeText(value) ? 'text' : 'hex';
  return views;
}

export async function kvView(main, ns) {
  if (!ns) {
    replace(main, h('section.panel', null, h('h2', null, 'KV'), namespaceField('', (v) => go('kv', v)),
      h('p.muted', null, 'Pick a namespace (or open one from the Namespaces screen).')));
    return;
  }
  const prefix = h('input', { type: 'search', placeholder: 'key prefix', 'aria-label': 'key prefix', id: 'kv-prefix', spellcheck: 'false' });
  const size = h('select', { 'aria-label': 'page size' }, [50, 100, 500, 1000].map((n) => h('option', { value: n, selected: n === 100 }, `${n} / page`)));
  const status = h('span.muted', { id: 'kv-status' });
  const body = h('tbody');
  const detail = h('section.panel.detail', { id: 'kv-detail' }, h('p.muted', null, 'Select a key to see its value.'));
  let selected = null;

  const pager = new Pager(
    async (cursor) => {
      const page = await api.call('GET', `/api/storage/kv/${api.seg(ns)}${api.query({ prefix: prefix.value, limit: size.value, cursor })}`);
      return { keys: page.keys, next: page.list_complete ? null : page.cursor };
    },
    (page) => {
      replace(body, page.keys.map((k) => h('tr', {
        class: k.name === selected ? 'selected' : null, tabindex: 0,
        onclick: () => guard(() => open(k.name)),
        onkeydown: (e) => { if (e.key === 'Enter') guard(() => open(k.name)); },
      },
      h('td.mono.key', null, k.name),
      h('td', null, k.expiration ? when(k.expiration) : '—'),
      h('td.mono.muted', null, k.metadata ? truncate(JSON.stringify(k.metadata), 80) : ''))));
      if (!page.keys.length) body.append(h('tr', null, h('td.muted', { colspan: 3 }, prefix.value ? 'No key has this prefix.' : 'This namespace has no KV keys.')));
      status.textContent = `${plural(page.keys.length, 'key')} in ${page.ms.toFixed(0)} ms`;
      status.dataset.loaded = 'true';
    });

  let typing;
  prefix.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(() => guard(() => pager.first()), 200); });
  size.addEventListener('change', () => guard(() => pager.first()));

  async function open(name) {
    selected = name;
    for (const tr of body.children) tr.classList.toggle('selected', tr.firstChild?.textContent === name);
    const entry = await api.call('GET', kvPath(ns, name));
    showEntry(name, entry);
  }

  function showEntry(name, entry) {
    clearFlash();
    const views = valueViews(entry.value);
    const pre = h('pre.value', { id: 'kv-value' });
    const tabs = h('div.toggle', null, ['text', 'json', 'hex'].filter((t) => views[t] !== undefined).map((t) => h('button', {
      type: 'button', 'data-tab': t,
      onclick: () => select(t),
    }, t === 'json' ? 'JSON' : t === 'hex' ? 'Hex' : 'Text')));
    const select = (t) => {
      pre.textContent = views[t];
      pre.classList.toggle('hex', t === 'hex');
      for (const b of tabs.children) b.classList.toggle('on', b.dataset.tab === t);
    };
    select(views.initial);
    const utf8 = new TextEncoder().encode(entry.value).length;
    replace(detail,
      h('div.panel-head', null, h('h2.mono.key', { id: 'kv-key' }, name), h('span.muted', null, bytes(utf8))),
      h('dl.meta', null,
        h('dt', null, 'Expiration'), h('dd', null, entry.expiration ? `${when(entry.expiration)} (${relative(entry.expiration)})` : 'never'),
        h('dt', null, 'Metadata'), h('dd', null, entry.metadata ? h('pre.small', null, JSON.stringify(entry.metadata, null, 2)) : 'none')),
      h('div.panel-head', null, h('h3', null, 'Value'), tabs),
      pre,
      h('div.buttons', null,
        h('button', { type: 'button', id: 'kv-edit', onclick: () => edit(name, entry) }, 'Edit'),
        h('button.danger', { type: 'button', id: 'kv-delete', onclick: () => guard(() => remove(name)) }, 'Delete')));
  }

  async function remove(name) {
    if (!confirmAction(`Delete the KV key "${name}" from namespace ${ns}? This cannot be undone.`)) return;
    await api.call('DELETE', kvPath(ns, name));
    selected = null;
    replace(detail, h('p.muted', null, 'Deleted.'));
    flash(`Deleted "${truncate(name, 80)}".`, 'ok');
    await pager.reload();
  }

  // Create (entry null) or replace a key: PUT replaces value, metadata and expiration together.
  function edit(name, entry) {
    clearFlash();
    const nameInput = h('input.mono', { type: 'text', id: 'kv-edit-name', value: name || '', placeholder: 'key', spellcheck: 'false', readOnly: name !== null });
    const value = h('textarea.mono', { id: 'kv-edit-value', rows: 12, spellcheck: 'false' });
    value.value = entry ? entry.value : '';
    const meta = h('textarea.mono', { id: 'kv-edit-metadata', rows: 3, spellcheck: 'false', placeholder: '{"owner": "alice"} or empty' });
    meta.value = entry && entry.metadata ? JSON.stringify(entry.metadata, null, 2) : '';
    const keep = entry && entry.expiration ? h('option', { value: 'keep', selected: true }, `keep (${when(entry.expiration)})`) : null;
    const expiry = h('select', { id: 'kv-edit-expiry' }, keep, h('option', { value: 'never' }, 'never'),
      h('option', { value: 'ttl' }, 'in … seconds'));
    const ttl = h('input', { type: 'number', min: 60, value: 3600, id: 'kv-edit-ttl', 'aria-label': 'seconds' });
    const save = async () => {
      const key = nameInput.value;
      if (!key) return flash('the key needs a name');
      const body = { value: value.value };
      const m = meta.value.trim();
      if (m) {
        try { body.metadata = JSON.parse(m); } catch { return flash('metadata must be a JSON object (or empty)'); }
      }
      if (expiry.value === 'keep') body.expiration = entry.expiration;
      if (expiry.value === 'ttl') body.expiration_ttl = Number(ttl.value);
      await api.call('PUT', kvPath(ns, key), { json: body });
      flash(`Saved "${truncate(key, 80)}".`, 'ok');
      await pager.reload();
      return open(key);
    };
    replace(detail,
      h('div.panel-head', null, h('h2', null, name === null ? 'New key' : 'Edit key')),
      h('label.stack', null, h('span', null, 'Key'), nameInput),
      h('label.stack', null, h('span', null, 'Value (a string)'), value),
      h('label.stack', null, h('span', null, 'Metadata (JSON object)'), meta),
      h('div.row', null, h('label.field', null, h('span', null, 'Expires'), expiry), ttl),
      h('div.buttons', null,
        h('button', { type: 'button', id: 'kv-save', onclick: () => guard(save) }, 'Save'),
        h('button.ghost', { type: 'button', onclick: () => (entry ? showEntry(name, entry) : replace(detail)) }, 'Cancel')));
    (name === null ? nameInput : value).focus();
  }

  replace(main,
    h('div.toolbar', null, namespaceField(ns, (v) => go('kv', v)), prefix, size,
      h('button', { type: 'button', id: 'kv-new', onclick: () => edit(null, null) }, 'New key'), status),
    h('div.split', null,
      h('section.panel.list', null,
        h('table.grid', { id: 'kv-keys' }, h('thead', null, h('tr', null, h('th', null, 'Key'), h('th', null, 'Expires'), h('th', null, 'Metadata'))), body),
        pager.el),
      detail));
  await pager.first();
}
