// The taskstream dashboard: one EventSource on /api/events keeps a list of tasks up to date.
// When the service has API keys, the page asks for one, keeps it for the browser session
// (sessionStorage) and opens its stream with a stream token, since EventSource sends no headers.

import { applyTaskEvent, entryOf, SEQ_UNKNOWN, STATUSES, TERMINAL } from './task-state.js';
import { controlKind, humanize, rangeHint, simpleSchema, SAFE_LIMIT } from './schema-form.js';

const LIST_LIMIT = 200;
const TASK_EVENTS = [
  'task_created',
  'task_started',
  'progress_update',
  'task_completed',
  'task_failed',
  'task_cancelled',
  'task_removed',
];
const STATUS_LABELS = {
  queued: 'Queued',
  running: 'Running',
  completed: 'Completed',
  failed: 'Failed',
  cancelled: 'Cancelled',
};
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 15000;
/** Where the API key is kept: for this browser session only, shared with /docs. */
const KEY_STORAGE = 'taskstream.api-key';
/** A stream token is renewed once this share of its lifetime has passed. */
const TOKEN_RENEW_AT = 0.8;
const TOKEN_RENEW_MIN_MS = 1000;
const TOKEN_RENEW_RETRY_MS = 30000;
const CLOCK_TOLERANCE_MS = 2000;
/** setTimeout cannot wait longer than 2^31 - 1 ms. */
const MAX_TIMER_MS = 2147483647;

const $ = (id) => document.getElementById(id);

/** Creates an element; text only ever goes in through textContent. */
function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'className') element.className = value;
    else if (key === 'text') element.textContent = value;
    else if (key === 'dataset') Object.assign(element.dataset, value);
    else if (key in element && typeof value !== 'string') element[key] = value;
    else element.setAttribute(key, value === true ? '' : String(value));
  }
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

/** Text with `code` spans, as task type descriptions write them. */
function richText(text) {
  const fragment = document.createDocumentFragment();
  String(text)
    .split('`')
    .forEach((part, index) => fragment.append(index % 2 ? h('code', { text: part }) : part));
  return fragment;
}

// ---------------------------------------------------------------------------------------
// Formatting

