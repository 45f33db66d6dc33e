import { createHash, timingSafeEqual } from 'node:crypto';
import { ConfigError } from '../config.ts';

const OWNER = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/;
const KEY = /^[\x21-\x7e]{16,256}$/;

const digest = (key: string) => createHash('sha256').update(key).digest();

/**
 * The API keys and the owner each belongs to. Keys are kept as SHA-256 digests and every
 * lookup compares against all of them in constant time, so timing reveals neither a key nor
 * how much of one was right.
 */
export class ApiKeyring {
  readonly #entries: readonly { owner: string; digest: Buffer }[];

  private constructor(entries: { owner: string; digest: Buffer }[]) {
    this.#entries = entries;
  }

  /**
   * Parses `owner:key` pairs, separated by commas or new lines; blank lines and lines
   * starting with `#` are skipped. `source` names where they came from, for errors.
   */
  static parse(sources: readonly { text: string; source: string }[]): ApiKeyring {
    const entries: { owner: string; digest: Buffer }[] = [];
    const seen = new Set<string>();
    const problems: string[] = [];
    for (const { text, source } of sources) {
      const pairs = text
        .split(/[\n,]/)
        .map((pair) => pair.trim())
        .filter((pair) => pair !== '' && !pair.startsWith('#'));
      pairs.forEach((pair, index) => {
        const colon = pair.indexOf(':');
        const owner = colon < 0 ? '' : pair.slice(0, colon);
        const key = colon < 0 ? '' : pair.slice(colon + 1);
        const where = `${source}, entry ${index + 1}`;
        if (!OWNER.test(owner)) {
          problems.push(`${where}: expected owner:key with an owner of 1-64 letters, digits or _ . @ -`);
        } else if (!KEY.test(key)) {
          problems.push(`${where} (owner ${owner}): the key must be 16-256 visible ASCII characters`);
        } else if (seen.has(key)) {
          problems.push(`${where} (owner ${owner}): this key is already given to another entry`);
        } else {
          seen.add(key);
          entries.push({ owner, digest: digest(key) });
        }
      });
    }
    if (problems.length > 0) throw new ConfigError(`Invalid API keys:\n  ${problems.join('\n  ')}`);
    return new ApiKeyring(entries);
  }

  /** True when at least one key is configured: authentication is on. */
  get enabled(): boolean {
    return this.#entries.length > 0;
  }

  /** The owner of `key`, or undefined when it is no one's. */
  ownerOf(key: string): string | undefined {
    const presented = digest(key);
    let owner: string | undefined;
    // No early exit: every lookup costs the same whichever key (if any) matches.
    for (const entry of this.#entries) {
      if (timingSafeEqual(entry.digest, presented) && owner === undefined) owner = entry.owner;
    }
    return owner;
  }
}
