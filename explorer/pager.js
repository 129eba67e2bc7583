// Paging through one of the API's cursors: the pager keeps the cursors of the pages before this one,
// so "previous" goes back exactly and nothing is ever fetched beyond one page.
import { h } from './dom.js';

export class Pager {
  // fetchPage(cursor|null) -> {next: cursor|null, ...}; onPage(page) renders it.
  constructor(fetchPage, onPage) {
    this.fetchPage = fetchPage;
    this.onPage = onPage;
    this.back = [];
    this.cursor = null;
    this.next = null;
    this.seq = 0;
    this.prevBtn = h('button.ghost', { type: 'button', onclick: () => this.previous(), disabled: true }, '‹ Previous');
    this.nextBtn = h('button.ghost', { type: 'button', onclick: () => this.forward(), disabled: true }, 'Next ›');
    this.label = h('span.muted', null, '');
    this.el = h('div.pager', null, this.prevBtn, this.label, this.nextBtn);
  }

  async first() {
    this.back = [];
    return this.load(null);
  }

  async reload() { return this.load(this.cursor); }

  async forward() {
    if (!this.next) return;
    this.back.push(this.cursor);
    await this.load(this.next);
  }

  async previous() {
    if (!this.back.length) return;
    await this.load(this.back.pop());
  }

  async load(cursor) {
    const seq = ++this.seq;  // a slower, older answer must not overwrite a newer one
    this.prevBtn.disabled = true;
    this.nextBtn.disabled = true;
    const started = performance.now();
    const page = await this.fetchPage(cursor);
    if (seq !== this.seq) return;
    this.cursor = cursor;
    this.next = page.next || null;
    page.ms = performance.now() - started;
    this.onPage(page);
    this.prevBtn.disabled = this.back.length === 0;
    this.nextBtn.disabled = !this.next;
    this.label.textContent = `page ${this.back.length + 1}${this.next ? '' : ' (last)'}`;
  }
}
