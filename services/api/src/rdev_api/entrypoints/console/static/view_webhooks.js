// A project's webhooks and their deliveries: status, attempts, redeliver.
import * as api from './api.js';
import { badge, failure, formatTime, formValues, h, link, notice, table } from './ui.js';

const pick = (obj, ...names) => names.map((n) => obj[n]).find((v) => v !== undefined && v !== null);

export async function webhooksView(main, projectId) {
  const base = `/projects/${api.enc(projectId)}/webhooks`;
  const list = h('div', { id: 'webhooks' });
  main.append(
    h('h1', {}, 'Webhooks of ', link(`/?project=${api.enc(projectId)}`, projectId)),
    h('section', { className: 'card' }, list),
    addForm(base, () => load(list, base)),
  );
  await load(list, base);
}

async function load(list, base) {
  let hooks;
  try {
    hooks = (await api.get(base)).data;
  } catch (err) {
    failure(list, err, 'Webhooks');
    return;
  }
  if (!hooks.length) {
    list.replaceChildren(h('p', { className: 'muted' }, 'No webhooks registered.'));
    return;
  }
  list.replaceChildren(...hooks.map((hook) => hookSection(base, hook)));
}

function hookSection(base, hook) {
  const deliveries = h('div', { className: 'deliveries' }, h('p', { className: 'muted' }, 'Loading deliveries…'));
  const enabled = pick(hook, 'enabled', 'active');
  const section = h('div', { className: 'webhook', dataset: { webhookId: hook.id } },
    h('h2', {}, h('code', {}, hook.url), ' ', badge(enabled === false ? 'disabled' : 'enabled')),
    h('p', { className: 'muted' }, 'events: ', (hook.events || hook.event_types || ['*']).join(', ')),
    deliveries);
  loadDeliveries(deliveries, `${base}/${api.enc(hook.id)}/deliveries`);
  return section;
}

async function loadDeliveries(el, path) {
  let page;
  try {
    page = await api.get(path);
  } catch (err) {
    failure(el, err, 'Delivery history');
    return;
  }
  if (!page.data.length) {
    el.replaceChildren(h('p', { className: 'muted' }, 'No deliveries yet.'));
    return;
  }
  el.replaceChildren(table(
    [
      ['Event', (d) => pick(d, 'event_type', 'type', 'event') || '—'],
      ['Status', (d) => badge(pick(d, 'status', 'state'))],
      ['Attempts', (d) => { const a = pick(d, 'attempts', 'attempt_count'); return Array.isArray(a) ? a.length : a ?? '—'; }],
      ['Last response', (d) => pick(d, 'last_status_code', 'response_status', 'status_code') ?? '—'],
      ['Created', (d) => formatTime(pick(d, 'created_at', 'time'))],
      ['', (d) => h('button', { type: 'button', className: 'secondary', onclick: (e) => redeliver(e.target, `${path}/${api.enc(d.id)}/redeliver`, el, path) }, 'Redeliver')],
    ],
    page.data,
    { className: 'deliveries-table' },
  ));
}

async function redeliver(button, path, el, listPath) {
  button.disabled = true;
  try {
    await api.post(path);
    notice('Redelivery scheduled.', 'info');
    loadDeliveries(el, listPath);
  } catch (err) {
    notice(err.unavailable ? 'Redelivery is not available on this rdev server.' : err.message);
    button.disabled = false;
  }
}

function addForm(base, reload) {
  const secret = h('div');
  const form = h('form', { className: 'inline', id: 'add-webhook' },
    h('label', {}, 'URL', h('input', { name: 'url', type: 'url', required: true, className: 'wide', placeholder: 'https://ci.example.com/hooks/rdev' })),
    h('label', {}, 'Events', h('input', { name: 'events', value: 'command.*' })),
    h('button', { type: 'submit' }, 'Add webhook'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const values = formValues(form);
    const events = values.events.split(',').map((s) => s.trim()).filter(Boolean);
    try {
      const { data } = await api.post(base, { url: values.url, events });
      secret.replaceChildren(h('p', {}, 'Signing secret (shown once):'), h('pre', { className: 'secret' }, data.secret || '—'));
      reload();
    } catch (err) {
      notice(err.unavailable ? 'Webhooks are not available on this rdev server.' : err.message);
    }
  });
  return h('section', { className: 'card' }, h('h2', {}, 'Add a webhook'), form, secret);
}
