// Sequence mark reservations through a replica group's total order
// (docs/sequences.md, "Replicated durability"). A replicated sequence's
// kernel mark is raised only over a range the group certified as this
// host's: the agent sends the group a "reserve" control op
// (replica/sequence-marks.ts) and waits for its certificate.
//
// How the op gets into the total order: the agent is on the sequencer host,
// and its own datagrams never pass the interface's XDP program. So it runs
// the attached program on a REQUEST frame it builds (a plain
// BPF_PROG_TEST_RUN, as the flush timer does in socket mode,
// agent/flush.ts): the kernel admits it, takes the group's next seq, keeps
// it in the window slot and hands back the SEQUENCED (sealed if the group is
// keyed), which the agent sends to the group from the sequencer's address
// and port. From there it is a request like any other: the retransmitter
// re-sends it until every member ACKs, and the aggregator certifies it
// (the leader's ACK and a quorum) and stores the leader's result in the
// slot. The agent reads that certified result from the slot (its REPLY
// goes to the REQUEST's source, the interface itself, and is lost on the
// wire); a reserve is idempotent, so on any doubt it simply sends another.
import type { Socket } from 'node:dgram';
import type { BpfProgram } from '../bpf/libbpf/index.ts';
import { type GroupKey, seal } from '../bpf/mac.ts';
import { ErrorCode } from '../bpf/repair.ts';
import type { SlotView } from '../bpf/maps.ts';
import { emptyHeader, encodeMessage, Flags, MsgType, readHeader, XSEQ_HDR_LEN } from '../bpf/wire.ts';
import { decodeMarkResult, encodeReserveOp } from '../replica/sequence-marks.ts';
import { AgentError } from './errors.ts';

/** The client id of the agent's reservations ("xseqmark"); control ops bypass the client table. */
export const RESERVE_CLIENT_ID = 0x787365716d61726bn;
const XDP_TX = 3;
const L4 = 14 + 20 + 8;
/** The default time a raise waits for a certificate (the reservation stays pending: the next raise waits on it again). */
export const DEFAULT_RESERVE_TIMEOUT_MS = 1000;
const POLL_MS = 1;
const BUSY_WAIT_MS = 2;

/** What a reservation needs of the data path (bpf/sequencer.ts, the attached program). */
export interface ReserveDataPath {
  program: Pick<BpfProgram, 'testRun'>;
  /** The slot holding (or last holding) `seq` of group `id`. */
  slot(id: number, seq: bigint): SlotView | undefined;
  /** Whether group `id` is on the data path (stamped here). */
  serves(id: number): boolean;
}

export interface GroupMarkOptions {
  /** The interface's MAC and IPv4 address: the REQUEST frame is addressed to the sequencer there. */
  mac: string;
  addr: string;
  port: number;
  /** Bound to the sequencer's address and port (replicas take SEQUENCED only from there). */
  socket: Pick<Socket, 'send'>;
  /** The group's key, if it has one: a control op of a keyed group must be sealed with it. */
  key?: (groupId: number) => GroupKey | undefined;
  timeoutMs?: number;
}

export interface GroupMarkCounters {
  /** Reservations certified. */
  reserved: number;
  /** Reservations that failed (not served here, no certificate in time). */
  failed: number;
  /** Certified reservations that found another host's mark past ours (a failover happened). */
  foreign: number;
}

function bytesOf(text: string, sep: string, radix: number, n: number, what: string): number[] {
  const parts = text.split(sep).map((p) => parseInt(p, radix));
  if (parts.length !== n || parts.some((b) => !(b >= 0 && b <= 255))) throw new RangeError(`"${text}" is not ${what}`);
  return parts;
}

