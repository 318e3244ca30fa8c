// What the protocol needs from the outside world, and nothing more. The
// replica and client never touch sockets or real timers: the UDP transport
// (later) and the deterministic simulation (sim/) both implement these.
import type { AckMsg, FlushSolicitMsg, PeerMsg, RepairRequestMsg, RequestMsg } from './messages.ts';

export interface TimerHandle {
  cancel(): void;
}

/** Time in microseconds, from any origin. Callbacks run one at a time. */
export interface Scheduler {
  now(): number;
  setTimer(delayUs: number, fn: () => void): TimerHandle;
}

export interface ReplicaTransport {
  /** Slow path to one peer; best effort, may be lost, duplicated, reordered. */
  sendToReplica(to: number, msg: PeerMsg): void;
  /**
   * The ACK of a logged request. Where it goes is the transport's business:
   * to the sequencer host's in-kernel aggregator (one REPLY per request), or
   * straight to the client when aggregation is off.
   */
  sendAck(msg: AckMsg): void;
  /** To the agent's repair service (answers with SEQUENCED copies + REPAIR_REPLY, or ERROR). */
  sendRepairRequest(msg: RepairRequestMsg): void;
  /**
   * Optional: told after every event that moved a stream's position, which
   * seqs of `session` the replica holds (1..seq) and will not act on again
   * except to re-ACK a retransmission. A kernel filter (replica/xdp/) drops
   * copies of them; it may lag behind, which only lets more through, and is
   * told at once when the position goes back (a view change, a re-merge) or
   * the session changes. `sequencerId`: the stream of that sequencer (a
   * group with several); absent: the group's one sequencer.
   */
  delivered?(session: number, seq: number, sequencerId?: number): void;
  /** Hydra: to sequencer msg.sequencerId (a FLUSH comes back to the group). Optional with one sequencer. */
  sendFlushSolicit?(msg: FlushSolicitMsg): void;
}

/** Clients send to a sequencer; it stamps and multicasts (OUM). */
export interface ClientTransport {
  /** `sequencerId`: which of the group's sequencers (the client's choice). */
  sendRequest(msg: RequestMsg, sequencerId: number): void;
}

/** One restartable timeout on top of a Scheduler. */
export class Timer {
  private handle: TimerHandle | null = null;
  constructor(
    private readonly scheduler: Scheduler,
    private readonly fire: () => void,
  ) {}

  get active(): boolean {
    return this.handle !== null;
  }

  start(delayUs: number): void {
    this.handle?.cancel();
    this.handle = this.scheduler.setTimer(delayUs, () => {
      this.handle = null;
      this.fire();
    });
  }

  /** Starts only if not already running (a deadline that must not slide). */
  ensure(delayUs: number): void {
    if (!this.handle) this.start(delayUs);
  }

  stop(): void {
    this.handle?.cancel();
    this.handle = null;
  }
}
