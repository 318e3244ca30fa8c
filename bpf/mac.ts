// Message authentication of bpf/xseq.h ("Authentication"): a group's
// 128-bit key, the SipHash-2-4 MAC trailer of a message flagged MAC, and
// struct xseq_mac_key, the value of the key maps. The kernel stamps and
// checks the same MAC (bpf/mac.h); test/mac.prog.test.ts proves them equal.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { endianness } from 'node:os';
import { siphash24Into, sipKey, type SipKey } from './siphash.ts';
import { Flags, XSEQ_HDR_LEN, XSEQ_MAC_LEN, XSEQ_MAGIC, XSEQ_MAX_PAYLOAD } from './wire.ts';

const LE = endianness() === 'LE';

export const XSEQ_KEY_LEN = 16;
export const XSEQ_KEY_F_SET = 0x1;
export const MAC_KEY_SIZE = 40;

/** A group's key: its 16 bytes and the SipHash form of them. */
export interface GroupKey {
  readonly bytes: Uint8Array;
  readonly sip: SipKey;
}

export function groupKey(bytes: Uint8Array): GroupKey {
  if (bytes.length !== XSEQ_KEY_LEN) throw new RangeError(`a group key is ${XSEQ_KEY_LEN} bytes, not ${bytes.length}`);
  return { bytes: Uint8Array.from(bytes), sip: sipKey(bytes) };
}

/**
 * The group's client key (bpf/xseq.h, "Authentication"): what clients seal
 * their REQUESTs with, so that only holders of it can speak for a client
 * id. Derived one way from the group key (HMAC-SHA256 under it of a fixed
 * label, first 16 bytes): a client holding it cannot compute the group
 * key, so it cannot make a SEQUENCED, FLUSH or ACK. `xseq-agent client-key`
 * prints it for a key file.
 */
export function clientKeyOf(key: GroupKey): GroupKey {
  return groupKey(createHmac('sha256', key.bytes).update('xseq-client-key-v1').digest().subarray(0, XSEQ_KEY_LEN));
}

/**
 * struct xseq_mac_key for `key` (null: the group has none): k0, k1 the
 * group key, c0, c1 its client key (clientKeyOf), each read little-endian
 * and stored host order.
 */
export function encodeMacKey(key: GroupKey | null): Uint8Array {
  const b = new Uint8Array(MAC_KEY_SIZE);
  if (!key) return b;
  const v = new DataView(b.buffer);
  const halves = (g: GroupKey, at: number) => {
    const k = new DataView(g.bytes.buffer, g.bytes.byteOffset, XSEQ_KEY_LEN);
    v.setBigUint64(at, k.getBigUint64(0, true), LE);
    v.setBigUint64(at + 8, k.getBigUint64(8, true), LE);
  };
  halves(key, 0);
  v.setUint32(16, XSEQ_KEY_F_SET, LE);
  halves(clientKeyOf(key), 24);
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
