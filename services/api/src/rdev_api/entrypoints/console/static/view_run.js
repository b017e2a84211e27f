// One run: its log live (or replayed whole, for a past run), exit code, duration, cancel, download.
import * as api from './api.js';
import { LogView } from './logview.js';
import { RunStream } from './stream.js';
import { navigate } from './nav.js';
import { formatDuration, formatTime, h, link, notice, runState, stateBadge } from './ui.js';

const START_POLL_MS = 1000;

export async function runView(main, commandId) {
  const { data: cmd } = await api.get(`/commands/${api.enc(commandId)}`);
  const parts = {
    status: h('span', { id: 'run-status', dataset: { status: runState(cmd) } }, stateBadge(cmd)),
    queue: h('div', { id: 'queue-note', className: 'queue-note', hidden: true }),
    exit: h('span', { id: 'exit-code' }, '—'),
    duration: h('span', { id: 'duration' }, '—'),
    connection: h('span', { id: 'connection', className: 'connection muted' }, 'connecting…'),
    lines: h('span', { id: 'line-count', className: 'muted' }, '0 lines'),
  };
  const cancel = h('button', { type: 'button', id: 'cancel', className: 'danger', onclick: () => cancelRun(cmd, cancel) }, 'Cancel');
  const download = h('button', { type: 'button', id: 'download', className: 'secondary', onclick: () => downloadLog(cmd) }, 'Download log');
  const again = h('button', { type: 'button', id: 'rerun', className: 'secondary', onclick: () => runAgain(cmd, again) }, 'Run again');
  main.append(
    h('h1', {}, 'Run ', h('code', { className: 'muted' }, cmd.id)),
    h('div', { className: 'run-head' },
      h('span', { className: 'cmd', id: 'run-command' }, cmd.command),
      h('span', {}, 'project ', link(`/?project=${api.enc(cmd.project)}`, cmd.project)),
      h('span', {}, 'priority ', cmd.priority),
      h('span', {}, 'requested ', formatTime(cmd.requested_at))),
    h('div', { className: 'run-head' },
      h('span', {}, 'status ', parts.status), h('span', {}, 'exit code ', parts.exit),
      h('span', {}, 'duration ', parts.duration), parts.lines, parts.connection, cancel, again, download),
    parts.queue,
  );
  const log = new LogView(main);
  const stream = new RunStream(cmd.project, cmd.id, { ...handlers(parts, log, cancel), probe: () => probe(cmd.id) });
  if (cmd.status === 'completed') {
    cancel.disabled = true;
    parts.exit.textContent = String(cmd.exit_code);
    parts.duration.textContent = formatDuration(cmd.duration_ms);
  } else if (cmd.status === 'queued') {
    showQueue(parts, null);
  }
  stream.open();
  const watch = watchStart(cmd, parts);
  const clock = setInterval(() => tick(cmd, parts), 1000);
  tick(cmd, parts);
  return () => {
    stream.finish();
    clearInterval(watch);
    clearInterval(clock);
  };
}

// A run's stream carries no `started` event, and a quiet command prints nothing:
// ask for its state until it leaves the queue (its start time drives the elapsed clock).
function watchStart(cmd, parts) {
  const timer = setInterval(async () => {
    if (parts.status.dataset.status !== 'queued') {
      clearInterval(timer);
      return;
    }
    try {
      const { data } = await api.get(`/commands/${api.enc(cmd.id)}`);
      if (data.status === 'running' && parts.status.dataset.status === 'queued') {
        cmd.started_at = data.started_at;
        setStatus(parts, data);
      }
    } catch {
      // the stream's own reconnect reports connection trouble
    }
  }, START_POLL_MS);
  return timer;
}

// While the run runs, the duration is the time since it started, counting.
function tick(cmd, parts) {
  if (parts.status.dataset.status !== 'running' || !cmd.started_at) return;
  const ms = Math.max(0, Date.now() - new Date(cmd.started_at).getTime());
  parts.duration.textContent = `${formatDuration(Math.floor(ms / 1000) * 1000)} so far`;
  parts.duration.dataset.elapsed = String(ms);
}

