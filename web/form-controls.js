// The schema-to-form builder's DOM half: one control per input property, from the rules in
// schema-form.js. Each control shows a value, reads it back and shows its own error.

import { h, richText } from './dom.js';
import { controlKind, humanize, rangeHint, SAFE_LIMIT, simpleSchema } from './schema-form.js';

/** A field whose entry cannot be read (`field` is its name, or `json` for the JSON editor). */
export class FieldError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

/**
 * A control for one property: `{ name, element, wrapper, read, write, showError,
 * defaultValue }`. `read()` throws a FieldError for an entry it cannot read.
 */
export function controlFor(name, rawSchema, required, example) {
  const schema = simpleSchema(rawSchema);
  const id = `field-${name}`;
  const describedBy = `${id}-hint ${id}-error`;
  const common = { id, name, 'aria-describedby': describedBy };
  const hints = [];
  if (schema.description) hints.push(schema.description);
  let element;
  let read;
  let write;
  let kind = 'control';
  const shape = controlKind(schema, example);

  if (shape === 'enum') {
    element = h('select', common);
    if (!required && schema.default === undefined) element.append(h('option', { value: '', text: '—' }));
    for (const option of schema.enum) element.append(h('option', { value: JSON.stringify(option), text: String(option) }));
    read = () => (element.value === '' ? undefined : JSON.parse(element.value));
    write = (value) => {
      element.value = value === undefined ? '' : JSON.stringify(value);
    };
  } else if (shape === 'number') {
    const integer = schema.type === 'integer';
    element = h('input', {
      ...common,
      type: 'number',
      inputmode: integer ? 'numeric' : 'decimal',
      step: integer ? '1' : 'any',
      min: Math.abs(schema.minimum ?? SAFE_LIMIT) < SAFE_LIMIT ? schema.minimum : undefined,
      max: Math.abs(schema.maximum ?? SAFE_LIMIT) < SAFE_LIMIT ? schema.maximum : undefined,
    });
    const range = rangeHint(schema);
    if (range) hints.push(range);
    // An entry the browser cannot read as a number is sent as text, so the service names it.
    read = () => (element.value === '' ? (element.validity.badInput ? 'not a number' : undefined) : Number(element.value));
    write = (value) => {
      element.value = typeof value === 'number' ? String(value) : '';
    };
  } else if (shape === 'checkbox') {
    element = h('input', { ...common, type: 'checkbox' });
    kind = 'checkbox';
    read = () => element.checked;
    write = (value) => {
      element.checked = value === true;
    };
  } else if (shape === 'text' || shape === 'textarea') {
    element = shape === 'textarea'
      ? h('textarea', { ...common, rows: 4, spellcheck: 'false' })
      : h('input', { ...common, type: 'text', maxlength: schema.maxLength, autocomplete: 'off' });
    read = () => (element.value === '' && !required ? undefined : element.value);
    write = (value) => {
      element.value = typeof value === 'string' ? value : '';
    };
  } else if (shape === 'list') {
    const numeric = schema.items.type !== 'string';
    element = h('textarea', { ...common, rows: 4, spellcheck: 'false' });
    hints.push('one per line');
    read = () => {
      const lines = element.value.split('\n').filter((line) => line.trim() !== '');
      if (!lines.length && !required) return undefined;
      return numeric ? lines.map((line) => Number(line)) : lines;
    };
    write = (value) => {
      element.value = Array.isArray(value) ? value.join('\n') : '';
    };
  } else {
    element = h('textarea', { ...common, rows: 3, spellcheck: 'false', className: 'code' });
    hints.push('as JSON');
    read = () => {
      if (element.value.trim() === '') return undefined;
      try {
        return JSON.parse(element.value);
      } catch {
        throw new FieldError(name, 'Not valid JSON');
      }
    };
    write = (value) => {
      element.value = value === undefined ? '' : JSON.stringify(value);
    };
  }
  if (required && schema.default === undefined) hints.push('required');
  else if (!required && schema.default === undefined) hints.push('optional');

  const label = h('label', { for: id, text: humanize(name) });
  const hint = h('p', { className: 'hint', id: `${id}-hint` }, richText(hints.join(' · ')));
  const error = h('p', { className: 'field-error', id: `${id}-error`, hidden: true });
  const wrapper =
    kind === 'checkbox'
      ? h('div', { className: 'field checkbox-field', dataset: { field: name } }, h('div', { className: 'checkbox-row' }, element, label), error, hint)
      : h('div', { className: 'field', dataset: { field: name } }, label, element, error, hint);
  const showError = (message) => {
    error.textContent = message ?? '';
    error.hidden = !message;
    if (message) element.setAttribute('aria-invalid', 'true');
    else element.removeAttribute('aria-invalid');
  };
  element.addEventListener('input', () => showError(null));
  return { name, element, wrapper, read, write, showError, defaultValue: schema.default };
}
