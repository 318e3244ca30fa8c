// The key-value store as a replicated Application: deterministic (the same
// ops in the same order give the same results and state everywhere), never
// throws (a malformed op is answered BAD_OP, or replicas would diverge on
// who crashed), and its whole state round-trips through snapshot/restore.
//
// The replica takes a snapshot at every commit point (every sync interval,
// 20 ms by default), on the leader and on each follower, so a snapshot must
// not cost a pass over every key: keys live in BUCKETS hash buckets, each
// keeping its serialized bytes until a write changes it, and a snapshot
// re-serializes only the buckets written since the last one.
import { createHash } from 'node:crypto';
import type { Application } from '../../replica/index.ts';
import { decodeOp, encodeResult, type Result } from './ops.ts';

const BUCKETS = 1024;

function keyString(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.length).toString('latin1');
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

/** FNV-1a over the key's bytes (latin1 characters), folded to a bucket. */
function bucketOf(k: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k.charCodeAt(i), 0x01000193);
  return (h >>> 0) % BUCKETS;
}

/** [klen u8][key][vlen u8][value] per entry. */
function serialize(m: Map<string, Uint8Array>): Buffer {
  let len = 0;
  for (const [k, v] of m) len += 2 + k.length + v.length;
  const out = Buffer.allocUnsafe(len);
  let p = 0;
  for (const [k, v] of m) {
    out[p++] = k.length;
    p += out.write(k, p, 'latin1');
    out[p++] = v.length;
    out.set(v, p);
    p += v.length;
  }
  return out;
}

export class KvStore implements Application {
  // Keys as latin1 strings: one character per byte, so any key bytes work.
  // Values are owned copies: an op's bytes are a view into a datagram or a
  // slow-path frame that must not be kept alive by the store.
  private buckets: Map<string, Uint8Array>[] = [];
  private bytes: (Buffer | null)[] = [];
  private count = 0;

  constructor() {
    this.clear();
  }

  private clear(): void {
    this.buckets = Array.from({ length: BUCKETS }, () => new Map());
    this.bytes = new Array<Buffer | null>(BUCKETS).fill(null);
    this.count = 0;
  }

  get size(): number {
    return this.count;
  }

  get(key: Uint8Array): Uint8Array | undefined {
    const k = keyString(key);
    return this.buckets[bucketOf(k)]!.get(k);
  }

  private set(k: string, b: number, v: Uint8Array): void {
    const m = this.buckets[b]!;
    if (!m.has(k)) this.count++;
    m.set(k, v.slice());
    this.bytes[b] = null;
  }

  execute(opBytes: Uint8Array): Uint8Array {
    return encodeResult(this.apply(opBytes));
  }

  private apply(opBytes: Uint8Array): Result {
    const op = decodeOp(opBytes);
    if (!op) return { status: 'bad-op' };
    const k = keyString(op.key);
    const b = bucketOf(k);
    const cur = this.buckets[b]!.get(k);
    switch (op.kind) {
      case 'get':
        return cur ? { status: 'found', value: cur } : { status: 'not-found' };
      case 'put':
        this.set(k, b, op.value);
        return { status: 'ok' };
      case 'cas': {
        const matches = op.expected === null ? cur === undefined : cur !== undefined && same(cur, op.expected);
        if (!matches) return { status: 'mismatch', current: cur ?? null };
        this.set(k, b, op.value);
        return { status: 'ok' };
      }
    }
  }

  /** [u32 count] then the entries, bucket by bucket. */
  snapshot(): Uint8Array {
    let len = 4;
    for (let b = 0; b < BUCKETS; b++) {
      const m = this.buckets[b]!;
      if (m.size === 0) continue;
      len += (this.bytes[b] ??= serialize(m)).length;
    }
    const out = Buffer.allocUnsafe(len);
    out.writeUInt32BE(this.count, 0);
    let p = 4;
    for (let b = 0; b < BUCKETS; b++) {
      const s = this.bytes[b];
      if (!s || this.buckets[b]!.size === 0) continue;
      out.set(s, p);
      p += s.length;
    }
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }

  restore(s: Uint8Array): void {
    const b = Buffer.from(s.buffer, s.byteOffset, s.length);
    const n = b.readUInt32BE(0);
    this.clear();
    let p = 4;
    for (let i = 0; i < n; i++) {
      const kl = b[p++]!;
      const k = b.toString('latin1', p, p + kl);
      p += kl;
      const vl = b[p++]!;
      this.set(k, bucketOf(k), s.subarray(p, p + vl));
      p += vl;
    }
    if (p !== s.length || this.count !== n) throw new Error(`kv snapshot: ${s.length - p} bytes left over, ${n} entries for ${this.count} keys`);
  }

  /** SHA-256 of the state in key order: equal on replicas that executed the same prefix. */
  digest(): string {
    const all: [string, Uint8Array][] = [];
    for (const m of this.buckets) all.push(...m);
    all.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    const h = createHash('sha256');
    for (const [k, v] of all) {
      h.update(Uint8Array.of(k.length));
      h.update(k, 'latin1');
      h.update(Uint8Array.of(v.length));
      h.update(v);
    }
    return h.digest('hex');
  }
}
