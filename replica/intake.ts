// The seam between the NOPaxos core (replica.ts: log, execution, sync, view
// change, recovery) and what feeds its log: the sequencers' streams. One
// sequencer (single-stream.ts): the stream is the log, a seq is a slot of
// the view's session. Several (hydra.ts): the streams are merged into the
// log. Both run the same drop-recovery ladder (drop-recovery.ts) per stream
// and the same leader-side gap agreement (noop-quorum.ts); the core never
// asks which one it has.
//
// Where issue 11's failover goes (README.md, "The engine"): per-sequencer
// sessions and removals are stream membership, which Hydra already derives
// from the log (configured ids, checkpoint `streams`, control ops); a
// removal at an agreed last seq is a FINAL with q fixed by the leader, a
// rejoin a new Stream for the same id and session, a standby a second
// stream of a one-sequencer group.
import type { Log } from './log.ts';
import type {
  Checkpoint,
  DropNotificationMsg,
  FlushMsg,
  GapCommitMsg,
  GapCommitReplyMsg,
  GapDropMsg,
  GapFindMsg,
  GapRecvMsg,
  LogEntry,
  LogState,
  PeerMsg,
  RepairErrorMsg,
  RepairReplyMsg,
  SequencedMsg,
  StreamPos,
  ViewChangeMsg,
} from './messages.ts';
import type { ReplicaTransport, Timer } from './transport.ts';
import type { ViewId } from './view.ts';

/** What an intake needs from the core it feeds. */
export interface EngineHost {
  readonly id: number;
  readonly f: number;
  readonly n: number;
  readonly view: ViewId;
  readonly log: Log;
  readonly committed: number;
  readonly checkpoint: Checkpoint;
  readonly transport: ReplicaTransport;
  normal(): boolean;
  amLeader(): boolean;
  /** The next seq of the view's session at the log's end. */
  nextSeq(): number;
  /** Appends e at the log's end; the leader executes it, and ACKs when `ack`. */
  append(e: LogEntry, ack: boolean): void;
  /** The ACK of an entry already logged, again (a retransmitted copy arrived). */
  reAck(slot: number): void;
  /**
   * A copy of a seq this replica settled without holding its request (below
   * its checkpoint, or a no-op by agreement): ACK it as settled, never with a
   * result (acks.ts). `sid`: the stream's sequencer, with several.
   */
  reAckSettled(m: SequencedMsg, sid: number | undefined): void;
  /** Same-view check of a peer message (and view change on a newer one). */
  admit(m: { readonly view: ViewId; readonly from: number }): boolean;
  heardFromLeader(): void;
  toLeader(m: PeerMsg): void;
  /** Traffic of a newer session: the sequencer was re-created. */
  startViewChange(target: ViewId): void;
  currentState(): LogState;
  /** A timer after which the transport hears what the log holds. */
  timer(fire: () => void): Timer;
}

/** Where one sequencer stream's delivered position stands (ReplicaTransport.delivered). */
export interface StreamDelivered {
  /** undefined: the group's only sequencer. */
  readonly sid: number | undefined;
  readonly session: number;
  readonly seq: number;
}

/** What the core asks of whatever turns the sequencers' streams into its log. */
export interface Intake {
  onSequenced(m: SequencedMsg): void;
  onFlush(m: FlushMsg): void;
  onDropNotification(m: DropNotificationMsg): void;
  onRepairReply(m: RepairReplyMsg): void;
  onRepairError(m: RepairErrorMsg): void;
  onGapFind(m: GapFindMsg): void;
  onGapRecv(m: GapRecvMsg): void;
  onGapDrop(m: GapDropMsg): void;
  onGapCommit(m: GapCommitMsg): void;
  onGapCommitReply(m: GapCommitReplyMsg): void;

  /** The view's session changed (before the core's view moves to `session`). */
  newSession(session: number): void;
  /** The log grew or changed under the core (a SYNC_PREPARE adopted); `displaced` are entries it replaced. */
  adopted(lastSlot: number, displaced: readonly LogEntry[], changed: boolean, grew: boolean): void;
  /** The log was replaced (view change, state transfer); `old` is the log before, `sameView` keeps decisions. */
  installed(old: Log | null, sameView: boolean): void;
  /** The core may have moved the log's end: take what became contiguous. */
  resume(): void;
  /** A quorum holds the log through `point` (a pending no-op there is held). */
  committedThrough(point: number): void;
  /** Normal work stops (view change): timers off, pending decisions abandoned. */
  stopWork(): void;

  /** A checkpoint's stream positions at `slot`, when the log is a merge. */
  streamsAt(slot: number): StreamPos[] | undefined;
  /** What a VIEW_CHANGE must count besides the log. */
  heldEntries(): LogEntry[];
  /** The view-change merge of f+1 VIEW_CHANGEs. */
  mergeViewChanges(msgs: readonly ViewChangeMsg[]): LogState;
  /** Every stream's delivered position, for the kernel filter. */
  delivered(): Iterable<StreamDelivered>;
}
