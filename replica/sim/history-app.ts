// The simulation's application: it remembers every op it executed, in order,
// and answers each op with (ops executed before it, hash of them). So a
// result pins down the op's exact position in the history: a reply that a
// later view moves or loses shows up as a result mismatch, and an op
// executed twice is caught on the spot.
import type { Application } from '../app.ts';

export class DuplicateExecution extends Error {
  override readonly name = 'DuplicateExecution';
}

const FNV_OFFSET = 0x811c9dc5;

export function mixHash(h: number, key: number): number {
  h = Math.imul(h ^ (key >>> 0), 0x01000193);
  h = Math.imul(h ^ Math.floor(key / 4294967296), 0x01000193);
  return h >>> 0;
}

export function encodeResult(count: number, hash: number): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint32(0, count);
  v.setUint32(4, hash);
  return b;
}

export class HistoryApp implements Application {
  history: number[] = [];
  hash = FNV_OFFSET;
  /** Bumped on every restore, so a checker knows the history was replaced. */
  restores = 0;
  private seen = new Set<number>();

  /** An op naming (client, index): 8 bytes. */
  static op(client: number, index: number): Uint8Array {
    const b = new Uint8Array(8);
    const v = new DataView(b.buffer);
    v.setUint32(0, client);
    v.setUint32(4, index);
    return b;
  }

  static key(op: Uint8Array): number {
    const v = new DataView(op.buffer, op.byteOffset, op.byteLength);
    return v.getUint32(0) * 4294967296 + v.getUint32(4);
  }

  static initialHash(): number {
    return FNV_OFFSET;
  }

  execute(op: Uint8Array): Uint8Array {
    const key = HistoryApp.key(op);
    if (this.seen.has(key)) throw new DuplicateExecution(`op ${Math.floor(key / 4294967296)}:${key % 4294967296} executed twice`);
    const result = encodeResult(this.history.length, this.hash);
    this.seen.add(key);
    this.history.push(key);
    this.hash = mixHash(this.hash, key);
    return result;
  }

  snapshot(): Uint8Array {
    const a = new Float64Array(this.history.length + 1);
    a[0] = this.hash;
    a.set(this.history, 1);
    return new Uint8Array(a.buffer);
  }

  restore(s: Uint8Array): void {
    const a = new Float64Array(s.buffer.slice(s.byteOffset, s.byteOffset + s.byteLength));
    this.hash = a[0]!;
    this.history = Array.from(a.subarray(1));
    this.seen = new Set(this.history);
    this.restores++;
  }
}
