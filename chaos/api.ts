import type { Violations } from './violations.ts';

export interface Answer<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** Create options the chaos workload uses (a subset of POST /api/tasks). */
export interface CreateRequest {
  type: string;
  input: unknown;
  timeout_ms?: number;
  max_attempts?: number;
  retry_backoff_ms?: number;
  priority?: number;
}

/**
 * The service's REST API as the workload calls it. Every answer is seen here: a 5xx other
 * than the documented `503 queue_full` refusal, or a request the service never answered,
 * is a violation. With several instances, requests go to each in turn: a task is created
 * on one, cancelled or read on another.
 */
export class Api {
  #baseUrls: readonly string[];
  #turn = 0;
  readonly #violations: Violations;
  /** Answers by status, over the whole run. */
  readonly statuses = new Map<number, number>();
  requests = 0;

  constructor(baseUrls: string | readonly string[], violations: Violations) {
    this.#baseUrls = typeof baseUrls === 'string' ? [baseUrls] : baseUrls;
    this.#violations = violations;
  }

  /** From now on, only this instance (the others are stopping). */
  useOnly(baseUrl: string): void {
    this.#baseUrls = [baseUrl];
  }

  async request(method: string, path: string, body?: unknown): Promise<Answer> {
    this.requests++;
    const baseUrl = this.#baseUrls[this.#turn++ % this.#baseUrls.length]!;
    let response: Response;
    try {
      response = await fetch(`${baseUrl}${path}`, {
        method,
        ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      this.#violations.add('no answer', `${method} ${path}: ${describe(error)}`);
      throw new Unanswered(`${method} ${path}`, { cause: error });
    }
    const text = await response.text();
    this.statuses.set(response.status, (this.statuses.get(response.status) ?? 0) + 1);
    const parsed = text === '' ? null : safeJson(text);
    if (response.status >= 500 && !(response.status === 503 && parsed?.code === 'queue_full')) {
      this.#violations.add('5xx', `${method} ${path} answered ${response.status}: ${text.slice(0, 500)}`);
    }
    return { status: response.status, body: parsed, headers: response.headers };
  }

  create(request: CreateRequest) {
    return this.request('POST', '/api/tasks', request);
  }

  get(taskId: string) {
    return this.request('GET', `/api/tasks/${taskId}`);
  }

  cancel(taskId: string) {
    return this.request('POST', `/api/tasks/${taskId}/cancel`);
  }

  retry(taskId: string) {
    return this.request('POST', `/api/tasks/${taskId}/retry`);
  }

  remove(taskId: string) {
    return this.request('DELETE', `/api/tasks/${taskId}`);
  }
}

/** A request the service never answered (already counted as a violation). */
export class Unanswered extends Error {
  override readonly name = 'Unanswered';
}

export function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
}

function safeJson(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
