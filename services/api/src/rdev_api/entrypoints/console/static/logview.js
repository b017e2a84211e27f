// A run's log on the page: numbered lines with anchors, stderr marked, ANSI rendered,
// auto-scroll that pauses while the reader looks further up; search, a stderr-only
// filter, progress lines (ended by a bare CR) collapsed to their last state, and
// `::group::`/`::endgroup::` (GitHub Actions) and `--- name` (Buildkite) sections
// that fold.
import { initialStyle, renderAnsi } from './ansi.js';

const GROUP_START = /^::group::(.*)$/;
const GROUP_END = /^::endgroup::\s*$/;
const BUILDKITE_SECTION = /^(?:---|\+\+\+|~~~) (.+)$/;
// Search runs over the lines' text, not the page, in slices, so a 100,000-line log
// stays responsive.
const SEARCH_SLICE = 20000;

const NEAR_BOTTOM_PX = 24;

export class LogView {
  constructor(container) {
    this.el = document.createElement('div');
    this.el.className = 'log';
    this.el.id = 'log';
    this.el.tabIndex = 0;
    this.status = document.createElement('div');
    this.status.className = 'log-tools';
    this.followNote = document.createElement('span');
    this.jump = document.createElement('button');
    this.jump.type = 'button';
    this.jump.className = 'secondary';
    this.jump.textContent = 'Follow output';
    this.jump.hidden = true;
    this.jump.addEventListener('click', () => this.follow());
    this.status.append(this.followNote, this.jump);
    this.tools = this.searchTools();
    container.append(this.tools, this.el, this.status);
    this.texts = new Map(); // n → plain text of the line, for search
    this.lastCr = { stdout: null, stderr: null };
    this.group = null; // the open section: { id, head }
    this.groups = 0;
    this.matches = [];
    this.current = -1;
    this.seen = new Set();
    this.duplicates = 0; // lines received twice and dropped: shown for diagnosis and tests
    this.el.dataset.duplicates = '0';
    this.pending = [];
    this.styles = { stdout: initialStyle(), stderr: initialStyle() };
    this.sticky = true;
    this.frame = 0;
    this.target = location.hash.startsWith('#L') ? location.hash.slice(1) : null;
    this.el.addEventListener('scroll', () => this.onScroll());
  }

  get count() {
    return this.seen.size;
  }

  onScroll() {
    const { scrollTop, clientHeight, scrollHeight } = this.el;
    this.sticky = scrollTop + clientHeight >= scrollHeight - NEAR_BOTTOM_PX;
    this.jump.hidden = this.sticky;
    this.followNote.textContent = this.sticky ? '' : 'Auto-scroll paused';
    this.followNote.className = this.sticky ? '' : 'follow-off';
  }

  follow() {
    this.sticky = true;
    this.el.scrollTop = this.el.scrollHeight;
    this.onScroll();
  }

  // Add one line. `n` numbers lines across both streams; a line already shown (a replay
  // after a reconnect the server could not resume) is ignored, so nothing appears twice.
  add(n, stream, text, partial = false, cr = false) {
    if (this.seen.has(n)) {
      this.duplicates += 1;
      this.el.dataset.duplicates = String(this.duplicates);
      return false;
    }
    this.seen.add(n);
    this.pending.push({ n, stream, text, partial, cr });
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
    return true;
  }

  flush() {
    this.frame = 0;
    const batch = this.pending.sort((a, b) => a.n - b.n);
    this.pending = [];
    const fragment = document.createDocumentFragment();
    for (const item of batch) fragment.appendChild(this.row(item));
    this.insert(fragment, batch[0]);
    if (this.sticky) this.el.scrollTop = this.el.scrollHeight;
    this.revealTarget();
  }

  // Lines normally arrive in order; one that arrives late goes where its number says.
  insert(fragment, first) {
    const last = this.el.lastElementChild;
    if (!first || !last || Number(last.dataset.n) < first.n) {
      this.el.appendChild(fragment);
      return;
    }
    for (const row of [...fragment.children]) {
      const after = [...this.el.children].find((c) => Number(c.dataset.n) > Number(row.dataset.n));
      this.el.insertBefore(row, after || null);
    }
  }

  row({ n, stream, text, partial, cr }) {
    const row = document.createElement('div');
    row.className = `line ${stream}`;
    // A progress line ended by CR is overwritten by the next line of its stream.
    // (An empty line after it, the newline ending a progress bar, leaves it shown.)
    const overwritten = this.lastCr[stream];
    if (overwritten && text === '') row.classList.add('overwritten');
    else if (overwritten) overwritten.classList.add('overwritten');
    this.lastCr[stream] = cr ? row : null;
    if (cr) row.dataset.cr = 'true';
    const plain = text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
    this.texts.set(n, plain);
    this.section(row, plain);
    row.id = `L${n}`;
    row.dataset.n = String(n);
    row.dataset.stream = stream;
    if (partial) row.dataset.partial = 'true';
    const link = document.createElement('a');
    link.className = 'ln';
    link.href = `#L${n}`;
    link.textContent = String(n);
    link.title = `${stream} line ${n}`;
    const txt = document.createElement('span');
    txt.className = 'txt';
    txt.appendChild(renderAnsi(text, this.styles[stream] || initialStyle()));
    row.append(link, txt);
    return row;
  }

