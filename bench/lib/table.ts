import type { Figure, Goal } from './figure.ts';
import type { Machine } from './machine.ts';

const number = (value: number) =>
  !Number.isFinite(value)
    ? String(value)
    : Math.abs(value) >= 100
      ? Math.round(value).toLocaleString('en-US')
      : value.toPrecision(3);

function goalText(goal: Goal, unit: string): string {
  switch (goal.kind) {
    case 'ratio-at-least':
      return `ratio >= ${goal.value}`;
    case 'ratio-at-most':
      return `ratio <= ${goal.value}`;
    case 'product-at-most':
      return `<= ${goal.value} ${unit}`;
    case 'none':
      return '-';
  }
}

/** The report as a fixed-width text table. */
export function formatTable(machine: Machine, figures: readonly Figure[], wallSeconds: number): string {
  const header = ['#', 'figure', 'unit', 'product', 'baseline', 'ratio', 'goal', 'result'];
  const rows = figures.map((f) => [
    f.id,
    `${f.name} (vs ${f.baselineName})`,
    f.unit,
    number(f.product),
    number(f.baseline),
    f.ratio.toFixed(2),
    goalText(f.goal, f.unit),
    !Number.isFinite(f.baseline) ? 'skipped' : f.pass === null ? 'info' : f.pass ? 'pass' : 'MISS',
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) =>
    cells.map((cell, column) => (column >= 3 && column <= 5 ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join('  ');
  return [
    `machine: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.platform}, ulimit -n ${machine.openFilesLimit}, load average ${machine.loadAverage} at start`,
    '',
    line(header),
    line(widths.map((width) => '-'.repeat(width))),
    ...rows.map(line),
    '',
    `wall time: ${wallSeconds.toFixed(1)} s`,
  ].join('\n');
}
