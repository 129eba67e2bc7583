// D1: the namespace's tables (GET /api/resources/list?type=d1, cursor paging), each table's schema, and
// a SQL box that runs one statement in the namespace through POST /api/storage/d1/{ns}/query: the same
// rewrite and guard as any caller's SQL. Results show as a table, a page at a time.
import * as api from './api.js';
import { count, h, plural, replace } from './dom.js';
import { clearFlash, go, guard, namespaceField } from './ui.js';
import { Pager } from './pager.js';

const ROWS_PER_PAGE = 50;
const quoteIdent = (name) => `"${name.replace(/"/g, '""')}"`;

function cell(v) {
  if (v === null) return h('td.null', null, 'NULL');
  if (Array.isArray(v)) return h('td.mono', { title: `BLOB, ${v.length} bytes` }, `x'${v.map((b) => Number(b).toString(16).padStart(2, '0')).join('')}'`);
  if (typeof v === 'object') return h('td.mono', null, JSON.stringify(v));
  return h(typeof v === 'number' ? 'td.num' : 'td', null, String(v));
}

// A table of result rows, paged in the page (the API returns a statement's rows in one answer).
function resultTable(rows, box) {
  const columns = [];
  for (const r of rows) for (const c of Object.keys(r)) if (!columns.includes(c)) columns.push(c);
  let page = 0;
  const pages = Math.max(1, Math.ceil(rows.length / ROWS_PER_PAGE));
  const draw = () => {
    const slice = rows.slice(page * ROWS_PER_PAGE, (page + 1) * ROWS_PER_PAGE);
    replace(box,
      rows.length ? h('div.scroll', null, h('table.grid', { id: 'd1-results' },
        h('thead', null, h('tr', null, columns.map((c) => h('th', null, c)))),
        h('tbody', null, slice.map((r) => h('tr', null, columns.map((c) => cell(r[c] === undefined ? null : r[c]))))))) : h('p.muted', null, 'No rows.'),
      pages > 1 ? h('div.pager', null,
        h('button.ghost', { type: 'button', disabled: page === 0, onclick: () => { page -= 1; draw(); } }, '‹ Previous'),
        h('span.muted', null, `rows ${count(page * ROWS_PER_PAGE + 1)}–${count(page * ROWS_PER_PAGE + slice.length)} of ${count(rows.length)}`),
        h('button.ghost', { type: 'button', disabled: page >= pages - 1, onclick: () => { page += 1; draw(); } }, 'Next ›')) : null);
  };
  draw();
}

export async function d1View(main, ns) {
  if (!ns) {
    replace(main, h('section.panel', null, h('h2', null, 'D1'), namespaceField('', (v) => go('d1', v)),
      h('p.muted', null, 'Pick a namespace (or open one from the Namespaces screen).')));
    return;
  }
  const query = `/api/storage/d1/${api.seg(ns)}/query`;
  const tables = h('ul.tables', { id: 'd1-tables' });
  const schema = h('div', { id: 'd1-schema' });
  const sql = h('textarea.mono', { id: 'd1-sql', rows: 5, spellcheck: 'false', placeholder: 'SELECT * FROM my_table LIMIT 100' });
  const meta = h('span.muted', { id: 'd1-meta' });
  const results = h('div', { id: 'd1-results-box' });

  const run = async () => {
    clearFlash();
    const text = sql.value.trim();
    if (!text) return;
    meta.textContent = 'running…';
    try {
      const res = await api.call('POST', query, { json: { sql: text } });
      const m = res.meta || {};
      meta.textContent = `${plural(res.results.length, 'row')} · ${Number(m.duration || 0).toFixed(2)} ms · read ${count(m.rows_read)} · written ${count(m.rows_written)} · changes ${count(m.changes)}`;
      resultTable(res.results, results);
      if (m.changed_db) await pager.reload();
    } catch (e) {
      meta.textContent = '';
      replace(results, h('p.error', { role: 'alert', id: 'd1-error' }, `${e.message}${e.code ? ` (${e.code})` : ''}`));
      if (!(e instanceof api.ApiError) || e.status === 401) throw e;
    }
  };
  sql.addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); guard(run); } });

  async function showTable(name) {
    for (const li of tables.children) li.classList.toggle('selected', li.dataset.table === name);
    const [info, created] = await Promise.all([
      api.call('POST', query, { json: { sql: `PRAGMA table_info(${quoteIdent(name)})` } }),
      api.call('POST', query, { json: { sql: 'SELECT sql FROM sqlite_master WHERE type = \'table\' AND name = ?', params: [name] } }),
    ]);
    replace(schema,
      h('div.panel-head', null, h('h3.mono', null, name)),
      h('div.scroll', null, h('table.grid.compact', null,
        h('thead', null, h('tr', null, ['column', 'type', 'not null', 'default', 'pk'].map((c) => h('th', null, c)))),
        h('tbody', null, info.results.map((c) => h('tr', null, h('td.mono', null, c.name), h('td', null, c.type || ''),
          h('td', null, c.notnull ? 'yes' : ''), h('td.mono', null, c.dflt_value === null ? '' : String(c.dflt_value)), h('td', null, c.pk ? String(c.pk) : '')))))),
      created.results[0] ? h('pre.small', null, created.results[0].sql) : null);
    sql.value = `SELECT * FROM ${quoteIdent(name)} LIMIT 1000`;
    await run();
  }

  const pager = new Pager(
    async (cursor) => {
      const page = await api.call('GET', `/api/resources/list${api.query({ type: 'd1', namespace: ns, limit: 100, cursor })}`);
      return { tables: page.resources.map((r) => r.key), next: page.cursor };
    },
    (page) => {
      replace(tables, page.tables.map((t) => h('li', { 'data-table': t, tabindex: 0, onclick: () => guard(() => showTable(t)), onkeydown: (e) => { if (e.key === 'Enter') guard(() => showTable(t)); } }, t)));
      if (!page.tables.length) tables.append(h('li.muted', null, 'No tables yet: CREATE TABLE in the SQL box.'));
    });

  replace(main,
    h('div.toolbar', null, namespaceField(ns, (v) => go('d1', v))),
    h('div.split.d1', null,
      h('section.panel.list', null, h('h2', null, 'Tables'), tables, pager.el, schema),
      h('section.panel', null,
        h('div.panel-head', null, h('h2', null, 'SQL'), h('span.muted', null, `one statement, run in namespace ${ns} (Ctrl+Enter)`)),
        sql,
        h('div.buttons', null, h('button', { type: 'button', id: 'd1-run', onclick: () => guard(run) }, 'Run'), meta),
        results)));
  await pager.first();
}
