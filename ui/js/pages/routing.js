// Routing rules: list, create and edit, with the CEL expression; the API's validation error is
// shown next to the field it is about.

import { get, post, put, del, seg, allVirtualKeys } from '../api.js';
import { h, mount, pageHeader, table, field, input, select, checkbox, formDialog, confirmDialog, toast, button } from '../dom.js';
import { badge, listValue } from '../widgets.js';

const SCOPES = [['global', 'Global'], ['customer', 'Customer'], ['team', 'Team'], ['virtual_key', 'Virtual key']];

export async function render(main) {
  const [rules, teams, customers, keys, providers] = await Promise.all([
    get('/governance/routing-rules').then((r) => r.routing_rules || []),
    get('/governance/teams').then((r) => r.teams || []),
    get('/governance/customers').then((r) => r.customers || []),
    allVirtualKeys(),
    get('/providers').then((r) => r.providers || []),
  ]);
  const ctx = { teams, customers, keys, providers };
  const refresh = () => render(main);
  const scopeName = (r) => {
    const list = { team: teams, customer: customers, virtual_key: keys }[r.scope];
    const found = list?.find((e) => e.id === r.scope_id);
    return r.scope && r.scope !== 'global' ? `${r.scope.replace('_', ' ')}: ${found?.name || r.scope_id}` : 'global';
  };
  const sorted = [...rules].sort((a, b) => (a.priority ?? 0) - (b.priority ?? 0));
  mount(main,
    pageHeader('Routing rules', 'CEL expressions over the request that send it to another provider or model.',
      button('Create rule', () => edit(null, ctx, refresh), 'primary')),
    h('section', { class: 'card' },
      table([
        ['Rule', (r) => h('div', { class: 'vk-name' },
          h('div', {}, h('strong', {}, r.name), ' ', r.enabled === false ? badge('disabled', 'grey') : badge('enabled', 'green')),
          h('span', { class: 'muted' }, `priority ${r.priority ?? 0}`),
          r.description ? h('div', { class: 'muted' }, r.description) : null)],
        ['When', (r) => h('code', { class: 'cel' }, r.cel_expression)],
        ['Route to', (r) => (r.targets || []).map((t) => `${t.provider || '(same)'}/${t.model || '(same)'}${t.weight !== null && t.weight !== undefined ? ` ×${t.weight}` : ''}`).join(', ') || h('span', { class: 'muted' }, '–')],
        ['Scope', scopeName],
        ['', (r) => h('div', { class: 'row-actions stacked' },
          button('Edit', () => edit(r, ctx, refresh), 'link', { 'aria-label': `Edit ${r.name}` }),
          button('Delete', async () => {
            if (!(await confirmDialog(`Delete rule ${r.name}?`, 'Requests it matched go back to the default routing.'))) return;
            try {
              await del(`/governance/routing-rules/${seg(r.id)}`);
              refresh();
            } catch (e) {
              toast(e.message, 'error');
            }
          }, 'link danger', { 'aria-label': `Delete ${r.name}` }))],
      ], sorted, 'No routing rule. Requests go where their model names.')));
}

function targetsEditor(targets, providers) {
  const rows = h('div', { class: 'rows' });
  const names = [['', '(same provider)'], ...providers.map((p) => [p.name, p.name])];
  const addRow = (t = {}) => {
    const provider = select('t_provider', names, t.provider || '', { 'aria-label': 'Target provider' });
    const model = input('t_model', t.model || '', { placeholder: '(same model)', 'aria-label': 'Target model' });
    const weight = input('t_weight', t.weight ?? 1, { type: 'number', min: '0', step: 'any', 'aria-label': 'Target weight' });
    const row = h('div', { class: 'row', dataset: { field: 'targets target' } },
      h('div', { class: 'cell' }, provider), h('div', { class: 'cell grow' }, model), h('div', { class: 'cell narrow' }, weight),
      button('Remove', () => row.remove(), 'link danger', { 'aria-label': 'Remove target' }),
      h('p', { class: 'field-error', hidden: true }));
    row.keep = t;
    rows.append(row);
  };
  (targets.length ? targets : [{}]).forEach(addRow);
  const el = h('fieldset', { class: 'group', 'data-skip': '' },
    h('legend', {}, 'Targets'),
    h('p', { class: 'hint' }, 'Where a matching request goes; one is picked by weight.'),
    rows, button('Add target', () => addRow(), 'small'));
  // A row that names neither provider nor model (nor a key) changes nothing and is left out.
  const read = () => [...rows.children].map((row) => {
    const [provider] = row.querySelectorAll('select');
    const [model, weight] = row.querySelectorAll('input');
    const out = { ...row.keep, provider: provider.value || null, model: model.value.trim() || null };
    out.weight = weight.value === '' ? null : Number(weight.value);
    return out;
  }).filter((t) => t.provider || t.model || t.key_id);
  return { el, read };
}

