// Messages as typed objects. The fast path (REQUEST, SEQUENCED, ACK, REPLY)
// and the repair service map one to one onto bpf/wire.ts headers and
// bpf/repair.ts payloads (see wire-map.ts). The replica-to-replica slow path
// carries logs and snapshots and is an in-memory shape: a real transport
// serialises it over a stream, not in one 1400-byte datagram.
//
// Every message and everything it points to is immutable once sent: the
// simulation hands the same object to several receivers.
import type { ViewId } from './view.ts';

/** seq, slot and session are numbers: exact below 2^53, far past any run. */

// ---- fast path -------------------------------------------------------------

/** client -> sequencer */
export interface RequestMsg {
  readonly type: 'REQUEST';
  readonly clientId: bigint;
  readonly requestId: bigint;
  readonly op: Uint8Array;
  /** Hydra: a group control op (XSEQ_F_CONTROL; op = control-op.ts), not for the application. */
  readonly control?: boolean;
}

/** sequencer -> group: a request with its OUM stamp. */
export interface SequencedMsg {
  readonly type: 'SEQUENCED';
  readonly session: number;
  readonly seq: number;
  readonly clientId: bigint;
  readonly requestId: bigint;
  readonly op: Uint8Array;
  /** Re-sent by the agent (retransmission or repair), not the first copy. */
  readonly retransmit: boolean;
  /** Hydra: the sequencer that stamped it (absent: sequencer 0). */
  readonly sequencerId?: number;
  /** Hydra: the sequencer's raw TAI clock at stamping, ns (absent: 0). */
  readonly clock?: number;
  /** Hydra: a group control op (XSEQ_F_CONTROL), see RequestMsg. */
  readonly control?: boolean;
}

/**
 * sequencer -> group (Hydra): "I stamped exactly seqs 1..seq of this session,
 * and every later one has clock >= clock". final: the sequencer left the
 * group for good and seq is its last.
 */
export interface FlushMsg {
  readonly type: 'FLUSH';
  readonly sequencerId: number;
  readonly session: number;
  readonly seq: number;
  readonly clock: number;
  readonly final: boolean;
}

/** replica -> one sequencer (Hydra): send a FLUSH now, my delivery waits on you. */
export interface FlushSolicitMsg {
  readonly type: 'FLUSH_SOLICIT';
  readonly sequencerId: number;
  readonly replicaId: number;
  readonly session: number;
}

/** replica -> aggregator (or client): "slot (session, seq) holds this request in my log". */
export interface AckMsg {
  readonly type: 'ACK';
  readonly session: number;
  readonly seq: number;
  /** The view's leaderNum (wire: header.view); leader = leaderNum mod n. */
  readonly leaderNum: number;
  readonly replicaId: number;
  readonly clientId: bigint;
  readonly requestId: bigint;
  /** The application's result: the leader's ACK only. */
  readonly result: Uint8Array | null;
  /**
   * Leader: the request id is older than the client's latest executed one
   * (a replay), so it was not executed; `result` is then empty. Wire:
   * XSEQ_F_STALE. The ACK still completes the request's window slot.
   */
  readonly stale?: boolean;
  /** Hydra: the sequencer that stamped (session, seq); the ACK goes to it. */
  readonly sequencerId?: number;
}

/** aggregator -> client: certified by a quorum including the leader. */
export interface ReplyMsg {
  readonly type: 'REPLY';
  readonly session: number;
  readonly seq: number;
  readonly leaderNum: number;
  readonly replicaId: number;
  readonly clientId: bigint;
  readonly requestId: bigint;
  readonly result: Uint8Array;
  /** A stale request id (see AckMsg.stale): not executed, no result. */
  readonly stale?: boolean;
  /** Hydra: the sequencer that stamped and certified it. */
  readonly sequencerId?: number;
}

// ---- repair service (agent) -----------------------------------------------

export interface RepairRequestMsg {
  readonly type: 'REPAIR_REQUEST';
  /** Hydra: whose agent is asked (absent: sequencer 0). */
  readonly sequencerId?: number;
  readonly session: number;
  readonly replicaId: number;
  readonly first: number;
  readonly count: number;
}

