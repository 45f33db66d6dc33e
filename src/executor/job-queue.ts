/**
 * A priority queue: higher priority first, first come first served within a priority.
 * A binary heap, so push and pop cost O(log n) however deep the backlog grows.
 */
export class JobQueue<T> {
  #heap: { item: T; priority: number; order: number }[] = [];
  #nextOrder = 0;

  get size(): number {
    return this.#heap.length;
  }

  /** `order` breaks ties within a priority (lower first); by default, arrival order. */
  push(item: T, priority: number, order: number = this.#nextOrder++): void {
    this.#heap.push({ item, priority, order });
    this.#up(this.#heap.length - 1);
  }

  pop(): T | undefined {
    const heap = this.#heap;
    const top = heap[0];
    if (!top) return undefined;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      this.#down(0);
    }
    return top.item;
  }

  /** Removes every item for which `keep` is false (for lazily cancelled entries). */
  retain(keep: (item: T) => boolean): void {
    const kept = this.#heap.filter((entry) => keep(entry.item));
    this.#heap = [];
    for (const entry of kept.sort((a, b) => (this.#before(a, b) ? -1 : 1))) this.#heap.push(entry);
  }

  #before(a: { priority: number; order: number }, b: { priority: number; order: number }): boolean {
    return a.priority > b.priority || (a.priority === b.priority && a.order < b.order);
  }

  #up(index: number): void {
    const heap = this.#heap;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.#before(heap[index]!, heap[parent]!)) break;
      [heap[index], heap[parent]] = [heap[parent]!, heap[index]!];
      index = parent;
    }
  }

  #down(index: number): void {
    const heap = this.#heap;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let best = index;
      if (left < heap.length && this.#before(heap[left]!, heap[best]!)) best = left;
      if (right < heap.length && this.#before(heap[right]!, heap[best]!)) best = right;
      if (best === index) return;
      [heap[index], heap[best]] = [heap[best]!, heap[index]!];
      index = best;
    }
  }
}
