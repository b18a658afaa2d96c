// Virtual keys: search and filter, create (the value is shown once), edit, rotate,
// deactivate, delete; provider configs with weights, allowed models and key pins; budgets and
// a rate limit, each with a live usage bar from the gateway's memory.

import { get, post, put, del, query, seg } from '../api.js';
import {
  h, mount, pageHeader, table, field, input, select, checkbox, formDialog, confirmDialog, secretDialog, toast, button,
  idle,
} from '../dom.js';
import { budgetsEditor, rateLimitEditor, scopeBars, limitsSummary, badge, listValue, storedShape } from '../widgets.js';

const PAGE = 25;

export async function render(main, [focus] = []) {
  // A link to one key (`#/virtual-keys/<id>`) searches for it, wherever it sorts.
  const state = { search: focus || '', team_id: '', customer_id: '', offset: 0 };
  const [teams, customers, providers] = await Promise.all([
    get('/governance/teams').then((r) => r.teams || []),
    get('/governance/customers').then((r) => r.customers || []),
    get('/providers').then((r) => r.providers || []),
  ]);
  const ctx = { teams, customers, providers };
  const listBox = h('div', { class: 'vk-list' });
  const search = input('search', focus || '', { type: 'search', placeholder: 'Search by name or id', 'aria-label': 'Search virtual keys' });
  const team = select('team_id', [['', 'All teams'], ...teams.map((t) => [t.id, t.name])], '', { 'aria-label': 'Filter by team' });
  const customer = select('customer_id', [['', 'All customers'], ...customers.map((c) => [c.id, c.name])], '', { 'aria-label': 'Filter by customer' });
  const load = async () => {
    const reply = await get(`/governance/virtual-keys${query({
      from_memory: 'true', limit: PAGE, offset: state.offset, search: state.search, team_id: state.team_id, customer_id: state.customer_id,
    })}`);
    mount(listBox, vkTable(reply, ctx, load, state), pager(reply, state, load));
    if (focus) {
      const row = listBox.querySelector(`[data-vk="${CSS.escape(focus)}"]`);
      if (row) { row.closest('tr').classList.add('focus'); row.scrollIntoView({ block: 'center' }); }
      focus = null;
    }
  };
  let timer = null;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.search = search.value.trim(); state.offset = 0; load().catch((e) => toast(e.message, 'error')); }, 250);
  });
  for (const [el, key] of [[team, 'team_id'], [customer, 'customer_id']]) {
    el.addEventListener('change', () => { state[key] = el.value; state.offset = 0; load().catch((e) => toast(e.message, 'error')); });
  }
  mount(main,
    pageHeader('Virtual keys', 'Keys your applications use, with the providers, budgets and limits each one gets.',
      button('Create virtual key', () => editKey(null, ctx, load), 'primary')),
    h('div', { class: 'toolbar' }, search, team, customer),
    listBox);
  await load();
  const live = setInterval(() => { if (idle(main)) load().catch(() => {}); }, 5000);
  return () => clearInterval(live);
}

function pager(reply, state, load) {
  const total = reply.total_count ?? reply.count ?? 0;
  if (total <= PAGE) return null;
  const go = (offset) => { state.offset = offset; load(); };
  return h('div', { class: 'pager' },
    button('Previous', () => go(Math.max(0, state.offset - PAGE)), 'small', { disabled: state.offset === 0 }),
    h('span', { class: 'muted' }, `${state.offset + 1}–${Math.min(total, state.offset + PAGE)} of ${total}`),
    button('Next', () => go(state.offset + PAGE), 'small', { disabled: state.offset + PAGE >= total }));
}

function owner(vk, ctx) {
  const team = ctx.teams.find((t) => t.id === vk.team_id);
  const customer = ctx.customers.find((c) => c.id === vk.customer_id);
  if (team) return h('span', {}, 'Team ', h('strong', {}, team.name));
  if (customer) return h('span', {}, 'Customer ', h('strong', {}, customer.name));
  return h('span', { class: 'muted' }, '–');
}

