// Pieces shared by the governance pages: usage bars, and editors for budgets and rate limits.

import { h, field, input, uid, button } from './dom.js';
import { money, count, span, resetWords } from './format.js';

const DURATIONS = ['1m', '5m', '1h', '6h', '1d', '7d', '1w', '30d', '1M', '1y'];

/** A datalist of common reset durations, shared by every duration input. */
function durationList() {
  let list = document.getElementById('durations');
  if (!list) {
    list = h('datalist', { id: 'durations' }, DURATIONS.map((d) => h('option', { value: d }, resetWords(d))));
    document.body.append(list);
  }
  return list.id;
}

/**
 * A usage bar: `used` of `max`, coloured by how full it is, with the time to reset.
 * `kind` is `money`, `tokens` or `requests`.
 */
export function usageBar(used, max, { kind = 'money', resetsAt, label } = {}) {
  const fmt = kind === 'money' ? money : count;
  const fraction = max > 0 ? Math.min(1, used / max) : 0;
  const level = fraction >= 1 ? 'full' : fraction >= 0.8 ? 'high' : 'ok';
  const left = resetsAt ? resetsAt - Date.now() / 1000 : 0;
  const resets = left >= 1 ? `resets in ${span(left)}` : '';
  const unit = kind === 'money' ? '' : ` ${kind}`;
  return h('div', { class: `usage ${level}` },
    h('div', { class: 'usage-text' },
      h('span', {}, label ? h('strong', {}, `${label} `) : null, `${fmt(used)} of ${fmt(max)}${unit}`),
      h('span', { class: 'muted' }, resets)),
    h('div', {
      class: 'usage-track',
      role: 'progressbar',
      'aria-valuemin': 0,
      'aria-valuemax': max,
      'aria-valuenow': used,
      'aria-label': `${label || kind} usage`,
    }, h('div', { class: 'usage-fill', style: { width: `${(fraction * 100).toFixed(1)}%` } })));
}

/** Usage bars for every budget and rate limit of one usage scope from the API. */
export function scopeBars(scope) {
  const bars = [];
  for (const b of scope.budgets || []) {
    bars.push(usageBar(b.current_usage, b.max_limit, { resetsAt: b.resets_at, label: budgetLabel(b.name, b.reset_duration) }));
  }
  const rate = scope.rate_limit;
  if (rate?.tokens) bars.push(usageBar(rate.tokens.current_usage, rate.tokens.max_limit, { kind: 'tokens', resetsAt: rate.tokens.resets_at, label: 'Tokens' }));
  if (rate?.requests) bars.push(usageBar(rate.requests.current_usage, rate.requests.max_limit, { kind: 'requests', resetsAt: rate.requests.resets_at, label: 'Requests' }));
  return bars;
}

/** "budget 'x'" from the API becomes "x (per hour)". */
export function budgetLabel(name, duration) {
  const m = /'([^']*)'/.exec(name || '');
  const raw = m ? m[1] : (name || 'Budget');
  const short = raw.charAt(0).toUpperCase() + raw.slice(1);
  return `${/^\d+$/.test(short) ? 'Budget' : short} (${resetWords(duration)})`;
}

/**
 * An editor for an entity's budgets (several windows each). Returns `{el, read}`; `read()`
 * gives the budgets in the API's shape, keeping each one's id and usage fields.
 */
