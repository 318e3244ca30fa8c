// Big-endian writer and reader for the slow-path codec. Slots, seqs and
// nonces are JavaScript numbers below 2^53 (messages.ts), written as u64
// through two u32 halves so the common path never builds a BigInt; client
// and request ids are bigints and go through DataView's 64-bit calls.

/** A malformed slow-path payload: the connection that sent it is dropped. */
export class CodecError extends Error {
  override readonly name = 'CodecError';
}

const TWO_32 = 0x1_0000_0000;

export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private pos: number;

  /** `reserve` leading bytes are left for a header the caller writes later. */
  constructor(capacity = 256, reserve = 0) {
    this.buf = new Uint8Array(Math.max(capacity, reserve + 16));
    this.view = new DataView(this.buf.buffer);
    this.pos = reserve;
  }

  get length(): number {
    return this.pos;
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.room(1);
    this.view.setUint8(this.pos, v);
    this.pos += 1;
  }

  u16(v: number): void {
    this.room(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
  }

  u32(v: number): void {
    this.room(4);
    this.view.setUint32(this.pos, v);
    this.pos += 4;
  }

  /** An IEEE double, big-endian (Hydra clocks: +-Infinity allowed, NaN not). */
  f64(v: number): void {
    if (Number.isNaN(v)) throw new CodecError('NaN is not a clock');
    this.room(8);
    this.view.setFloat64(this.pos, v);
    this.pos += 8;
  }

  /** A non-negative integer below 2^53. */
  num(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new CodecError(`${v} is not an integer in 0..2^53`);
    this.room(8);
    this.view.setUint32(this.pos, Math.floor(v / TWO_32));
    this.view.setUint32(this.pos + 4, v >>> 0);
    this.pos += 8;
  }

  big(v: bigint): void {
    this.room(8);
    this.view.setBigUint64(this.pos, v);
    this.pos += 8;
  }

  /** u32 length, then the bytes. */
  bytes(b: Uint8Array): void {
    this.u32(b.length);
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** The bytes written so far (a view, not a copy). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

export class Reader {
  private readonly view: DataView;
  private pos = 0;

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new CodecError(`truncated: need ${n} bytes at ${this.pos} of ${this.buf.length}`);
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.pos++);
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  num(): number {
    this.need(8);
    const hi = this.view.getUint32(this.pos);
    const lo = this.view.getUint32(this.pos + 4);
    this.pos += 8;
    if (hi >= 0x20_0000) throw new CodecError(`u64 ${hi}:${lo} is past 2^53`);
    return hi * TWO_32 + lo;
  }

  f64(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos);
    this.pos += 8;
    if (Number.isNaN(v)) throw new CodecError('NaN is not a clock');
    return v;
  }

  /** Bytes not read yet (optional trailing fields). */
  get left(): number {
    return this.buf.length - this.pos;
  }

  big(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.pos);
    this.pos += 8;
    return v;
  }

  bool(): boolean {
    const v = this.u8();
    if (v > 1) throw new CodecError(`flag byte ${v} is not 0 or 1`);
    return v === 1;
  }

  /** u32 length, then that many bytes: a view into the input, not a copy. */
  bytes(): Uint8Array {
    const n = this.u32();
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** A count of items that each take at least `minBytes`: bounds an allocation by what is really there. */
  count(minBytes: number): number {
    const n = this.u32();
    if (n * minBytes > this.buf.length - this.pos) throw new CodecError(`count ${n} cannot fit in ${this.buf.length - this.pos} bytes`);
    return n;
  }

  end(): void {
    if (this.pos !== this.buf.length) throw new CodecError(`${this.buf.length - this.pos} bytes left over`);
  }
}
