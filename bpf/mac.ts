// Message authentication of bpf/xseq.h ("Authentication"): a group's
// 128-bit key, the SipHash-2-4 MAC trailer of a message flagged MAC, and
// struct xseq_mac_key, the value of the key maps. The kernel stamps and
// checks the same MAC (bpf/mac.h); test/mac.prog.test.ts proves them equal.
import { timingSafeEqual } from 'node:crypto';
import { endianness } from 'node:os';
import { siphash24Into, sipKey, type SipKey } from './siphash.ts';
import { Flags, XSEQ_HDR_LEN, XSEQ_MAC_LEN, XSEQ_MAGIC, XSEQ_MAX_PAYLOAD } from './wire.ts';

const LE = endianness() === 'LE';

export const XSEQ_KEY_LEN = 16;
export const XSEQ_KEY_F_SET = 0x1;
export const MAC_KEY_SIZE = 24;

/** A group's key: its 16 bytes and the SipHash form of them. */
export interface GroupKey {
  readonly bytes: Uint8Array;
  readonly sip: SipKey;
}

export function groupKey(bytes: Uint8Array): GroupKey {
  if (bytes.length !== XSEQ_KEY_LEN) throw new RangeError(`a group key is ${XSEQ_KEY_LEN} bytes, not ${bytes.length}`);
  return { bytes: Uint8Array.from(bytes), sip: sipKey(bytes) };
}

/** struct xseq_mac_key for `key` (null: the group has none). */
export function encodeMacKey(key: GroupKey | null): Uint8Array {
  const b = new Uint8Array(MAC_KEY_SIZE);
  if (!key) return b;
  const v = new DataView(b.buffer);
  const k = new DataView(key.bytes.buffer, key.bytes.byteOffset, XSEQ_KEY_LEN);
  // k0, k1 are the key's two halves read little-endian, stored host order.
  v.setBigUint64(0, k.getBigUint64(0, true), LE);
  v.setBigUint64(8, k.getBigUint64(8, true), LE);
  v.setUint32(16, XSEQ_KEY_F_SET, LE);
  return b;
}

/**
 * Seals a message in place: `buf` holds the message (header and payload)
 * in its first msgLen bytes and XSEQ_MAC_LEN spare bytes after them. Sets
 * the MAC flag, then writes the MAC of the message (flag included).
 */
export function sealInPlace(buf: Uint8Array, msgLen: number, key: GroupKey): void {
  if (buf.length !== msgLen + XSEQ_MAC_LEN || msgLen < XSEQ_HDR_LEN) {
    throw new RangeError(`sealing needs the message and ${XSEQ_MAC_LEN} spare bytes, got ${buf.length} for a ${msgLen}-byte message`);
  }
  buf[7] = buf[7]! | Flags.MAC; // flags is big-endian at 6..7; MAC is in the low byte
  siphash24Into(key.sip, buf, 0, msgLen, buf, msgLen);
}

/** A sealed copy of a message without a MAC (header and payload). */
export function seal(msg: Uint8Array, key: GroupKey): Buffer {
  const out = Buffer.allocUnsafe(msg.length + XSEQ_MAC_LEN);
  out.set(msg, 0);
  sealInPlace(out, msg.length, key);
  return out;
}

export type MacCheck = 'ok' | 'no_mac' | 'bad_length' | 'bad_mac';

const scratch = new Uint8Array(XSEQ_MAC_LEN);

/**
 * Whether `buf` (a whole xseq datagram) is flagged MAC, has exactly its
 * stated payload plus the trailer, and the trailer is the MAC of the rest
 * under `key`. Magic, version and type are the decoder's business.
 */
export function checkMac(buf: Uint8Array, key: GroupKey): MacCheck {
  if (buf.length < XSEQ_HDR_LEN + XSEQ_MAC_LEN || buf[0] !== XSEQ_MAGIC >>> 24) return 'no_mac';
  if (!(buf[7]! & Flags.MAC)) return 'no_mac';
  const payloadLen = ((buf[56]! << 24) | (buf[57]! << 16) | (buf[58]! << 8) | buf[59]!) >>> 0;
  const msgLen = buf.length - XSEQ_MAC_LEN;
  if (payloadLen > XSEQ_MAX_PAYLOAD || payloadLen !== msgLen - XSEQ_HDR_LEN) return 'bad_length';
  siphash24Into(key.sip, buf, 0, msgLen, scratch, 0);
  return timingSafeEqual(scratch, buf.subarray(msgLen)) ? 'ok' : 'bad_mac';
}
