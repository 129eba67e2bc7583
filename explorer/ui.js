// What the screens share: navigation, the error line, confirmation, the namespace picker.
import * as api from './api.js';
import { h, replace } from './dom.js';

export const NS_RE = /^[A-Za-z0-9_-]{1,64}$/;
export const state = { authMode: 'token', known: [], onUnauthorized: () => {} };

export function go(view, ns) {
  location.hash = `#/${view}${ns ? `/${ns}` : ''}`;
}

export function flash(message, kind = 'error') {
  const bar = document.getElementById('flash');
  if (!bar) return;
  replace(bar, h(`div.flash.${kind}`, { role: kind === 'error' ? 'alert' : 'status' }, message));
}
export function clearFlash() {
  const bar = document.getElementById('flash');
  if (bar) replace(bar);
}

// Runs an action, showing its error instead of losing it; 401 goes back to the login.
export async function guard(fn) {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof api.ApiError && e.status === 401 && state.authMode === 'token') {
      api.setToken('');
      state.onUnauthorized(`${e.message} (${e.code}): log in again`);
      return undefined;
    }
    flash(e instanceof api.ApiError ? `${e.message} (${e.code})` : String(e.message || e));
    return undefined;
  }
}

export function confirmAction(what) {
  return window.confirm(what);
}

// A namespace field with the namespaces the proxy knows as suggestions.
export function namespaceField(current, onChange) {
  const listId = 'ns-suggestions';
  const input = h('input.ns', {
    type: 'text', value: current || '', placeholder: 'namespace', list: listId, spellcheck: 'false',
    'aria-label': 'namespace', maxlength: 64, pattern: '[A-Za-z0-9_\\-]{1,64}',
  });
  const submit = () => {
    const v = input.value.trim();
    if (!NS_RE.test(v)) return flash('a namespace is 1 to 64 of A-Z a-z 0-9 _ -');
    clearFlash();
    return onChange(v);
  };
  input.addEventListener('change', submit);
  input.addEventListener('keydown', (e) => { if (e.key === 'Enter') submit(); });
  const list = h('datalist', { id: listId }, state.known.map((n) => h('option', { value: n })));
  return h('label.field', null, h('span', null, 'Namespace'), input, list);
}

export function rememberNamespaces(names) { state.known = names; }

