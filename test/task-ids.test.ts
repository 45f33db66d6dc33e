import { describe, expect, it } from 'vitest';
import { newTaskId } from '../src/task-ids.ts';

describe('task ids', () => {
  it('are UUIDv7s, unique and increasing across many refills of the random buffer', () => {
    const ids = Array.from({ length: 5000 }, () => newTaskId());
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    // The random part differs between consecutive ids (the buffer is not reused).
    const tails = new Set(ids.map((id) => id.slice(-12)));
    expect(tails.size).toBe(ids.length);
  });
});
