// The dashboard shell: login gate, sidebar, and hash routes (`#/logs`) to page modules.
// Each page module exports `render(main, params)`, which may return a cleanup function (live
// tails and timers stop when the page is left).

import { get, post } from './api.js';
import { h, mount, toast, field, input } from './dom.js';

const PAGES = [
  ['overview', 'Overview', () => import('./pages/overview.js')],
  ['providers', 'Providers', () => import('./pages/providers.js')],
  ['virtual-keys', 'Virtual keys', () => import('./pages/virtual-keys.js')],
  ['teams', 'Teams & customers', () => import('./pages/teams.js')],
  ['budgets', 'Budgets & limits', () => import('./pages/budgets.js')],
  ['routing', 'Routing rules', () => import('./pages/routing.js')],
  ['logs', 'Logs', () => import('./pages/logs.js')],
  ['settings', 'Settings', () => import('./pages/settings.js')],
];

let cleanup = null;
let authEnabled = false;
/** Counts navigations: a page that finishes rendering after a newer one started is stopped. */
let generation = 0;

function currentRoute() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  const known = PAGES.find(([id]) => id === name);
  return { page: known ? name : 'overview', params: rest.map(decodeURIComponent) };
}

async function show() {
  generation += 1;
  const mine = generation;
  const { page, params } = currentRoute();
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.page === page) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  stopPage();
  const main = document.getElementById('main');
  mount(main, h('div', { class: 'loading' }, 'Loading…'));
  const [, label, load] = PAGES.find(([id]) => id === page);
  document.title = `${label} · asbru`;
  try {
    const module = await load();
    const result = await module.render(main, params);
    if (typeof result === 'function') {
      if (mine === generation) cleanup = result;
      else result();
    }
  } catch (error) {
    if (error?.status === 401) return;
    mount(main, h('div', { class: 'page-error', role: 'alert' },
      h('h1', {}, label),
      h('p', {}, error?.message || String(error))));
  }
}

function buildNav() {
  mount(document.getElementById('nav'),
    PAGES.map(([id, label]) => h('li', {}, h('a', { href: `#/${id}`, dataset: { page: id } }, label))));
}

function stopPage() {
  if (cleanup) {
    try { cleanup(); } catch { /* a page's cleanup never blocks navigation */ }
    cleanup = null;
  }
}

function showLogin(message) {
  // The page behind stops its timers and live tails: they would only get 401s.
  stopPage();
  const slot = document.querySelector('#login-root .form-error-slot');
  if (slot && document.getElementById('shell').hidden) {
    // Already showing: keep what the user typed, only update the message.
    if (message) { slot.textContent = message; slot.hidden = false; }
    return;
  }
  document.getElementById('shell').hidden = true;
  // Nothing of the page behind stays in the document while signed out.
  generation += 1;
  mount(document.getElementById('main'));
  const user = input('username', '', { autocomplete: 'username', required: true });
  const pass = input('password', '', { type: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { class: 'form-error-slot', role: 'alert', hidden: !message }, message || '');
  const submit = h('button', { type: 'submit', class: 'primary wide' }, 'Sign in');
  const form = h('form', { class: 'login-card', 'aria-labelledby': 'login-title' },
    h('div', { class: 'brand' }, h('img', { src: '/ui/favicon.svg', alt: '', width: 36, height: 36 }), h('span', {}, 'asbru')),
    h('h1', { id: 'login-title' }, 'Sign in to the dashboard'),
    field('Username', user),
    field('Password', pass),
    error,
    submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      await post('/session/login', { username: user.value, password: pass.value });
      mount(document.getElementById('login-root'));
      await start();
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
      pass.select();
    } finally {
      submit.disabled = false;
    }
  });
  mount(document.getElementById('login-root'), h('div', { class: 'login' }, form));
  user.focus();
}

async function start() {
  let session;
  try {
    session = await get('/session/is-auth-enabled');
  } catch (e) {
    session = { is_auth_enabled: false };
    toast(e.message, 'error');
  }
  authEnabled = Boolean(session.is_auth_enabled);
  if (authEnabled && !session.has_valid_token) {
    showLogin();
    return;
  }
  document.getElementById('logout').hidden = !authEnabled;
  document.getElementById('shell').hidden = false;
  get('/version').then((v) => { document.getElementById('version').textContent = `v${v.version}`; }, () => {});
  await show();
}

window.addEventListener('hashchange', show);
window.addEventListener('asbru:unauthorized', () => {
  if (authEnabled) showLogin('Your session has ended. Sign in again.');
});
// Settings turned authentication on or off.
window.addEventListener('asbru:auth-changed', (event) => {
  authEnabled = Boolean(event.detail?.enabled);
  document.getElementById('logout').hidden = !authEnabled;
  if (authEnabled) showLogin('Authentication is on: sign in with the new credentials.');
});
document.getElementById('logout').addEventListener('click', async () => {
  try {
    await post('/session/logout');
  } finally {
    showLogin('Signed out.');
  }
});
buildNav();
start();
