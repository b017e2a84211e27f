// Projects: list and create.
import * as api from './api.js';
import { navigate } from './nav.js';
import { formatTime, formValues, h, link, notice, table } from './ui.js';

export async function projectsView(main) {
  const { data } = await api.get('/projects');
  const list = data.length
    ? table(
        [
          ['Project', (p) => link(`/?project=${api.enc(p.id)}`, p.id)],
          ['Workdir', (p) => h('code', {}, p.workdir || '—')],
          ['Created', (p) => formatTime(p.created_at)],
        ],
        data,
        { id: 'projects' },
      )
    : h('p', { className: 'muted', id: 'projects' }, 'No projects yet.');
  main.append(h('h1', {}, 'Projects'), h('section', { className: 'card' }, list), createForm());
}

function createForm() {
  const form = h(
    'form',
    { className: 'inline', id: 'create-project' },
    h('label', {}, 'Id', h('input', { name: 'id', required: true, pattern: '[a-z0-9][a-z0-9\\-]{0,62}', title: 'a-z, 0-9 and -, starting with a letter or digit', placeholder: 'my-project' })),
    h('label', {}, 'Workdir (absolute path on the server)', h('input', { name: 'workdir', required: true, className: 'wide', placeholder: '/srv/checkouts/my-project' })),
    h('button', { type: 'submit' }, 'Create project'),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const values = formValues(form);
    try {
      await api.post('/projects', { id: values.id.trim(), workdir: values.workdir.trim() });
      navigate(`/?project=${api.enc(values.id.trim())}`);
    } catch (err) {
      notice(err.message);
    }
  });
  return h('section', { className: 'card' }, h('h2', {}, 'New project'), form);
}
