// Sessions: the live sessions (GET /api/sessions, cursor paging) with their scopes and expiry, and
// revoke (DELETE /api/sessions/{id}: the session's token is refused from then on).
import * as api from './api.js';
import { h, plural, relative, replace, truncate, when } from './dom.js';
import { confirmAction, flash, guard } from './ui.js';
import { Pager } from './pager.js';

export async function sessionsView(main) {
  const body = h('tbody');
  const status = h('span.muted', { id: 'sessions-status' });
  const pager = new Pager(
    async (cursor) => {
      const page = await api.call('GET', `/api/sessions${api.query({ limit: 50, cursor })}`);
      return { sessions: page.sessions, next: page.cursor };
    },
    (page) => {
      replace(body, page.sessions.map((s) => h('tr', { 'data-session': s.session_id },
        h('td.mono', null, s.session_id),
        h('td', null, s.language || ''),
        h('td.mono', null, s.namespaces === '*' ? '* (all)' : truncate([].concat(s.namespaces).join(', '), 120)),
        h('td', null, s.permissions),
        h('td', null, when(s.created_at)),
        h('td', null, when(s.expires_at), h('br'), h('span.muted', null, relative(s.expires_at))),
        h('td.mono.muted', null, s.metadata ? truncate(JSON.stringify(s.metadata), 60) : ''),
        h('td', null, h('button.danger.small.revoke', { type: 'button', onclick: () => guard(() => revoke(s.session_id)) }, 'Revoke')))));
      if (!page.sessions.length) body.append(h('tr', null, h('td.muted', { colspan: 8 }, 'No live sessions.')));
      status.textContent = `${plural(page.sessions.length, 'session')} on this page`;
    });

  async function revoke(id) {
    if (!confirmAction(`Revoke session ${id}? Its token stops working at once and its working directory is deleted.`)) return;
    const res = await api.call('DELETE', `/api/sessions/${api.seg(id)}`);
    flash(`Revoked ${res.session_id}.`, 'ok');
    await pager.reload();
  }

  replace(main,
    h('section.panel', null,
      h('div.panel-head', null, h('h2', null, 'Live sessions'), status,
        h('button.ghost', { type: 'button', onclick: () => guard(() => pager.first()) }, 'Refresh')),
      h('table.grid', { id: 'sessions' },
        h('thead', null, h('tr', null, ['Session', 'Language', 'Namespaces', 'Permissions', 'Created', 'Expires', 'Metadata', ''].map((c) => h('th', null, c)))),
        body),
      pager.el));
  await pager.first();
}
