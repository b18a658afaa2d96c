// Budgets & limits: every budget and rate limit, where it is attached, its live usage, and
// "create and attach" for virtual keys, teams and customers.

import { get, put, seg, allVirtualKeys } from '../api.js';
import { h, mount, pageHeader, table, field, input, select, formDialog, toast, button, idle } from '../dom.js';
import { money, count, resetWords } from '../format.js';
import { usageBar, badge, storedShape } from '../widgets.js';

/** The usage entry of budget `b` (position `i`) in a scope from the API. */
function budgetUsage(scope, b, i) {
  if (!scope) return null;
  if (b.id) return scope.budgets.find((u) => u.name.includes(`'${b.id}'`)) || null;
  return scope.budgets[i] || null;
}

export async function render(main) {
  await draw(main);
  // Usage moves: redraw every 10 s while the page is idle.
  const live = setInterval(() => { if (idle(main)) draw(main).catch(() => {}); }, 10000);
  return () => clearInterval(live);
}

async function draw(main) {
  const [keys, teams, customers, providers, models, sharedBudgets, sharedRates] = await Promise.all([
    allVirtualKeys({ fromMemory: true }),
    get('/governance/teams').then((r) => r.teams || []),
    get('/governance/customers').then((r) => r.customers || []),
    get('/governance/providers').then((r) => r.providers || []).catch(() => []),
    get('/governance/model-configs').then((r) => r.model_configs || []).catch(() => []),
    // Budgets and rate limits declared once and named by id (`budget_id`, `rate_limit_id`).
    get('/governance/budgets').then((r) => r.budgets || []).catch(() => []),
    get('/governance/rate-limits').then((r) => r.rate_limits || []).catch(() => []),
  ]);
  const scopes = keys.flatMap((k) => (k.usage?.scopes || []).map((s) => ({ ...s, vk: k })));
  const scopeOf = (level, id) => scopes.find((s) => s.level === level && (level === 'virtual_key' ? s.vk.id === id : s.label.includes(`'${id}'`)));

  const providerScope = (k, provider) => scopes.find((s) => s.level === 'provider_config' && s.vk.id === k.id && s.label.includes(`'${provider}'`));
  const owners = [
    ...keys.map((k) => ({ kind: 'Virtual key', path: `/governance/virtual-keys/${seg(k.id)}`, entity: k, name: k.name, scope: scopeOf('virtual_key', k.id), link: `#/virtual-keys/${seg(k.id)}` })),
    // A key's provider configs have budgets and limits of their own; they are edited with the key.
    ...keys.flatMap((k) => (k.provider_configs || []).map((pc) => ({
      kind: 'Provider config', entity: pc, name: `${k.name} › ${pc.provider}`, scope: providerScope(k, pc.provider), link: `#/virtual-keys/${seg(k.id)}`,
    }))),
    ...teams.map((t) => ({ kind: 'Team', path: `/governance/teams/${seg(t.id)}`, entity: t, name: t.name, scope: scopeOf('team', t.id), link: '#/teams' })),
    ...customers.map((c) => ({ kind: 'Customer', path: `/governance/customers/${seg(c.id)}`, entity: c, name: c.name, scope: scopeOf('customer', c.id), link: '#/teams' })),
    ...providers.map((p) => ({ kind: 'Provider', entity: p, name: p.name, scope: null })),
    ...models.map((m) => ({ kind: 'Model', entity: m, name: m.model_name, scope: null })),
  ];
  const named = (id) => (s) => (s || '').includes(`'${id}'`);
  const sharedBudgetUsage = (id) => scopes.flatMap((s) => s.budgets || []).find((u) => named(id)(u.name)) || null;
  const sharedRateUsage = (id) => scopes.map((s) => s.rate_limit).find((r) => r && named(id)(r.name)) || null;
  const budgetRows = [
    ...owners.flatMap((o) => (o.entity.budgets || []).map((b, i) => ({ owners: [o], b, usage: budgetUsage(o.scope, b, i) }))),
    ...sharedBudgets.map((b) => ({ owners: owners.filter((o) => o.entity.budget_id === b.id), b, usage: sharedBudgetUsage(b.id), shared: true })),
  ];
  const rateRows = [
    ...owners.filter((o) => o.entity.rate_limit).map((o) => ({ owners: [o], r: o.entity.rate_limit, usage: o.scope?.rate_limit })),
    ...sharedRates.map((r) => ({ owners: owners.filter((o) => o.entity.rate_limit_id === r.id), r, usage: sharedRateUsage(r.id), shared: true })),
  ];
  const refresh = () => draw(main);
  const attachable = owners.filter((o) => o.path);

  const attachedTo = ({ owners: list, shared }) => (list.length
    ? h('ul', { class: 'inline-list' }, list.map((o) => h('li', {},
      badge(o.kind, 'grey'), ' ', o.link ? h('a', { href: o.link }, o.name) : o.name)))
    : h('span', { class: 'muted' }, shared ? 'declared, not attached' : '–'));
  mount(main,
    pageHeader('Budgets & limits', 'Spend caps and rate limits, where they apply, and how much of each is used.',
      button('Create rate limit', () => createRateLimit(attachable, refresh), ''),
      button('Create budget', () => createBudget(attachable, refresh), 'primary')),
    h('section', { class: 'card' }, h('h2', {}, 'Budgets'),
      table([
        ['Budget', ({ b, shared }) => h('div', {}, h('strong', {}, b.id || 'unnamed'), shared ? [' ', badge('shared', 'amber')] : null)],
        ['Attached to', attachedTo],
        ['Limit', ({ b }) => `${money(b.max_limit)} ${resetWords(b.reset_duration)}`],
        ['Usage', ({ b, usage }) => (usage
          ? usageBar(usage.current_usage, usage.max_limit, { resetsAt: usage.resets_at })
          : usageBar(b.current_usage || 0, b.max_limit, {}))],
      ], budgetRows, 'No budget yet. Create one and attach it to a virtual key, a team or a customer.')),
    h('section', { class: 'card' }, h('h2', {}, 'Rate limits'),
      table([
        ['Rate limit', ({ r, shared }) => (shared ? h('div', {}, h('strong', {}, r.id), ' ', badge('shared', 'amber')) : h('span', { class: 'muted' }, 'own'))],
        ['Attached to', attachedTo],
        ['Limit', ({ r }) => [
          r.token_max_limit ? `${count(r.token_max_limit)} tokens ${resetWords(r.token_reset_duration)}` : null,
          r.request_max_limit ? `${count(r.request_max_limit)} requests ${resetWords(r.request_reset_duration)}` : null,
        ].filter(Boolean).join(' · ')],
        ['Usage', ({ r, usage }) => h('div', { class: 'usage-cell' },
          r.token_max_limit ? usageBar(usage?.tokens?.current_usage || 0, r.token_max_limit, { kind: 'tokens', resetsAt: usage?.tokens?.resets_at }) : null,
          r.request_max_limit ? usageBar(usage?.requests?.current_usage || 0, r.request_max_limit, { kind: 'requests', resetsAt: usage?.requests?.resets_at }) : null)],
      ], rateRows, 'No rate limit yet.')));
}

