import { sleep } from './deadline.ts';
import { TERMINAL_EVENTS, type ClientView, type TrackedTask } from './ledger.ts';
import type { Random } from './random.ts';
import { SseSession, type Frame, type SessionEnd } from './sse-session.ts';
import type { Violations } from './violations.ts';

/**
 * A client is stalled when an event of its tasks reached the all-tasks stream this long ago
 * and still not the client. (Silence alone is no fault: a task may wait long in the queue.)
 */
const STREAM_LAG_MS = 30_000;
const LAG_CHECK_MS = 1000;

/**
 * Clients that follow one task (`/api/tasks/{id}/events`) or a few (`/api/events?task_id=…`),
 * connecting at a moment the workload picks, dropping the connection after a random number
 * of frames or milliseconds, and resuming after the last id received — by the Last-Event-ID
 * header or by the last_event_id query parameter. Each records what it received; checks.ts
 * compares that with the all-tasks stream once the run is over.
 */
export class StreamClients {
  taskReconnects = 0;
  multiplexedReconnects = 0;
  taskSessions = 0;
  multiplexedSessions = 0;
  /** With several instances, each session (a resume too) opens on the next one in turn. */
  readonly #baseUrls: readonly string[];
  #turn = 0;
  readonly #violations: Violations;
  readonly #open = new Set<SseSession>();

  constructor(baseUrls: string | readonly string[], violations: Violations) {
    this.#baseUrls = typeof baseUrls === 'string' ? [baseUrls] : baseUrls;
    this.#violations = violations;
  }

  /** Follows one task's stream to its end, with up to `maxDrops` drops and resumes. */
  async watchTask(task: TrackedTask, random: Random, maxDrops = 3): Promise<void> {
    const view: ClientView = { kind: 'task stream', seqs: [], events: [], notes: [], complete: false };
    task.clients.push(view);
    let after = 0;
    let drops = random.int(0, maxDrops);
    for (;;) {
      const resume = after > 0 || random.chance(0.2) ? { after, by: random.pick(['header', 'query'] as const) } : undefined;
      const onFrame = (frame: Frame) => {
        if (frame.data?.task_id !== task.id || frame.data?.seq !== frame.id || frame.data?.event_type !== frame.event) {
          this.#violations.add('bad frame', `task stream of ${task.id}: id ${frame.id} ${frame.event} ${JSON.stringify(frame.data).slice(0, 300)}`);
        }
        view.seqs.push(frame.id);
        view.events.push(frame.event);
        after = frame.id;
      };
      this.taskSessions++;
      const lagging = () => missedBy(task, after);
      const end = await this.#session(`/api/tasks/${task.id}/events`, resume, onFrame, drops > 0, random, `task stream of ${task.id}`, lagging);
      if (end.kind === 'dropped') {
        drops--;
        this.taskReconnects++;
        continue;
      }
      view.notes.push(end.note);
      view.complete = TERMINAL_EVENTS.has(view.events.at(-1) ?? '');
      return;
    }
  }

