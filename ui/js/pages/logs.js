// Logs: the request log with the API's filters, a live tail over the SSE stream, and a detail
// view with the request and response content, tokens, cost, latency, retries, fallback and key.

import { get, query, seg } from '../api.js';
import { h, mount, pageHeader, input, select, button, toast } from '../dom.js';
import { count, money, latency, dateTime, shortTime } from '../format.js';
import { badge } from '../widgets.js';

const PAGE = 50;
const PERIODS = [['1h', 'Last hour'], ['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['30d', 'Last 30 days'], ['', 'All time']];

export async function render(main, [openId] = []) {
  const filters = await get('/logs/filterdata');
  const state = { period: '24h', status: '', providers: '', models: '', virtual_key_ids: '', content_search: '', offset: 0 };
  const body = h('tbody');
  const summary = h('span', { class: 'muted', 'aria-live': 'polite' });
  const pagerBox = h('div', { class: 'pager' });
  const opt = (list, all) => [['', all], ...list.map((v) => (typeof v === 'string' ? [v, v] : [v.id, v.name]))];
  const controls = {
    period: select('period', PERIODS, state.period, { 'aria-label': 'Time range' }),
    status: select('status', [['', 'Any status'], ['success', 'Success'], ['error', 'Error'], ['processing', 'Processing']], '', { 'aria-label': 'Status' }),
    providers: select('providers', opt(filters.providers || [], 'All providers'), '', { 'aria-label': 'Provider' }),
    models: select('models', opt(filters.models || [], 'All models'), '', { 'aria-label': 'Model' }),
    virtual_key_ids: select('virtual_key_ids', opt(filters.virtual_keys || [], 'All virtual keys'), '', { 'aria-label': 'Virtual key' }),
    content_search: input('content_search', '', { type: 'search', placeholder: 'Search prompts and replies', 'aria-label': 'Search content' }),
  };
  const params = () => ({ ...state, limit: PAGE });
  const load = async () => {
    const reply = await get(`/logs${query(params())}`);
    mount(body, (reply.logs || []).map(row));
    const total = reply.stats?.total_requests ?? reply.pagination?.total_count ?? reply.total ?? null;
    summary.textContent = total === null ? '' : `${count(total)} ${total === 1 ? 'request' : 'requests'}`;
    const shown = (reply.logs || []).length;
    if (!shown && state.offset === 0) {
      mount(pagerBox);
    } else mount(pagerBox,
      button('Newer', () => { state.offset = Math.max(0, state.offset - PAGE); load(); }, 'small', { disabled: state.offset === 0 }),
      h('span', { class: 'muted' }, `${state.offset + 1}–${state.offset + (reply.logs || []).length}`),
      button('Older', () => { state.offset += PAGE; load(); }, 'small', { disabled: (reply.logs || []).length < PAGE }));
    if (!(reply.logs || []).length) mount(body, h('tr', {}, h('td', { colspan: 8, class: 'empty' }, reply.has_logs === false ? 'No request has been logged yet.' : 'No request matches these filters.')));
  };
  let timer = null;
  for (const [key, el] of Object.entries(controls)) {
    el.addEventListener(el.tagName === 'INPUT' ? 'input' : 'change', () => {
      clearTimeout(timer);
      timer = setTimeout(() => { state[key] = el.value.trim(); state.offset = 0; load().catch((e) => toast(e.message, 'error')); }, el.tagName === 'INPUT' ? 300 : 0);
    });
  }

  let source = null;
  const tail = h('button', { type: 'button', class: 'toggle', 'aria-pressed': 'false' }, 'Live tail');
  const stopTail = () => {
    if (source) source.close();
    source = null;
    tail.setAttribute('aria-pressed', 'false');
    tail.textContent = 'Live tail';
  };
  tail.addEventListener('click', () => {
    if (source) { stopTail(); return; }
    source = new EventSource('/api/logs/stream');
    tail.setAttribute('aria-pressed', 'true');
    tail.textContent = 'Live: on';
    source.addEventListener('log', (event) => {
      try {
        const log = JSON.parse(event.data);
        if (!matches(log, state)) return;
        body.querySelector('td.empty')?.closest('tr')?.remove();
        const tr = row(log);
        tr.classList.add('new');
        body.prepend(tr);
        while (body.children.length > 200) body.lastChild.remove();
      } catch { /* a malformed event is skipped */ }
    });
    source.addEventListener('lagged', (event) => toast(`Live tail skipped ${JSON.parse(event.data).skipped} rows`, 'warn'));
    source.onerror = () => { if (source?.readyState === EventSource.CLOSED) { stopTail(); toast('The live tail was disconnected.', 'error'); } };
  });

  mount(main,
    pageHeader('Logs', 'Every request through the gateway, newest first.', summary, tail),
    h('div', { class: 'toolbar' }, Object.values(controls)),
    h('div', { class: 'table-wrap card flush' }, h('table', { class: 'logs' },
      h('thead', {}, h('tr', {}, ['Time', 'Status', 'Provider / model', 'Virtual key', 'Tokens', 'Cost', 'Latency', ''].map((c) => h('th', { scope: 'col' }, c)))),
      body)),
    pagerBox);
  await load();
  if (openId) detail(openId);
  return stopTail;
}

function matches(log, state) {
  if (state.status && log.status !== state.status) return false;
  if (state.providers && log.provider !== state.providers) return false;
  if (state.models && log.model !== state.models) return false;
  if (state.virtual_key_ids && log.virtual_key_id !== state.virtual_key_ids) return false;
  if (state.content_search) {
    const needle = state.content_search.toLowerCase();
    const text = JSON.stringify([log.content_summary, log.input_history, log.output_message]).toLowerCase();
    if (!text.includes(needle)) return false;
  }
  return true;
}

function statusBadge(log) {
  if (log.status === 'success') return badge(String(log.status_code || 200), 'green');
  if (log.status === 'error') return badge(String(log.status_code || 'error'), 'red');
  return badge(log.status || '?', 'grey');
}

function row(log) {
  const open = h('button', { type: 'button', class: 'link', 'aria-label': `Details of request ${log.id}` }, 'View');
  open.addEventListener('click', () => detail(log.id));
  const tr = h('tr', { dataset: { log: log.id } },
    h('td', { class: 'nowrap', title: dateTime(log.timestamp) }, shortTime(log.timestamp)),
    h('td', {}, statusBadge(log), log.stream ? [' ', badge('stream', 'grey')] : null),
    h('td', {}, h('div', {}, log.provider || '–'), h('div', { class: 'muted mono' }, log.model || log.requested_model || '')),
    h('td', {}, log.virtual_key_name || log.virtual_key?.name || h('span', { class: 'muted' }, '–')),
    h('td', { class: 'num' }, count(log.token_usage?.total_tokens ?? 0)),
    h('td', { class: 'num' }, log.cost === null || log.cost === undefined ? '–' : money(log.cost)),
    h('td', { class: 'num' }, latency(log.latency)),
    h('td', {}, open));
  tr.addEventListener('dblclick', () => detail(log.id));
  return tr;
}

function messageView(m) {
  const content = typeof m.content === 'string'
    ? m.content
    : Array.isArray(m.content) ? m.content.map((p) => p.text ?? JSON.stringify(p)).join('\n') : (m.content === null || m.content === undefined ? '' : JSON.stringify(m.content, null, 2));
  return h('div', { class: `message role-${m.role}` },
    h('div', { class: 'role' }, m.role),
    content ? h('pre', {}, content) : null,
    m.tool_calls ? h('pre', { class: 'mono' }, JSON.stringify(m.tool_calls, null, 2)) : null);
}

async function detail(id) {
  let log;
  try {
    log = await get(`/logs/${seg(id)}`);
  } catch (e) {
    toast(e.message, 'error');
    return;
  }
  log = log.log || log;
  const u = log.token_usage || {};
  const facts = [
    ['Request id', h('code', {}, log.id)],
    ['Time', dateTime(log.timestamp)],
    ['Status', [statusBadge(log), ' ', log.status]],
    ['Type', log.object],
    ['Provider / model', `${log.provider || '–'} / ${log.model || '–'}`],
    ['Requested model', log.requested_model || '–'],
    ['Virtual key', log.virtual_key_name || '–'],
    ['Team / customer', [log.team_name, log.customer_name].filter(Boolean).join(' / ') || '–'],
    ['Provider key', log.selected_key_name || log.selected_key_id || '–'],
    ['Latency', latency(log.latency)],
    ['Time to first token', log.time_to_first_token ? latency(log.time_to_first_token) : '–'],
    ['Tokens', `${count(u.prompt_tokens ?? 0)} in · ${count(u.completion_tokens ?? 0)} out · ${count(u.prompt_tokens_details?.cached_tokens ?? 0)} cached`],
    ['Cost', log.cost === null || log.cost === undefined ? '–' : money(log.cost)],
    ['Retries', log.number_of_retries ?? 0],
    ['Fallback', log.fallback_index ? `fallback #${log.fallback_index}` : 'primary'],
    ['Routing rule', log.routing_rule_name || log.routing_rule_id || '–'],
    ['Stop reason', log.stop_reason || '–'],
  ];
  const close = h('button', { type: 'button' }, 'Close');
  const dialog = h('dialog', { class: 'wide log-detail', 'aria-labelledby': 'log-title' },
    h('header', {}, h('h2', { id: 'log-title' }, 'Request details')),
    h('div', { class: 'dialog-body' },
      h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      log.error_details ? h('section', {}, h('h3', {}, 'Error'), h('pre', { class: 'error-box' }, JSON.stringify(log.error_details, null, 2))) : null,
      h('section', {}, h('h3', {}, 'Request'),
        (log.input_history || []).length ? (log.input_history || []).map(messageView) : h('p', { class: 'muted' }, log.content_summary || 'Content was not stored for this request.')),
      h('section', {}, h('h3', {}, 'Response'),
        log.output_message ? messageView(log.output_message) : h('p', { class: 'muted' }, 'No response content.')),
      log.tools ? h('section', {}, h('h3', {}, 'Tools'), h('pre', { class: 'mono' }, JSON.stringify(log.tools, null, 2))) : null,
      log.content_truncated ? h('p', { class: 'muted' }, 'Content was truncated to the store’s size limit.') : null),
    h('footer', {}, close));
  close.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  close.focus();
}
