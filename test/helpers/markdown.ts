// Reads the tables of a markdown document, for tests that hold docs to the
// code: a table is found by the heading it sits under, and comes back as
// rows of cell texts keyed by the header's column names (backticks kept).
import { readFileSync } from 'node:fs';

export type Row = Record<string, string>;

/** Splits a markdown table line "| a | b |" into trimmed cells. */
function cells(line: string): string[] {
  return line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
}

/**
 * Every table in `text`, each with the last heading above it. A table is a
 * header line, a separator line (|---|), and the `|` lines that follow.
 */
export function tables(text: string): Array<{ heading: string; rows: Row[] }> {
  const lines = text.split('\n');
  const out: Array<{ heading: string; rows: Row[] }> = [];
  let heading = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^#{1,6} /.test(line)) heading = line.replace(/^#+ /, '').trim();
    if (!line.startsWith('|') || !/^\|[\s:|-]+\|$/.test(lines[i + 1]?.trim() ?? '')) continue;
    const head = cells(line);
    const rows: Row[] = [];
    for (i += 2; i < lines.length && lines[i]!.startsWith('|'); i++) {
      const c = cells(lines[i]!);
      rows.push(Object.fromEntries(head.map((h, k) => [h, c[k] ?? ''])));
    }
    out.push({ heading, rows });
  }
  return out;
}

/** The one table under the heading that starts with `heading`. */
export function tableUnder(file: string, heading: string): Row[] {
  const found = tables(readFileSync(file, 'utf8')).filter((t) => t.heading.startsWith(heading));
  if (found.length !== 1) throw new Error(`${file}: ${found.length} tables under a heading starting "${heading}", expected 1`);
  return found[0]!.rows;
}

/** `code` -> code: the text inside one pair of backticks, else the cell. */
export function unquote(cell: string): string {
  const m = /^`([^`]*)`$/.exec(cell);
  return m ? m[1]! : cell;
}

/** A number written in decimal or 0x hex. */
export function num(cell: string): number {
  const n = Number(unquote(cell));
  if (!Number.isFinite(n)) throw new Error(`"${cell}" is not a number`);
  return n;
}
