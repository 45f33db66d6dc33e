import { isDeepStrictEqual } from 'node:util';
import { TERMINAL_EVENTS, type ClientView, type Ledger, type TrackedTask } from './ledger.ts';
import type { Violations } from './violations.ts';

/** Failure codes after which another attempt is made (while attempts are left). */
const RETRYABLE = new Set(['task_error', 'timeout', 'worker_crashed']);

/** What the per-task checks measured, for the report. */
export interface TaskFigures {
  /** Terminal events by kind: `completed`, `failed:timeout`, `cancelled:requested`, … */
  terminals: Map<string, number>;
  /** From sending an accepted cancel to receiving its task_cancelled, ms. */
  cancelLatenciesMs: number[];
  /** The task whose accepted cancel took longest to end it, as a story (where the time went). */
  slowestCancel?: { ms: number; story: string };
  /** Client views checked against the all-tasks stream. */
  clientViews: number;
}

/**
 * Checks every task against what the all-tasks stream showed (exactly one terminal event,
 * the last; a coherent lifecycle), against what we did to it (a cancel answered 202 ends it
 * cancelled; otherwise it ends as its scenario must), against its final snapshot, and
 * against what every stream client received (the same events, none missing, none twice).
 */
export function checkTasks(ledger: Ledger, violations: Violations): TaskFigures {
  const figures: TaskFigures = { terminals: new Map(), cancelLatenciesMs: [], clientViews: 0 };
  for (const task of ledger.tasks.values()) {
    if (!task.accepted) {
      violations.add('phantom task', `${task.id} appeared on the all-tasks stream but no create was answered 201 for it`);
      continue;
    }
    const problems = checkTask(task, figures);
    for (const [kind, detail] of problems) violations.add(kind, `${task.id} (${task.accepted.scenario}): ${detail}\n      ${story(task)}`);
  }
  return figures;
}

function checkTask(task: TrackedTask, figures: TaskFigures): [string, string][] {
  const problems: [string, string][] = [];
  const accepted = task.accepted!;
  const events = task.events;
  const terminals = events.filter((event) => TERMINAL_EVENTS.has(event.event));
  if (!task.createdSeen) problems.push(['missing event', 'no task_created on the all-tasks stream']);
  if (terminals.length !== 1) problems.push(['terminal events', `${terminals.length} terminal events`]);
  const terminal = task.terminal;
  if (!terminal) return problems;
  if (events.at(-1) !== terminal) problems.push(['terminal events', 'the terminal event is not the last']);

  // Lifecycle: attempts 1, 2, … each opened by task_started; progress only inside an attempt.
  const starts = events.filter((event) => event.event === 'task_started');
  starts.forEach((event, index) => {
    if (event.data?.attempt !== index + 1) problems.push(['lifecycle', `task_started #${index + 1} says attempt ${event.data?.attempt}`]);
  });
  const maxAttempts = accepted.request.max_attempts ?? 1;
  if (starts.length > maxAttempts) problems.push(['lifecycle', `${starts.length} attempts, max_attempts ${maxAttempts}`]);
  if (events[0]?.event !== 'task_started' && !(events.length === 1 && terminal.event === 'task_cancelled')) {
    problems.push(['lifecycle', `first event ${events[0]?.event}`]);
  }

  const outcome = outcomeOf(terminal);
  // In flight when the service was stopped: the shutdown may cancel it, and nothing is read after.
  const shutdown = accepted.scenario === 'shutdown';
  figures.terminals.set(outcome, (figures.terminals.get(outcome) ?? 0) + 1);

  // Cancels: one answered 202 must win, whatever else was stopping the task.
  const acceptedCancel = task.cancels.find((cancel) => cancel.status === 202);
  if (acceptedCancel) {
    if (outcome !== 'cancelled:requested') {
      problems.push(['cancel lost', `cancel answered 202 (racing ${acceptedCancel.race}) but the task ended ${outcome}`]);
    } else {
      const ms = terminal.receivedAt - acceptedCancel.sentAt;
      figures.cancelLatenciesMs.push(ms);
      if (ms > (figures.slowestCancel?.ms ?? -1)) figures.slowestCancel = { ms, story: `${task.id} (${accepted.scenario}): ${story(task)}` };
    }
  } else if (terminal.event === 'task_cancelled' && !(shutdown && outcome === 'cancelled:shutdown')) {
    problems.push(['cancel', `ended ${outcome} though no cancel was accepted`]);
  } else if (accepted.expect !== undefined && outcome !== accepted.expect) {
    problems.push(['outcome', `ended ${outcome}, expected ${accepted.expect}`]);
  } else if (!shutdown && terminal.event === 'task_failed') {
    // Without a cancel, a retryable failure uses every attempt; any other failure only one.
    const code = terminal.data?.error?.code;
    const attempts = RETRYABLE.has(code) ? maxAttempts : 1;
    if (starts.length !== attempts) problems.push(['retries', `failed ${code} after ${starts.length} attempts, expected ${attempts}`]);
  }

  const snapshot = task.finalSnapshot;
  if (snapshot) {
    problems.push(...checkSnapshot(snapshot, terminal.event, terminal.data, starts.length));
  } else if (!task.deleted && !shutdown) {
    problems.push(['snapshot', 'no final snapshot was read']);
  }

  for (const view of task.clients) {
    figures.clientViews++;
    problems.push(...checkClientView(view, task));
  }
  return problems;
}

