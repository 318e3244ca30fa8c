// A sequencer with an aggregating group driven by BPF_PROG_TEST_RUN, and its
// replicas as real UDP sockets on loopback (127.0.0.x): REQUESTs stamped
// with testRun fill the window slots, ACKs "from" a member are testRun
// frames with its address, and what the agent re-sends to a member address
// arrives at that member's socket. Nothing leaves the host.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { type GroupKey, seal } from '../../bpf/mac.ts';
import type { GroupConfig, Member } from '../../bpf/maps.ts';
import type { Sequencer } from '../../bpf/sequencer.ts';
import { emptyHeader, encodeMessage, MsgType, readHeader } from '../../bpf/wire.ts';
import { buildFrame, parseFrame } from '../../tools/frame.ts';

export const XDP_TX = 3;
export const GROUP_ID = 1;
export const SESSION = 41;
const SEQ_IP = '10.77.0.2';

/** A client's REQUEST; sealed with `clientKey` when given (a keyed group's sequencer needs it). */
export function requestFrame(requestId: bigint, groupId = GROUP_ID, clientKey?: GroupKey): Buffer {
  const plain = encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId, clientId: 77n, requestId }, Buffer.from(`op-${requestId}`));
  const msg = clientKey ? seal(plain, clientKey) : plain;
  return buildFrame({ srcIp: '10.77.0.1', dstIp: SEQ_IP, srcPort: 40000, dstPort: 7400, payload: msg });
}

export function ackFrame(from: Member, rid: number, seq: bigint, session = SESSION, groupId = GROUP_ID): Buffer {
  const msg = encodeMessage({ ...emptyHeader(), type: MsgType.ACK, groupId, replicaId: rid, session, seq });
  return buildFrame({ srcIp: from.addr, dstIp: SEQ_IP, srcPort: from.port, dstPort: 7400, payload: msg });
}

/** Stamps one request through the program; returns its seq. */
export function stamp(seq: Sequencer, requestId: bigint, groupId = GROUP_ID, clientKey?: GroupKey): bigint {
  const r = seq.program.testRun({ data: requestFrame(requestId, groupId, clientKey) });
  if (r.retval !== XDP_TX) throw new Error(`request ${requestId} was not stamped (action ${r.retval})`);
  return readHeader(parseFrame(r.data).payload).seq;
}

/** ACKs `seq` from each listed replica (their configured address and port). */
export function ack(seq: Sequencer, g: GroupConfig, seqNo: bigint, rids: number[], groupId = GROUP_ID): void {
  for (const rid of rids) seq.program.testRun({ data: ackFrame(g.members![rid]!, rid, seqNo, g.session, groupId) });
}

/** Empties the group: no seqs stamped, every slot of the map zeroed. */
export function resetGroup(seq: Sequencer, id: number, g: GroupConfig, window = 0): void {
  seq.disableGroup(id);
  seq.resetSeq(id);
  const zero = new Uint8Array(seq.slots.valueSize);
  for (let i = 0; i < seq.slots.maxEntries; i++) seq.slots.update(new Uint8Array(new Uint32Array([i]).buffer), zero);
  seq.setGroup(id, g, window);
}

export interface Received {
  msg: Buffer;
  from: RemoteInfo;
}

/** One UDP socket per replica, all on one port, at 127.0.0.(11+rid). */
export class ReplicaSockets {
  readonly received: Received[][];
  private constructor(
    readonly sockets: Socket[],
    readonly port: number,
  ) {
    this.received = sockets.map(() => []);
    sockets.forEach((s, i) => s.on('message', (msg, from) => this.received[i]!.push({ msg, from })));
  }

  static addr(rid: number): string {
    return `127.0.0.${11 + rid}`;
  }

  static async bind(n: number): Promise<ReplicaSockets> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const sockets: Socket[] = [];
      try {
        let port = 0;
        for (let rid = 0; rid < n; rid++) {
          const s = createSocket('udp4');
          sockets.push(s);
          port = await bindTo(s, ReplicaSockets.addr(rid), port);
        }
        return new ReplicaSockets(sockets, port);
      } catch (e) {
        // The port picked for replica 0 was taken on another address.
        for (const s of sockets) s.close();
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
      }
    }
    throw new Error('no UDP port free on 127.0.0.11.. after 20 attempts');
  }

  /** Seqs each replica received so far (in arrival order). */
  seqs(): bigint[][] {
    return this.received.map((r) => r.map((x) => readHeader(x.msg).seq));
  }

  clear(): void {
    for (const r of this.received) r.length = 0;
  }

  close(): void {
    for (const s of this.sockets) s.close();
  }
}

export function bindTo(s: Socket, address: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind(port, address, () => {
      s.off('error', reject);
      resolve(s.address().port);
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until `cond` holds; throws with `what` after `ms`. */
export async function waitFor(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Loopback delivers within a millisecond; this long with nothing new means nothing more is coming. */
export const SETTLE_MS = 50;
