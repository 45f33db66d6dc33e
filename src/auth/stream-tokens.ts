import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

/** What a stream token lets its bearer read: one owner's tasks, all or only some. */
export interface StreamScope {
  owner: string;
  /** The tasks it may stream; null for every task of the owner (the multiplexed stream). */
  taskIds: readonly string[] | null;
  /** Epoch ms after which the token is refused. */
  expiresAt: number;
}

const PayloadSchema = z.object({
  o: z.string(),
  t: z.array(z.string()).nullable(),
  e: z.number().int(),
});

const VERSION = 'st1';

/**
 * Signed, expiring, read-only tokens for EventSource, which cannot send an Authorization
 * header: `st1.<payload>.<HMAC-SHA256>`, base64url. They grant streams only; the routes that
 * change anything never look at them.
 */
export class StreamTokens {
  readonly #secret: Buffer;
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor({ secret, ttlMs, now = Date.now }: { secret: string; ttlMs: number; now?: () => number }) {
    this.#secret = secret === '' ? randomBytes(32) : Buffer.from(secret);
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  mint(owner: string, taskIds: readonly string[] | null): { token: string; expiresAt: number } {
    const expiresAt = this.#now() + this.#ttlMs;
    const payload = Buffer.from(JSON.stringify({ o: owner, t: taskIds, e: expiresAt })).toString('base64url');
    return { token: `${VERSION}.${payload}.${this.#sign(payload)}`, expiresAt };
  }

  /** The token's scope, or undefined if it is malformed, forged or expired. */
  verify(token: string): StreamScope | undefined {
    const [version, payload, signature, ...rest] = token.split('.');
    if (version !== VERSION || !payload || !signature || rest.length > 0) return undefined;
    const expected = Buffer.from(this.#sign(payload));
    const given = Buffer.from(signature);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    let decoded: unknown;
    try {
      decoded = JSON.parse(Buffer.from(payload, 'base64url').toString());
    } catch {
      return undefined;
    }
    const parsed = PayloadSchema.safeParse(decoded);
    if (!parsed.success || parsed.data.e <= this.#now()) return undefined;
    return { owner: parsed.data.o, taskIds: parsed.data.t, expiresAt: parsed.data.e };
  }

  #sign(payload: string): string {
    return createHmac('sha256', this.#secret).update(`${VERSION}.${payload}`).digest('base64url');
  }
}
