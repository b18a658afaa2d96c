// Providers and their keys: list, create, edit, delete, and a live test of every key.
// Key values arrive redacted from the API (`sk-a****(51 chars)`), and `env.NAME` references as
// written; an edit that leaves the value empty keeps the stored secret.

import { get, post, put, del, seg } from '../api.js';
import { h, mount, pageHeader, table, field, input, formDialog, confirmDialog, toast, button } from '../dom.js';
import { latency } from '../format.js';
import { badge, listValue } from '../widgets.js';

const KNOWN = ['openai', 'anthropic', 'azure', 'bedrock', 'gemini', 'vertex', 'cohere', 'groq', 'mistral', 'ollama',
  'openrouter', 'cerebras', 'perplexity', 'xai', 'parasail', 'sgl', 'vllm', 'nebius', 'huggingface', 'elevenlabs'];

export async function render(main) {
  const { providers } = await get('/providers');
  const refresh = () => render(main);
  mount(main,
    pageHeader('Providers', 'Upstream model providers and the API keys asbru uses for them.',
      button('Add provider', () => editProvider(null, refresh), 'primary')),
    providers.length
      ? h('div', { class: 'stack' }, providers.map((p) => providerCard(p, refresh)))
      : h('div', { class: 'empty card' }, 'No provider yet. Add one to start sending requests.'));
}

function providerCard(p, refresh) {
  const results = h('div', { class: 'test-results', 'aria-live': 'polite' });
  const test = button('Test keys', async () => {
    test.disabled = true;
    mount(results, h('p', { class: 'muted' }, 'Testing…'));
    try {
      const reply = await post(`/providers/${seg(p.name)}/test`, {});
      mount(results, table([
        ['Key', (r) => r.name || r.key_id],
        ['Result', (r) => badge(r.ok ? 'ok' : 'failed', r.ok ? 'green' : 'red')],
        ['Status', (r) => r.status ?? '–'],
        ['Latency', (r) => latency(r.latency_ms)],
        ['Error', (r) => r.error || ''],
      ], reply.results || [], 'This provider has no key to test.', { class: 'compact' }));
    } catch (e) {
      mount(results, h('p', { class: 'field-error', role: 'alert' }, e.message));
    } finally {
      test.disabled = false;
    }
  });
  const base = p.network_config?.base_url || p.custom_provider_config?.base_url || 'default URL';
  return h('section', { class: 'card provider', dataset: { provider: p.name } },
    h('header', { class: 'card-head' },
      h('div', {},
        h('h2', {}, p.name, ' ', badge(p.provider_status === 'active' ? 'active' : 'not served', p.provider_status === 'active' ? 'green' : 'amber')),
        h('p', { class: 'muted mono' }, base)),
      h('div', { class: 'actions' },
        test,
        button('Add key', () => editKey(p.name, null, refresh), ''),
        button('Edit', () => editProvider(p, refresh), ''),
        button('Delete', async () => {
          if (!(await confirmDialog(`Delete ${p.name}?`, 'Its keys are deleted with it, and requests for it fail until it is added again.'))) return;
          try {
            await del(`/providers/${seg(p.name)}`);
            toast(`Provider ${p.name} deleted`);
            refresh();
          } catch (e) {
            toast(e.message, 'error');
          }
        }, 'danger'))),
    table([
      ['Name', (k) => k.name || k.key_id || '–'],
      ['Value', (k) => h('code', {}, k.value)],
      ['Weight', (k) => k.weight ?? 1],
      ['Models', (k) => (k.models?.length ? k.models.join(', ') : h('span', { class: 'muted' }, 'all'))],
      ['', (k) => h('div', { class: 'row-actions' },
        button('Edit', () => editKey(p.name, k, refresh), 'link', { 'aria-label': `Edit key ${k.name || k.key_id}` }),
        button('Delete', async () => {
          if (!(await confirmDialog('Delete this key?', `Key ${k.name || k.key_id} of ${p.name} stops being used at once.`))) return;
          try {
            await del(`/providers/${seg(p.name)}/keys/${seg(k.key_id || k.name)}`);
            refresh();
          } catch (e) {
            toast(e.message, 'error');
          }
        }, 'link danger', { 'aria-label': `Delete key ${k.name || k.key_id}` }))],
    ], p.keys || [], 'No key: add one, or requests to this provider are refused.', { class: 'compact' }),
    results);
}

