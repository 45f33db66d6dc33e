// The task list as the page draws it: one row per task, newest first, redrawn once per
// animation frame for the tasks that changed; the status filter, and the rows' Cancel and
// Delete buttons.

import { $, h, showProblem } from './dom.js';
import { formatTime, noteOf, progressLabel, shortId, STATUS_LABELS, timing } from './format.js';
import { matchesFilter } from './task-list.js';
import { STATUSES, TERMINAL } from './task-state.js';

export class TaskListView {
  #list;
  #api;
  #clock;
  #listLimit;
  /** task_id → the parts of its row */
  #rows = new Map();
  /** Tasks whose rows need redrawing in the next frame. */
  #changed = new Set();
  /** Whether rows come or go in the next frame (otherwise only changed ones are updated). */
  #structureChanged = true;
  #renderScheduled = false;
  #statusFilter = 'all';

  /** Draws `list` (a TaskList); `api` cancels and deletes; `clock` is the server's clock. */
  constructor({ list, api, clock, listLimit }) {
    this.#list = list;
    this.#api = api;
    this.#clock = clock;
    this.#listLimit = listLimit;
    this.#buildStatusFilter();
    $('task-list').addEventListener('click', (event) => this.#onClick(event));
  }

  /** Redraws a task's row in the next frame; `structural` when the row comes or goes. */
  markChanged(taskId, structural) {
    this.#changed.add(taskId);
    if (structural) this.#structureChanged = true;
    this.#scheduleRender();
  }

  /** Redraws every row in the next frame: they may show an older state than the list. */
  redrawAll() {
    for (const taskId of this.#list.ids()) this.#changed.add(taskId);
    this.#structureChanged = true;
    this.#scheduleRender();
  }

  setBusy(busy) {
    $('task-list').setAttribute('aria-busy', String(busy));
  }

  showLoadProblem(message) {
    showProblem($('list-problem'), message);
  }

  /** Updates the elapsed times of the tasks still waiting or running. */
  tick() {
    if (document.hidden) return;
    for (const [taskId, parts] of this.#rows) {
      const task = this.#list.get(taskId)?.task;
      if (task && !TERMINAL.has(task.status)) this.#updateElapsed(parts, task);
    }
  }

  #scheduleRender() {
    if (this.#renderScheduled) return;
    this.#renderScheduled = true;
    requestAnimationFrame(() => this.#render());
  }

  #render() {
    this.#renderScheduled = false;
    const element = $('task-list');
    if (this.#structureChanged) {
      this.#structureChanged = false;
      for (const [taskId, parts] of this.#rows) {
        if (!this.#list.has(taskId)) {
          parts.row.remove();
          this.#rows.delete(taskId);
        }
      }
      let previous = null;
      for (const taskId of this.#list.idsNewestFirst()) {
        let parts = this.#rows.get(taskId);
        if (!parts) {
          parts = this.#createRow(taskId);
          this.#changed.add(taskId);
        }
        const expected = previous ? previous.nextSibling : element.firstChild;
        if (expected !== parts.row) element.insertBefore(parts.row, expected);
        previous = parts.row;
      }
    }
    for (const taskId of this.#changed) {
      const entry = this.#list.get(taskId);
      const parts = this.#rows.get(taskId);
      if (entry && parts) this.#updateRow(parts, entry.task);
    }
    this.#changed.clear();
    this.#renderSummary();
  }

  #renderSummary() {
    const counts = this.#list.counts();
    const size = this.#list.size;
    for (const input of document.querySelectorAll('#status-filter input')) {
      const count = input.value === 'all' ? size : counts[input.value];
      input.closest('label').querySelector('.count').textContent = String(count);
    }
    const filter = this.#statusFilter;
    const visible = this.#list.countShown(filter);
    const empty = $('empty');
    empty.hidden = visible > 0 || this.#list.loading;
    if (size === 0) empty.textContent = 'No tasks yet. Start one with the form.';
    else empty.textContent = `No ${STATUS_LABELS[filter]?.toLowerCase() ?? ''} tasks.`;
    $('task-list').hidden = visible === 0;
    document.querySelector('.task-columns').hidden = visible === 0;
    const note = $('list-note');
    note.hidden = !this.#list.truncated;
    note.textContent = `Showing the ${this.#listLimit} newest tasks and those started since.`;
  }

  #createRow(taskId) {
    const parts = {};
    parts.type = h('span', { className: 'task-type' });
    parts.id = h('code', { className: 'task-id', title: taskId, text: shortId(taskId) });
    parts.badge = h('span', { className: 'badge' });
    parts.progress = h('progress', { max: 1 });
    parts.progressText = h('span', { className: 'progress-text' });
    parts.elapsed = h('span', { className: 'elapsed' });
    parts.note = h('p', { className: 'task-note' });
    parts.problem = h('p', { className: 'row-problem', role: 'alert', hidden: true });
    parts.cancel = h('button', { type: 'button', className: 'button small', dataset: { action: 'cancel' }, text: 'Cancel' });
    parts.remove = h('button', { type: 'button', className: 'button small subtle', dataset: { action: 'delete' }, text: 'Delete' });
    parts.row = h(
      'li',
      { className: 'task', dataset: { taskId } },
      h('div', { className: 'task-name' }, h('div', { className: 'task-title' }, parts.type, parts.id)),
      h('div', { className: 'task-status' }, parts.badge),
      h('div', { className: 'task-progress' }, parts.progress, h('div', { className: 'progress-line' }, parts.progressText, parts.elapsed)),
      h('div', { className: 'task-actions' }, parts.cancel, parts.remove),
      parts.note,
      parts.problem,
    );
    this.#rows.set(taskId, parts);
    return parts;
  }