function vkTable(reply, ctx, load) {
  return table([
    ['Virtual key', (vk) => h('div', { class: 'vk-name', dataset: { vk: vk.id } },
      h('div', {}, h('strong', {}, vk.name), ' ', vk.is_active === false ? badge('inactive', 'grey') : badge('active', 'green')),
      h('code', { class: 'muted' }, vk.value),
      vk.description ? h('div', { class: 'muted' }, vk.description) : null)],
    ['Owner', (vk) => owner(vk, ctx)],
    ['Providers', (vk) => (vk.provider_configs?.length
      ? vk.provider_configs.map((pc) => `${pc.provider}${pc.weight !== null && pc.weight !== undefined ? ` (${pc.weight})` : ''}`).join(', ')
      : h('span', { class: 'muted' }, vk.allow_all_providers ? 'all' : 'none'))],
    ['Usage', (vk) => {
      const bars = (vk.usage?.scopes || []).filter((s) => s.level === 'virtual_key' || s.level === 'provider_config').flatMap(scopeBars);
      return bars.length ? h('div', { class: 'usage-cell' }, bars) : limitsSummary(vk);
    }],
    ['', (vk) => h('div', { class: 'row-actions stacked' },
      button('Edit', () => editKey(vk, ctx, load), 'link', { 'aria-label': `Edit ${vk.name}` }),
      button('Rotate', () => rotate(vk, load), 'link', { 'aria-label': `Rotate ${vk.name}` }),
      button(vk.is_active === false ? 'Activate' : 'Deactivate', () => toggle(vk, load), 'link', { 'aria-label': `${vk.is_active === false ? 'Activate' : 'Deactivate'} ${vk.name}` }),
      button('Delete', () => remove(vk, load), 'link danger', { 'aria-label': `Delete ${vk.name}` }))],
  ], reply.virtual_keys || [], 'No virtual key matches.');
}

async function rotate(vk, load) {
  if (!(await confirmDialog(`Rotate ${vk.name}?`, 'A new value is made and the current one stops working at once.', 'Rotate', false))) return;
  try {
    const reply = await post(`/governance/virtual-keys/${seg(vk.id)}/rotate`);
    await secretDialog('New key value', 'Copy it now: it is not shown again.', reply.virtual_key.value);
    load();
  } catch (e) {
    toast(e.message, 'error');
  }
}

async function toggle(vk, load) {
  try {
    await put(`/governance/virtual-keys/${seg(vk.id)}`, { ...storedShape(vk), is_active: vk.is_active === false });
    toast(`${vk.name} ${vk.is_active === false ? 'activated' : 'deactivated'}`);
    load();
  } catch (e) {
    toast(e.message, 'error');
  }
}

async function remove(vk, load) {
  if (!(await confirmDialog(`Delete ${vk.name}?`, 'Requests with this key are refused from now on. Its logs are kept.'))) return;
  try {
    await del(`/governance/virtual-keys/${seg(vk.id)}`);
    toast(`${vk.name} deleted`);
    load();
  } catch (e) {
    toast(e.message, 'error');
  }
}

