// The explorer's shell: login (or none, with auth off on loopback), navigation between the screens,
// each screen's module renders into <main>.
import * as api from './api.js';
import { h, replace } from './dom.js';
import { NS_RE, guard, state } from './ui.js';
import { namespacesView } from './namespaces.js';
import { kvView } from './kv.js';
import { d1View } from './d1.js';
import { r2View } from './r2.js';
import { sessionsView } from './sessions.js';

const VIEWS = {
  namespaces: { title: 'Namespaces', render: namespacesView },
  kv: { title: 'KV', render: kvView },
  d1: { title: 'D1', render: d1View },
  r2: { title: 'R2', render: r2View },
  sessions: { title: 'Sessions', render: sessionsView },
};
const root = document.getElementById('app');
state.onUnauthorized = (message) => showLogin(message);

// --- login ----------------------------------------------------------------------------------------

function showLogin(message) {
  const input = h('input', { type: 'password', id: 'token', autocomplete: 'current-password', placeholder: 'admin token', 'aria-label': 'admin token' });
  const error = h('p.error', { role: 'alert' }, message || '');
  const form = h('form.login', {
    onsubmit: async (e) => {
      e.preventDefault();
      api.setToken(input.value.trim());
      try {
        await api.call('GET', '/api/sessions?limit=1');  // admin only: a session token is refused here
        start();
      } catch (err) {
        api.setToken('');
        error.textContent = err.code === 'admin_required'
          ? 'That is a session token: the explorer needs the admin token.'
          : `${err.message}${err.code ? ` (${err.code})` : ''}`;
      }
    },
  },
  h('h1', null, 'era storage explorer'),
  h('p.muted', null, 'Log in with the proxy\'s admin token ([auth] admin_token, ERA_ADMIN_TOKEN). It stays in this tab and is sent only in the Authorization header.'),
  input, h('button', { type: 'submit' }, 'Log in'), error);
  replace(root, h('div.login-wrap', null, form));
  input.focus();
}

// --- shell ----------------------------------------------------------------------------------------

function route() {
  const [view, ns] = location.hash.replace(/^#\/?/, '').split('/');
  return { view: VIEWS[view] ? view : 'namespaces', ns: NS_RE.test(ns || '') ? ns : '' };
}

function render() {
  const { view, ns } = route();
  const nav = h('nav', null, Object.entries(VIEWS).map(([key, v]) => h('a', {
    href: `#/${key}${ns && key !== 'namespaces' && key !== 'sessions' ? `/${ns}` : ''}`,
    class: key === view ? 'active' : null, 'data-view': key,
  }, v.title)));
  const who = state.authMode === 'off' ? 'auth off (loopback)' : 'admin';
  const logout = state.authMode === 'off' ? null : h('button.ghost', {
    type: 'button', onclick: () => { api.setToken(''); showLogin('Logged out.'); },
  }, 'Log out');
  const main = h('main', { id: 'main' });
  replace(root,
    h('header', null, h('span.brand', null, 'era storage explorer'), nav, h('span.who', null, who), logout),
    h('div', { id: 'flash' }),
    main);
  document.title = `${VIEWS[view].title}${ns ? ` · ${ns}` : ''} — era storage explorer`;
  guard(() => VIEWS[view].render(main, ns));
}

function start() {
  window.onhashchange = render;
  render();
}

// Auth off (loopback only) answers without a token; otherwise the stored token is tried, or the login shown.
async function boot() {
  try {
    const probe = await fetch('/api/sessions?limit=1', { headers: { Accept: 'application/json' }, credentials: 'omit', cache: 'no-store' });
    if (probe.ok) {
      state.authMode = 'off';
      api.setToken('');
      return start();
    }
  } catch { /* fall through to the login */ }
  if (api.hasToken()) {
    try {
      await api.call('GET', '/api/sessions?limit=1');
      return start();
    } catch { api.setToken(''); }
  }
  return showLogin('');
}

boot();
