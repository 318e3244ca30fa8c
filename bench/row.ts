/** One row of bench/results.json. ratio = xseq / baseline. */
export interface BenchRow {
  id: string;
  name: string;
  unit: string;
  xseq: number;
  baseline: number;
  baselineName: string;
  ratio: number;
  /** What the issue asks of this row, for the reader of the table. */
  goal?: string;
}