function ownerSelect(owners) {
  const groups = ['Virtual key', 'Team', 'Customer'].map((kind) => h('optgroup', { label: `${kind}s` },
    owners.filter((o) => o.kind === kind).map((o) => h('option', { value: `${o.kind}|${o.entity.id}` }, o.name))));
  return h('select', { name: 'attach_to', required: true }, groups);
}

function pick(owners, sel) {
  const [kind, id] = sel.value.split('|');
  return owners.find((o) => o.kind === kind && o.entity.id === id);
}

async function createBudget(owners, refresh) {
  if (!owners.length) {
    toast('Create a virtual key, a team or a customer first: a budget is attached to one.', 'error');
    return;
  }
  const name = input('budget_name', '', { placeholder: 'e.g. workshop-vk-budget', pattern: '[A-Za-z0-9._:-]+' });
  const limit = input('max_limit', '', { type: 'number', min: '0', step: 'any', required: true, placeholder: '0.50' });
  const reset = input('reset_duration', '1h', { list: 'durations-budget', required: true });
  const attach = ownerSelect(owners);
  await formDialog({
    title: 'Create budget',
    body: [
      h('datalist', { id: 'durations-budget' }, ['1h', '1d', '7d', '1M'].map((d) => h('option', { value: d }, resetWords(d)))),
      field('Name', name, 'Letters, digits and . _ : -', 'budget_name name id'),
      h('div', { class: 'grid-2' },
        field('Limit (USD)', limit, null, 'max_limit limit'),
        field('Resets every', reset, '1h, 1d, 7d, 1M…', 'reset_duration')),
      field('Attach to', attach, null, 'attach_to'),
    ],
    submitLabel: 'Save',
    onSubmit: async () => {
      if (limit.value === '' || Number(limit.value) < 0) {
        throw Object.assign(new Error('max_limit: enter a limit in USD'), { field: 'max_limit limit' });
      }
      const owner = pick(owners, attach);
      const budget = { max_limit: Number(limit.value), reset_duration: reset.value.trim() };
      if (name.value.trim()) budget.id = name.value.trim();
      const body = storedShape(owner.entity);
      body.budgets = [...(body.budgets || []), budget];
      await put(owner.path, body);
      toast(`Budget attached to ${owner.name}`);
      refresh();
    },
  });
}

async function createRateLimit(owners, refresh) {
  if (!owners.length) {
    toast('Create a virtual key, a team or a customer first: a rate limit is attached to one.', 'error');
    return;
  }
  const tokens = input('token_max_limit', '', { type: 'number', min: '1', placeholder: 'no limit' });
  const tokenReset = input('token_reset_duration', '1m');
  const requests = input('request_max_limit', '', { type: 'number', min: '1', placeholder: 'no limit' });
  const requestReset = input('request_reset_duration', '1m');
  const attach = ownerSelect(owners);
  await formDialog({
    title: 'Create rate limit',
    body: [
      h('div', { class: 'grid-2' },
        field('Tokens', tokens, null, 'token_max_limit'),
        field('per', tokenReset, null, 'token_reset_duration'),
        field('Requests', requests, null, 'request_max_limit'),
        field('per', requestReset, null, 'request_reset_duration')),
      field('Attach to', attach, 'Replaces the rate limit it has, if any.', 'attach_to'),
    ],
    onSubmit: async () => {
      if (!tokens.value && !requests.value) {
        throw Object.assign(new Error('Set a token limit, a request limit, or both.'), { field: 'token_max_limit' });
      }
      for (const [el, name] of [[tokens, 'token_max_limit'], [requests, 'request_max_limit']]) {
        if (el.value && !(Number.isInteger(Number(el.value)) && Number(el.value) > 0)) {
          throw Object.assign(new Error('rate limits are whole numbers greater than 0'), { field: name });
        }
      }
      const owner = pick(owners, attach);
      const rate = {};
      if (tokens.value) Object.assign(rate, { token_max_limit: Number(tokens.value), token_reset_duration: tokenReset.value.trim() });
      if (requests.value) Object.assign(rate, { request_max_limit: Number(requests.value), request_reset_duration: requestReset.value.trim() });
      await put(owner.path, { ...storedShape(owner.entity), rate_limit: rate });
      toast(`Rate limit attached to ${owner.name}`);
      refresh();
    },
  });
}
