// The standby of a one-sequencer pair (groups[].role standby). Its data path
// is loaded and attached, but the group is not on it: a request that reaches
// it is dropped (`unknown_group`), so a client whose request was merely slow
// cannot hand the group to the standby while the active lives. The active's
// heartbeat is its flushes (a paired group needs flushIntervalMs > 0) and
// its stamps: the standby listens on the group's multicast for any SEQUENCED
// or FLUSH of the group stamped by another sequencer id. It takes over when
// both hold: the active has been silent for takeoverMs, and a client knocked
// (a request reached the standby and was refused) within takeoverMs, i.e.
// clients cannot get through the active either. A stalled active agent
// (no flushes for a while, on a loaded host) whose data path still answers
// clients therefore costs nothing. Then: a session by the pair rule
// (agent/pair-session.ts, above the active's), recorded durably first, seq
// from 1, the group written to the data path. From then on it stamps for
// good (until restarted without the role's wait: an adopted data path that
// holds the group keeps serving it).
//
// Strangers: a spoofed heartbeat can only delay a takeover (the group then
// stays with the active, or with nobody while the active is really dead);
// it can never make two hosts stamp one session.
import { createSocket, type Socket } from 'node:dgram';
import { decodeMessage, MsgType } from '../bpf/wire.ts';

/** The default takeover timeout in the active's flush intervals (as the replicas' dead-sequencer timeout). */
export const TAKEOVER_FLUSHES = 50;

export function takeoverMsOf(spec: { takeoverMs?: number | undefined }, cfg: { flushIntervalMs: number }): number {
  return spec.takeoverMs ?? TAKEOVER_FLUSHES * cfg.flushIntervalMs;
}

export interface WatchedGroup {
  id: number;
  /** The group's multicast address and port (where the active's stamps and flushes go). */
  addr: string;
  port: number;
  /** This standby's own sequencer id: its own traffic is no heartbeat. */
  sequencerId: number;
  takeoverMs: number;
}

export interface StandbyCounters {
  heartbeats: number;
  takeovers: number;
  /** Checks skipped because this process had stalled (see due). */
  lateChecks: number;
}

/** The takeover decision, without sockets or timers (the agent feeds it). */
export class StandbyWatch {
  readonly #groups: Map<number, WatchedGroup>;
  readonly #lastHeard = new Map<number, number>();
  readonly #takenOver = new Set<number>();
  readonly counters: StandbyCounters = { heartbeats: 0, takeovers: 0, lateChecks: 0 };
  #lastDue: number | undefined;
  #skipped = false;
  #knocks: bigint | undefined;
  #lastKnock = -Infinity;
  readonly #observed = new Map<number, number>();
  readonly #minTakeoverMs: number;

  constructor(
    groups: readonly WatchedGroup[],
    /** When watching starts: an active never heard from gets one full timeout too. */
    startMs: number,
  ) {
    this.#groups = new Map(groups.map((g) => [g.id, g]));
    this.#minTakeoverMs = Math.min(...groups.map((g) => g.takeoverMs));
    for (const g of groups) this.#lastHeard.set(g.id, startMs);
  }

  /** Clients' requests this standby refused (its kernel's unknown_group drops), as a running total. */
  knocked(total: bigint, nowMs: number): void {
    if (this.#knocks !== undefined && total > this.#knocks) this.#lastKnock = nowMs;
    this.#knocks = total;
  }

  /** A datagram from the group's multicast. */
  heard(buf: Uint8Array, nowMs: number): void {
    const d = decodeMessage(buf);
    if (!d.ok) return;
    const h = d.message.header;
    const g = this.#groups.get(h.groupId);
    if (!g || h.sequencerId === g.sequencerId) return;
    if (h.type !== MsgType.SEQUENCED && h.type !== MsgType.FLUSH) return;
    this.counters.heartbeats++;
    this.#lastHeard.set(g.id, nowMs);
    if (h.session > (this.#observed.get(g.id) ?? 0)) this.#observed.set(g.id, h.session);
  }

  /**
   * Groups whose active just went silent for takeoverMs (each reported
   * once). Called on a short timer; a call that comes late (this process
   * stalled) decides nothing: Node runs timers before the socket reads
   * queued during the stall, so the heartbeats may be waiting unread. The
   * call after it decides (the event loop has read its sockets in between),
   * late or not: a host that is always late still takes over.
   */
  due(nowMs: number): number[] {
    const late = this.#lastDue !== undefined && nowMs - this.#lastDue > this.#minTakeoverMs / 4;
    this.#lastDue = nowMs;
    if (late && !this.#skipped) {
      this.#skipped = true;
      this.counters.lateChecks++;
      return [];
    }
    this.#skipped = false;
    const out: number[] = [];
    for (const g of this.#groups.values()) {
      if (this.#takenOver.has(g.id)) continue;
      if (nowMs - this.#lastHeard.get(g.id)! < g.takeoverMs) continue;
      if (nowMs - this.#lastKnock > g.takeoverMs) continue;
      this.#takenOver.add(g.id);
      this.counters.takeovers++;
      out.push(g.id);
    }
    return out;
  }

  /** Whether the standby serves group `id` (took over). */
  serving(id: number): boolean {
    return this.#takenOver.has(id);
  }

  /** The highest session heard from group `id`'s active (0: none): the standby's must be above it. */
  observedSession(id: number): number {
    return this.#observed.get(id) ?? 0;
  }

  /** Last time the active of group `id` was heard from (ms). */
  lastHeard(id: number): number | undefined {
    return this.#lastHeard.get(id);
  }
}

/** One socket per watched group, joined to its multicast on the interface address. */
export async function listenForHeartbeats(groups: readonly WatchedGroup[], ifaceAddr: string, onDatagram: (b: Buffer) => void): Promise<Socket[]> {
  const out: Socket[] = [];
  try {
    for (const g of groups) {
      const s = createSocket({ type: 'udp4', reuseAddr: true });
      out.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.bind(g.port, () => {
          s.off('error', reject);
          resolve();
        });
      });
      s.addMembership(g.addr, ifaceAddr);
      s.on('message', onDatagram);
    }
    return out;
  } catch (e) {
    for (const s of out) s.close();
    throw e;
  }
}