function showQueue(parts, data) {
  let text = 'queued — waiting for an executor';
  if (data) {
    const about = data.estimate_s ? ` (about ${formatDuration(Math.round(data.estimate_s * 1000))})` : '';
    text = `queued — position ${data.position}, ${data.waiting_for}${about}`;
    parts.queue.dataset.position = String(data.position);
  }
  parts.queue.textContent = text;
  parts.queue.hidden = false;
}

// After a refused stream: is it worth reconnecting? A lost session sends the reader to log in.
async function probe(commandId) {
  try {
    await api.get(`/commands/${api.enc(commandId)}`);
    return 'retry';
  } catch (err) {
    if (err.status === 401) {
      notice('Your session has ended: log in again.');
      window.dispatchEvent(new PopStateEvent('popstate'));
      return 'stop';
    }
    if (err.status === 404 || err.status === 403) {
      notice(err.message);
      return 'stop';
    }
    return 'retry';
  }
}

function setStatus(parts, cmd) {
  parts.status.dataset.status = runState(cmd);
  parts.status.replaceChildren(stateBadge(cmd));
  if (cmd.status !== 'queued') parts.queue.hidden = true;
}

function handlers(parts, log, cancel) {
  let counted = 0;
  const countLines = () => {
    if (counted !== log.count) parts.lines.textContent = `${(counted = log.count)} lines`;
  };
  return {
    connection(state) {
      parts.connection.textContent = state === 'live' ? 'live' : 'connection lost, reconnecting…';
      parts.connection.className = `connection ${state === 'live' ? 'muted' : 'down'}`;
    },
    connected(data) {
      const current = parts.status.dataset.status;
      if (data.status && (current === 'queued' || current === 'running')) setStatus(parts, { status: data.status });
    },
    queued(data) {
      if (parts.status.dataset.status === 'queued') showQueue(parts, data);
    },
    output(data) {
      if (parts.status.dataset.status === 'queued') setStatus(parts, { status: 'running' });
      log.add(data.n, data.stream, data.line, data.partial, data.cr);
      countLines();
    },
    failure(data) {
      notice(`The run failed: ${data.message}`);
    },
    complete(data) {
      setStatus(parts, { status: 'completed', ...data });
      parts.status.dataset.reason = data.reason;
      parts.exit.textContent = String(data.exit_code);
      parts.exit.dataset.exitCode = String(data.exit_code);
      parts.duration.textContent = formatDuration(data.duration_ms);
      delete parts.duration.dataset.elapsed;
      parts.connection.textContent = data.truncated ? 'finished (output was truncated)' : 'finished';
      parts.connection.className = 'connection muted';
      cancel.disabled = true;
      requestAnimationFrame(countLines);
    },
  };
}

async function cancelRun(cmd, button) {
  button.disabled = true;
  try {
    await api.post(`/commands/${api.enc(cmd.id)}/cancel`);
    notice('Cancel requested.', 'info');
  } catch (err) {
    notice(err.message);
    button.disabled = err.status === 409;
  }
}

async function runAgain(cmd, button) {
  button.disabled = true;
  try {
    const { data } = await api.post(`/commands/${api.enc(cmd.id)}/rerun`);
    navigate(`/?command=${api.enc(data.id)}`);
  } catch (err) {
    notice(err.unavailable ? 'Running again is not available on this rdev server.' : err.message);
    button.disabled = false;
  }
}

async function downloadLog(cmd) {
  try {
    const body = await api.blob(`/commands/${api.enc(cmd.id)}/output`);
    const url = URL.createObjectURL(body);
    const a = h('a', { href: url, download: `rdev-${cmd.id}.log` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    notice(err.unavailable ? 'Downloading logs is not available on this rdev server.' : err.message);
  }
}
