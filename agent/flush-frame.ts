// The agent's own FLUSH_SOLICIT (Hydra): a complete Ethernet frame the
// flush timer runs through the attached sequencer program. The kernel
// answers it like a member's solicit (bpf/flush.h) because replica_id is
// XSEQ_REPLICA_AGENT and the IPv4 source equals the destination, the
// interface's own address; the program turns it into the FLUSH in place and
// sends it out of the interface (XDP_TX), so frame addresses are the
// interface's MAC and IPv4 address. No UDP checksum: IPv4 allows none and
// the program rewrites the whole header anyway.
import { emptyHeader, encodeMessage, MsgType, XSEQ_REPLICA_AGENT } from '../bpf/wire.ts';

/** FINAL flushes sent at the start of a drain, FINAL_FLUSH_SPACING_MS
 * apart: flushes can be lost, and replicas also solicit one. */
export const FINAL_FLUSH_REPEATS = 5;
export const FINAL_FLUSH_SPACING_MS = 20;

export interface SolicitFrameSpec {
  /** MAC of the interface, "aa:bb:cc:dd:ee:ff". */
  mac: string;
  /** IPv4 address of the interface, dotted. */
  addr: string;
  /** The sequencer's UDP port. */
  port: number;
  groupId: number;
  sequencerId: number;
  session: number;
}

function bytesOf(text: string, sep: string, radix: number, n: number, what: string): number[] {
  const parts = text.split(sep).map((p) => parseInt(p, radix));
  if (parts.length !== n || parts.some((b) => !(b >= 0 && b <= 255))) throw new RangeError(`"${text}" is not ${what}`);
  return parts;
}

export function ipv4HeaderChecksum(b: Buffer, off: number): number {
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += b.readUInt16BE(off + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Ethernet + IPv4 + UDP + the 64-byte FLUSH_SOLICIT header (106 bytes). */
export function agentSolicitFrame(s: SolicitFrameSpec): Buffer {
  const mac = bytesOf(s.mac, ':', 16, 6, 'a MAC address');
  const ip = bytesOf(s.addr, '.', 10, 4, 'a dotted IPv4 address');
  const msg = encodeMessage({ ...emptyHeader(), type: MsgType.FLUSH_SOLICIT, groupId: s.groupId, sequencerId: s.sequencerId, replicaId: XSEQ_REPLICA_AGENT, session: s.session });
  const f = Buffer.alloc(14 + 20 + 8 + msg.length);
  f.set(mac, 0);
  f.set(mac, 6);
  f.writeUInt16BE(0x0800, 12);
  const ipOff = 14;
  f[ipOff] = 0x45;
  f.writeUInt16BE(20 + 8 + msg.length, ipOff + 2);
  f[ipOff + 8] = 64; // TTL
  f[ipOff + 9] = 17; // UDP
  f.set(ip, ipOff + 12);
  f.set(ip, ipOff + 16);
  f.writeUInt16BE(ipv4HeaderChecksum(f, ipOff), ipOff + 10);
  const udpOff = ipOff + 20;
  f.writeUInt16BE(s.port, udpOff);
  f.writeUInt16BE(s.port, udpOff + 2);
  f.writeUInt16BE(8 + msg.length, udpOff + 4);
  f.set(msg, udpOff + 8);
  return f;
}