async function edit(rule, ctx, refresh) {
  const name = input('name', rule?.name || '', { required: true, placeholder: 'free tier to mini' });
  const description = input('description', rule?.description || '', { placeholder: 'optional' });
  const cel = h('textarea', { name: 'cel_expression', rows: 3, class: 'mono', spellcheck: 'false', required: true, placeholder: 'headers["x-tier"] == "free" && model == "gpt-4o"' }, rule?.cel_expression || '');
  const scope = select('scope', SCOPES, rule?.scope || 'global');
  const scopeId = h('select', { name: 'scope_id' });
  const fillScopeIds = () => {
    const list = { team: ctx.teams, customer: ctx.customers, virtual_key: ctx.keys }[scope.value] || [];
    const options = list.map((e) => h('option', { value: e.id, selected: e.id === rule?.scope_id }, e.name));
    // A scope the lists do not hold (deleted since) stays as it is rather than moving.
    if (rule?.scope_id && scope.value === rule.scope && !list.some((e) => e.id === rule.scope_id)) {
      options.unshift(h('option', { value: rule.scope_id, selected: true }, `${rule.scope_id} (not found)`));
    }
    mount(scopeId, options);
    scopeId.disabled = scope.value === 'global';
  };
  scope.addEventListener('change', fillScopeIds);
  fillScopeIds();
  const priority = input('priority', rule?.priority ?? 0, { type: 'number', step: '1' });
  const fallbackText = (rule?.fallbacks || [])
    .map((f) => (typeof f === 'string' ? f : `${f.provider || ''}/${f.model || ''}`))
    .join(', ');
  const fallbacks = input('fallbacks', fallbackText, { placeholder: 'anthropic/claude-3-5-haiku, openai/' });
  const enabled = checkbox('enabled', 'Enabled', rule ? rule.enabled !== false : true);
  const chain = checkbox('chain_rule', 'Chain: evaluate the rules again on the rewritten request', rule?.chain_rule);
  const targets = targetsEditor(rule?.targets || [], ctx.providers);
  await formDialog({
    title: rule ? `Edit ${rule.name}` : 'Create routing rule',
    wide: true,
    body: [
      h('div', { class: 'grid-2' }, field('Name', name, null, 'name'), field('Description', description, null, 'description')),
      field('CEL expression', cel, 'Variables: model, provider, request_type, headers, params, virtual_key_id/_name, team_id/_name, customer_id/_name, budget_used, tokens_used, request (percent), request_body, prompt_bytes, time_of_day_utc, day_of_week, provider_health. A missing key means no match.', 'cel_expression cel expression'),
      targets.el,
      field('Fallbacks', fallbacks, 'Comma-separated provider/model (or provider/) tried when the target fails.', 'fallbacks'),
      h('div', { class: 'grid-3' },
        field('Scope', scope, null, 'scope'),
        field('Applies to', scopeId, null, 'scope_id'),
        field('Priority', priority, 'Lower is tried first.', 'priority')),
      enabled,
      chain,
    ],
    submitLabel: rule ? 'Save' : 'Create',
    onSubmit: async () => {
      // Untouched fallbacks are sent back exactly as stored (order and object form kept).
      const keptFallbacks = fallbacks.value === fallbackText ? rule?.fallbacks || [] : listValue(fallbacks.value) || [];
      const body = {
        ...(rule || {}),
        name: name.value.trim(),
        description: description.value.trim() || null,
        cel_expression: cel.value.trim(),
        targets: targets.read(),
        fallbacks: keptFallbacks,
        scope: scope.value,
        scope_id: scope.value === 'global' ? null : scopeId.value || null,
        priority: Number(priority.value || 0),
        enabled: enabled.querySelector('input').checked,
        chain_rule: chain.querySelector('input').checked,
      };
      if (rule) await put(`/governance/routing-rules/${seg(rule.id)}`, body);
      else await post('/governance/routing-rules', body);
      toast(`Rule ${body.name} saved`);
      refresh();
    },
  });
}
