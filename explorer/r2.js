// R2: objects of one namespace, browsed by prefix and delimiter like folders (GET /api/storage/r2/{ns},
// cursor paging), with metadata (HEAD), download, streamed upload with progress, delete, and a preview
// of images and text.
import * as api from './api.js';
import { bytes, count, h, hexdump, looksLikeText, plural, replace, when } from './dom.js';
import { clearFlash, confirmAction, flash, go, guard, namespaceField } from './ui.js';
import { Pager } from './pager.js';

// Raster images only: an SVG is a document that could carry script.
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/bmp', 'image/x-icon']);
const IMAGE_LIMIT = 16 << 20;
const TEXT_PREVIEW = 65536;
const isTextType = (t) => /^text\/|^application\/(json|xml|javascript|x-ndjson|toml|yaml)|\+json$|\+xml$/.test(t);

const objPath = (ns, key) => `/api/storage/r2/${api.seg(ns)}/${api.seg(key)}`;

export async function r2View(main, ns) {
  if (!ns) {
    replace(main, h('section.panel', null, h('h2', null, 'R2'), namespaceField('', (v) => go('r2', v)),
      h('p.muted', null, 'Pick a namespace (or open one from the Namespaces screen).')));
    return;
  }
  let prefix = '';
  const delimiter = h('input', { type: 'text', value: '/', id: 'r2-delimiter', 'aria-label': 'delimiter', maxlength: 16, size: 3, spellcheck: 'false' });
  const prefixInput = h('input', { type: 'search', placeholder: 'key prefix', id: 'r2-prefix', 'aria-label': 'key prefix', spellcheck: 'false' });
  const crumbs = h('div.crumbs', { id: 'r2-crumbs' });
  const body = h('tbody');
  const status = h('span.muted', { id: 'r2-status' });
  const detail = h('section.panel.detail', { id: 'r2-detail' }, h('p.muted', null, 'Select an object to see it.'));
  const fileInput = h('input', { type: 'file', id: 'r2-file', 'aria-label': 'file to upload' });
  const progress = h('div.progress', { id: 'r2-progress', hidden: true }, h('div.fill'), h('span.muted'));
  let previewUrl = null;

  const setPrefix = (p) => {
    prefix = p;
    prefixInput.value = p;
    return pager.first();
  };

  const drawCrumbs = () => {
    const d = delimiter.value;
    const parts = d && prefix ? prefix.split(d) : [];
    const items = [h('button.link', { type: 'button', onclick: () => guard(() => setPrefix('')) }, ns)];
    let acc = '';
    if (d) {
      parts.slice(0, -1).forEach((p) => {
        acc += p + d;
        const target = acc;
        items.push(h('span.sep', null, d), h('button.link', { type: 'button', onclick: () => guard(() => setPrefix(target)) }, p));
      });
      if (parts.length && parts[parts.length - 1]) items.push(h('span.sep', null, d), h('span', null, `${parts[parts.length - 1]}…`));
    } else if (prefix) {
      items.push(h('span.sep', null, '·'), h('span', null, `${prefix}…`));
    }
    replace(crumbs, items);
  };

  const pager = new Pager(
    async (cursor) => {
      const page = await api.call('GET', `/api/storage/r2/${api.seg(ns)}${api.query({ prefix, delimiter: delimiter.value, limit: 100, cursor })}`);
      return { objects: page.objects, prefixes: page.delimitedPrefixes || [], next: page.truncated ? page.cursor : null };
    },
    (page) => {
      drawCrumbs();
      replace(body,
        page.prefixes.map((p) => h('tr.folder', { tabindex: 0, onclick: () => guard(() => setPrefix(p)), onkeydown: (e) => { if (e.key === 'Enter') guard(() => setPrefix(p)); } },
          h('td.mono.key', null, h('span.icon', null, '▸ '), p.slice(prefix.length)), h('td', null, ''), h('td', null, 'folder'), h('td', null, ''))),
        page.objects.map((o) => h('tr', { tabindex: 0, 'data-key': o.key, onclick: () => guard(() => open(o.key)), onkeydown: (e) => { if (e.key === 'Enter') guard(() => open(o.key)); } },
          h('td.mono.key', null, o.key.slice(prefix.length) || o.key),
          h('td.num', null, bytes(o.size)),
          h('td', null, o.httpMetadata?.contentType || ''),
          h('td', null, when(o.uploaded)))));
      if (!page.objects.length && !page.prefixes.length) body.append(h('tr', null, h('td.muted', { colspan: 4 }, prefix ? 'Nothing under this prefix.' : 'This namespace has no R2 objects.')));
      status.textContent = `${plural(page.objects.length, 'object')}, ${plural(page.prefixes.length, 'folder')} in ${page.ms.toFixed(0)} ms`;
    });

  let typing;
  prefixInput.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(() => { prefix = prefixInput.value; guard(() => pager.first()); }, 200); });
  delimiter.addEventListener('change', () => guard(() => pager.first()));

  function dropPreview() {
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
  }

  async function open(key) {
    dropPreview();
    clearFlash();
    for (const tr of body.children) tr.classList.toggle('selected', tr.dataset.key === key);
    const head = await api.call('HEAD', `${objPath(ns, key)}?raw=1`, { raw: true });
    const type = head.headers.get('Content-Type') || 'application/octet-stream';
    const size = Number(head.headers.get('Content-Length'));
    let custom = {};
    try { custom = JSON.parse(head.headers.get('X-Era-Metadata') || '{}'); } catch { custom = {}; }
    const preview = h('div.preview', { id: 'r2-preview' });
    replace(detail,
      h('div.panel-head', null, h('h2.mono.key', { id: 'r2-key' }, key)),
      h('dl.meta', null,
        h('dt', null, 'Size'), h('dd', null, `${bytes(size)} (${count(size)} bytes)`),
        h('dt', null, 'Content type'), h('dd.mono', null, type),
        h('dt', null, 'ETag'), h('dd.mono', null, (head.headers.get('ETag') || '').replace(/"/g, '')),
        h('dt', null, 'Uploaded'), h('dd', null, when(head.headers.get('X-Era-Uploaded'))),
        h('dt', null, 'Custom metadata'), h('dd', null, Object.keys(custom).length ? h('pre.small', null, JSON.stringify(custom, null, 2)) : 'none')),
      h('div.buttons', null,
        h('button', { type: 'button', id: 'r2-download', onclick: () => guard(() => download(key)) }, 'Download'),
        h('button.danger', { type: 'button', id: 'r2-delete', onclick: () => guard(() => remove(key)) }, 'Delete')),
      preview);
    await showPreview(key, type, size, preview);
  }

  async function showPreview(key, type, size, box) {
    if (IMAGE_TYPES.has(type) && size <= IMAGE_LIMIT) {
      const res = await api.call('GET', `${objPath(ns, key)}?raw=1`, { raw: true });
      previewUrl = URL.createObjectURL(new Blob([await res.blob()], { type }));
      replace(box, h('h3', null, 'Preview'), h('img', { src: previewUrl, alt: 'preview of the object' }));
    } else if (size > 0 && (isTextType(type) || type === 'application/octet-stream')) {
      const res = await api.call('GET', `${objPath(ns, key)}?raw=1`, { raw: true, headers: { Range: `bytes=0-${TEXT_PREVIEW - 1}` } });
      const buf = new Uint8Array(await res.arrayBuffer());
      const text = new TextDecoder('utf-8', { fatal: false }).decode(buf);
      const shown = isTextType(type) || looksLikeText(text) ? text : hexdump(buf);
      replace(box, h('h3', null, size > TEXT_PREVIEW ? `Preview (first ${bytes(TEXT_PREVIEW)})` : 'Preview'), h(shown === text ? 'pre.value' : 'pre.value.hex', null, shown));
    } else {
      replace(box);
    }
  }

  // Fetches the bytes and hands them to the browser's download as an opaque blob (never rendered here).
  async function download(key) {
    const res = await api.call('GET', `${objPath(ns, key)}?raw=1`, { raw: true });
    const blob = new Blob([await res.blob()], { type: 'application/octet-stream' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: key.split('/').pop() || 'object' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  async function remove(key) {
    if (!confirmAction(`Delete the R2 object "${key}" from namespace ${ns}? This cannot be undone.`)) return;
    await api.call('DELETE', objPath(ns, key));
    dropPreview();
    replace(detail, h('p.muted', null, 'Deleted.'));
    flash(`Deleted "${key}".`, 'ok');
    await pager.reload();
  }

  const keyInput = h('input.mono', { type: 'text', id: 'r2-upload-key', placeholder: 'key (default: prefix + file name)', spellcheck: 'false' });
  fileInput.addEventListener('change', () => {
    if (fileInput.files[0] && !keyInput.value) keyInput.value = prefix + fileInput.files[0].name;
  });
  const doUpload = async () => {
    const file = fileInput.files[0];
    if (!file) return flash('choose a file to upload');
    const key = keyInput.value || prefix + file.name;
    clearFlash();
    progress.hidden = false;
    const fill = progress.firstChild;
    const label = progress.lastChild;
    const onProgress = (done, total) => {
      fill.style.width = `${total ? (100 * done) / total : 100}%`;
      label.textContent = `${bytes(done)} of ${bytes(total)}`;
    };
    onProgress(0, file.size);
    try {
      // ?raw=1: the bytes are the object whatever the file's type (a .json file stays a file).
      const res = await api.upload(`${objPath(ns, key)}?raw=1`, file, file.type || 'application/octet-stream', onProgress);
      label.textContent = `uploaded ${bytes(res.size)}, etag ${res.etag}`;
      progress.dataset.done = 'true';
      keyInput.value = '';
      fileInput.value = '';
      await pager.reload();
      await open(key);
    } catch (e) {
      label.textContent = 'upload failed';
      throw e;
    }
  };

  replace(main,
    h('div.toolbar', null, namespaceField(ns, (v) => go('r2', v)), prefixInput,
      h('label.field', null, h('span', null, 'Delimiter'), delimiter), status),
    h('section.panel.upload', null, h('span', null, 'Upload'), fileInput, keyInput,
      h('button', { type: 'button', id: 'r2-upload', onclick: () => guard(doUpload) }, 'Upload'), progress),
    h('div.split', null,
      h('section.panel.list', null, crumbs,
        h('table.grid', { id: 'r2-objects' }, h('thead', null, h('tr', null, ['Key', 'Size', 'Type', 'Uploaded'].map((c) => h('th', null, c)))), body),
        pager.el),
      detail));
  await pager.first();
}