export function budgetsEditor(budgets = []) {
  const rows = h('div', { class: 'rows' });
  const listId = durationList();
  const addRow = (b = {}) => {
    const id = input('budget_id', b.id || '', { placeholder: 'optional, e.g. team-monthly', 'aria-label': 'Budget name' });
    const limit = input('max_limit', b.max_limit ?? '', { type: 'number', min: '0', step: 'any', placeholder: '10.00', 'aria-label': 'Limit in USD', required: true });
    const reset = input('reset_duration', b.reset_duration || '1M', { list: listId, 'aria-label': 'Reset every', required: true });
    const row = h('div', { class: 'row budget-row', dataset: { field: 'budget budgets max_limit reset_duration' } },
      h('div', { class: 'cell grow' }, id),
      h('div', { class: 'cell' }, h('span', { class: 'prefix' }, '$'), limit),
      h('div', { class: 'cell' }, h('span', { class: 'prefix' }, 'every'), reset),
      button('Remove', () => row.remove(), 'link danger', { 'aria-label': 'Remove budget' }),
      h('p', { class: 'field-error', hidden: true }));
    row.keep = b;
    rows.append(row);
  };
  budgets.forEach(addRow);
  const el = h('fieldset', { class: 'group', 'data-skip': '' },
    h('legend', {}, 'Budgets'),
    h('p', { class: 'hint' }, 'Spend caps in USD. A request is refused with 402 once any of them is reached until it resets.'),
    rows,
    button('Add budget', () => addRow(), 'small'));
  const read = () => [...rows.children].map((row) => {
    const [idEl, limitEl, resetEl] = row.querySelectorAll('input');
    const out = { ...row.keep, max_limit: Number(limitEl.value), reset_duration: resetEl.value.trim() };
    if (idEl.value.trim()) out.id = idEl.value.trim(); else delete out.id;
    if (limitEl.value === '' || Number.isNaN(out.max_limit)) {
      throw Object.assign(new Error('budgets: every budget needs a limit in USD'), { field: 'budget budgets max_limit reset_duration' });
    }
    return out;
  });
  return { el, read };
}

/** An editor for one rate limit (tokens and/or requests per window). */
export function rateLimitEditor(rate) {
  const listId = durationList();
  const tokens = input('token_max_limit', rate?.token_max_limit ?? '', { type: 'number', min: '1', step: '1', placeholder: 'no limit' });
  const tokenReset = input('token_reset_duration', rate?.token_reset_duration || '1m', { list: listId });
  const requests = input('request_max_limit', rate?.request_max_limit ?? '', { type: 'number', min: '1', step: '1', placeholder: 'no limit' });
  const requestReset = input('request_reset_duration', rate?.request_reset_duration || '1m', { list: listId });
  const el = h('fieldset', { class: 'group', 'data-skip': '' },
    h('legend', {}, 'Rate limit'),
    h('div', { class: 'grid-2' },
      field('Tokens', tokens, null, 'token_max_limit rate_limit'),
      field('per', tokenReset, null, 'token_reset_duration'),
      field('Requests', requests, null, 'request_max_limit'),
      field('per', requestReset, null, 'request_reset_duration')));
  const read = () => {
    for (const [el, name] of [[tokens, 'token_max_limit rate_limit'], [requests, 'request_max_limit']]) {
      if (el.value && !(Number.isInteger(Number(el.value)) && Number(el.value) > 0)) {
        throw Object.assign(new Error('rate limits are whole numbers greater than 0'), { field: name });
      }
    }
    if (!tokens.value && !requests.value) return null;
    const out = { ...(rate || {}) };
    for (const k of ['token_max_limit', 'token_reset_duration', 'request_max_limit', 'request_reset_duration']) delete out[k];
    if (tokens.value) Object.assign(out, { token_max_limit: Number(tokens.value), token_reset_duration: tokenReset.value.trim() });
    if (requests.value) Object.assign(out, { request_max_limit: Number(requests.value), request_reset_duration: requestReset.value.trim() });
    return out;
  };
  return { el, read };
}

/** A short text for an entity's budgets and rate limit, for table cells. */
export function limitsSummary(entity) {
  const parts = (entity.budgets || []).map((b) => `${money(b.max_limit)} ${resetWords(b.reset_duration)}`);
  const r = entity.rate_limit;
  if (r?.token_max_limit) parts.push(`${count(r.token_max_limit)} tokens ${resetWords(r.token_reset_duration)}`);
  if (r?.request_max_limit) parts.push(`${count(r.request_max_limit)} requests ${resetWords(r.request_reset_duration)}`);
  return parts.length ? parts.join(' · ') : h('span', { class: 'muted' }, 'none');
}

/**
 * The shape the API stores for an entity read from a list view: without the live `usage` and
 * the redacted `value` a list adds (a PUT replaces the whole entity, so it sends this back).
 */
export function storedShape(entity) {
  const copy = { ...entity };
  delete copy.usage;
  delete copy.value;
  return copy;
}

/** A badge. */
export function badge(text, kind = '') {
  return h('span', { class: `badge ${kind}` }, text);
}

/** A comma-separated list input read back as an array (empty -> null). */
export function listValue(text) {
  const items = String(text || '').split(',').map((s) => s.trim()).filter(Boolean);
  return items.length ? items : null;
}

export { uid };
