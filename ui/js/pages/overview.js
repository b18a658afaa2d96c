// Overview: traffic, errors, tokens and cost over the last hour, day or week, from the log
// store's stats and histograms; top models and providers; spend against budget per key.

import { get, query, allVirtualKeys } from '../api.js';
import { h, mount, pageHeader } from '../dom.js';
import { timeChart, barList } from '../charts.js';
import { count, money, moneyTick, latency, percent } from '../format.js';
import { usageBar, budgetLabel } from '../widgets.js';

const RANGES = [['1h', 'Last hour'], ['24h', 'Last 24 hours'], ['7d', 'Last 7 days']];

const seconds = (iso) => Math.floor(new Date(iso).getTime() / 1000);

export async function render(main, [range = '24h']) {
  const period = RANGES.some(([r]) => r === range) ? range : '24h';
  const q = query({ period });
  const [stats, requests, tokens, cost, models, filters, keys] = await Promise.all([
    get(`/logs/stats${q}`),
    get(`/logs/histogram${q}`),
    get(`/logs/histogram/tokens${q}`),
    get(`/logs/histogram/cost${q}`),
    get(`/logs/histogram/models${q}`),
    get(`/logs/filterdata${q}`),
    allVirtualKeys({ fromMemory: true }).then((list) => ({ virtual_keys: list }), () => ({ virtual_keys: [] })),
  ]);
  const providerStats = await Promise.all((filters.providers || []).slice(0, 12).map(async (p) => {
    const s = await get(`/logs/stats${query({ period, providers: p })}`);
    return [p, s.total_requests, s.total_cost];
  }));

  const picker = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Time range' },
    RANGES.map(([r, label]) => h('a', { href: `#/overview/${r}`, 'aria-current': r === period ? 'true' : null }, label)));

  const kpi = (label, value, sub) => h('div', { class: 'kpi card' },
    h('div', { class: 'kpi-label' }, label), h('div', { class: 'kpi-value' }, value), sub ? h('div', { class: 'muted' }, sub) : null);

  const t = (requests.buckets || []).map((b) => seconds(b.timestamp));
  const tt = (tokens.buckets || []).map((b) => seconds(b.timestamp));
  const tc = (cost.buckets || []).map((b) => seconds(b.timestamp));

  const modelTotals = {};
  for (const b of models.buckets || []) {
    for (const [model, v] of Object.entries(b.by_model || {})) modelTotals[model] = (modelTotals[model] || 0) + (v.total || 0);
  }
  const topModels = Object.entries(modelTotals).sort((a, b) => b[1] - a[1]).slice(0, 8);
  const topProviders = providerStats.filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]).slice(0, 8);

  const spend = [];
  for (const vk of keys.virtual_keys || []) {
    const own = (vk.usage?.scopes || []).find((s) => s.level === 'virtual_key');
    for (const b of own?.budgets || []) spend.push({ vk, b });
  }
  spend.sort((a, b) => b.b.current_usage / (b.b.max_limit || 1) - a.b.current_usage / (a.b.max_limit || 1));

  mount(main,
    pageHeader('Overview', 'Traffic through the gateway, from the request log.', picker),
    h('div', { class: 'kpis' },
      kpi('Requests', count(stats.total_requests), `${count(stats.error_count)} errors`),
      kpi('Success rate', percent(stats.total_requests ? stats.success_rate / 100 : null), null),
      kpi('Average latency', latency(stats.average_latency), null),
      kpi('Tokens', count(stats.total_tokens), `${count(stats.prompt_tokens)} in · ${count(stats.completion_tokens)} out`),
      kpi('Cost', money(stats.total_cost), null)),
    h('div', { class: 'grid-2 charts' },
      timeChart('Requests', t, [
        { label: 'Success', values: requests.buckets.map((b) => b.success), color: '#16a34a' },
        { label: 'Errors', values: requests.buckets.map((b) => b.error), color: '#dc2626' },
      ], { format: (v) => count(Math.round(v)) }),
      timeChart('Tokens', tt, [
        { label: 'Prompt', values: tokens.buckets.map((b) => b.prompt_tokens) },
        { label: 'Completion', values: tokens.buckets.map((b) => b.completion_tokens) },
      ], { format: (v) => count(Math.round(v)) }),
      timeChart('Cost (USD)', tc, [
        { label: 'Cost', values: cost.buckets.map((b) => b.total_cost), color: '#f59e0b' },
      ], { format: moneyTick }),
      barList('Top models', topModels, count)),
    h('div', { class: 'grid-2' },
      barList('Top providers', topProviders.map(([p, n]) => [p, n]), count),
      h('section', { class: 'card' }, h('h2', {}, 'Spend against budget'),
        spend.length
          ? h('ul', { class: 'spend' }, spend.slice(0, 6).map(({ vk, b }) => h('li', {},
            h('a', { href: `#/virtual-keys/${encodeURIComponent(vk.id)}` }, vk.name),
            usageBar(b.current_usage, b.max_limit, { resetsAt: b.resets_at, label: budgetLabel(b.name, b.reset_duration) }))))
          : h('div', { class: 'empty' }, 'No virtual key has a budget yet.'))));
}
