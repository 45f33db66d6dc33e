/** Everything a run found wrong, by kind, each with enough detail to find it again. */
export class Violations {
  readonly #items: { kind: string; detail: string }[] = [];

  add(kind: string, detail: string): void {
    this.#items.push({ kind, detail });
  }

  get count(): number {
    return this.#items.length;
  }

  get all(): readonly { kind: string; detail: string }[] {
    return this.#items;
  }

  /** How many of each kind. */
  byKind(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const { kind } of this.#items) counts.set(kind, (counts.get(kind) ?? 0) + 1);
    return counts;
  }
}
