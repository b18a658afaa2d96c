// Small DOM helpers: an element builder, dialogs, toasts and form fields with their errors.

let nextId = 0;

/** A fresh id for label/input pairs. */
export function uid(prefix = 'f') {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/**
 * Builds an element: `h('button', {class: 'primary', onclick}, 'Save')`.
 * Attributes starting with `on` become listeners; `null`/`false` attributes are skipped;
 * children may be strings, nodes, arrays or null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value' && 'value' in el) {
      // For inputs the attribute too, so `defaultValue` tells whether the user changed it.
      if (el.tagName === 'INPUT') el.setAttribute('value', String(value));
      el.value = value;
    } else if (key === 'checked' || key === 'selected' || key === 'disabled' || key === 'hidden') {
      el[key] = Boolean(value);
    } else if (key === 'style' && typeof value === 'object') {
      Object.assign(el.style, value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A short message in the corner; errors stay until dismissed. */
export function toast(message, kind = 'ok') {
  const box = document.getElementById('toasts');
  const close = h('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss' }, '×');
  const item = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : null }, h('span', {}, message), close);
  close.addEventListener('click', () => item.remove());
  box.append(item);
  if (kind !== 'error') setTimeout(() => item.remove(), 4000);
}

/**
 * A labelled field. `input` is an element; returns the wrapper, which holds an error slot
 * that `showErrors` fills.
 */
export function field(label, input, hint, name) {
  if (!input.id) input.id = uid();
  const error = h('p', { class: 'field-error', id: `${input.id}-err`, hidden: true });
  input.setAttribute('aria-describedby', error.id);
  const wrap = h('div', { class: 'field', dataset: { field: name || input.name || '' } },
    h('label', { for: input.id }, label),
    input,
    hint ? h('p', { class: 'hint' }, hint) : null,
    error);
  return wrap;
}

/** A text input. */
export function input(name, value = '', attrs = {}) {
  return h('input', { name, value: value ?? '', type: 'text', autocomplete: 'off', ...attrs });
}

/** A select with `[value, label]` options. */
export function select(name, options, value, attrs = {}) {
  return h('select', { name, ...attrs },
    options.map(([v, label]) => h('option', { value: v, selected: String(v) === String(value ?? '') }, label)));
}

/** A checkbox with its label after it. */
export function checkbox(name, label, checked) {
  const box = h('input', { type: 'checkbox', name, id: uid(), checked: Boolean(checked) });
  return h('div', { class: 'field check', dataset: { field: name } }, box, h('label', { for: box.id }, label),
    h('p', { class: 'field-error', hidden: true }));
}

/**
 * Shows an API error next to the field it names, or in the form's action row. Fields are
 * matched by the names in `data-field`, and by words of the message (`cel_expression`,
 * `team`, `customer`, ...).
 */
export function showErrors(form, error) {
  clearErrors(form);
  const message = error?.message || String(error);
  const fields = [...form.querySelectorAll('[data-field]')].filter((f) => f.dataset.field);
  const lower = message.toLowerCase();
  const named = error?.field
    ? fields.filter((f) => f.dataset.field === error.field)
    : mostSpecific(fields, lower);
  const targets = named.length ? named : [form.querySelector('.form-error-slot')].filter(Boolean);
  for (const target of targets) {
    const slot = target.classList.contains('form-error-slot') ? target : target.querySelector('.field-error');
    if (!slot) continue;
    slot.textContent = message;
    slot.hidden = false;
    target.classList.add('invalid');
  }
  const focusable = targets[0]?.querySelector('input, select, textarea');
  if (focusable) focusable.focus();
  if (!targets.length) toast(message, 'error');
}

/**
 * The fields a message is about: those whose names it mentions as whole words, where a field
 * path (`network_config`, `token_reset_duration`) outranks a plain word (`provider`, `team`).
 */
function mostSpecific(fields, message) {
  let best = 0;
  let chosen = [];
  for (const f of fields) {
    const score = Math.max(0, ...f.dataset.field.split(' ')
      .filter((w) => mentions(message, w))
      .map((w) => (w.includes('_') ? 2 : 1)));
    if (score > best) {
      best = score;
      chosen = [f];
    } else if (score && score === best) {
      chosen.push(f);
    }
  }
  return chosen;
}

function mentions(message, word) {
  const w = word.toLowerCase().replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  if (new RegExp(`(^|[^a-z0-9_])${w}([^a-z0-9_]|$)`).test(message)) return true;
  const spaced = w.replace(/_/g, ' ');
  return spaced !== w && new RegExp(`\\b${spaced}s?\\b`).test(message);
}

