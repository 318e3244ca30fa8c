// One row of a bench result, and its goal in a form a program can check:
// `npm run bench -- --check` fails when a row with a goal misses it, so a
// goal is a comparison, not a sentence for the reader.

export type GoalOp = '>=' | '<=' | '>' | '<';

export interface Bound {
  op: GoalOp;
  value: number;
}

/** What the issue asks of a row: the ratio (xseq / baseline) or the xseq value itself, within one or two bounds. */
export interface Goal {
  on: 'ratio' | 'xseq';
  bounds: Bound[];
}

export interface BenchRow {
  id: string;
  name: string;
  unit: string;
  xseq: number;
  baseline: number;
  baselineName: string;
  /** xseq / baseline. */
  ratio: number;
  /** null: reported, no goal. */
  goal: Goal | null;
  /** Whether the goal was met; null when there is none. Set by judge(). */
  met?: boolean | null;
  /** Why the measurement itself is not valid (timeouts, lost answers): the row misses its goal, or fails with none. */
  failed?: string;
  notes?: string;
}

/** `ratio >= 2`, `xseq < 1000 and > 3`. */
export function goalText(g: Goal | null): string {
  if (!g) return 'report';
  return `${g.on} ${g.bounds.map((b) => `${b.op} ${b.value}`).join(' and ')}`;
}

export const atLeast = (on: Goal['on'], value: number): Goal => ({ on, bounds: [{ op: '>=', value }] });
export const atMost = (on: Goal['on'], value: number): Goal => ({ on, bounds: [{ op: '<=', value }] });
export const below = (on: Goal['on'], value: number): Goal => ({ on, bounds: [{ op: '<', value }] });
export const between = (on: Goal['on'], min: number, max: number): Goal => ({ on, bounds: [{ op: '>=', value: min }, { op: '<=', value: max }] });

function holds(v: number, b: Bound): boolean {
  switch (b.op) {
    case '>=':
      return v >= b.value;
    case '<=':
      return v <= b.value;
    case '>':
      return v > b.value;
    case '<':
      return v < b.value;
  }
}

/** met for one row: false when the measurement failed or a bound does not hold, null without a goal (unless failed). */
export function met(r: BenchRow): boolean | null {
  if (r.failed) return false;
  if (!r.goal) return null;
  const v = r.goal.on === 'ratio' ? r.ratio : r.xseq;
  if (!Number.isFinite(v)) return false;
  return r.goal.bounds.every((b) => holds(v, b));
}

/** Sets met on every row; returns those that missed (met === false). */
export function judge(rows: BenchRow[]): BenchRow[] {
  for (const r of rows) r.met = met(r);
  return rows.filter((r) => r.met === false);
}

export function ratioOf(x: number, b: number, digits = 2): number {
  return b > 0 ? Number((x / b).toFixed(digits)) : 0;
}