function outcomeOf(terminal: { event: string; data: any }): string {
  if (terminal.event === 'task_completed') return 'completed';
  if (terminal.event === 'task_failed') return `failed:${terminal.data?.error?.code}`;
  return `cancelled:${terminal.data?.reason}`;
}

function checkSnapshot(snapshot: any, event: string, data: any, attempts: number): [string, string][] {
  const problems: [string, string][] = [];
  const status = event.replace('task_', '');
  if (snapshot.status !== status) problems.push(['snapshot', `status ${snapshot.status} after ${event}`]);
  if (event === 'task_completed' && !isDeepStrictEqual(snapshot.result, data?.result)) {
    problems.push(['snapshot', `result ${JSON.stringify(snapshot.result)} but task_completed carried ${JSON.stringify(data?.result)}`]);
  }
  if (event === 'task_failed' && !isDeepStrictEqual(snapshot.error, data?.error)) {
    problems.push(['snapshot', `error ${JSON.stringify(snapshot.error)} but task_failed carried ${JSON.stringify(data?.error)}`]);
  }
  if (event !== 'task_failed' && snapshot.error !== null) problems.push(['snapshot', `error ${JSON.stringify(snapshot.error)} after ${event}`]);
  if (snapshot.attempt !== attempts) problems.push(['snapshot', `attempt ${snapshot.attempt} after ${attempts} task_started`]);
  if (snapshot.finished_at === null) problems.push(['snapshot', 'finished_at is null after the terminal event']);
  return problems;
}

/**
 * A client's events must be the task's events from seq 1, in order, each once; all of them
 * unless the task was deleted while the client followed it.
 */
function checkClientView(view: ClientView, task: TrackedTask): [string, string][] {
  const problems: [string, string][] = [];
  const label = `${view.kind} (${view.notes.join(', ')})`;
  for (let i = 0; i < view.seqs.length; i++) {
    if (view.seqs[i] !== i + 1) {
      const kind = view.seqs.indexOf(view.seqs[i]!) < i ? 'duplicate event' : 'gap';
      problems.push([kind, `${label} received seq ${view.seqs.join(',')}`]);
      return problems;
    }
    if (view.events[i] !== task.events[i]?.event) {
      problems.push(['client events', `${label}: seq ${i + 1} is ${view.events[i]}, the all-tasks stream had ${task.events[i]?.event}`]);
      return problems;
    }
  }
  const gone = task.deleted || task.removedSeen;
  if (!view.complete && !gone) {
    problems.push(['client incomplete', `${label} ended with ${view.seqs.length} of ${task.events.length} events`]);
  }
  if (view.complete && view.seqs.length !== task.events.length && !view.notes.includes('task_removed')) {
    problems.push(['client events', `${label} got ${view.seqs.length} events, the all-tasks stream ${task.events.length}`]);
  }
  return problems;
}

/** The task's events and our moves on one line, in the order they happened (ms after create). */
function story(task: TrackedTask): string {
  const t0 = task.accepted?.at ?? 0;
  const ms = (at: number) => `${Math.round(at - t0)}ms`;
  const moves = [
    ...task.events.map((event) => ({ at: event.receivedAt, text: `${event.event}${event.event === 'task_failed' ? `(${event.data?.error?.code})` : ''}` })),
    ...task.cancels.map((cancel) => ({ at: cancel.sentAt, text: `cancel(${cancel.status} after ${Math.round(cancel.answeredAt - cancel.sentAt)}ms)` })),
  ].sort((a, b) => a.at - b.at);
  const request = task.accepted?.request;
  return `${JSON.stringify(request)}: ${moves.map((move) => `${move.text}@${ms(move.at)}`).join(' ')}`;
}