/** Hides every error shown by `showErrors`. */
export function clearErrors(form) {
  for (const slot of form.querySelectorAll('.field-error, .form-error-slot')) {
    slot.hidden = true;
    slot.textContent = '';
  }
  for (const f of form.querySelectorAll('.invalid')) f.classList.remove('invalid');
}

/**
 * A modal dialog with a form. `onSubmit(form)` returns a promise; a rejection is shown next to
 * its field and keeps the dialog open; success closes it. Resolves with the submit result, or
 * undefined when cancelled.
 */
export function formDialog({ title, body, submitLabel = 'Save', onSubmit, wide = false }) {
  return new Promise((resolve) => {
    const errorSlot = h('p', { class: 'form-error-slot', role: 'alert', hidden: true });
    const submit = h('button', { type: 'submit', class: 'primary' }, submitLabel);
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const form = h('form', { class: 'dialog-form', novalidate: true },
      h('header', {}, h('h2', {}, title)),
      h('div', { class: 'dialog-body' }, body),
      h('footer', {}, errorSlot, cancel, submit));
    const dialog = h('dialog', { class: wide ? 'wide' : '' }, form);
    let result;
    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => { dialog.remove(); resolve(result); });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      submit.disabled = true;
      try {
        result = await onSubmit(form);
        if (result !== false) dialog.close();
      } catch (error) {
        showErrors(form, error);
      } finally {
        submit.disabled = false;
      }
    });
    document.body.append(dialog);
    dialog.showModal();
    const first = form.querySelector('input:not([type=hidden]), select, textarea');
    if (first) first.focus();
  });
}

/** A yes/no question; resolves true when confirmed. */
export function confirmDialog(title, text, confirmLabel = 'Delete', danger = true) {
  return new Promise((resolve) => {
    let answer = false;
    const yes = h('button', { type: 'button', class: danger ? 'danger' : 'primary' }, confirmLabel);
    const no = h('button', { type: 'button' }, 'Cancel');
    const dialog = h('dialog', { class: 'confirm' },
      h('header', {}, h('h2', {}, title)),
      h('div', { class: 'dialog-body' }, h('p', {}, text)),
      h('footer', {}, no, yes));
    yes.addEventListener('click', () => { answer = true; dialog.close(); });
    no.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => { dialog.remove(); resolve(answer); });
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}

/** A dialog that shows a secret once, with a copy button. */
export function secretDialog(title, text, secret) {
  return new Promise((resolve) => {
    const value = h('code', { class: 'secret', id: uid('secret') }, secret);
    const copy = h('button', { type: 'button', class: 'primary' }, 'Copy');
    const done = h('button', { type: 'button' }, 'Done');
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(secret);
        copy.textContent = 'Copied';
      } catch {
        const range = document.createRange();
        range.selectNodeContents(value);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        copy.textContent = 'Selected: press Ctrl+C';
      }
    });
    const dialog = h('dialog', { class: 'confirm' },
      h('header', {}, h('h2', {}, title)),
      h('div', { class: 'dialog-body' }, h('p', {}, text), h('div', { class: 'secret-row' }, value, copy)),
      h('footer', {}, done));
    done.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => { dialog.remove(); resolve(); });
    document.body.append(dialog);
    dialog.showModal();
    copy.focus();
  });
}

/** A page header with a title, a line of text and actions on the right. */
export function pageHeader(title, subtitle, ...actions) {
  return h('header', { class: 'page-head' },
    h('div', {}, h('h1', {}, title), subtitle ? h('p', { class: 'muted' }, subtitle) : null),
    h('div', { class: 'actions' }, actions));
}

/** A table: `columns` are `[label, row => cell]`. */
export function table(columns, rows, empty = 'Nothing here yet.', attrs = {}) {
  if (!rows.length) return h('div', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' }, h('table', attrs,
    h('thead', {}, h('tr', {}, columns.map(([label]) => h('th', { scope: 'col' }, label)))),
    h('tbody', {}, rows.map((row) => h('tr', {}, columns.map(([, cell]) => h('td', {}, cell(row))))))));
}

/** Reads a form's named inputs into an object (checkboxes as booleans). */
export function formValues(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name || el.closest('[data-skip]')) continue;
    out[el.name] = el.type === 'checkbox' ? el.checked : el.value.trim();
  }
  return out;
}

/**
 * Whether a page may refresh itself now: no dialog is open and the keyboard focus is not on
 * something inside it (a refresh would take the focus away).
 */
export function idle(main) {
  const active = document.activeElement;
  return !document.querySelector('dialog') && !(active && active !== main && main.contains(active));
}

/** A small button. */
export function button(label, onclick, cls = '', attrs = {}) {
  return h('button', { type: 'button', class: cls, onclick, ...attrs }, label);
}