function providerConfigsEditor(configs, providers) {
  const rows = h('div', { class: 'rows' });
  const names = providers.map((p) => [p.name, p.name]);
  const addRow = (pc = {}) => {
    const provider = select('pc_provider', names.length ? names : [['', 'no provider configured']], pc.provider || names[0]?.[0], { 'aria-label': 'Provider' });
    const weight = input('pc_weight', 'weight' in pc ? pc.weight ?? '' : 1, { type: 'number', min: '0', step: 'any', 'aria-label': 'Weight', placeholder: 'only when named' });
    const models = input('pc_models', (pc.allowed_models || []).join(', '), { placeholder: 'all models', 'aria-label': 'Allowed models' });
    const keys = input('pc_keys', (pc.key_ids || []).join(', '), { placeholder: 'any key', 'aria-label': 'Pinned key ids', list: 'vk-key-ids' });
    const row = h('div', { class: 'row pc-row', dataset: { field: 'provider_configs provider allowed_models key_ids weight' } },
      h('div', { class: 'cell' }, provider),
      h('div', { class: 'cell narrow' }, weight),
      h('div', { class: 'cell grow' }, models),
      h('div', { class: 'cell grow' }, keys),
      button('Remove', () => row.remove(), 'link danger', { 'aria-label': 'Remove provider config' }),
      h('p', { class: 'field-error', hidden: true }));
    row.keep = pc;
    rows.append(row);
  };
  configs.forEach(addRow);
  const keyIds = providers.flatMap((p) => (p.keys || []).map((k) => k.key_id || k.name).filter(Boolean));
  const el = h('fieldset', { class: 'group', 'data-skip': '' },
    h('legend', {}, 'Providers'),
    h('p', { class: 'hint' }, 'Which providers this key may use, their share of traffic (weight), the models allowed (comma-separated), and the provider keys it is pinned to.'),
    h('div', { class: 'row row-head', 'aria-hidden': 'true' }, h('span', {}, 'Provider'), h('span', {}, 'Weight'), h('span', {}, 'Allowed models'), h('span', {}, 'Pinned keys')),
    h('datalist', { id: 'vk-key-ids' }, keyIds.map((k) => h('option', { value: k }))),
    rows,
    button('Add provider', () => addRow(), 'small'));
  // A field left as it was keeps its stored value exactly (an empty `allowed_models` list allows
  // no model, which an empty box would otherwise turn into "all").
  const read = () => [...rows.children].map((row) => {
    const [provider] = row.querySelectorAll('select');
    const [weight, models, keys] = row.querySelectorAll('input');
    const keep = row.keep;
    const unchanged = (el) => el.value === el.defaultValue;
    return {
      ...keep,
      provider: provider.value,
      weight: unchanged(weight) && 'weight' in keep ? keep.weight : weight.value === '' ? null : Number(weight.value),
      allowed_models: unchanged(models) && 'allowed_models' in keep ? keep.allowed_models : listValue(models.value),
      key_ids: unchanged(keys) && 'key_ids' in keep ? keep.key_ids : listValue(keys.value) || [],
    };
  });
  return { el, read };
}

async function editKey(vk, ctx, load) {
  const name = input('name', vk?.name || '', { required: true, placeholder: 'checkout-service' });
  const description = input('description', vk?.description || '', { placeholder: 'optional' });
  const team = select('team_id', [['', 'No team'], ...ctx.teams.map((t) => [t.id, t.name])], vk?.team_id || '');
  const customer = select('customer_id', [['', 'No customer'], ...ctx.customers.map((c) => [c.id, c.name])], vk?.customer_id || '');
  const active = checkbox('is_active', 'Active', vk ? vk.is_active !== false : true);
  const pcs = providerConfigsEditor(vk ? vk.provider_configs || [] : ctx.providers.slice(0, 1).map((p) => ({ provider: p.name, weight: 1 })), ctx.providers);
  const budgets = budgetsEditor(vk?.budgets || []);
  const rate = rateLimitEditor(vk?.rate_limit);
  await formDialog({
    title: vk ? `Edit ${vk.name}` : 'Create virtual key',
    wide: true,
    body: [
      h('div', { class: 'grid-2' },
        field('Name', name, null, 'name'),
        field('Description', description, null, 'description')),
      h('div', { class: 'grid-2' },
        field('Team', team, 'A key belongs to a team or a customer, not both.', 'team_id team'),
        field('Customer', customer, null, 'customer_id customer')),
      active,
      pcs.el,
      budgets.el,
      rate.el,
    ],
    submitLabel: vk ? 'Save' : 'Create',
    onSubmit: async () => {
      const body = {
        ...(vk ? storedShape(vk) : {}),
        name: name.value.trim(),
        description: description.value.trim() || null,
        team_id: team.value || null,
        customer_id: customer.value || null,
        is_active: active.querySelector('input').checked,
        provider_configs: pcs.read(),
        budgets: budgets.read(),
        rate_limit: rate.read(),
      };
      if (vk) {
        await put(`/governance/virtual-keys/${seg(vk.id)}`, body);
        toast(`${body.name} saved`);
      } else {
        const reply = await post('/governance/virtual-keys', body);
        await secretDialog('Virtual key created', 'Copy the key now: it is not shown again. Send it as Authorization: Bearer, or in x-bf-vk.', reply.virtual_key.value);
      }
      load();
    },
  });
}
