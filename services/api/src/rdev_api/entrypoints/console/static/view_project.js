// One project: run a command, browse its history.
import * as api from './api.js';
import { navigate } from './nav.js';
import { failure, formatDuration, formatTime, formValues, h, link, notice, stateBadge, table } from './ui.js';

const STATUSES = ['', 'queued', 'running', 'succeeded', 'failed', 'timed out', 'cancelled', 'lost'];
const REFRESH_MS = 3000;

export async function projectView(main, projectId, params) {
  const { data: project } = await api.get(`/projects/${api.enc(projectId)}`);
  const history = h('div', { id: 'history' });
  const status = params.get('status') || '';
  main.append(
    h('h1', {}, 'Project ', h('code', {}, project.id)),
    h('p', { className: 'muted' }, 'Workdir ', h('code', {}, project.workdir || '—'), ' · ',
      link(`/?project=${api.enc(project.id)}&view=webhooks`, 'Webhooks and deliveries')),
    runForm(project.id),
    h('section', { className: 'card' }, h('h2', {}, 'History'), statusFilter(project.id, status), history),
  );
  const pager = new HistoryPager(history, project.id, status);
  await pager.load();
  return () => pager.stop();
}

function runForm(projectId) {
  const form = h(
    'form',
    { className: 'inline', id: 'run-form' },
    h('label', {}, 'Command', h('input', { name: 'command', required: true, className: 'wide mono', placeholder: 'make test', autocomplete: 'off' })),
    h('label', {}, 'Priority', h('select', { name: 'priority' },
      h('option', { value: 'high' }, 'high'), h('option', { value: 'normal', selected: true }, 'normal'), h('option', { value: 'low' }, 'low'))),
    h('label', {}, 'Timeout (s)', h('input', { name: 'timeout_s', type: 'number', min: '1', step: 'any', placeholder: 'default' })),
    h('button', { type: 'submit' }, 'Run'),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const values = formValues(form);
    const body = { command: values.command, priority: values.priority };
    if (values.timeout_s) body.timeout_s = Number(values.timeout_s);
    try {
      const { data } = await api.post(`/projects/${api.enc(projectId)}/shell`, body);
      navigate(`/?command=${api.enc(data.id)}`);
    } catch (err) {
      notice(err.message);
    }
  });
  return h('section', { className: 'card' }, h('h2', {}, 'Run a command'), form);
}

function statusFilter(projectId, current) {
  const select = h('select', { name: 'status', id: 'history-status' },
    STATUSES.map((s) => h('option', { value: s, selected: s === current }, s || 'any state')));
  select.addEventListener('change', () => {
    const qs = new URLSearchParams({ project: projectId });
    if (select.value) qs.set('status', select.value);
    navigate(`/?${qs}`);
  });
  return h('div', { className: 'inline' }, h('label', {}, 'State', select));
}

export function commandsTable(rows) {
  return table(
    [
      ['Command', (c) => link(`/?command=${api.enc(c.id)}`, h('code', {}, c.command))],
      ['State', (c) => stateBadge(c)],
      ['Exit', (c) => (c.exit_code ?? '—')],
      ['Duration', (c) => formatDuration(c.duration_ms)],
      ['Priority', (c) => c.priority],
      ['Requested', (c) => formatTime(c.requested_at)],
    ],
    rows,
    { className: 'history' },
  );
}

// Newest first, one cursor page at a time; refreshed while something is queued or running.
class HistoryPager {
  constructor(el, projectId, status) {
    Object.assign(this, { el, projectId, status, rows: [], cursor: null, timer: 0, paged: false, stopped: false });
  }

  async load(more = false) {
    this.paged = more;
    try {
      const page = await api.get(`/projects/${api.enc(this.projectId)}/commands`, {
        status: this.status,
        cursor: more ? this.cursor : null,
      });
      this.rows = more ? this.rows.concat(page.data) : page.data;
      this.cursor = page.next_cursor || null;
      this.draw();
    } catch (err) {
      failure(this.el, err, 'Command history');
      return;
    }
    this.schedule();
  }

  draw() {
    const more = h('button', { type: 'button', className: 'secondary', onclick: () => this.load(true) }, 'Older runs');
    const refresh = h('button', { type: 'button', className: 'secondary', onclick: () => this.load() }, 'Refresh');
    this.el.replaceChildren(
      this.rows.length ? commandsTable(this.rows) : h('p', { className: 'muted' }, 'No runs yet.'),
      h('div', { className: 'pager' }, refresh, this.cursor ? more : null),
    );
  }

  // Only the first page is refreshed, so paging back through history is never disturbed.
  schedule() {
    clearTimeout(this.timer);
    const active = this.rows.some((c) => c.status === 'queued' || c.status === 'running');
    if (active && !this.paged && !this.stopped) this.timer = setTimeout(() => this.load(), REFRESH_MS);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