function formatDuration(ms, { precise = false } = {}) {
  const seconds = Math.max(0, ms) / 1000;
  if (seconds < 1 && precise) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 10 && precise) return `${seconds.toFixed(1)} s`;
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} m ${String(Math.floor(seconds % 60)).padStart(2, '0')} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} m`;
}

// A UUIDv7 starts with its creation time, shared by tasks created together: its random end
// tells them apart.
const shortId = (taskId) => taskId.slice(-8);
const percent = (value) => `${Math.floor(value * 100)} %`;
const formatTime = (iso) => (iso ? new Date(iso).toLocaleString() : '—');

/**
 * The server's clock minus ours, so elapsed times agree with the server's timestamps. Each
 * event gives a lower bound (it was sent before it arrived, and replayed events are older
 * still), so the estimate is the largest sample of the last second.
 */
let clockSkewMs = 0;
let skewSample = -Infinity;
const serverNow = () => Date.now() + clockSkewMs;
function sampleClockSkew(timestamp) {
  const sample = Date.parse(timestamp) - Date.now();
  if (Number.isFinite(sample) && sample > skewSample) skewSample = sample;
}
function updateClockSkew() {
  if (skewSample !== -Infinity) clockSkewMs = skewSample;
  skewSample = -Infinity;
}

// ---------------------------------------------------------------------------------------
// The API key

function readKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || null;
  } catch {
    return null; // storage disabled: the key lasts as long as the page
  }
}

function storeKey(key) {
  try {
    if (key === null) sessionStorage.removeItem(KEY_STORAGE);
    else sessionStorage.setItem(KEY_STORAGE, key);
  } catch {
    // storage disabled: see readKey
  }
}

/** The key sent as `Authorization: Bearer`, or null: the service needs none, or none is known yet. */
let apiKey = readKey();

// ---------------------------------------------------------------------------------------
// Talking to the API

class Problem extends Error {
  constructor(body, status) {
    super(body?.detail || body?.title || `The service answered ${status}`);
    this.status = status;
    this.errors = Array.isArray(body?.errors) ? body.errors : [];
  }
}

/**
 * Sends a request with the key in use (or `key`) and answers `{ json, response }`; throws a
 * Problem for an error status. A 401 to the key in use asks for another; a 401 to any other
 * key (one being tried, or one replaced meanwhile) is left to the caller.
 */
async function request(path, { method = 'GET', body, key = apiKey } = {}) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (key) headers.authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new Problem({ detail: 'Could not reach the service. Is it running?' }, 0);
  }
  if (response.status === 204) return { json: null, response };
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: reported below by status
  }
  if (!response.ok) {
    if (response.status === 401 && key === apiKey) {
      askForKey(key ? 'The service no longer accepts the saved key. Enter a key to go on.' : null);
    }
    throw new Problem(json, response.status);
  }
  return { json, response };
}

async function api(path, options) {
  return (await request(path, options)).json;
}

/** A 401: the key form is showing, so the page says nothing more about it. */
const isUnauthorized = (error) => error?.status === 401;

// ---------------------------------------------------------------------------------------
// Task state
//
// Invariant: `tasks` holds what the page shows. Each entry keeps the task's snapshot and the
// seq of the last event applied to it; an event with a seq at or below it is a duplicate.

/** task_id → { task, lastSeq } */
let tasks = new Map();
/** Ids of tasks we saw go, so a late answer cannot bring one back. */
const removedIds = new Set();
/** Stream events that arrive while the list loads; applied once it has. */
let pendingEvents = null;
let loadGeneration = 0;
let listTruncated = false;

function forget(taskId) {
  tasks.delete(taskId);
  removedIds.add(taskId);
  if (removedIds.size > 5000) removedIds.delete(removedIds.values().next().value);
}

/** Adds a task from a snapshot unless the page already has it (it then knows better). */
function insertSnapshot(task, lastSeq = SEQ_UNKNOWN) {
  if (tasks.has(task.task_id) || removedIds.has(task.task_id)) return false;
  tasks.set(task.task_id, entryOf(task, lastSeq));
  return true;
}

/** Applies one stream event: task_created and task_removed here, the rest by applyTaskEvent. */
function applyEvent(event) {
  const { event_type: type, task_id: taskId, data } = event;
  if (type === 'task_created') {
    if (insertSnapshot(data.task, 0)) markChanged(taskId, true);
    return;
  }
  if (type === 'task_removed') {
    if (tasks.has(taskId)) markChanged(taskId, true);
    forget(taskId);
    return;
  }
  const entry = tasks.get(taskId);
  // Not on the page: older than the newest LIST_LIMIT tasks when the list loaded.
  if (!entry) return;
  if (applyTaskEvent(entry, event)) markChanged(taskId, false);
}

function onStreamEvent(message) {
  let event;
  try {
    event = JSON.parse(message.data);
  } catch {
    return;
  }
  sampleClockSkew(event.timestamp);
  if (message.lastEventId) lastEventId = message.lastEventId;
  if (pendingEvents) pendingEvents.push(event);
  else applyEvent(event);
}

/** Loads the newest tasks; events that arrive meanwhile are applied on top, in order. */
async function loadTasks() {
  const generation = ++loadGeneration;
  pendingEvents ??= [];
  $('task-list').setAttribute('aria-busy', 'true');
  try {
    const page = await api(`api/tasks?limit=${LIST_LIMIT}`);
    if (generation !== loadGeneration) return; // a newer load replaces this one
    tasks = new Map();
    for (const task of page.tasks) insertSnapshot(task);
    listTruncated = page.next_cursor !== null;
    showProblem($('list-problem'), null);
  } catch (error) {
    if (generation !== loadGeneration) return;
    showProblem($('list-problem'), isUnauthorized(error) ? null : `Could not load the tasks: ${error.message}`);
  }
  const events = pendingEvents;
  pendingEvents = null;
  for (const event of events) applyEvent(event);
  // Rows still on the page may show an older state than the list: redraw them all.
  for (const taskId of tasks.keys()) changed.add(taskId);
  structureChanged = true;
  scheduleRender();
  $('task-list').setAttribute('aria-busy', 'false');
}

// ---------------------------------------------------------------------------------------
// The stream

let source = null;
let reconnectTimer = null;
let reconnectDelayMs = RECONNECT_MIN_MS;
let renewTimer = null;
/** Bumped by every connect and by askForKey: a token minted for an older one is not used. */
let connectGeneration = 0;
/** The `id:` of the last stream event: where a stream opened with a new token resumes. */
let lastEventId = '';

function setConnection(state, text) {
  const element = $('connection');
  element.dataset.state = state;
  document.body.dataset.connection = state;
  $('connection-text').textContent = text;
}

function stopStream() {
  connectGeneration++;
  clearTimeout(reconnectTimer);
  clearTimeout(renewTimer);
  source?.close();
  source = null;
}

/**
 * A stream token for every task of the key's owner, with the URL to open: the token's, plus
 * the resume point, as a new EventSource does not carry Last-Event-ID over from the last one.
 */
async function mintStreamToken() {
  const { json: minted, response } = await request('api/stream-tokens', { method: 'POST' });
  // expires_at is by the server's clock. Its Date header has whole seconds only, so it stands
  // in for ours only when ours is clearly wrong.
  const localNow = Date.now();
  const serverDate = Date.parse(response.headers.get('date'));
  const now = Number.isFinite(serverDate) && Math.abs(serverDate - localNow) > CLOCK_TOLERANCE_MS ? serverDate : localNow;
  const lifetimeMs = Date.parse(minted.expires_at) - now;
  const url = new URL(minted.stream_url, location.href);
  if (lastEventId) url.searchParams.set('last_event_id', lastEventId);
  return { url: url.pathname + url.search, lifetimeMs };
}

/** Opens a stream with a new token once most of this one's lifetime has passed. */
function scheduleRenewal(lifetimeMs) {
  clearTimeout(renewTimer);
  const delay = Math.min(MAX_TIMER_MS, Math.max(TOKEN_RENEW_MIN_MS, lifetimeMs * TOKEN_RENEW_AT));
  renewTimer = setTimeout(renewStream, delay);
}

/**
 * Replaces the open stream by one with a fresh token before the token runs out, so that
 * EventSource's own reconnects (which reuse its URL) keep working. It resumes after the last
 * event, with no gap and no duplicate, so the list needs no reload.
 */
async function renewStream() {
  const current = source;
  const generation = connectGeneration;
  let minted;
  try {
    minted = await mintStreamToken();
  } catch (error) {
    // A 401 has asked for a key already; otherwise this token still works for a while.
    if (!isUnauthorized(error) && generation === connectGeneration) renewTimer = setTimeout(renewStream, TOKEN_RENEW_RETRY_MS);
    return;
  }
  if (generation !== connectGeneration || current !== source) return; // replaced meanwhile
  openStream(minted.url, { reloadOnOpen: false });
  scheduleRenewal(minted.lifetimeMs);
}

/**
 * One EventSource for every task. It reconnects by itself after a network error (resuming
 * with Last-Event-ID); after an answer that ends it for good (such as a 503 while the service
 * restarts, or a 401 for an expired token) a new one is opened after a back-off, with a new
 * token when a key is in use. Every `open` reloads the list.
 */
async function connect() {
  stopStream();
  const generation = connectGeneration;
  setConnection('connecting', 'Connecting…');
  let url = 'api/events';
  if (apiKey) {
    let minted;
    try {
      minted = await mintStreamToken();
    } catch (error) {
      if (generation !== connectGeneration || isUnauthorized(error)) return; // askForKey took over
      retryLater();
      return;
    }
    if (generation !== connectGeneration) return;
    url = minted.url;
    scheduleRenewal(minted.lifetimeMs);
  }
  openStream(url);
}

function retryLater() {
  const delay = reconnectDelayMs;
  reconnectDelayMs = Math.min(reconnectDelayMs * 2, RECONNECT_MAX_MS);
  setConnection('offline', `Offline — retrying in ${Math.round(delay / 1000)} s`);
  reconnectTimer = setTimeout(connect, delay);
}

/** Opens `url` as the stream, closing the one before. `reloadOnOpen: false` skips its first reload. */
function openStream(url, { reloadOnOpen = true } = {}) {
  source?.close();
  const current = new EventSource(url);
  source = current;
  let reload = reloadOnOpen;
  current.addEventListener('open', () => {
    if (current !== source) return;
    reconnectDelayMs = RECONNECT_MIN_MS;
    setConnection('live', 'Live');
    if (reload) loadTasks();
    reload = true; // EventSource's own reconnects reload, as they always have
    if (!taskTypes.length) loadTaskTypes();
  });
  current.addEventListener('error', () => {
    if (current !== source) return;
    if (current.readyState === EventSource.CLOSED) {
      clearTimeout(renewTimer);
      // Without a key, a refused stream may mean the service now wants one: a request that
      // can say so (401) finds out, and asks for the key.
      if (!apiKey) request('api/tasks/stats').catch(() => {});
      retryLater();
    } else {
      setConnection('reconnecting', 'Reconnecting…');
    }
  });
  for (const type of TASK_EVENTS) current.addEventListener(type, onStreamEvent);
  // The resume point is older than the server keeps: start over from a fresh list.
  current.addEventListener('resync', () => current === source && loadTasks());
}

// ---------------------------------------------------------------------------------------
// Asking for the key

/**
 * Shows the key form instead of the dashboard, with `message` (why) if any. The stream stops
 * and the list empties: what the page showed belongs to the key being replaced.
 */
function askForKey(message) {
  apiKey = null;
  storeKey(null);
  stopStream();
  clearTasks();
  setConnection('locked', 'API key needed');
  $('sign-out').hidden = true;
  showKeyError(message);
  if ($('key-panel').hidden) {
    $('key-status').textContent = '';
    $('key-panel').hidden = false;
    $('dashboard').hidden = true;
    $('api-key').value = '';
    $('api-key').focus();
  }
}

function showKeyError(message) {
  $('key-error').textContent = message ?? '';
  $('key-error').hidden = !message;
  if (message) $('api-key').setAttribute('aria-invalid', 'true');
  else $('api-key').removeAttribute('aria-invalid');
}

/** Forgets every task shown, and any load or event still on its way for them. */
function clearTasks() {
  loadGeneration++;
  pendingEvents = null;
  lastEventId = '';
  tasks = new Map();
  removedIds.clear();
  listTruncated = false;
  structureChanged = true;
  scheduleRender();
}

/** Tries the key on a request that changes nothing, and keeps it if the service accepts it. */
async function submitKey(event) {
  event.preventDefault();
  const key = $('api-key').value.trim();
  if (!key) {
    showKeyError('Enter the API key.');
    $('api-key').focus();
    return;
  }
  const button = $('key-form').querySelector('button[type="submit"]');
  button.disabled = true;
  showKeyError(null);
  $('key-status').textContent = 'Checking the key…';
  try {
    await request('api/tasks/stats', { key });
  } catch (error) {
    $('key-status').textContent = '';
    button.disabled = false;
    showKeyError(
      isUnauthorized(error) ? 'The service did not accept this key. Check it and try again.' : `Could not check the key: ${error.message}`,
    );
    $('api-key').select();
    $('api-key').focus();
    return;
  }
  $('key-status').textContent = '';
  button.disabled = false;
  useKey(key);
}

function useKey(key) {
  apiKey = key;
  storeKey(key);
  $('api-key').value = '';
  showKeyError(null);
  $('key-panel').hidden = true;
  $('dashboard').hidden = false;
  $('sign-out').hidden = false;
  $('tasks-title').focus();
  connect();
  if (!taskTypes.length) loadTaskTypes();
}

// ---------------------------------------------------------------------------------------
// Rendering the list

const rows = new Map(); // task_id → row element parts
const changed = new Set();
let structureChanged = true;
let renderScheduled = false;
let statusFilter = 'all';

function markChanged(taskId, structural) {
  changed.add(taskId);
  if (structural) structureChanged = true;
  scheduleRender();
}

function scheduleRender() {
  if (renderScheduled) return;
  renderScheduled = true;
  requestAnimationFrame(render);
}

function createRow(taskId) {
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
  rows.set(taskId, parts);
  return parts;
}

/** Run time so far (running), in all (ended), or time waiting (queued). */
function timing(task) {
  const started = Date.parse(task.started_at);
  const finished = Date.parse(task.finished_at);
  if (task.status === 'queued') return { text: `waiting ${formatDuration(serverNow() - Date.parse(task.created_at))}`, label: 'Waiting' };
  if (task.status === 'running') return { text: formatDuration(serverNow() - started), label: 'Running for' };
  if (Number.isFinite(started) && Number.isFinite(finished)) return { text: formatDuration(finished - started, { precise: true }), label: 'Ran for' };
  return { text: '—', label: 'Never started' };
}

function updateElapsed(parts, task) {
  const { text, label } = timing(task);
  parts.elapsed.textContent = text;
  parts.elapsed.title = `${label}. Created ${formatTime(task.created_at)}; started ${formatTime(task.started_at)}; ended ${formatTime(task.finished_at)}`;
}

function noteOf(task) {
  if (task.status === 'failed' && task.error) return { text: `${task.error.message} (${task.error.code})`, kind: 'error' };
  if (task.status === 'cancelled' && task.cancel_reason === 'shutdown') return { text: 'Cancelled when the service stopped', kind: 'muted' };
  if (task.status === 'completed' && task.result !== undefined && task.result !== null) {
    return { text: `Result: ${JSON.stringify(task.result)}`, kind: 'result' };
  }
  if (task.max_attempts > 1 && task.attempt > 0) return { text: `Attempt ${task.attempt} of ${task.max_attempts}`, kind: 'muted' };
  return { text: '', kind: 'muted' };
}

function progressLabel(task) {
  const { value, text, eta_ms: etaMs } = task.progress ?? {};
  const parts = [];
  if (task.status === 'queued') return 'Waiting for a worker';
  if (task.status === 'completed') parts.push('100 %');
  else if (typeof value === 'number') parts.push(percent(value));
  if (text) parts.push(text);
  if (task.status === 'running' && typeof etaMs === 'number') parts.push(`${formatDuration(etaMs)} left`);
  if (!parts.length) return task.status === 'running' ? 'Working…' : '';
  return parts.join(' · ');
}

function updateRow(parts, task) {
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

  updateElapsed(parts, task);
  const ended = TERMINAL.has(task.status);
  const cancelHadFocus = document.activeElement === parts.cancel;
  parts.cancel.hidden = ended;
  parts.remove.hidden = !ended;
  // Keep the keyboard where it was: the button that replaces Cancel takes its focus.
  if (ended && cancelHadFocus) parts.remove.focus();
  parts.cancel.setAttribute('aria-label', `Cancel ${label}`);
  parts.remove.setAttribute('aria-label', `Delete ${label}`);
  parts.row.hidden = statusFilter !== 'all' && task.status !== statusFilter;
}

const newestFirst = (a, b) => (a < b ? 1 : a > b ? -1 : 0); // UUIDv7 ids sort by creation

function render() {
  renderScheduled = false;
  const list = $('task-list');
  if (structureChanged) {
    structureChanged = false;
    for (const [taskId, parts] of rows) {
      if (!tasks.has(taskId)) {
        parts.row.remove();
        rows.delete(taskId);
      }
    }
    let previous = null;
    for (const taskId of [...tasks.keys()].sort(newestFirst)) {
      let parts = rows.get(taskId);
      if (!parts) {
        parts = createRow(taskId);
        changed.add(taskId);
      }
      const expected = previous ? previous.nextSibling : list.firstChild;
      if (expected !== parts.row) list.insertBefore(parts.row, expected);
      previous = parts.row;
    }
  }
  for (const taskId of changed) {
    const entry = tasks.get(taskId);
    const parts = rows.get(taskId);
    if (entry && parts) updateRow(parts, entry.task);
  }
  changed.clear();
  renderSummary();
}

function renderSummary() {
  const counts = Object.fromEntries(STATUSES.map((status) => [status, 0]));
  for (const { task } of tasks.values()) counts[task.status] = (counts[task.status] ?? 0) + 1;
  for (const input of document.querySelectorAll('#status-filter input')) {
    const count = input.value === 'all' ? tasks.size : counts[input.value];
    input.closest('label').querySelector('.count').textContent = String(count);
  }
  const visible = statusFilter === 'all' ? tasks.size : counts[statusFilter];
  const empty = $('empty');
  empty.hidden = visible > 0 || pendingEvents !== null;
  if (tasks.size === 0) empty.textContent = 'No tasks yet. Start one with the form.';
  else empty.textContent = `No ${STATUS_LABELS[statusFilter]?.toLowerCase() ?? ''} tasks.`;
  $('task-list').hidden = visible === 0;
  document.querySelector('.task-columns').hidden = visible === 0;
  const note = $('list-note');
  note.hidden = !listTruncated;
  note.textContent = `Showing the ${LIST_LIMIT} newest tasks and those started since.`;
}

function buildStatusFilter() {
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
    statusFilter = event.target.value;
    for (const [taskId, parts] of rows) {
      const task = tasks.get(taskId)?.task;
      if (task) parts.row.hidden = statusFilter !== 'all' && task.status !== statusFilter;
    }
    renderSummary();
  });
}

// Elapsed times tick once a second for the tasks still waiting or running.
setInterval(() => {
  updateClockSkew();
  if (document.hidden) return;
  for (const [taskId, parts] of rows) {
    const task = tasks.get(taskId)?.task;
    if (task && !TERMINAL.has(task.status)) updateElapsed(parts, task);
  }
}, 1000);

// ---------------------------------------------------------------------------------------
// Cancel and delete

$('task-list').addEventListener('click', async (event) => {
  const button = event.target.closest('button[data-action]');
  if (!button) return;
  const row = button.closest('li.task');
  const taskId = row.dataset.taskId;
  const parts = rows.get(taskId);
  const action = button.dataset.action;
  button.disabled = true;
  parts.problem.hidden = true;
  try {
    if (action === 'cancel') {
      await api(`api/tasks/${encodeURIComponent(taskId)}/cancel`, { method: 'POST' });
    } else {
      await api(`api/tasks/${encodeURIComponent(taskId)}`, { method: 'DELETE' });
      if (row.contains(document.activeElement)) $('tasks-title').focus();
      forget(taskId);
      markChanged(taskId, true);
    }
  } catch (error) {
    if (action === 'delete' && error.status === 404) {
      forget(taskId); // already gone
      markChanged(taskId, true);
      return;
    }
    parts.problem.textContent = `Could not ${action}: ${error.message}`;
    parts.problem.hidden = false;
  } finally {
    button.disabled = false;
  }
});

// ---------------------------------------------------------------------------------------
// The start form

let taskTypes = [];
let fieldControls = new Map(); // property name → control description

/** A control for one property: how to show a value, and how to read it back. */
function controlFor(name, rawSchema, required, example) {
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
  element.addEventListener('input', () => showFieldError(name, null));
  return { name, element, wrapper, error, read, write, defaultValue: schema.default };
}

class FieldError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

const currentType = () => taskTypes.find((taskType) => taskType.type === $('task-type').value);
const inputMode = () => document.querySelector('input[name="mode"]:checked').value;

function renderFields() {
  const taskType = currentType();
  const container = $('input-fields');
  container.querySelectorAll('.field, .no-fields').forEach((element) => element.remove());
  fieldControls = new Map();
  $('task-type-description').replaceChildren(richText(taskType?.description ?? ''));
  if (!taskType) return;
  const schema = taskType.input_schema ?? {};
  const required = new Set(schema.required ?? []);
  const properties = Object.entries(schema.properties ?? {});
  const example = taskType.example && typeof taskType.example === 'object' ? taskType.example : {};
  for (const [name, property] of properties) {
    const control = controlFor(name, property, required.has(name), example[name]);
    control.write(example[name] !== undefined ? example[name] : control.defaultValue);
    fieldControls.set(name, control);
    container.append(control.wrapper);
  }
  if (!properties.length) container.append(h('p', { className: 'no-fields hint', text: 'This task type takes no input.' }));
  $('input-json').value = JSON.stringify(taskType.example ?? {}, null, 2);
}

/** The input from the fields; throws FieldError for a field that cannot be read. */
function inputFromFields() {
  const input = {};
  for (const [name, control] of fieldControls) {
    const value = control.read();
    if (value !== undefined) input[name] = value;
  }
  return input;
}

function inputFromJson() {
  const text = $('input-json').value.trim();
  if (text === '') return {};
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new FieldError('json', `Not valid JSON: ${error.message}`);
  }
}

function switchMode(mode) {
  clearFormErrors();
  try {
    if (mode === 'json') {
      $('input-json').value = JSON.stringify(inputFromFields(), null, 2);
    } else {
      const input = inputFromJson();
      if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new FieldError('json', 'The input must be a JSON object');
      for (const [name, control] of fieldControls) control.write(input[name]);
    }
  } catch (error) {
    // Stay where the error is, so it can be fixed.
    const stay = mode === 'json' ? 'fields' : 'json';
    document.querySelector(`input[name="mode"][value="${stay}"]`).checked = true;
    showInputError(error);
    return;
  }
  $('input-fields').hidden = mode !== 'fields';
  $('json-editor').hidden = mode !== 'json';
}

function showProblem(element, message, list = [], advice = '') {
  element.replaceChildren();
  element.hidden = !message;
  if (!message) return;
  element.append(h('p', { className: 'problem-title', text: message }));
  if (list.length) element.append(h('ul', {}, ...list.map((item) => h('li', { text: item }))));
  if (advice) element.append(h('p', { className: 'problem-advice', text: advice }));
}

function showFieldError(name, message) {
  const control = fieldControls.get(name);
  if (!control) return false;
  control.error.textContent = message ?? '';
  control.error.hidden = !message;
  if (message) control.element.setAttribute('aria-invalid', 'true');
  else control.element.removeAttribute('aria-invalid');
  return true;
}

function showJsonErrors(messages) {
  const element = $('input-json-error');
  element.replaceChildren(...messages.map((message) => h('p', { text: message })));
  element.hidden = messages.length === 0;
  if (messages.length) $('input-json').setAttribute('aria-invalid', 'true');
  else $('input-json').removeAttribute('aria-invalid');
}

function showTypeError(message) {
  $('task-type-error').textContent = message ?? '';
  $('task-type-error').hidden = !message;
}

function clearFormErrors() {
  for (const name of fieldControls.keys()) showFieldError(name, null);
  showJsonErrors([]);
  showTypeError(null);
  showProblem($('form-problem'), null);
}

function showInputError(error) {
  if (error.field === 'json') showJsonErrors([error.message]);
  else if (!showFieldError(error.field, error.message)) showProblem($('form-problem'), error.message);
}

/** `/input/steps/0` → `steps` */
function fieldOfPointer(pointer) {
  const match = /^\/input\/([^/]+)/.exec(pointer ?? '');
  return match ? match[1].replaceAll('~1', '/').replaceAll('~0', '~') : null;
}

function showProblemOfCreate(problem) {
  const unplaced = [];
  const jsonMessages = [];
  let firstInvalid = null;
  for (const { pointer, detail } of problem.errors) {
    const field = fieldOfPointer(pointer);
    if (pointer === '/type') {
      showTypeError(detail);
      firstInvalid ??= $('task-type');
    } else if (inputMode() === 'json' && pointer?.startsWith('/input')) {
      jsonMessages.push(`${pointer.slice('/input/'.length) || 'input'}: ${detail}`);
      firstInvalid ??= $('input-json');
    } else if (field && showFieldError(field, detail)) {
      firstInvalid ??= fieldControls.get(field).element;
    } else {
      unplaced.push(`${pointer || 'request'}: ${detail}`);
    }
  }
  showJsonErrors(jsonMessages);
  const placed = problem.errors.length - unplaced.length;
  showProblem($('form-problem'), problem.message, unplaced, placed ? 'Fix the marked fields and start again.' : '');
  firstInvalid?.focus();
}

async function startTask(event) {
  event.preventDefault();
  const taskType = currentType();
  if (!taskType) return;
  clearFormErrors();
  $('form-status').textContent = '';
  let input;
  try {
    input = inputMode() === 'json' ? inputFromJson() : inputFromFields();
  } catch (error) {
    showInputError(error);
    return;
  }
  const button = $('start-button');
  button.disabled = true;
  try {
    const task = await api('api/tasks', { method: 'POST', body: { type: taskType.type, input } });
    if (insertSnapshot(task)) markChanged(task.task_id, true);
    $('form-status').textContent = `Started ${task.type} ${shortId(task.task_id)}`;
  } catch (error) {
    if (!isUnauthorized(error)) showProblemOfCreate(error);
  } finally {
    button.disabled = false;
  }
}

let taskTypesLoading = null;
function loadTaskTypes() {
  taskTypesLoading ??= fetchTaskTypes().finally(() => {
    taskTypesLoading = null;
  });
  return taskTypesLoading;
}

async function fetchTaskTypes() {
  try {
    const { task_types: list } = await api('api/task-types');
    taskTypes = list;
  } catch (error) {
    if (!isUnauthorized(error)) showProblem($('form-problem'), `Could not load the task types: ${error.message}`);
    return;
  }
  const select = $('task-type');
  select.replaceChildren(...taskTypes.map((taskType) => h('option', { value: taskType.type, text: taskType.type })));
  select.disabled = taskTypes.length === 0;
  $('start-button').disabled = taskTypes.length === 0;
  clearFormErrors();
  renderFields();
}

// ---------------------------------------------------------------------------------------

buildStatusFilter();
$('task-type').addEventListener('change', () => {
  clearFormErrors();
  $('form-status').textContent = '';
  renderFields();
});
document.querySelector('.mode-switch').addEventListener('change', (event) => switchMode(event.target.value));
$('reset-json').addEventListener('click', () => {
  $('input-json').value = JSON.stringify(currentType()?.example ?? {}, null, 2);
  showJsonErrors([]);
});
$('input-json').addEventListener('input', () => showJsonErrors([]));
$('start-form').addEventListener('submit', startTask);
$('key-form').addEventListener('submit', submitKey);
$('api-key').addEventListener('input', () => showKeyError(null));
$('sign-out').addEventListener('click', () => {
  askForKey(null);
  $('key-status').textContent = 'Signed out: this browser tab no longer keeps the key.';
});
window.addEventListener('pagehide', () => source?.close());
$('sign-out').hidden = !apiKey;
connect();
loadTaskTypes();
