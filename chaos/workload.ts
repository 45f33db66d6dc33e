import { Unanswered, type Api, type CreateRequest } from './api.ts';
import { sleep, withDeadline } from './deadline.ts';
import type { Ledger, TrackedTask } from './ledger.ts';
import type { Random } from './random.ts';
import { SCENARIO_WEIGHTS, scenarios, type ScenarioName } from './scenarios.ts';
import type { StreamClients } from './stream-clients.ts';
import { Tally } from './tally.ts';
import type { Violations } from './violations.ts';

/**
 * Longest a lane waits for a task's terminal event. Priorities are strict, so a task of low
 * priority may wait in the queue until the run's pressure drops; the run's deadline bounds
 * the whole, and the checks report any task that never ended.
 */
const TASK_END_MS = 300_000;

/** How many tasks may still be accepted; lanes take a slot before each create. */
export class Budget {
  #left: number;

  constructor(tasks: number) {
    this.#left = tasks;
  }

  take(): boolean {
    if (this.#left <= 0) return false;
    this.#left--;
    return true;
  }

  giveBack(): void {
    this.#left++;
  }
}

/** What every scenario works with. */
export class Workload {
  readonly api: Api;
  readonly ledger: Ledger;
  readonly clients: StreamClients;
  readonly violations: Violations;
  readonly budget: Budget;
  /** Files for the fixtures that wait on files (gate, flaky). */
  readonly scratchDir: string;
  readonly scenarioCounts = new Tally();
  /** Creates refused with 503 queue_full. */
  readonly refusals = new Tally();
  /** Cancels by what they raced, and how they were answered: `timeout 202`. */
  readonly cancels = new Tally();
  /** Deletes and manual retries, by situation and answer. */
  readonly actions = new Tally();
  /** Set when the run must end now (deadline, or the service died): lanes stop taking tasks. */
  stopped = false;
  /** Watchers and follow-ups still running; awaited at the end. */
  readonly #background = new Set<Promise<unknown>>();

  constructor(options: { api: Api; ledger: Ledger; clients: StreamClients; violations: Violations; tasks: number; scratchDir: string }) {
    this.api = options.api;
    this.ledger = options.ledger;
    this.clients = options.clients;
    this.violations = options.violations;
    this.budget = new Budget(options.tasks);
    this.scratchDir = options.scratchDir;
  }

