import { randomFillSync } from 'node:crypto';
import { V7Generator } from 'uuidv7';

/**
 * Random words for task ids, drawn from the system's CSPRNG 1,024 at a time: the library's
 * own source refills every 8 words, a crypto call every third id.
 */
class BufferedRandom {
  readonly #words = new Uint32Array(1024);
  #next = this.#words.length;

  nextUint32(): number {
    if (this.#next === this.#words.length) {
      randomFillSync(this.#words);
      this.#next = 0;
    }
    return this.#words[this.#next++]!;
  }
}

const generator = new V7Generator(new BufferedRandom());

/** A new task id: a UUIDv7, so ids sort by creation time. */
export const newTaskId = (): string => generator.generate().toString();
