// The `key` sequencer policy's hash, fixed so that every client (any
// process, any language) sends a key to the same sequencer: 32-bit FNV-1a
// over the key's bytes (a string's UTF-8 bytes) (offset basis 0x811c9dc5, prime 0x01000193),
// then `hash mod k` indexes the configured sequencer list (in its order).
// It only spreads load; nothing depends on two clients agreeing, but a
// stable choice keeps one key's requests on one sequencer while it is up.

export function fnv1a32(key: string | Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of typeof key === 'string' ? Buffer.from(key, 'utf8') : key) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Index into a list of k sequencers. */
export function sequencerForKey(key: string | Uint8Array, k: number): number {
  return fnv1a32(key) % k;
}