  /** Runs `lanes` scenario loops until the budget is spent, picking scenarios by `weights`. */
  async run(lanes: number, random: Random, weights: Partial<Record<ScenarioName, number>> = SCENARIO_WEIGHTS): Promise<void> {
    // Lane i starts with the i-th scenario, so with as many lanes as scenarios each runs at least once.
    const names = (Object.keys(weights) as ScenarioName[]).filter((name) => (weights[name] ?? 0) > 0);
    await Promise.all(Array.from({ length: lanes }, (_, i) => this.#lane(random.fork(), weights, names[i % names.length]!)));
  }

  /** Waits for every watcher and follow-up. */
  async settle(ms: number): Promise<void> {
    await withDeadline(
      (async () => {
        while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
      })(),
      'the stream clients to finish',
      ms,
    );
  }

  /** Runs `work` without waiting for it; settle() waits. */
  detach(work: Promise<unknown>): void {
    const tracked = work.catch((error: unknown) => this.violations.add('chaos error', String((error as Error)?.stack ?? error)));
    this.#background.add(tracked);
    void tracked.finally(() => this.#background.delete(tracked));
  }

  /**
   * POST /api/tasks until it is accepted (a full queue answers 503 queue_full: wait a
   * little and try again). Undefined if the service refused it otherwise.
   */
  async create(request: CreateRequest, scenario: string, random: Random): Promise<TrackedTask | undefined> {
    while (!this.stopped) {
      const answer = await this.api.create(request);
      if (answer.status === 201) {
        const snapshot = answer.body;
        if (snapshot?.status !== 'queued') {
          this.violations.add('create', `201 with status ${snapshot?.status} (queued expected): ${JSON.stringify(snapshot).slice(0, 300)}`);
        }
        return this.ledger.accept(snapshot, scenario, request);
      }
      if (answer.status === 503 && answer.body?.code === 'queue_full') {
        this.refusals.add('queue_full');
        if (answer.headers.get('retry-after') === null) this.violations.add('create', '503 queue_full without Retry-After');
        await sleep(random.int(20, 120));
        continue;
      }
      this.violations.add('create', `${scenario}: ${JSON.stringify(request).slice(0, 200)} answered ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`);
      return undefined;
    }
    return undefined;
  }

  /** Waits for the task's terminal event (bounded); false if it never came. */
  async ended(task: TrackedTask): Promise<boolean> {
    try {
      await withDeadline(this.ledger.ended(task.id), `the terminal event of ${task.id}`, TASK_END_MS);
      return true;
    } catch {
      // Reported by the checks, with everything else about the task.
      return false;
    }
  }

  /** POST …/cancel, recorded with what it raced. */
  async cancel(task: TrackedTask, race: string): Promise<number> {
    const sentAt = performance.now();
    const answer = await this.api.cancel(task.id);
    const code = answer.body?.code as string | undefined;
    task.cancels.push({ sentAt, answeredAt: performance.now(), status: answer.status, code, race });
    this.cancels.add(`${race} ${answer.status}`);
    if (answer.status === 202 && ['completed', 'failed', 'cancelled'].includes(answer.body?.status) && answer.body?.status !== 'cancelled') {
      this.violations.add('cancel', `${task.id}: 202 with a snapshot that ended ${answer.body?.status}`);
    }
    if (answer.status === 409 && code !== 'task_already_ended') {
      this.violations.add('cancel', `${task.id}: 409 with code ${code}`);
    }
    if (answer.status !== 202 && answer.status !== 409) {
      this.violations.add('cancel', `${task.id}: answered ${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`);
    }
    return answer.status;
  }

  /**
   * Everything that happens once a task is accepted: maybe a stream client from a random
   * moment, then the scenario's own moves (`drive`), then its end, its final snapshot,
   * and maybe a delete, a manual retry or a late client.
   */
  async follow(task: TrackedTask, random: Random, drive: () => Promise<void> = async () => {}): Promise<void> {
    if (random.chance(0.35)) {
      const delayMs = random.chance(0.5) ? 0 : random.int(1, 40);
      this.detach(sleep(delayMs).then(() => this.clients.watchTask(task, random.fork())));
    }
    await drive();
    if (!(await this.ended(task))) return;
    await this.#afterEnd(task, random);
  }

  async #afterEnd(task: TrackedTask, random: Random): Promise<void> {
    if (!task.deleted) {
      const snapshot = await this.api.get(task.id);
      if (snapshot.status === 200) task.finalSnapshot = snapshot.body;
      else this.violations.add('snapshot', `${task.id}: GET after its terminal event answered ${snapshot.status}`);
    }

    if (random.chance(0.1)) this.detach(this.clients.watchTask(task, random.fork()));
    const status = task.deleted ? undefined : task.finalSnapshot?.status;
    if ((status === 'failed' || status === 'cancelled') && random.chance(0.25)) await this.#manualRetry(task, random);
    else if (status === 'completed' && random.chance(0.03)) await this.#manualRetry(task, random);
    if (!task.deleted && random.chance(0.15)) await this.deleteEnded(task);
  }

  /** DELETE of an ended task: 204, then the task is gone (404), and a second DELETE is 404. */
  async deleteEnded(task: TrackedTask): Promise<void> {
    if (!task.finalSnapshot) {
      const snapshot = await this.api.get(task.id);
      if (snapshot.status === 200) task.finalSnapshot = snapshot.body;
    }
    const answer = await this.api.remove(task.id);
    this.actions.add(`delete ended ${answer.status}`);
    if (answer.status !== 204) {
      this.violations.add('delete', `${task.id} (ended): DELETE answered ${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`);
      return;
    }
    task.deleted = true;
    const after = await this.api.get(task.id);
    if (after.status !== 404) this.violations.add('delete', `${task.id}: GET after DELETE answered ${after.status}`);
    const again = await this.api.remove(task.id);
    if (again.status !== 404) this.violations.add('delete', `${task.id}: a second DELETE answered ${again.status}`);
  }

  /** POST …/retry: 201 and a new task for a failed or cancelled one, 409 for a completed one. */
  async #manualRetry(task: TrackedTask, random: Random): Promise<void> {
    const retryable = task.finalSnapshot?.status !== 'completed';
    if (retryable && !this.budget.take()) return;
    const answer = await this.api.retry(task.id);
    this.actions.add(`retry ${task.finalSnapshot?.status} ${answer.status}`);
    if (!retryable) {
      if (answer.status !== 409 || answer.body?.code !== 'task_not_retryable') {
        this.violations.add('retry', `${task.id} (completed): retry answered ${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`);
      }
      return;
    }
    if (answer.status !== 201) {
      this.budget.giveBack();
      if (!(answer.status === 503 && answer.body?.code === 'queue_full')) {
        this.violations.add('retry', `${task.id} (${task.finalSnapshot?.status}): retry answered ${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`);
      } else {
        this.refusals.add('queue_full');
      }
      return;
    }
    if (answer.body?.retry_of !== task.id) this.violations.add('retry', `${answer.body?.task_id}: retry_of ${answer.body?.retry_of}, not ${task.id}`);
    const again = this.ledger.accept(answer.body, 'manual retry', task.accepted!.request);
    this.scenarioCounts.add('manual retry');
    await this.follow(again, random);
  }

  async #lane(random: Random, weights: Partial<Record<ScenarioName, number>>, first: ScenarioName): Promise<void> {
    const recent: TrackedTask[] = [];
    let next: ScenarioName | undefined = first;
    while (!this.stopped && this.budget.take()) {
      const name: ScenarioName = next ?? random.weighted(weights as Record<ScenarioName, number>);
      next = undefined;
      this.scenarioCounts.add(name);
      let task: TrackedTask | undefined;
      try {
        task = await scenarios[name](this, random.fork(), (accepted) => {
          recent.push(accepted);
          if (recent.length > 5) recent.shift();
          // Now and then one multiplexed client follows a few of this lane's latest tasks.
          if (recent.length >= 2 && random.chance(0.1)) {
            this.detach(this.clients.watchGroup(recent.slice(-random.int(2, recent.length)), random.fork()));
          }
        });
      } catch (error) {
        // An unanswered request is already a violation; anything else is a fault of the run.
        if (!(error instanceof Unanswered)) this.violations.add('chaos error', String((error as Error)?.stack ?? error));
        task = undefined;
      }
      if (!task) {
        this.budget.giveBack();
        await sleep(50);
      }
    }
  }
}