  #updateElapsed(parts, task) {
    const { text, label } = timing(task, this.#clock.now());
    parts.elapsed.textContent = text;
    parts.elapsed.title = `${label}. Created ${formatTime(task.created_at)}; started ${formatTime(task.started_at)}; ended ${formatTime(task.finished_at)}`;
  }

  #updateRow(parts, task) {
    const label = `${task.type} ${shortId(task.task_id)}`;
    parts.row.dataset.status = task.status;
    parts.type.textContent = task.type;
    parts.badge.textContent = STATUS_LABELS[task.status] ?? task.status;
    parts.badge.dataset.status = task.status;

    const value = task.status === 'completed' ? 1 : task.progress?.value;
    if (task.status === 'running' && (value === null || value === undefined)) parts.progress.removeAttribute('value');
    else parts.progress.value = typeof value === 'number' ? value : 0;
    parts.progress.setAttribute('aria-label', `Progress of ${label}`);
    parts.progressText.textContent = progressLabel(task);
    parts.progressText.title = parts.progressText.textContent;

    const note = noteOf(task);
    parts.note.textContent = note.text;
    parts.note.title = note.text;
    parts.note.dataset.kind = note.kind;
    parts.note.hidden = !note.text;

    this.#updateElapsed(parts, task);
    const ended = TERMINAL.has(task.status);
    const cancelHadFocus = document.activeElement === parts.cancel;
    parts.cancel.hidden = ended;
    parts.remove.hidden = !ended;
    // Keep the keyboard where it was: the button that replaces Cancel takes its focus.
    if (ended && cancelHadFocus) parts.remove.focus();
    parts.cancel.setAttribute('aria-label', `Cancel ${label}`);
    parts.remove.setAttribute('aria-label', `Delete ${label}`);
    parts.row.hidden = !matchesFilter(task.status, this.#statusFilter);
  }

  #buildStatusFilter() {
    const fieldset = $('status-filter');
    for (const status of ['all', ...STATUSES]) {
      fieldset.append(
        h(
          'label',
          {},
          h('input', { type: 'radio', name: 'status', value: status, checked: status === 'all' }),
          h('span', {}, status === 'all' ? 'All' : STATUS_LABELS[status], ' ', h('span', { className: 'count', text: '0' })),
        ),
      );
    }
    fieldset.addEventListener('change', (event) => {
      this.#statusFilter = event.target.value;
      for (const [taskId, parts] of this.#rows) {
        const task = this.#list.get(taskId)?.task;
        if (task) parts.row.hidden = !matchesFilter(task.status, this.#statusFilter);
      }
      this.#renderSummary();
    });
  }

  /** Cancel and Delete: the stream shows a cancel's outcome; a delete's row goes at once. */
  async #onClick(event) {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const row = button.closest('li.task');
    const taskId = row.dataset.taskId;
    const parts = this.#rows.get(taskId);
    const action = button.dataset.action;
    button.disabled = true;
    parts.problem.hidden = true;
    try {
      if (action === 'cancel') {
        await this.#api.json(`api/tasks/${encodeURIComponent(taskId)}/cancel`, { method: 'POST' });
      } else {
        await this.#api.json(`api/tasks/${encodeURIComponent(taskId)}`, { method: 'DELETE' });
        if (row.contains(document.activeElement)) $('tasks-title').focus();
        this.#list.forget(taskId);
        this.markChanged(taskId, true);
      }
    } catch (error) {
      if (action === 'delete' && error.status === 404) {
        this.#list.forget(taskId); // already gone
        this.markChanged(taskId, true);
        return;
      }
      parts.problem.textContent = `Could not ${action}: ${error.message}`;
      parts.problem.hidden = false;
    } finally {
      button.disabled = false;
    }
  }
}
