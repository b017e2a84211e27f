// Small DOM helpers shared by the views. Values are always set as text, never as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'className') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function link(href, text) {
  return h('a', { href, 'data-nav': true }, text);
}

export function badge(text) {
  const value = text || '—';
  return h('span', { className: `badge ${String(value).toLowerCase()}` }, value);
}

// A run's state in the words and colour every rdev surface uses (API `state`,
// `state_label`; derived for a server that predates them).
export function runState(cmd) {
  if (cmd.state) return cmd.state;
  if (cmd.status !== 'completed') return cmd.status;
  if (cmd.reason === 'exited') return cmd.exit_code === 0 ? 'succeeded' : 'failed';
  if (cmd.reason === 'timeout') return 'timed_out';
  if (cmd.reason === 'cancelled' || cmd.reason === 'lost') return cmd.reason;
  return 'failed';
}

export function stateLabel(cmd) {
  if (cmd.state_label) return cmd.state_label;
  const state = runState(cmd);
  if (state === 'failed') return cmd.reason === 'error' ? 'failed (rdev error)' : `failed (exit ${cmd.exit_code})`;
  return state.replace('_', ' ');
}

export function stateBadge(cmd) {
  const state = runState(cmd);
  return h('span', { className: `badge state ${state}`, dataset: { state } }, stateLabel(cmd));
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  const m = Math.floor(ms / 60000);
  return `${m} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function formatTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

// A table: columns are [heading, row → cell content].
export function table(columns, rows, attrs = {}) {
  const head = h('tr', {}, columns.map(([title]) => h('th', {}, title)));
  const body = rows.map((row) => h('tr', {}, columns.map(([, cell]) => h('td', {}, cell(row)))));
  return h('table', attrs, h('thead', {}, head), h('tbody', {}, body));
}

let noticeTimer = 0;

export function notice(message, kind = 'error') {
  const el = document.getElementById('notice');
  clearTimeout(noticeTimer);
  if (!message) {
    el.hidden = true;
    return;
  }
  el.textContent = message;
  el.className = kind;
  el.hidden = false;
  if (kind === 'info') noticeTimer = setTimeout(() => (el.hidden = true), 4000);
}

// What a view shows where an endpoint this server lacks would have been.
export function unavailable(what) {
  return h('p', { className: 'unavailable' }, `${what} is not available on this rdev server.`);
}

// Render an API failure inside `container`, or rethrow authentication failures to the app.
export function failure(container, err, what) {
  if (err.status === 401) throw err;
  container.replaceChildren(err.unavailable ? unavailable(what) : h('p', { className: 'error' }, err.message));
}

export function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}