async function editProvider(p, refresh) {
  const name = input('provider', p?.name || '', { list: 'known-providers', required: true, disabled: Boolean(p), placeholder: 'openai' });
  const base = input('base_url', p?.network_config?.base_url || '', { placeholder: 'the provider’s default', type: 'url' });
  const timeout = input('default_request_timeout_in_seconds', p?.network_config?.default_request_timeout_in_seconds ?? '', { type: 'number', min: '1', placeholder: '30' });
  const retries = input('max_retries', p?.network_config?.max_retries ?? '', { type: 'number', min: '0', placeholder: '0' });
  const keyValue = input('value', '', { type: 'password', placeholder: 'sk-… or env.OPENAI_API_KEY', autocomplete: 'off' });
  const body = [
    h('datalist', { id: 'known-providers' }, KNOWN.map((k) => h('option', { value: k }))),
    field('Provider', name, p ? null : 'A built-in provider name, like openai or anthropic.', 'provider name'),
    field('Base URL', base, 'Leave empty for the provider’s public endpoint.', 'base_url network_config'),
    h('div', { class: 'grid-2' },
      field('Request timeout (s)', timeout, null, 'default_request_timeout_in_seconds timeout'),
      field('Retries', retries, null, 'max_retries retries')),
    p ? null : field('First API key', keyValue, 'Optional. Write env.NAME to read it from the gateway’s environment.', 'value keys key'),
  ];
  await formDialog({
    title: p ? `Edit ${p.name}` : 'Add provider',
    body,
    onSubmit: async () => {
      const network = { ...(p?.network_config || {}) };
      const num = (el) => (el.value === '' ? null : Number(el.value));
      network.base_url = base.value.trim() || null;
      network.default_request_timeout_in_seconds = num(timeout);
      network.max_retries = num(retries);
      if (p) {
        await put(`/providers/${seg(p.name)}`, { network_config: network });
        toast(`Provider ${p.name} saved`);
      } else {
        const keys = keyValue.value.trim() ? [{ name: 'default', value: keyValue.value.trim(), weight: 1 }] : [];
        await post('/providers', { provider: name.value.trim(), keys, network_config: network });
        toast(`Provider ${name.value.trim()} added`);
      }
      refresh();
    },
  });
}

async function editKey(provider, k, refresh) {
  const name = input('name', k?.name || '', { required: true, placeholder: 'primary' });
  const value = input('value', k && k.value.startsWith('env.') ? k.value : '', {
    type: k && k.value.startsWith('env.') ? 'text' : 'password',
    placeholder: k ? `unchanged (${k.value})` : 'sk-… or env.OPENAI_API_KEY',
  });
  const weight = input('weight', k ? k.weight ?? '' : 1, { type: 'number', min: '0', step: 'any', placeholder: '1' });
  const models = input('models', (k?.models || []).join(', '), { placeholder: k?.models?.length === 0 ? 'none' : 'all models' });
  await formDialog({
    title: k ? `Edit key ${k.name || k.key_id}` : `Add a key to ${provider}`,
    body: [
      field('Name', name, null, 'name'),
      field('Value', value, 'The secret, or env.NAME for an environment variable. It is never shown again.', 'value'),
      h('div', { class: 'grid-2' },
        field('Weight', weight, 'Share of traffic among this provider’s keys.', 'weight'),
        field('Models', models, 'Comma-separated; empty means every model.', 'models')),
    ],
    onSubmit: async () => {
      // Only what the form edits is sent: the server keeps every other field of the stored key
      // (its secrets included), and a field left as it was keeps its stored value.
      const unchanged = (el) => el.value === el.defaultValue;
      const body = { name: name.value.trim() };
      if (!k || !unchanged(weight)) body.weight = weight.value === '' ? null : Number(weight.value);
      if (!k || !unchanged(models)) body.models = listValue(models.value);
      if (value.value.trim() && (!k || !unchanged(value))) body.value = value.value.trim();
      if (k) await put(`/providers/${seg(provider)}/keys/${seg(k.key_id || k.name)}`, body);
      else await post(`/providers/${seg(provider)}/keys`, body);
      toast('Key saved');
      refresh();
    },
  });
}
