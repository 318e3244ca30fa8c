// Authentication of the peer links (docs/authentication.md): with a group
// key every slow-path frame is followed by a 16-byte MAC,
//   HMAC-SHA256(key, "xseq-peer-frame-v1" | nonce | counter | frame)[0..16)
// where nonce is 16 random bytes the ACCEPTING replica sends first on each
// connection (the dialler sends nothing before it has them) and counter is
// the frame's number on that connection (u64, from 0). A frame captured on
// one connection is therefore worthless on any other (another nonce) and
// at any other place in the stream (another counter): replaying it, or a
// whole recorded connection, fails the first MAC and the connection is
// closed.
//
// Why this and not TLS-PSK: Node's PSK is TLS 1.2 only, swaps the sockets
// for TLS ones and adds a handshake round trip per dial; this needs no
// certificates, no new dependency and a few lines, and gives the same two
// properties the slow path needs (only key holders can send, no replay).
// No confidentiality: slow-path contents (client ops) already cross the LAN
// in clear as SEQUENCED payloads. HMAC-SHA256 rather than SipHash here:
// frames reach hundreds of MiB (a checkpoint) and Node's native HMAC is far
// faster than SipHash in JavaScript; both use the same group key.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { GroupKey } from '../../bpf/mac.ts';

export const PEER_NONCE_LEN = 16;
export const PEER_MAC_LEN = 16;
const LABEL = Buffer.from('xseq-peer-frame-v1');

export function peerNonce(): Buffer {
  return randomBytes(PEER_NONCE_LEN);
}

/** The MAC of a frame given as its header and payload bytes (or the whole frame and an empty payload). */
export function peerMac(key: GroupKey, nonce: Uint8Array, counter: bigint, hdr: Uint8Array, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const c = Buffer.allocUnsafe(8);
  c.writeBigUInt64BE(counter);
  return createHmac('sha256', key.bytes).update(LABEL).update(nonce).update(c).update(hdr).update(payload).digest().subarray(0, PEER_MAC_LEN);
}

export function peerMacOk(key: GroupKey, nonce: Uint8Array, counter: bigint, hdr: Uint8Array, payload: Uint8Array, mac: Uint8Array): boolean {
  return mac.length === PEER_MAC_LEN && timingSafeEqual(peerMac(key, nonce, counter, hdr, payload), mac);
}
