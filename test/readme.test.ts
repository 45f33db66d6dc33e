import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EnvSchema } from '../src/config.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('README', () => {
  it('opens with the install-and-start and the test commands', () => {
    const firstBlock = readme.split('```')[1] ?? '';
    expect(firstBlock).toMatch(/npm install && npm start/);
    expect(firstBlock).toMatch(/npm test/);
  });

  it('lists every configuration variable with its real default and meaning', () => {
    // A default is `value`, or a dash for an empty or absent one.
    const rows = new Map(
      [...readme.matchAll(/^\| `([A-Z_]+)` \| (`[^`]+`|—) \| (.+) \|$/gm)].map((match) => [match[1], match]),
    );
    expect([...rows.keys()].sort()).toEqual(Object.keys(EnvSchema.shape).sort());
    for (const [name, schema] of Object.entries(EnvSchema.shape)) {
      const row = rows.get(name)!;
      const fallback = schema.parse(undefined);
      const shown = fallback === undefined || fallback === '' ? '—' : `\`${String(fallback)}\``;
      expect(row[2], `default of ${name}`).toBe(shown);
      expect(row[3], `meaning of ${name}`).toBe(schema.description);
    }
  });
});
