// Teams and customers, with their budgets, rate limits and virtual keys.

import { get, post, put, del, seg, allVirtualKeys } from '../api.js';
import { h, mount, pageHeader, table, field, input, select, formDialog, confirmDialog, toast, button } from '../dom.js';
import { budgetsEditor, rateLimitEditor, limitsSummary } from '../widgets.js';

const KINDS = {
  teams: { label: 'Team', plural: 'teams', singular: 'team', keyField: 'team_id' },
  customers: { label: 'Customer', plural: 'customers', singular: 'customer', keyField: 'customer_id' },
};

export async function render(main) {
  const [teams, customers, keys] = await Promise.all([
    get('/governance/teams').then((r) => r.teams || []),
    get('/governance/customers').then((r) => r.customers || []),
    allVirtualKeys(),
  ]);
  const refresh = () => render(main);
  const ctx = { teams, customers, keys };
  const keysOf = (kind, id) => keys.filter((k) => k[KINDS[kind].keyField] === id);
  const keyCell = (kind) => (e) => {
    const own = keysOf(kind, e.id);
    return own.length
      ? h('ul', { class: 'inline-list' }, own.map((k) => h('li', {}, h('a', { href: `#/virtual-keys/${seg(k.id)}` }, k.name))))
      : h('span', { class: 'muted' }, 'none');
  };
  const actions = (kind) => (e) => h('div', { class: 'row-actions' },
    button('Edit', () => edit(kind, e, ctx, refresh), 'link', { 'aria-label': `Edit ${e.name}` }),
    button('Delete', () => remove(kind, e, refresh), 'link danger', { 'aria-label': `Delete ${e.name}` }));
  mount(main,
    pageHeader('Teams & customers', 'Group virtual keys, and give the group budgets and limits of its own.',
      button('Create customer', () => edit('customers', null, ctx, refresh), ''),
      button('Create team', () => edit('teams', null, ctx, refresh), 'primary')),
    h('section', { class: 'card' }, h('h2', {}, 'Teams'),
      table([
        ['Name', (t) => h('strong', {}, t.name)],
        ['Customer', (t) => customers.find((c) => c.id === t.customer_id)?.name || h('span', { class: 'muted' }, '–')],
        ['Budgets & limits', limitsSummary],
        ['Virtual keys', keyCell('teams')],
        ['', actions('teams')],
      ], teams, 'No team yet.')),
    h('section', { class: 'card' }, h('h2', {}, 'Customers'),
      table([
        ['Name', (c) => h('strong', {}, c.name)],
        ['Teams', (c) => teams.filter((t) => t.customer_id === c.id).map((t) => t.name).join(', ') || h('span', { class: 'muted' }, '–')],
        ['Budgets & limits', limitsSummary],
        ['Virtual keys', keyCell('customers')],
        ['', actions('customers')],
      ], customers, 'No customer yet.')));
}

async function remove(kind, e, refresh) {
  const { label, plural } = KINDS[kind];
  if (!(await confirmDialog(`Delete ${label.toLowerCase()} ${e.name}?`, 'Only possible when no virtual key or team still belongs to it.'))) return;
  try {
    await del(`/governance/${plural}/${seg(e.id)}`);
    toast(`${label} ${e.name} deleted`);
    refresh();
  } catch (err) {
    toast(err.message, 'error');
  }
}

async function edit(kind, e, ctx, refresh) {
  const { label, plural, singular } = KINDS[kind];
  const name = input('name', e?.name || '', { required: true });
  const customer = kind === 'teams'
    ? select('customer_id', [['', 'No customer'], ...ctx.customers.map((c) => [c.id, c.name])], e?.customer_id || '')
    : null;
  const budgets = budgetsEditor(e?.budgets || []);
  const rate = rateLimitEditor(e?.rate_limit);
  await formDialog({
    title: e ? `Edit ${e.name}` : `Create ${label.toLowerCase()}`,
    wide: true,
    body: [
      field('Name', name, null, 'name'),
      customer ? field('Customer', customer, 'The customer this team belongs to.', 'customer_id customer') : null,
      budgets.el,
      rate.el,
    ],
    submitLabel: e ? 'Save' : 'Create',
    onSubmit: async () => {
      const body = { ...(e || {}), name: name.value.trim(), budgets: budgets.read(), rate_limit: rate.read() };
      if (customer) body.customer_id = customer.value || null;
      if (!body.name) throw Object.assign(new Error('name: a name is required'), { field: 'name' });
      if (e) await put(`/governance/${plural}/${seg(e.id)}`, body);
      else await post(`/governance/${plural}`, body);
      toast(`${label} ${body.name} saved`);
      refresh();
      return singular;
    },
  });
}
