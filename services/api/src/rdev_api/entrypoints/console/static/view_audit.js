// The audit log, filtered, one cursor page at a time.
import * as api from './api.js';
import { navigate } from './nav.js';
import { badge, failure, formatTime, formValues, h, link, table } from './ui.js';

const FILTERS = [
  ['actor', 'Actor (key id)'],
  ['project', 'Project'],
  ['action', 'Action'],
  ['outcome', 'Outcome'],
  ['since', 'Since'],
  ['until', 'Until'],
];
const pick = (obj, ...names) => names.map((n) => obj[n]).find((v) => v !== undefined && v !== null);

export async function auditView(main, params) {
  const rows = h('div', { id: 'audit' });
  main.append(h('h1', {}, 'Audit log'), filterForm(params), h('section', { className: 'card' }, rows));
  const query = Object.fromEntries(FILTERS.map(([name]) => [name, params.get(name) || '']));
  await loadPage(rows, query, null, []);
}

function filterForm(params) {
  const form = h('form', { className: 'inline', id: 'audit-filters' },
    FILTERS.map(([name, label]) => h('label', {}, label, filterInput(name, params.get(name) || ''))),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const qs = new URLSearchParams({ view: 'audit' });
    for (const [k, v] of Object.entries(formValues(form))) if (v) qs.set(k, v);
    navigate(`/?${qs}`);
  });
  return h('section', { className: 'card' }, form);
}

function filterInput(name, value) {
  if (name === 'outcome') {
    return h('select', { name }, ['', 'success', 'failure'].map((v) => h('option', { value: v, selected: v === value }, v || 'any')));
  }
  const type = name === 'since' || name === 'until' ? 'datetime-local' : 'text';
  return h('input', { name, value, type });
}

function toIso(value) {
  if (!value) return value;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString();
}

async function loadPage(el, query, cursor, shown) {
  let page;
  try {
    page = await api.get('/audit', { ...query, since: toIso(query.since), until: toIso(query.until), cursor });
  } catch (err) {
    failure(el, err, 'The audit log');
    return;
  }
  const all = shown.concat(page.data);
  const more = page.next_cursor
    ? h('button', { type: 'button', className: 'secondary', onclick: () => loadPage(el, query, page.next_cursor, all) }, 'More')
    : null;
  el.replaceChildren(
    all.length ? auditTable(all) : h('p', { className: 'muted' }, 'No audit entries match.'),
    h('div', { className: 'pager' }, more),
  );
}

// A command's entries link to its run.
function target(row) {
  const value = pick(row, 'target', 'subject');
  if (!value) return '—';
  const code = h('code', {}, value);
  return String(row.action || '').startsWith('command.') ? link(`/?command=${encodeURIComponent(value)}`, code) : code;
}

function auditTable(rows) {
  const actor = (r) => pick(r, 'actor_name', 'actor', 'actor_id') ?? '—';
  return table(
    [
      ['Time', (r) => formatTime(pick(r, 'time', 'occurred_at', 'created_at'))],
      ['Actor', actor],
      ['Client IP', (r) => pick(r, 'client_ip', 'ip') ?? '—'],
      ['Project', (r) => r.project ?? '—'],
      ['Action', (r) => h('code', {}, r.action ?? '—')],
      ['Target', target],
      ['Outcome', (r) => badge(r.outcome)],
    ],
    rows,
    { className: 'audit-table' },
  );
}
