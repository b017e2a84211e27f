// A run's log on the page: numbered lines with anchors, stderr marked, ANSI rendered,
// auto-scroll that pauses while the reader looks further up.
import { initialStyle, renderAnsi } from './ansi.js';

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
    container.append(this.el, this.status);
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
  add(n, stream, text, partial = false) {
    if (this.seen.has(n)) {
      this.duplicates += 1;
      this.el.dataset.duplicates = String(this.duplicates);
      return false;
    }
    this.seen.add(n);
    this.pending.push({ n, stream, text, partial });
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

  row({ n, stream, text, partial }) {
    const row = document.createElement('div');
    row.className = `line ${stream}`;
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
