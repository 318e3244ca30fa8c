// Runs log entries through the application in slot order, with at-most-once
// filtering, and keeps the newest checkpoint: the state after a committed
// prefix. A replica whose executed-but-uncommitted suffix turns out wrong
// (an old leader after a view change) goes back to the checkpoint and
// replays; nothing at or below a checkpoint ever changes.
import type { Application } from './app.ts';
import { ClientTable } from './client-table.ts';
import type { LogPosition } from './log.ts';
import type { Checkpoint, LogEntry } from './messages.ts';
import { weightOp } from './control-op.ts';
import { decodeReserveOp, encodeMarkResult, SequenceMarks } from './sequence-marks.ts';
import type { WeightState } from './weights-exec.ts';

export type Outcome =
  | { readonly kind: 'noop' }
  | { readonly kind: 'executed'; readonly result: Uint8Array }
  | { readonly kind: 'duplicate'; readonly result: Uint8Array }
  /** result is always STALE_MARK. */
  | { readonly kind: 'stale'; readonly result: Uint8Array };

/**
 * The leader's answer to a stale request id (older than the client's latest
 * executed one: a replay, or a retry overtaken by a newer request). Nothing
 * is executed, but the leader ACKs it, flagged stale (AckMsg.stale), so the
 * request's window slot in the sequencer completes: a replayed REQUEST costs
 * one slot and no execution, and never holds the window. Told apart from a
 * real (empty) result by identity.
 */
export const STALE_MARK: Uint8Array = new Uint8Array(0);

const NOOP: Outcome = { kind: 'noop' };
const STALE: Outcome = { kind: 'stale', result: STALE_MARK };
/**
 * A group control op (Hydra) never reaches the application nor the client
 * table (it is idempotent), but its result is empty rather than none, so the
 * leader ACKs it like a request and the sender gets a certified answer: the
 * op holds its place in the log.
 */
const CONTROL_DONE: Outcome = { kind: 'executed', result: new Uint8Array(0) };

export class Executor {
  private clients: ClientTable;
  private marks: SequenceMarks;
  private cp: Checkpoint;
  /** Slots 1..executed are reflected in the application state. */
  executed: number;

  constructor(
    private readonly app: Application,
    initial: Checkpoint,
    /** The group's weight ledger (weights-exec.ts): replicated state beside the app's. */
    private readonly weights?: WeightState,
  ) {
    this.cp = initial;
    this.clients = ClientTable.from(initial.clients);
    this.marks = new SequenceMarks(initial.marks);
    this.executed = initial.slot;
    weights?.restore(initial.weights);
    weights?.committed(initial.weights);
  }

  /** The initial checkpoint of a fresh group: slot 0, the app as constructed. */
  static genesis(app: Application): Checkpoint {
    return { slot: 0, session: 0, seq: 0, app: app.snapshot(), clients: [] };
  }

  /** The group's weight ledger as executed here (absent: not kept). */
  get weightLedger() {
    return this.weights?.ledger;
  }

  get checkpoint(): Checkpoint {
    return this.cp;
  }

  execute(e: LogEntry): Outcome {
    if (e.slot !== this.executed + 1) throw new Error(`executor: slot ${e.slot} after ${this.executed}`);
    this.executed = e.slot;
    if (e.noop) return NOOP;
    // A sequence mark reservation (idempotent: a max) answers with the
    // mark before it, outside the client table.
    const reserve = e.control ? decodeReserveOp(e.op) : null;
    if (reserve) return { kind: 'executed', result: encodeMarkResult(this.marks.reserve(reserve)) };
    // A weight change is not idempotent: it passes the client table, so a
    // re-sent copy gets the first one's answer and is never applied twice.
    const wop = e.control && this.weights ? weightOp(e.op) : null;
    if (e.control && !wop) return CONTROL_DONE;
    const a = this.clients.admit(e.clientId, e.requestId);
    if (a.kind === 'stale') return STALE;
    if (a.kind !== 'new') return a;
    const result = !wop ? this.app.execute(e.op) : wop.kind === 'weights' ? this.weights!.apply(e.slot, wop.change) : this.weights!.read(wop.member);
    this.clients.record(e.clientId, e.requestId, result);
    return { kind: 'executed', result };
  }

  /** The result a duplicate of this request would get, if it is the client's latest. */
  cachedResult(clientId: bigint, requestId: bigint): Uint8Array | null {
    const a = this.clients.admit(clientId, requestId);
    return a.kind === 'duplicate' ? a.result : null;
  }

  /** Snapshot of the state right now; `at` must be the last executed position. */
  snapshot(at: LogPosition): Checkpoint {
    if (at.slot !== this.executed) throw new Error(`executor: snapshot at ${at.slot} but executed ${this.executed}`);
    const weights = this.weights?.snapshot();
    const marks = this.marks.entries();
    return { slot: at.slot, session: at.session, seq: at.seq, app: this.app.snapshot(), clients: this.clients.records(), ...(weights ? { weights } : {}), ...(marks.length ? { marks } : {}) };
  }

  /** Makes cp the rollback point (it must describe a committed prefix). */
  keep(cp: Checkpoint): void {
    this.cp = cp;
    this.weights?.committed(cp.weights);
  }

  /** Application, client table and weight ledger back to cp; executed = cp.slot. */
  restore(cp: Checkpoint): void {
    this.app.restore(cp.app);
    this.weights?.restore(cp.weights);
    this.clients = ClientTable.from(cp.clients);
    this.marks = new SequenceMarks(cp.marks);
    this.executed = cp.slot;
  }
}