/** Sent after the agent re-sent what it still holds as SEQUENCED copies. */
export interface RepairReplyMsg {
  readonly type: 'REPAIR_REPLY';
  readonly sequencerId?: number;
  readonly session: number;
  readonly first: number;
  readonly count: number;
  /** Seqs of the range the agent no longer has. */
  readonly missing: readonly number[];
}

/** The agent refused a repair (e.g. WRONG_SESSION after a failover). */
export interface RepairErrorMsg {
  readonly type: 'ERROR';
  readonly sequencerId?: number;
  readonly session: number;
  readonly first: number;
  readonly code: number;
  readonly text: string;
}

// ---- log contents ----------------------------------------------------------

/**
 * Hydra: where a merged log entry came from. The entry's own (session, seq)
 * are then virtual (seq = slot within the view's session); this is the
 * sequencer's stream position and the entry's effective clock (for a no-op:
 * the effective clock of the seq before it).
 */
export interface StreamPos {
  readonly sid: number;
  readonly session: number;
  readonly seq: number;
  /** Effective clock (ns): max(raw, the previous seq's effective clock, the sequencer's floor). */
  readonly clock: number;
  /** Raw clock as stamped; for a no-op the clock the deciding leader gave it. */
  readonly raw: number;
  /**
   * The replicas ended this (sequencer, session) here: the entry is the
   * no-op the leader appended when it removed the sequencer (stream-epochs.ts),
   * and no seq of that session after it is ever merged.
   */
  readonly end?: true;
}

export interface LogEntry {
  /** Position in the replicated log, 1-based across sessions. */
  readonly slot: number;
  readonly session: number;
  readonly seq: number;
  /** Committed as a no-op by gap agreement: the request (if any) is void. */
  readonly noop: boolean;
  readonly clientId: bigint;
  readonly requestId: bigint;
  readonly op: Uint8Array;
  /** Hydra only: the sequencer stream position this entry merged from. */
  readonly src?: StreamPos;
  /** Hydra only: a group control op; the application never sees it. */
  readonly control?: boolean;
}

export interface ClientRecord {
  readonly clientId: bigint;
  readonly requestId: bigint;
  readonly result: Uint8Array;
}

/** Application state and client table after executing slots 1..slot. */
export interface Checkpoint {
  readonly slot: number;
  /** (session, seq) of the entry at `slot`, so seqs map to slots after truncation. */
  readonly session: number;
  readonly seq: number;
  readonly app: Uint8Array;
  readonly clients: readonly ClientRecord[];
  /** Hydra only: each sequencer's stream position as of `slot` (the merge resumes from these). */
  readonly streams?: readonly StreamPos[];
  /** The group's weight ledger as of `slot` (replica/weights-exec.ts); absent: the starting table. */
  readonly weights?: Uint8Array;
  /** Sequence marks reserved through the group as of `slot` (sequence-marks.ts), by name. */
  readonly marks?: readonly (readonly [string, bigint])[];
}

/** A log as it travels: a checkpoint, the entries after it, and the commit point. */
export interface LogState {
  readonly checkpoint: Checkpoint;
  /** Contiguous, starting at checkpoint.slot + 1. */
  readonly entries: readonly LogEntry[];
  /** Every slot up to here is committed (never changes again). */
  readonly committed: number;
}

// ---- replica <-> replica slow path ------------------------------------------

interface Peer {
  readonly from: number;
  readonly view: ViewId;
}

/** follower -> leader: the agent no longer has the request for `slot`. */
export interface GapFindMsg extends Peer {
  readonly type: 'GAP_FIND';
  readonly slot: number;
  /** Hydra: the gap is (sequencer, session, seq) of a stream; slot is then 0. */
  readonly stream?: StreamKey;
}

