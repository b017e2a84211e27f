// The console: a tiny router over the query string (?project=…, ?command=…, ?view=…),
// leaving the fragment free for #L<n> line links.
import * as api from './api.js';
import { navigate } from './nav.js';
import { h, notice } from './ui.js';
import { projectsView } from './view_projects.js';
import { projectView } from './view_project.js';
import { runView } from './view_run.js';
import { webhooksView } from './view_webhooks.js';
import { auditView } from './view_audit.js';

const main = document.getElementById('main');
let dispose = null;

function route(params) {
  if (params.get('command')) return (el) => runView(el, params.get('command'));
  if (params.get('view') === 'audit') return (el) => auditView(el, params);
  if (params.get('project') && params.get('view') === 'webhooks') return (el) => webhooksView(el, params.get('project'));
  if (params.get('project')) return (el) => projectView(el, params.get('project'), params);
  return (el) => projectsView(el);
}

async function render() {
  if (dispose) dispose();
  dispose = null;
  notice(null);
  const view = route(new URLSearchParams(location.search));
  main.replaceChildren();
  try {
    dispose = (await view(main)) || null;
    document.getElementById('nav').hidden = false;
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 401) loginView();
    else notice(err.message || String(err));
  }
}


function loginView(message) {
  document.getElementById('nav').hidden = true;
  const form = h(
    'form',
    { className: 'inline', id: 'login-form' },
    h('label', {}, 'API key', h('input', { name: 'api_key', type: 'password', className: 'wide', required: true, autocomplete: 'off', placeholder: 'rdev_…' })),
    h('button', { type: 'submit' }, 'Log in'),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api.post('/session', { api_key: form.api_key.value.trim() });
      render();
    } catch (err) {
      notice(err.status === 401 ? 'That API key was not accepted.' : err.message);
    }
  });
  main.replaceChildren(h('section', { className: 'card' }, h('h1', {}, 'Log in to rdev'), form,
    h('p', { className: 'muted' }, 'The key is exchanged for a session cookie; it is not stored by the page.')));
  if (message) notice(message, 'info');
  form.api_key.focus();
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-nav]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', render);
document.getElementById('logout').addEventListener('click', async () => {
  if (dispose) dispose();
  dispose = null;
  try {
    await api.del('/session');
  } finally {
    history.pushState(null, '', '/');
    loginView('Logged out.');
  }
});

render();

// Light or dark: the system's preference until the reader picks one, remembered here.
const THEME_KEY = 'rdev-theme';
const themeButton = document.getElementById('theme');

function currentTheme() {
  const chosen = document.documentElement.dataset.theme;
  if (chosen) return chosen;
  return window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  themeButton.textContent = currentTheme() === 'dark' ? 'Light mode' : 'Dark mode';
}

applyTheme(localStorage.getItem(THEME_KEY));
themeButton.addEventListener('click', () => {
  const next = currentTheme() === 'dark' ? 'light' : 'dark';
  localStorage.setItem(THEME_KEY, next);
  applyTheme(next);
});
