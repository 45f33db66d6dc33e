// The schema-to-form builder's pure half: from a property's JSON Schema (as /api/task-types
// gives it) to which control edits it, its label and its hints, and where the API's field
// errors go. No DOM, so it is tested without a browser; form-controls.js and start-form.js
// build the elements.

const formatNumber = (value) => (Number.isFinite(value) ? value.toLocaleString('en-US') : String(value));

const ACRONYMS = new Set(['csv', 'json', 'id', 'url']);
export function humanize(name) {
  const words = name.split('_');
  const unit = words.at(-1) === 'ms' && words.length > 1 ? words.pop() : null;
  const text = words
    .map((word, index) => (ACRONYMS.has(word) ? word.toUpperCase() : index === 0 ? word[0].toUpperCase() + word.slice(1) : word))
    .join(' ');
  return unit ? `${text} (${unit})` : text;
}

/** The schema of a property with `null` alternatives stripped. */
export function simpleSchema(schema) {
  if (Array.isArray(schema.anyOf)) {
    const branches = schema.anyOf.filter((branch) => branch.type !== 'null');
    if (branches.length === 1) return { ...schema, ...branches[0], anyOf: undefined };
  }
  if (Array.isArray(schema.type)) {
    const types = schema.type.filter((type) => type !== 'null');
    if (types.length === 1) return { ...schema, type: types[0] };
  }
  return schema;
}

export const SAFE_LIMIT = Number.MAX_SAFE_INTEGER;
export function rangeHint(schema) {
  const min = schema.minimum ?? (schema.exclusiveMinimum !== undefined ? `>${schema.exclusiveMinimum}` : undefined);
  const max = schema.maximum ?? (schema.exclusiveMaximum !== undefined ? `<${schema.exclusiveMaximum}` : undefined);
  const hasMin = min !== undefined && Math.abs(Number(min)) < SAFE_LIMIT;
  const hasMax = max !== undefined && Math.abs(Number(max)) < SAFE_LIMIT;
  if (hasMin && hasMax) return `${formatNumber(min)} – ${formatNumber(max)}`;
  if (hasMin) return `at least ${formatNumber(min)}`;
  if (hasMax) return `at most ${formatNumber(max)}`;
  return '';
}

/**
 * Which control edits a property: `enum` (a select), `number`, `checkbox`, `text`, `textarea`
 * (a string that is long or whose example has several lines), `list` (an array of strings or
 * numbers, one per line) or `json` (anything else, typed as JSON).
 */
export function controlKind(rawSchema, example) {
  const schema = simpleSchema(rawSchema);
  if (Array.isArray(schema.enum)) return 'enum';
  if (schema.type === 'integer' || schema.type === 'number') return 'number';
  if (schema.type === 'boolean') return 'checkbox';
  if (schema.type === 'string') {
    const multiline = (typeof example === 'string' && example.includes('\n')) || (schema.maxLength ?? 0) > 200;
    return multiline ? 'textarea' : 'text';
  }
  if (schema.type === 'array' && ['string', 'number', 'integer'].includes(schema.items?.type)) return 'list';
  return 'json';
}

/** `/input/steps/0` → `steps`: the input property a problem's pointer names, if any. */
export function fieldOfPointer(pointer) {
  const match = /^\/input\/([^/]+)/.exec(pointer ?? '');
  return match ? match[1].replaceAll('~1', '/').replaceAll('~0', '~') : null;
}

/**
 * Where each of a problem's `errors` shows, in their order: next to the task type (`type`),
 * under the JSON editor when it is in use (`json`, with the pointer in the message), next to
 * a field the form has (`field`, per `hasField(name)`); the rest are `unplaced` messages.
 */
export function placeErrors(errors, { jsonMode, hasField }) {
  const placed = [];
  const unplaced = [];
  for (const { pointer, detail } of errors) {
    const field = fieldOfPointer(pointer);
    if (pointer === '/type') placed.push({ at: 'type', message: detail });
    else if (jsonMode && pointer?.startsWith('/input')) {
      placed.push({ at: 'json', message: `${pointer.slice('/input/'.length) || 'input'}: ${detail}` });
    } else if (field && hasField(field)) placed.push({ at: 'field', field, message: detail });
    else unplaced.push(`${pointer || 'request'}: ${detail}`);
  }
  return { placed, unplaced };
}
