// The start form: a task type, its input as fields built from its JSON Schema or as JSON, and
// the API's field errors shown next to what they name.

import { isUnauthorized } from './api-client.js';
import { $, h, richText, showProblem } from './dom.js';
import { controlFor, FieldError } from './form-controls.js';
import { shortId } from './format.js';
import { placeErrors } from './schema-form.js';

const inputMode = () => document.querySelector('input[name="mode"]:checked').value;

export class StartForm {
  #api;
  #onStarted;
  /** The task types of /api/task-types; empty until they load. */
  #taskTypes = [];
  /** property name → its control, for the task type shown */
  #controls = new Map();
  #loading = null;

  /** `onStarted(task)` is told of each task the form starts, with its snapshot. */
  constructor({ api, onStarted }) {
    this.#api = api;
    this.#onStarted = onStarted;
    $('task-type').addEventListener('change', () => {
      this.#clearErrors();
      $('form-status').textContent = '';
      this.#renderFields();
    });
    document.querySelector('.mode-switch').addEventListener('change', (event) => this.#switchMode(event.target.value));
    $('reset-json').addEventListener('click', () => {
      $('input-json').value = JSON.stringify(this.#currentType()?.example ?? {}, null, 2);
      this.#showJsonErrors([]);
    });
    $('input-json').addEventListener('input', () => this.#showJsonErrors([]));
    $('start-form').addEventListener('submit', (event) => this.#start(event));
  }

  get hasTaskTypes() {
    return this.#taskTypes.length > 0;
  }

  /** Loads the task types, once at a time. */
  loadTaskTypes() {
    this.#loading ??= this.#fetchTaskTypes().finally(() => {
      this.#loading = null;
    });
    return this.#loading;
  }

  async #fetchTaskTypes() {
    try {
      const { task_types: list } = await this.#api.json('api/task-types');
      this.#taskTypes = list;
    } catch (error) {
      if (!isUnauthorized(error)) showProblem($('form-problem'), `Could not load the task types: ${error.message}`);
      return;
    }
    const select = $('task-type');
    select.replaceChildren(...this.#taskTypes.map((taskType) => h('option', { value: taskType.type, text: taskType.type })));
    select.disabled = this.#taskTypes.length === 0;
    $('start-button').disabled = this.#taskTypes.length === 0;
    this.#clearErrors();
    this.#renderFields();
  }

  #currentType() {
    return this.#taskTypes.find((taskType) => taskType.type === $('task-type').value);
  }

  #renderFields() {
    const taskType = this.#currentType();
    const container = $('input-fields');
    container.querySelectorAll('.field, .no-fields').forEach((element) => element.remove());
    this.#controls = new Map();
    $('task-type-description').replaceChildren(richText(taskType?.description ?? ''));
    if (!taskType) return;
    const schema = taskType.input_schema ?? {};
    const required = new Set(schema.required ?? []);
    const properties = Object.entries(schema.properties ?? {});
    const example = taskType.example && typeof taskType.example === 'object' ? taskType.example : {};
    for (const [name, property] of properties) {
      const control = controlFor(name, property, required.has(name), example[name]);
      control.write(example[name] !== undefined ? example[name] : control.defaultValue);
      this.#controls.set(name, control);
      container.append(control.wrapper);
    }
    if (!properties.length) container.append(h('p', { className: 'no-fields hint', text: 'This task type takes no input.' }));
    $('input-json').value = JSON.stringify(taskType.example ?? {}, null, 2);
  }

  /** The input from the fields; throws FieldError for a field that cannot be read. */
  #inputFromFields() {
    const input = {};
    for (const [name, control] of this.#controls) {
      const value = control.read();
      if (value !== undefined) input[name] = value;
    }
    return input;
  }

  #inputFromJson() {
    const text = $('input-json').value.trim();
    if (text === '') return {};
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new FieldError('json', `Not valid JSON: ${error.message}`);
    }
  }

  #switchMode(mode) {
    this.#clearErrors();
    try {
      if (mode === 'json') {
        $('input-json').value = JSON.stringify(this.#inputFromFields(), null, 2);
      } else {
        const input = this.#inputFromJson();
        if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new FieldError('json', 'The input must be a JSON object');
        for (const [name, control] of this.#controls) control.write(input[name]);
      }
    } catch (error) {
      // Stay where the error is, so it can be fixed.
      const stay = mode === 'json' ? 'fields' : 'json';
      document.querySelector(`input[name="mode"][value="${stay}"]`).checked = true;
      this.#showInputError(error);
      return;
    }
    $('input-fields').hidden = mode !== 'fields';
    $('json-editor').hidden = mode !== 'json';
  }

  #showFieldError(name, message) {
    const control = this.#controls.get(name);
    if (!control) return false;
    control.showError(message);
    return true;
  }

  #showJsonErrors(messages) {
    const element = $('input-json-error');
    element.replaceChildren(...messages.map((message) => h('p', { text: message })));
    element.hidden = messages.length === 0;
    if (messages.length) $('input-json').setAttribute('aria-invalid', 'true');
    else $('input-json').removeAttribute('aria-invalid');
  }

  #showTypeError(message) {
    $('task-type-error').textContent = message ?? '';
    $('task-type-error').hidden = !message;
  }

  #clearErrors() {
    for (const control of this.#controls.values()) control.showError(null);
    this.#showJsonErrors([]);
    this.#showTypeError(null);
    showProblem($('form-problem'), null);
  }

  #showInputError(error) {
    if (error.field === 'json') this.#showJsonErrors([error.message]);
    else if (!this.#showFieldError(error.field, error.message)) showProblem($('form-problem'), error.message);
  }

  /** A refused create: each field error next to what it names, the rest in the form's problem box. */
  #showProblemOfCreate(problem) {
    const { placed, unplaced } = placeErrors(problem.errors, {
      jsonMode: inputMode() === 'json',
      hasField: (name) => this.#controls.has(name),
    });
    const jsonMessages = [];
    for (const { at, field, message } of placed) {
      if (at === 'type') this.#showTypeError(message);
      else if (at === 'json') jsonMessages.push(message);
      else this.#showFieldError(field, message);
    }
    this.#showJsonErrors(jsonMessages);
    showProblem($('form-problem'), problem.message, unplaced, placed.length ? 'Fix the marked fields and start again.' : '');
    const first = placed[0];
    if (first?.at === 'type') $('task-type').focus();
    else if (first?.at === 'json') $('input-json').focus();
    else if (first) this.#controls.get(first.field).element.focus();
  }

  async #start(event) {
    event.preventDefault();
    const taskType = this.#currentType();
    if (!taskType) return;
    this.#clearErrors();
    $('form-status').textContent = '';
    let input;
    try {
      input = inputMode() === 'json' ? this.#inputFromJson() : this.#inputFromFields();
    } catch (error) {
      this.#showInputError(error);
      return;
    }
    const button = $('start-button');
    button.disabled = true;
    try {
      const task = await this.#api.json('api/tasks', { method: 'POST', body: { type: taskType.type, input } });
      this.#onStarted(task);
      $('form-status').textContent = `Started ${task.type} ${shortId(task.task_id)}`;
    } catch (error) {
      if (!isUnauthorized(error)) this.#showProblemOfCreate(error);
    } finally {
      button.disabled = false;
    }
  }
}