  /** Follows a few tasks on one multiplexed stream until all have ended, with drops and resumes. */
  async watchGroup(tasks: readonly TrackedTask[], random: Random): Promise<void> {
    const views = new Map<string, ClientView>();
    for (const task of tasks) {
      const view: ClientView = { kind: 'multiplexed stream', seqs: [], events: [], notes: [], complete: false };
      task.clients.push(view);
      views.set(task.id, view);
    }
    const path = `/api/events?${tasks.map((task) => `task_id=${task.id}`).join('&')}`;
    let last: number | undefined;
    let drops = random.int(0, 3);
    for (;;) {
      const resume = last === undefined ? undefined : { after: last, by: random.pick(['header', 'query'] as const) };
      const onFrame = (frame: Frame) => {
        if (last !== undefined && frame.id <= last) {
          this.#violations.add('duplicate event', `multiplexed stream of ${tasks.length} tasks: position ${frame.id} after ${last}`);
          return;
        }
        last = frame.id;
        const view = views.get(frame.data?.task_id);
        if (!view) {
          this.#violations.add('bad frame', `multiplexed stream ${path}: a frame of another task: ${JSON.stringify(frame.data).slice(0, 300)}`);
          return;
        }
        if (frame.event === 'task_removed') {
          view.notes.push('task_removed');
          return;
        }
        view.seqs.push(frame.data?.seq);
        view.events.push(frame.event);
      };
      this.multiplexedSessions++;
      const lagging = () => tasks.map((task) => missedBy(task, views.get(task.id)!.seqs.at(-1) ?? 0)).find(Boolean);
      const end = await this.#session(path, resume, onFrame, drops > 0, random, `multiplexed stream of ${tasks.length} tasks`, lagging);
      if (end.kind === 'dropped') {
        drops--;
        this.multiplexedReconnects++;
        continue;
      }
      for (const view of views.values()) {
        view.notes.push(end.note);
        view.complete = TERMINAL_EVENTS.has(view.events.at(-1) ?? '') || view.notes.includes('task_removed');
      }
      return;
    }
  }

  /** Drops every connection still open. */
  closeAll(): void {
    for (const session of this.#open) session.drop();
  }

  /** One connection: read until the server ends it, or until we drop it if `mayDrop`. */
  async #session(
    path: string,
    resume: { after: number; by: 'header' | 'query' } | undefined,
    onFrame: (frame: Frame) => void,
    mayDrop: boolean,
    random: Random,
    label: string,
    lagging: () => string | undefined,
  ): Promise<{ kind: 'dropped' | 'server' | 'refused' | 'error'; status: number; note: string }> {
    const dropAfterFrames = mayDrop ? random.int(1, 8) : Infinity;
    let frames = 0;
    const session = new SseSession(this.#baseUrls[this.#turn++ % this.#baseUrls.length]!, path, {
      ...(resume ? { resume } : {}),
      onFrame: (frame, current) => {
        onFrame(frame);
        if (++frames >= dropAfterFrames) current.drop();
      },
    });
    this.#open.add(session);
    const timer = mayDrop && random.chance(0.3) ? setTimeout(() => session.drop(), random.int(0, 40)) : undefined;
    let end: SessionEnd | undefined;
    try {
      while (end === undefined) {
        end = await Promise.race([session.ended, sleep(LAG_CHECK_MS).then(() => undefined)]);
        const missed = end === undefined ? lagging() : undefined;
        if (missed === undefined) continue;
        const asked = resume ? `resuming after ${resume.after} by ${resume.by}` : 'from the start';
        const answer = session.status === 0 ? 'no answer' : `status ${session.status}`;
        this.#violations.add('stream stalled', `${label} (${asked}): ${answer}, ${frames} frames, and never ${missed}`);
        session.drop();
        end = 'error';
      }
    } finally {
      clearTimeout(timer);
      this.#open.delete(session);
    }
    if (end === 'error' && session.error) {
      this.#violations.add('stream error', `${label}: ${session.error}`);
    }
    const note = end === 'refused' ? String(session.status) : end === 'server' ? 'ended by the server' : end;
    return { kind: end, status: session.status, note };
  }
}

/** An event of `task` after `seq` that the all-tasks stream delivered over STREAM_LAG_MS ago, if any. */
function missedBy(task: TrackedTask, seq: number): string | undefined {
  // A deleted task's stream ends, and a multiplexed stream opened after it skips it.
  if (task.deleted || task.removedSeen) return undefined;
  const event = task.events.find((seen) => seen.seq > seq);
  if (!event || performance.now() - event.receivedAt < STREAM_LAG_MS) return undefined;
  return `${event.event} (seq ${event.seq}) of ${task.id} (${task.accepted?.scenario}), on the all-tasks stream ${Math.round(performance.now() - event.receivedAt)} ms ago`;
}
