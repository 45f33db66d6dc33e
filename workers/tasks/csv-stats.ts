import { z } from 'zod';
import { defineTask } from '../define.ts';

const ROWS_PER_PROGRESS = 10_000;

/**
 * Splits CSV text into records (RFC 4180: quoted fields, doubled quotes, CRLF or LF). The
 * delimiter is one character, which outside the basic plane is two UTF-16 units: it is
 * matched as a whole, never against a single unit.
 */
function* parseCsv(text: string, delimiter: string): Generator<string[]> {
  const isDelimiter =
    delimiter.length === 1 ? (i: number) => text[i] === delimiter : (i: number) => text.startsWith(delimiter, i);
  let field = '';
  let record: string[] = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (char === '"') {
        quoted = false;
      } else {
        field += char;
      }
    } else if (char === '"' && field === '') {
      quoted = true;
    } else if (isDelimiter(i)) {
      record.push(field);
      field = '';
      i += delimiter.length - 1;
    } else if (char === '\n' || char === '\r') {
      if (char === '\r' && text[i + 1] === '\n') i++;
      record.push(field);
      yield record;
      record = [];
      field = '';
    } else {
      field += char;
    }
  }
  if (field !== '' || record.length > 0) {
    record.push(field);
    yield record;
  }
}

interface ColumnAccumulator {
  name: string;
  values: number;
  empty: number;
  numeric: number;
  sum: number;
  min: number | null;
  max: number | null;
}

const ColumnStats = z.object({
  name: z.string(),
  values: z.int().describe('Non-empty cells'),
  empty: z.int().describe('Empty or missing cells'),
  numeric: z.int().describe('Cells that parse as a finite number'),
  min: z.number().nullable(),
  max: z.number().nullable(),
  mean: z.number().nullable(),
});

export default defineTask({
  type: 'csv_stats',
  description:
    'Profiles CSV text: per column, how many cells are filled, empty and numeric, and the min, max and mean of the numeric ones.',
  input: z.strictObject({
    csv: z.string().min(1).describe('The CSV text (RFC 4180)'),
    delimiter: z
      .string()
      .length(1) // counts characters (code points), not UTF-16 units: '😀' is one
      .refine((char) => !['"', '\r', '\n'].includes(char), 'must not be a quote or a line break')
      .default(',')
      .describe('Field separator: one character, not `"` or a line break'),
    header: z.boolean().default(true).describe('Whether the first record names the columns'),
  }),
  result: z.object({ rows: z.int(), columns: z.array(ColumnStats) }),
  example: { csv: 'city,population\nOslo,709037\nBergen,291940\n', delimiter: ',', header: true },
  run({ csv, delimiter, header }, ctx) {
    const total = csv.length;
    const columns: ColumnAccumulator[] = [];
    const column = (index: number): ColumnAccumulator => {
      while (columns.length <= index) {
        columns.push({ name: `column_${columns.length + 1}`, values: 0, empty: 0, numeric: 0, sum: 0, min: null, max: null });
      }
      return columns[index]!;
    };

    let rows = 0;
    let first = true;
    let consumed = 0;
    for (const record of parseCsv(csv, delimiter)) {
      consumed += record.reduce((length, cell) => length + cell.length + delimiter.length, 0);
      if (first && header) {
        record.forEach((name, index) => (column(index).name = name.trim() || `column_${index + 1}`));
        first = false;
        continue;
      }
      first = false;
      rows++;
      record.forEach((cell, index) => {
        const stats = column(index);
        const trimmed = cell.trim();
        if (trimmed === '') {
          stats.empty++;
          return;
        }
        stats.values++;
        const number = Number(trimmed);
        if (!Number.isFinite(number)) return;
        stats.numeric++;
        stats.sum += number;
        stats.min = stats.min === null ? number : Math.min(stats.min, number);
        stats.max = stats.max === null ? number : Math.max(stats.max, number);
      });
      if (rows % ROWS_PER_PROGRESS === 0) {
        ctx.signal.throwIfAborted();
        ctx.progress(Math.min(1, consumed / total), `${rows} rows`);
      }
    }
    // Rows shorter than the widest row count their missing cells as empty.
    for (const stats of columns) stats.empty = rows - stats.values;
    ctx.progress(1, `${rows} rows`);
    return {
      rows,
      columns: columns.map(({ name, values, empty, numeric, sum, min, max }) => ({
        name,
        values,
        empty,
        numeric,
        min,
        max,
        mean: numeric > 0 ? sum / numeric : null,
      })),
    };
  },
});
