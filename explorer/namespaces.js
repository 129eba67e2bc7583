// Namespaces: what each holds across KV, D1 and R2 (GET /api/resources/stats, one call), as a table
// and a chart. The stats come from counters, so this stays one cheap call however much is stored.
import * as api from './api.js';
import { bytes, count, h, replace, svg } from './dom.js';
import { go, guard, rememberNamespaces } from './ui.js';

const TYPES = [['kv', 'KV'], ['d1', 'D1'], ['r2', 'R2']];
const PAGE = 50;
const CHART_ROWS = 12;

function chart(rows, measure) {
  const top = [...rows].sort((a, b) => total(b, measure) - total(a, measure) || (a.name < b.name ? -1 : 1))
    .slice(0, CHART_ROWS).filter((r) => total(r, measure) > 0);
  if (!top.length) return h('p.muted', null, 'Nothing stored yet.');
  const max = Math.max(...top.map((r) => total(r, measure)));
  const rowH = 26;
  const labelW = 170;
  const width = 720;
  const barW = width - labelW - 90;
  const g = svg('svg', { viewBox: `0 0 ${width} ${top.length * rowH + 8}`, class: 'chart', role: 'img', 'aria-label': `namespaces by ${measure}` });
  top.forEach((r, i) => {
    const y = i * rowH + 4;
    const name = r.name.length > 22 ? `${r.name.slice(0, 21)}…` : r.name;
    g.append(svg('text', { x: labelW - 8, y: y + 15, 'text-anchor': 'end', class: 'label' }, name));
    let x = labelW;
    for (const [t, label] of TYPES) {
      const v = r[t][measure];
      if (!v) continue;
      const w = Math.max(1, (v / max) * barW);
      g.append(svg('rect', { x, y, width: w, height: rowH - 8, rx: 2, class: `bar ${t}` },
        svg('title', null, `${r.name} ${label}: ${measure === 'size' ? bytes(v) : count(v)}`)));
      x += w;
    }
    g.append(svg('text', { x: x + 6, y: y + 15, class: 'value' }, measure === 'size' ? bytes(total(r, measure)) : count(total(r, measure))));
  });
  return g;
}

function total(r, measure) {
  return TYPES.reduce((s, [t]) => s + r[t][measure], 0);
}

export async function namespacesView(main) {
  const stats = await api.call('GET', '/api/resources/stats');
  const rows = Object.entries(stats.namespaces || {}).map(([name, types]) => ({ name, ...types }));
  rememberNamespaces(rows.map((r) => r.name));

  let measure = 'count';
  let filter = '';
  let page = 0;
  const chartBox = h('div.chart-box');
  const tableBox = h('div');
  const drawChart = () => replace(chartBox, chart(rows, measure));
  const toggle = h('div.toggle', null, ['count', 'size'].map((m) => h('button', {
    type: 'button', class: m === measure ? 'on' : null,
    onclick: (e) => {
      measure = m;
      for (const b of toggle.children) b.classList.toggle('on', b === e.currentTarget);
      drawChart();
    },
  }, m === 'count' ? 'by count' : 'by size')));

  const drawTable = () => {
    const shown = rows.filter((r) => r.name.includes(filter));
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    page = Math.min(page, pages - 1);
    const slice = shown.slice(page * PAGE, page * PAGE + PAGE);
    replace(tableBox,
      h('table.grid', { id: 'namespaces' },
        h('thead', null, h('tr', null, ['Namespace', 'KV keys', 'KV size', 'D1 tables', 'R2 objects', 'R2 size', ''].map((c, i) => h('th', { class: i > 0 && i < 6 ? 'num' : null }, c)))),
        h('tbody', null, slice.map((r) => h('tr', { 'data-ns': r.name },
          h('td.mono', null, r.name),
          h('td.num', null, count(r.kv.count)), h('td.num', null, bytes(r.kv.size)),
          h('td.num', null, count(r.d1.count)),
          h('td.num', null, count(r.r2.count)), h('td.num', null, bytes(r.r2.size)),
          h('td.actions', null, TYPES.map(([t, label]) => h('button.ghost.small', { type: 'button', onclick: () => go(t, r.name) }, label))))))),
      shown.length ? null : h('p.muted', null, filter ? 'No namespace matches.' : 'No namespace holds anything yet.'),
      pages > 1 ? h('div.pager', null,
        h('button.ghost', { type: 'button', disabled: page === 0, onclick: () => { page -= 1; drawTable(); } }, '‹ Previous'),
        h('span.muted', null, `page ${page + 1} of ${pages}`),
        h('button.ghost', { type: 'button', disabled: page >= pages - 1, onclick: () => { page += 1; drawTable(); } }, 'Next ›')) : null);
  };

  const search = h('input', { type: 'search', placeholder: 'filter namespaces', 'aria-label': 'filter namespaces' });
  search.addEventListener('input', () => { filter = search.value; page = 0; drawTable(); });

  replace(main,
    h('section.cards', null,
      h('div.card', null, h('span.big', null, count(stats.total)), h('span.muted', null, 'resources')),
      h('div.card', null, h('span.big', null, bytes(stats.total_size)), h('span.muted', null, 'stored (known sizes)')),
      TYPES.map(([t, label]) => h(`div.card.${t}`, null, h('span.big', null, count(stats.by_type[t])), h('span.muted', null, `${label} ${t === 'kv' ? 'keys' : t === 'd1' ? 'tables' : 'objects'}`))),
      h('div.card', null, h('span.big', null, count(rows.length)), h('span.muted', null, 'namespaces'))),
    h('section.panel', null,
      h('div.panel-head', null, h('h2', null, 'Largest namespaces'), toggle,
        h('span.legend', null, TYPES.map(([t, label]) => h('span', null, h(`i.swatch.${t}`), label)))),
      chartBox),
    h('section.panel', null,
      h('div.panel-head', null, h('h2', null, 'All namespaces'), search,
        h('button.ghost', { type: 'button', onclick: () => guard(() => namespacesView(main)) }, 'Refresh')),
      tableBox));
  drawChart();
  drawTable();
}
