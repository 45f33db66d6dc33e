// The taskstream dashboard. This module owns the page's state and joins its parts: one
// TaskList kept up to date by one EventSource on api/events (stream-connection.js), drawn
// by task-list-view.js; the start form; the API key form. When the service has API keys, the
// page asks for one, keeps it for the browser session (sessionStorage) and opens its stream
// with a stream token, since EventSource sends no headers. Every URL is relative, so the page
// works wherever the service is mounted (index.html gets a <base> naming the mount path).

import { ApiClient, isUnauthorized, readStoredKey, storeKey } from './api-client.js';
import { $ } from './dom.js';
import { KeyPanel } from './key-panel.js';
import { ServerClock } from './server-clock.js';
import { StartForm } from './start-form.js';
import { StreamConnection } from './stream-connection.js';
import { TaskList } from './task-list.js';
import { TaskListView } from './task-list-view.js';

/** The listing asks for this many of the newest tasks; the stream adds those started since. */
const LIST_LIMIT = 200;
const TICK_MS = 1000;

const clock = new ServerClock();
const list = new TaskList();
const api = new ApiClient({ key: readStoredKey(), onUnauthorized: askForKey });
const listView = new TaskListView({ list, api, clock, listLimit: LIST_LIMIT });
const form = new StartForm({
  api,
  onStarted: (task) => {
    if (list.insert(task)) listView.markChanged(task.task_id, true);
  },
});
const keyPanel = new KeyPanel({ api, onKey: useKey });
const stream = new StreamConnection(api, {
  state: showConnection,
  event: (event) => {
    clock.sample(event.timestamp);
    const change = list.receive(event);
    if (change) listView.markChanged(change.taskId, change.structural);
  },
  open: (reload) => {
    if (reload) loadTasks();
    if (!form.hasTaskTypes) form.loadTaskTypes();
  },
  resync: () => loadTasks(),
});

function showConnection(state, text) {
  $('connection').dataset.state = state;
  document.body.dataset.connection = state;
  $('connection-text').textContent = text;
}

/** Loads the newest tasks; stream events that arrive meanwhile are applied on top, in order. */
async function loadTasks() {
  const generation = list.startLoad();
  listView.setBusy(true);
  let page = null;
  let problem = null;
  try {
    page = await api.json(`api/tasks?limit=${LIST_LIMIT}`);
  } catch (error) {
    problem = isUnauthorized(error) ? null : `Could not load the tasks: ${error.message}`;
  }
  if (!list.finishLoad(generation, page)) return; // a newer load, or a new key, replaced this one
  listView.showLoadProblem(problem);
  listView.redrawAll();
  listView.setBusy(false);
}

/**
 * Shows the key form instead of the dashboard, with `message` (why) if any. The stream stops
 * and the list empties: what the page showed belongs to the key being replaced.
 */
function askForKey(message) {
  api.key = null;
  storeKey(null);
  stream.stop();
  stream.forgetResumePoint();
  list.clear();
  listView.redrawAll();
  showConnection('locked', 'API key needed');
  $('sign-out').hidden = true;
  keyPanel.show(message);
}

function useKey(key) {
  api.key = key;
  storeKey(key);
  keyPanel.hide();
  $('sign-out').hidden = false;
  $('tasks-title').focus();
  stream.connect();
  if (!form.hasTaskTypes) form.loadTaskTypes();
}

// Elapsed times tick once a second for the tasks still waiting or running.
setInterval(() => {
  clock.update();
  listView.tick();
}, TICK_MS);

$('sign-out').addEventListener('click', () => {
  askForKey(null);
  keyPanel.say('Signed out: this browser tab no longer keeps the key.');
});
window.addEventListener('pagehide', () => stream.close());
$('sign-out').hidden = !api.key;
stream.connect();
form.loadTaskTypes();