  // Sections: a start line becomes a foldable head; the lines after it belong to it.
  section(row, plain) {
    const start = plain.match(GROUP_START) || plain.match(BUILDKITE_SECTION);
    if (start) {
      const id = `g${++this.groups}`;
      row.classList.add('group-head');
      row.dataset.groupHead = id;
      row.dataset.groupName = start[1].trim();
      row.addEventListener('click', (e) => {
        if (e.target.closest('a')) return;
        this.toggle(id);
      });
      this.group = { id, head: row };
      return;
    }
    if (this.group && GROUP_END.test(plain)) {
      row.dataset.group = this.group.id;
      row.classList.add('group-end');
      this.group = null;
      return;
    }
    if (this.group) row.dataset.group = this.group.id;
  }

  toggle(id, fold) {
    const head = this.el.querySelector(`[data-group-head="${id}"]`);
    const folded = fold ?? !head.classList.contains('folded');
    head.classList.toggle('folded', folded);
    for (const row of this.el.querySelectorAll(`[data-group="${id}"]`)) row.classList.toggle('folded-away', folded);
  }

  searchTools() {
    const input = document.createElement('input');
    input.type = 'search';
    input.id = 'log-search';
    input.placeholder = 'Search the log';
    input.setAttribute('aria-label', 'Search the log');
    const count = document.createElement('span');
    count.id = 'log-search-count';
    count.className = 'muted';
    const button = (id, label, onclick) => {
      const b = document.createElement('button');
      Object.assign(b, { type: 'button', id, className: 'secondary', textContent: label });
      b.addEventListener('click', onclick);
      return b;
    };
    const stderrOnly = document.createElement('input');
    stderrOnly.type = 'checkbox';
    stderrOnly.id = 'stderr-only';
    stderrOnly.addEventListener('change', () => this.el.classList.toggle('stderr-only', stderrOnly.checked));
    const label = document.createElement('label');
    label.className = 'check';
    label.append(stderrOnly, ' stderr only');
    let timer = 0;
    input.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.search(input.value), 150);
    });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') this.step(e.shiftKey ? -1 : 1);
    });
    this.countEl = count;
    const tools = document.createElement('div');
    tools.className = 'log-tools log-search';
    tools.append(input, button('search-prev', 'Previous', () => this.step(-1)),
      button('search-next', 'Next', () => this.step(1)), count, label);
    return tools;
  }

  async search(query) {
    for (const n of this.matches) document.getElementById(`L${n}`)?.classList.remove('match', 'current');
    this.matches = [];
    this.current = -1;
    const needle = query.toLowerCase();
    if (!needle) {
      this.countEl.textContent = '';
      delete this.el.dataset.matches;
      return;
    }
    const entries = [...this.texts.entries()].sort((a, b) => a[0] - b[0]);
    for (let i = 0; i < entries.length; i += SEARCH_SLICE) {
      for (const [n, text] of entries.slice(i, i + SEARCH_SLICE)) {
        if (text.toLowerCase().includes(needle)) this.matches.push(n);
      }
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    for (const n of this.matches) document.getElementById(`L${n}`)?.classList.add('match');
    this.el.dataset.matches = String(this.matches.length);
    if (this.matches.length) this.step(1);
    else this.countEl.textContent = 'no match';
  }

  step(direction) {
    if (!this.matches.length) return;
    document.getElementById(`L${this.matches[this.current]}`)?.classList.remove('current');
    this.current = (this.current + direction + this.matches.length) % this.matches.length;
    const n = this.matches[this.current];
    const row = document.getElementById(`L${n}`);
    if (row) {
      const group = row.dataset.group;
      if (group && row.classList.contains('folded-away')) this.toggle(group, false);
      row.classList.add('current');
      this.sticky = false;
      row.scrollIntoView({ block: 'center' });
      this.onScroll();
    }
    this.countEl.textContent = `${this.current + 1} of ${this.matches.length}`;
    this.el.dataset.current = String(n);
  }

  // A link to #L<n> scrolls to that line once it has arrived (and stops auto-scroll).
  revealTarget() {
    if (!this.target) return;
    const row = document.getElementById(this.target);
    if (!row) return;
    this.target = null;
    row.classList.add('target');
    this.sticky = false;
    row.scrollIntoView({ block: 'center' });
    this.onScroll();
  }

  note(text) {
    const row = document.createElement('div');
    row.className = 'line note';
    row.dataset.n = String(Number.MAX_SAFE_INTEGER);
    const txt = document.createElement('span');
    txt.className = 'txt muted';
    txt.textContent = text;
    row.append(txt);
    this.el.appendChild(row);
  }
}
