import { createHash } from 'node:crypto';
import { AppError } from './errors.ts';

/** A stable digest of a request body: the same JSON with keys in any order hashes alike. */
export function fingerprint(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('base64url');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Idempotency keys of create requests. A key lives as long as its task: when the task is
 * removed, the key is free again.
 */
export class IdempotencyKeys {
  readonly #byKey = new Map<string, { taskId: string; fingerprint: string }>();
  readonly #byTask = new Map<string, string>();

  /** The task created earlier with this key and body, or undefined; throws if the body differs. */
  find(key: string, bodyFingerprint: string): string | undefined {
    const entry = this.#byKey.get(key);
    if (!entry) return undefined;
    if (entry.fingerprint !== bodyFingerprint) {
      throw new AppError('idempotency_key_reused', 'This Idempotency-Key was used with a different request body', {
        errors: [{ pointer: '/idempotency-key', detail: `already names task ${entry.taskId}` }],
      });
    }
    return entry.taskId;
  }

  remember(key: string, bodyFingerprint: string, taskId: string): void {
    this.#byKey.set(key, { taskId, fingerprint: bodyFingerprint });
    this.#byTask.set(taskId, key);
  }

  forgetTask(taskId: string): void {
    const key = this.#byTask.get(taskId);
    if (key === undefined) return;
    this.#byTask.delete(taskId);
    this.#byKey.delete(key);
  }
}