/** Hydra: one seq of one sequencer's stream, what gap agreement is keyed by. */
export interface StreamKey {
  readonly sid: number;
  readonly session: number;
  readonly seq: number;
}
/** leader -> follower: the entry (a request, or a no-op it committed). */
export interface GapRecvMsg extends Peer {
  readonly type: 'GAP_RECV';
  readonly entry: LogEntry;
}
/** leader -> follower: I do not have it yet either; wait for my GAP_COMMIT. */
export interface GapDropMsg extends Peer {
  readonly type: 'GAP_DROP';
  readonly slot: number;
  readonly stream?: StreamKey;
}
export interface GapCommitMsg extends Peer {
  readonly type: 'GAP_COMMIT';
  readonly slot: number;
  readonly session: number;
  readonly seq: number;
  readonly stream?: StreamKey;
  /** Hydra: where the no-op sorts (the leader's frontier of that sequencer when it decided). */
  readonly clock?: number;
}
export interface GapCommitReplyMsg extends Peer {
  readonly type: 'GAP_COMMIT_REPLY';
  readonly slot: number;
  readonly stream?: StreamKey;
}
export interface ViewChangeRequestMsg extends Peer {
  readonly type: 'VIEW_CHANGE_REQUEST';
}
export interface ViewChangeMsg extends Peer {
  readonly type: 'VIEW_CHANGE';
  readonly lastNormalView: ViewId;
  readonly state: LogState;
  /**
   * Hydra: requests this replica had in its log (and ACKed) but took out to
   * merge again after a no-op or the leader's log changed what came before
   * them; the view-change merge counts them like its log (slot 0).
   */
  readonly held?: readonly LogEntry[];
}
export interface StartViewMsg extends Peer {
  readonly type: 'START_VIEW';
  readonly state: LogState;
}
/**
 * Recovery after a restart (view null: "tell me your view", nonce names
 * this incarnation) or catch-up of a follower that fell behind the leader's
 * truncation point (view set, nonce 0).
 */
export interface StateRequestMsg {
  readonly type: 'STATE_REQUEST';
  readonly from: number;
  readonly nonce: number;
  readonly view: ViewId | null;
}
/** state is sent by the leader of `view` only. */
export interface StateReplyMsg {
  readonly type: 'STATE_REPLY';
  readonly from: number;
  readonly nonce: number;
  readonly view: ViewId;
  readonly state: LogState | null;
}
/**
 * leader -> all: adopt my log up to syncPoint (entries from my log start;
 * none in a bare heartbeat). `committed` is the leader's commit point, so a
 * follower that holds the leader's log that far commits without the
 * SYNC_COMMIT it may have lost.
 */
export interface SyncPrepareMsg extends Peer {
  readonly type: 'SYNC_PREPARE';
  readonly syncPoint: number;
  readonly committed: number;
  readonly entries: readonly LogEntry[];
}
export interface SyncReplyMsg extends Peer {
  readonly type: 'SYNC_REPLY';
  readonly syncPoint: number;
}
export interface SyncCommitMsg extends Peer {
  readonly type: 'SYNC_COMMIT';
  readonly syncPoint: number;
}

export type PeerMsg =
  | GapFindMsg
  | GapRecvMsg
  | GapDropMsg
  | GapCommitMsg
  | GapCommitReplyMsg
  | ViewChangeRequestMsg
  | ViewChangeMsg
  | StartViewMsg
  | StateRequestMsg
  | StateReplyMsg
  | SyncPrepareMsg
  | SyncReplyMsg
  | SyncCommitMsg;

/**
 * transport -> replica: seqs from..to (inclusive) of `session` never reached
 * this host before a later seq did (NOPaxos's DROP-NOTIFICATION; the
 * replica-side XDP program posts them, replica/xdp/). A hint: the packets
 * may only be late, so the replica still waits its reorder time, but the
 * repair it then sends covers the range without a scan of its buffer.
 */
export interface DropNotificationMsg {
  readonly type: 'DROP_NOTIFICATION';
  /** The stream's sequencer (the kernel's gap event names it); a one-sequencer replica ignores it. */
  readonly sequencerId?: number;
  readonly session: number;
  readonly from: number;
  readonly to: number;
}

/** Everything a replica can receive. */
export type ReplicaInbound = SequencedMsg | FlushMsg | RepairReplyMsg | RepairErrorMsg | DropNotificationMsg | PeerMsg;

/** Everything a client can receive. */
export type ClientInbound = ReplyMsg | AckMsg;