/** A REQUEST frame (flagged CONTROL) from the interface to its own sequencer port. */
export function reserveFrame(o: { mac: string; addr: string; port: number; groupId: number; requestId: bigint; op: Uint8Array; key?: GroupKey | undefined }): Buffer {
  const mac = bytesOf(o.mac, ':', 16, 6, 'a MAC address');
  const ip = bytesOf(o.addr, '.', 10, 4, 'a dotted IPv4 address');
  const plain = encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, flags: Flags.CONTROL, groupId: o.groupId, clientId: RESERVE_CLIENT_ID, requestId: o.requestId }, o.op);
  // Keyed group: a control op counts only under the group key (the kernel's client check).
  const msg = o.key ? seal(plain, o.key) : plain;
  const f = Buffer.alloc(L4 + msg.length);
  f.set(mac, 0);
  f.set(mac, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(20 + 8 + msg.length, 16);
  f[22] = 64;
  f[23] = 17;
  f.set(ip, 26);
  f.set(ip, 30);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += f.readUInt16BE(14 + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  f.writeUInt16BE(~sum & 0xffff, 24);
  f.writeUInt16BE(o.port, 34);
  f.writeUInt16BE(o.port, 36);
  f.writeUInt16BE(8 + msg.length, 38);
  f.set(msg, L4);
  return f;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class GroupMarks {
  readonly #dp: ReserveDataPath;
  readonly #o: GroupMarkOptions;
  readonly #timeoutMs: number;
  // Request ids only make a REQUEST well formed: control ops skip the client table.
  #requestId = BigInt(Date.now()) << 16n;
  /**
   * Reservations sent and not yet seen certified, by group and name. A
   * later raise waits on the same op rather than sending another: a second
   * op for the same range would find the first one's mark before it, which
   * looks exactly like another host's reservation (and would cost a jump).
   */
  readonly #pending = new Map<string, { seq: bigint; session: number; mark: bigint }>();
  readonly counters: GroupMarkCounters = { reserved: 0, failed: 0, foreign: 0 };

  constructor(dp: ReserveDataPath, o: GroupMarkOptions) {
    this.#dp = dp;
    this.#o = o;
    this.#timeoutMs = o.timeoutMs ?? DEFAULT_RESERVE_TIMEOUT_MS;
  }

  serves(groupId: number): boolean {
    return this.#dp.serves(groupId);
  }

  /**
   * Reserves `mark` for sequence `name` in group `groupId`: resolves with
   * the group's mark before it (certified) and the mark it reserved, which
   * is an earlier pending reservation's when one got certified meanwhile
   * (the caller raises to that, and asks again for more). Throws
   * EMARK_GROUP.
   */
  async reserve(groupId: number, name: string, mark: bigint): Promise<{ prev: bigint; mark: bigint }> {
    try {
      const r = await this.#reserve(groupId, name, mark);
      this.counters.reserved++;
      return r;
    } catch (e) {
      this.counters.failed++;
      throw e;
    }
  }

  async #reserve(groupId: number, name: string, mark: bigint): Promise<{ prev: bigint; mark: bigint }> {
    const deadline = performance.now() + this.#timeoutMs;
    const key = `${groupId}/${name}`;
    const pending = this.#pending.get(key);
    if (pending) {
      const got = await this.#certified(groupId, pending.seq, pending.session, deadline);
      if (got === 'timeout') throw this.#timeout(groupId, name);
      this.#pending.delete(key);
      if (got !== 'moved') return { prev: got, mark: pending.mark };
    }
    const op = encodeReserveOp({ name, mark });
    while (performance.now() < deadline) {
      const frame = reserveFrame({ ...this.#o, groupId, requestId: ++this.#requestId, op, key: this.#o.key?.(groupId) });
      const r = this.#dp.program.testRun({ data: frame });
      const out = Buffer.from(r.data);
      if (r.retval !== XDP_TX || out.length < L4 + XSEQ_HDR_LEN) {
        throw new AgentError('EMARK_GROUP', `group ${groupId} is not stamped here (the sequencer program dropped the reservation: a standby that has not taken over, or the group is disabled)`);
      }
      const h = readHeader(out, L4);
      if (h.type === MsgType.ERROR) {
        const code = out.length >= L4 + XSEQ_HDR_LEN + 2 ? out.readUInt16BE(L4 + XSEQ_HDR_LEN) : -1;
        if (code !== ErrorCode.BUSY) throw new AgentError('EMARK_GROUP', `group ${groupId}: the sequencer refused the reservation (ERROR ${code}${code === ErrorCode.UNAUTHORIZED ? ": not authenticated (control_refused; a keyed group needs this agent's groups[].keyFile)" : ''})`);
        // BUSY: the window slot is still held; the retransmitter frees it.
        await sleep(BUSY_WAIT_MS);
        continue;
      }
      if (h.type !== MsgType.SEQUENCED) throw new AgentError('EMARK_GROUP', `group ${groupId}: the sequencer program answered a reservation with message type ${h.type}`);
      const dst = `${out[30]}.${out[31]}.${out[32]}.${out[33]}`;
      this.#o.socket.send(out.subarray(L4), out.readUInt16BE(36), dst);
      this.#pending.set(key, { seq: h.seq, session: h.session, mark });
      const got = await this.#certified(groupId, h.seq, h.session, deadline);
      if (got === 'timeout') break;
      this.#pending.delete(key);
      if (got !== 'moved') return { prev: got, mark };
    }
    throw this.#timeout(groupId, name);
  }

  #timeout(groupId: number, name: string): AgentError {
    return new AgentError('EMARK_GROUP', `group ${groupId}: no certificate for the reservation of "${name}" within ${this.#timeoutMs} ms (are a quorum of its replicas up?); it stays pending`);
  }

  /** Polls the slot until the aggregator certified the seq: the leader's result; 'moved' when the slot holds another seq now (the op is lost: send another). */
  async #certified(groupId: number, seq: bigint, session: number, deadline: number): Promise<bigint | 'moved' | 'timeout'> {
    for (;;) {
      const s = this.#dp.slot(groupId, seq);
      if (!s || s.seq !== seq || s.session !== session) return 'moved';
      if (s.replied && s.result) return decodeMarkResult(s.result) ?? 'moved';
      if (performance.now() >= deadline) return 'timeout';
      await sleep(POLL_MS);
    }
  }
}
