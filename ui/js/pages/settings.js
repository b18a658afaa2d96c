// Settings: the client config, admin authentication, and whether the config store and the log
// store are connected.

import { get, put } from '../api.js';
import { h, mount, pageHeader, field, input, checkbox, toast, showErrors, clearErrors } from '../dom.js';
import { badge, listValue } from '../widgets.js';

/** The client settings the page edits: [name, label, type, hint, default when unset]. */
const CLIENT_FIELDS = [
  ['max_request_body_size_mb', 'Largest request body (MB)', 'number', 'Bigger bodies get 413.'],
  ['default_max_output_tokens', 'Default max output tokens', 'number', 'Reserved against budgets when a request sets no limit.'],
  ['max_fallbacks', 'Most fallbacks per request', 'number', null],
  ['log_retention_days', 'Keep request logs (days)', 'number', null],
  ['allowed_origins', 'Allowed CORS origins', 'list', 'Comma-separated, e.g. https://app.example.com'],
  ['prometheus_labels', 'Extra Prometheus labels', 'list', 'Header names copied into metric labels; read at start.'],
  ['enforce_auth_on_inference', 'Require a virtual key on inference routes', 'bool', null],
  ['enable_logging', 'Record requests in the log store', 'bool', null, true],
  ['disable_content_logging', 'Do not store prompts and replies', 'bool', null],
  ['allow_direct_keys', 'Let clients send their own provider keys', 'bool', null],
  ['drop_excess_requests', 'Drop requests beyond the queue instead of waiting', 'bool', null],
];

export async function render(main) {
  const config = await get('/config');
  const client = config.client_config || {};
  const controls = {};
  const clientForm = h('form', { class: 'card settings', novalidate: true, 'aria-labelledby': 'client-title' },
    h('h2', { id: 'client-title' }, 'Client'),
    h('div', { class: 'grid-2' }, CLIENT_FIELDS.filter(([, , type]) => type !== 'bool').map(([name, label, type, hint]) => {
      const value = type === 'list' ? (client[name] || []).join(', ') : client[name] ?? '';
      controls[name] = input(name, value, type === 'number' ? { type: 'number', min: '0', placeholder: 'default' } : { placeholder: 'none' });
      return field(label, controls[name], hint, name);
    })),
    CLIENT_FIELDS.filter(([, , type]) => type === 'bool').map(([name, label, , , unset = false]) => {
      const box = checkbox(name, label, client[name] ?? unset);
      controls[name] = box.querySelector('input');
      return box;
    }),
    h('div', { class: 'form-actions' }, h('p', { class: 'form-error-slot', role: 'alert', hidden: true }),
      h('button', { type: 'submit', class: 'primary' }, 'Save client settings')));
  clientForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(clientForm);
    // Only what changed is sent, so an untouched default stays a default.
    const update = {};
    for (const [name, , type, , unset = false] of CLIENT_FIELDS) {
      const el = controls[name];
      if (type === 'number' && el.value !== '' && !(Number.isInteger(Number(el.value)) && Number(el.value) >= 0)) {
        showErrors(clientForm, { message: `${name}: enter a whole number, 0 or more`, field: name });
        return;
      }
      let value;
      if (type === 'bool') value = el.checked;
      else if (type === 'number') value = el.value === '' ? null : Number(el.value);
      else value = listValue(el.value);
      const before = type === 'bool' ? (client[name] ?? unset) : (client[name] ?? null);
      if (JSON.stringify(value) !== JSON.stringify(before)) update[name] = value;
    }
    if (!Object.keys(update).length) {
      toast('Nothing changed');
      return;
    }
    try {
      const reply = await put('/config', { client_config: update });
      toast(reply.restart_required ? 'Saved. Some settings apply at the next start.' : 'Client settings saved');
      Object.assign(client, update);
    } catch (e) {
      showErrors(clientForm, e);
    }
  });

  const auth = config.auth_config || {};
  const enabled = checkbox('is_enabled', 'Require a login for the dashboard and the management API', auth.is_enabled);
  const user = input('admin_username', '', { autocomplete: 'username', placeholder: auth.is_enabled ? 'unchanged' : 'admin' });
  const pass = input('admin_password', '', { type: 'password', autocomplete: 'new-password', placeholder: auth.is_enabled ? 'unchanged' : '' });
  const inference = checkbox('disable_auth_on_inference', 'Do not ask inference requests for these credentials', auth.disable_auth_on_inference);
  const authForm = h('form', { class: 'card settings', novalidate: true, 'aria-labelledby': 'auth-title' },
    h('h2', { id: 'auth-title' }, 'Admin authentication'),
    enabled,
    h('div', { class: 'grid-2' }, field('Username', user, null, 'admin_username username'), field('Password', pass, 'Stored as an Argon2id hash.', 'admin_password password')),
    inference,
    h('div', { class: 'form-actions' }, h('p', { class: 'form-error-slot', role: 'alert', hidden: true }),
      h('button', { type: 'submit', class: 'primary' }, 'Save authentication')));
  authForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(authForm);
    const on = enabled.querySelector('input').checked;
    if (on && !auth.is_enabled && (!user.value.trim() || !pass.value)) {
      showErrors(authForm, { message: 'admin_username and admin_password are needed to turn authentication on', field: 'admin_username username' });
      return;
    }
    const body = { is_enabled: on, disable_auth_on_inference: inference.querySelector('input').checked };
    if (user.value.trim()) body.admin_username = user.value.trim();
    if (pass.value) body.admin_password = pass.value;
    try {
      await put('/config', { auth_config: body });
      toast('Authentication saved');
      if (on !== Boolean(auth.is_enabled)) {
        window.dispatchEvent(new CustomEvent('asbru:auth-changed', { detail: { enabled: on } }));
      }
      if (!on || auth.is_enabled) render(main).catch((e) => toast(e.message, 'error'));
    } catch (e) {
      showErrors(authForm, e);
    }
  });

  const status = (ok, yes, no) => (ok ? badge(yes, 'green') : badge(no, 'red'));
  mount(main,
    pageHeader('Settings', 'How the gateway treats clients, who may manage it, and what it is connected to.'),
    h('section', { class: 'card settings' }, h('h2', {}, 'Connections'),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Config store'), h('dd', { dataset: { status: 'config-store' } }, status(config.is_db_connected, 'connected', 'not connected')),
        h('dt', {}, 'Log store'), h('dd', { dataset: { status: 'log-store' } }, status(config.is_logs_connected, 'connected', 'not connected')),
        h('dt', {}, 'Restart needed'), h('dd', {}, config.restart_required ? badge('yes', 'amber') : 'no'))),
    clientForm,
    authForm);
}
