// SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
// 2012), written from the paper: the reference for the kernel's copy in
// bpf/mac.h and the MAC of every message user space seals or opens. A
// 128-bit key (bytes 0..7 are k0, 8..15 k1, each read little-endian), the
// message as little-endian 64-bit words, two compression rounds per word,
// a last word of the tail bytes with the length mod 256 in its top byte,
// then 0xff into v2 and four finalization rounds.
//
// BigInt arithmetic is exact but slow for a hot path; the state is kept as
// 32-bit halves in plain numbers instead (about 20x faster), and
// test/mac.test.ts checks it against the paper's 64 test vectors.

const MASK32 = 0xffffffff;

/** A 128-bit SipHash key as four 32-bit little-endian words: k0 lo, k0 hi, k1 lo, k1 hi. */
export interface SipKey {
  readonly w: Uint32Array;
}

export function sipKey(bytes: Uint8Array): SipKey {
  if (bytes.length !== 16) throw new RangeError(`a SipHash key is 16 bytes, not ${bytes.length}`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, 16);
  return { w: Uint32Array.of(v.getUint32(0, true), v.getUint32(4, true), v.getUint32(8, true), v.getUint32(12, true)) };
}

// The state: v0..v3, each as [lo, hi] in s[2i], s[2i+1].
const s = new Uint32Array(8);

function add(a: number, b: number): void {
  const lo = s[a]! + s[b]!;
  s[a + 1] = (s[a + 1]! + s[b + 1]! + (lo > MASK32 ? 1 : 0)) >>> 0;
  s[a] = lo >>> 0;
}

function rotl(a: number, n: number): void {
  const lo = s[a]!;
  const hi = s[a + 1]!;
  if (n === 32) {
    s[a] = hi;
    s[a + 1] = lo;
  } else if (n < 32) {
    s[a + 1] = ((hi << n) | (lo >>> (32 - n))) >>> 0;
    s[a] = ((lo << n) | (hi >>> (32 - n))) >>> 0;
  } else {
    const m = n - 32;
    s[a + 1] = ((lo << m) | (hi >>> (32 - m))) >>> 0;
    s[a] = ((hi << m) | (lo >>> (32 - m))) >>> 0;
  }
}

function xor(a: number, b: number): void {
  s[a] = (s[a]! ^ s[b]!) >>> 0;
  s[a + 1] = (s[a + 1]! ^ s[b + 1]!) >>> 0;
}

const V0 = 0;
const V1 = 2;
const V2 = 4;
const V3 = 6;

function round(): void {
  add(V0, V1);
  rotl(V1, 13);
  xor(V1, V0);
  rotl(V0, 32);
  add(V2, V3);
  rotl(V3, 16);
  xor(V3, V2);
  add(V0, V3);
  rotl(V3, 21);
  xor(V3, V0);
  add(V2, V1);
  rotl(V1, 17);
  xor(V1, V2);
  rotl(V2, 32);
}

function word(lo: number, hi: number): void {
  s[V3] = (s[V3]! ^ lo) >>> 0;
  s[V3 + 1] = (s[V3 + 1]! ^ hi) >>> 0;
  round();
  round();
  s[V0] = (s[V0]! ^ lo) >>> 0;
  s[V0 + 1] = (s[V0 + 1]! ^ hi) >>> 0;
}

/**
 * SipHash-2-4 of msg[from..to) under key, as the 8 output bytes in
 * SipHash's own (little-endian) order, written to out[outAt..outAt+8).
 */
export function siphash24Into(key: SipKey, msg: Uint8Array, from: number, to: number, out: Uint8Array, outAt: number): void {
  const k = key.w;
  // "somepseudorandomlygeneratedbytes", as four 64-bit constants.
  s[V0] = (k[0]! ^ 0x70736575) >>> 0;
  s[V0 + 1] = (k[1]! ^ 0x736f6d65) >>> 0;
  s[V1] = (k[2]! ^ 0x6e646f6d) >>> 0;
  s[V1 + 1] = (k[3]! ^ 0x646f7261) >>> 0;
  s[V2] = (k[0]! ^ 0x6e657261) >>> 0;
  s[V2 + 1] = (k[1]! ^ 0x6c796765) >>> 0;
  s[V3] = (k[2]! ^ 0x79746573) >>> 0;
  s[V3 + 1] = (k[3]! ^ 0x74656462) >>> 0;
  const len = to - from;
  const end = from + (len & ~7);
  let i = from;
  for (; i < end; i += 8) {
    word(
      (msg[i]! | (msg[i + 1]! << 8) | (msg[i + 2]! << 16) | (msg[i + 3]! << 24)) >>> 0,
      (msg[i + 4]! | (msg[i + 5]! << 8) | (msg[i + 6]! << 16) | (msg[i + 7]! << 24)) >>> 0,
    );
  }
  let lo = 0;
  let hi = (len & 0xff) << 24;
  for (let j = 0; i + j < to; j++) {
    const b = msg[i + j]!;
    if (j < 4) lo |= b << (8 * j);
    else hi |= b << (8 * (j - 4));
  }
  word(lo >>> 0, hi >>> 0);
  s[V2] = (s[V2]! ^ 0xff) >>> 0;
  round();
  round();
  round();
  round();
  const rlo = (s[V0]! ^ s[V1]! ^ s[V2]! ^ s[V3]!) >>> 0;
  const rhi = (s[V0 + 1]! ^ s[V1 + 1]! ^ s[V2 + 1]! ^ s[V3 + 1]!) >>> 0;
  out[outAt] = rlo & 0xff;
  out[outAt + 1] = (rlo >>> 8) & 0xff;
  out[outAt + 2] = (rlo >>> 16) & 0xff;
  out[outAt + 3] = rlo >>> 24;
  out[outAt + 4] = rhi & 0xff;
  out[outAt + 5] = (rhi >>> 8) & 0xff;
  out[outAt + 6] = (rhi >>> 16) & 0xff;
  out[outAt + 7] = rhi >>> 24;
}

/** SipHash-2-4 of msg under key as a u64 (the bytes siphash24Into writes, read little-endian). */
export function siphash24(key: SipKey, msg: Uint8Array): bigint {
  const out = new Uint8Array(8);
  siphash24Into(key, msg, 0, msg.length, out, 0);
  return new DataView(out.buffer).getBigUint64(0, true);
}
