/** What a figure must reach: a ratio to its baseline, or an absolute bound on the product. */
export type Goal =
  | { kind: 'ratio-at-least'; value: number }
  | { kind: 'ratio-at-most'; value: number }
  | { kind: 'product-at-most'; value: number }
  | { kind: 'none' };

/** One line of the report: the product's value next to its baseline's, from the same run. */
export interface Figure {
  id: string;
  name: string;
  unit: string;
  product: number;
  baseline: number;
  baselineName: string;
  /** product / baseline */
  ratio: number;
  goal: Goal;
  /** null when the figure has no goal of its own. */
  pass: boolean | null;
  /** Per-trial values and settings, for the JSON report. */
  detail: Record<string, unknown>;
}

export function figure(fields: Omit<Figure, 'ratio' | 'pass'>): Figure {
  const ratio = fields.product / fields.baseline;
  const { goal } = fields;
  const pass =
    goal.kind === 'ratio-at-least'
      ? ratio >= goal.value
      : goal.kind === 'ratio-at-most'
        ? ratio <= goal.value
        : goal.kind === 'product-at-most'
          ? fields.product <= goal.value
          : null;
  return { ...fields, ratio, pass };
}
