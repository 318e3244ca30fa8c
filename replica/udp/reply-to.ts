// Direct ACKs, for groups without in-kernel aggregation (the agent's group
// has no members, xseq_group.n_members = 0). The kernel then drops every
// ACK it is sent (no member can match), so replicas must answer the client
// themselves, and the client certifies on f+1 matching ACKs including the
// leader's (replica/client.ts). But a SEQUENCED carries no client address:
// the sequencer rewrites the IP and UDP source to its own when it
// multicasts. So the client names its reply address in the REQUEST, in two
// header fields a REQUEST does not otherwise use and the stamp leaves
// untouched (bpf/sequencer.h rewrites type, sequencer_id, session, seq and
// clock_ns only, and its checksum update covers just those):
//
//   view       the client's IPv4 address (network order)
//   replica_id its UDP port
//
// Both zero (every REQUEST built with emptyHeader()) = no reply address: ACK
// the sequencer as always. A replica transport in `acksTo: 'client'` mode
// remembers the latest address per client id and sends ACKs there.
//
// Trust: a replica sends an ACK (the leader's with the op's result) to the
// address a REQUEST names. Anyone who can reach the sequencer can already
// make it send REPLYs to a forged source address, so this adds no new
// reflection, but run direct ACKs only where clients are trusted as with
// aggregation (the replicas' network, DESIGN.md).
import { createSocket } from 'node:dgram';
import { HEADER_LAYOUT, type XseqHeader } from '../../bpf/wire.ts';
import { isIpv4, type HostPort } from './addr.ts';

const VIEW_OFFSET = HEADER_LAYOUT.find((f) => f.c === 'view')!.offset;
const REPLICA_ID_OFFSET = HEADER_LAYOUT.find((f) => f.c === 'replica_id')!.offset;

function ipv4ToU32(host: string): number {
  if (!isIpv4(host)) throw new RangeError(`reply address "${host}" is not an IPv4 literal`);
  return host.split('.').reduce((a, x) => a * 256 + Number(x), 0);
}

function u32ToIpv4(v: number): string {
  return [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff].join('.');
}

/** Writes the reply address into an encoded REQUEST (in place; returns it). */
export function setReplyTo(request: Buffer, to: HostPort): Buffer {
  if (!Number.isInteger(to.port) || to.port < 1 || to.port > 65535) throw new RangeError(`reply port ${to.port} is not 1..65535`);
  request.writeUInt32BE(ipv4ToU32(to.host), VIEW_OFFSET);
  request.writeUInt16BE(to.port, REPLICA_ID_OFFSET);
  return request;
}

/** The reply address a REQUEST or its SEQUENCED names, or null (none: both fields zero). */
export function replyToOf(h: Pick<XseqHeader, 'view' | 'replicaId'>): HostPort | null {
  if (h.view === 0 || h.replicaId === 0) return null;
  return { host: u32ToIpv4(h.view), port: h.replicaId };
}

/**
 * The local address datagrams to `to` leave from: the route's source
 * address, which is what the sequencer sees and the replicas must answer.
 * A connected UDP socket learns it without sending anything.
 */
export async function localAddressToward(to: HostPort): Promise<string> {
  const s = createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.connect(to.port, to.host, () => resolve());
    });
    return s.address().address;
  } finally {
    s.close();
  }
}

/** Client id -> its latest reply address; the least recently heard from goes first when full. */
export class ReplyToTable {
  private readonly m = new Map<bigint, HostPort>();
  constructor(private readonly max = 65_536) {}

  get size(): number {
    return this.m.size;
  }

  note(clientId: bigint, to: HostPort): void {
    this.m.delete(clientId);
    this.m.set(clientId, to);
    if (this.m.size > this.max) this.m.delete(this.m.keys().next().value!);
  }

  get(clientId: bigint): HostPort | undefined {
    return this.m.get(clientId);
  }
}
