// Group control ops: a REQUEST flagged XSEQ_F_CONTROL whose payload is one
// of the encodings below. The replicas execute them themselves; the
// application never sees them and the certified result is empty. This
// module is the one place that knows the bytes, so the client library, the
// KV CLI, the replica engine, the simulation's invariants and the view
// change's merge all read the same layout.
//
//   byte 0     0x48 ('H'), the control magic
//   byte 1     kind: 1 = add, 2 = remove
//   bytes 2-3  sequencer id, big-endian (0..65535)
//   bytes 4-7  remove only: the session being removed, big-endian u32;
//              ANY_SESSION (0xffffffff) = whatever session the replicas
//              hold for that sequencer when they apply it
//
// add s:    delivered at merge key k, every replica adds sequencer s with
//           floor clock k.clock + 1 (everything s stamps sorts after it).
// remove s: an operator's word that s is dead. A replica that sees it in
//           any stream (merged or not: the dead stream is what blocks the
//           merge) asks its leader to remove s now, without waiting for
//           the dead-sequencer timeout; the leader decides s's last seq by
//           view-change-style agreement outside the merge, exactly as for
//           a timed-out sequencer. Once merged, the op itself changes
//           nothing more (removing a removed sequencer is a no-op), and a
//           named session that is not the one the replicas hold (the
//           sequencer rejoined since) is ignored: a stale removal never
//           removes the rejoined stream.
//
//   weights:  byte 1 = 3, byte 2 = 1 reassign / 2 transfer / 3 read_changes,
//             byte 3 the
//             member (reassign) or the giver (transfer), byte 4 the taker
//             (transfer; 0 for reassign), bytes 5-6 the delta (reassign,
//             signed) or the amount (transfer), big-endian i16.
//             Executed at its log position by every replica through the
//             weight ledger (replica/weights.ts, replica/weights-exec.ts):
//             unlike add/remove it is not idempotent, so it passes the
//             client table like a request (a re-sent copy is answered from
//             the cache, never applied twice) and its result tells the
//             proposer what was decided. read_changes(member) changes
//             nothing: its result is the member's history as committed at
//             its position (weights-exec.ts encodeChanges).
//
//   reserve:  byte 1 = 4, a sequence mark reservation: its layout and
//             meaning are in sequence-marks.ts (executed by the executor,
//             idempotent, outside the client table).
import type { LogEntry } from './messages.ts';
import type { WeightChange } from './weights.ts';

export type ControlOp =
  | { readonly kind: 'add'; readonly sid: number }
  | { readonly kind: 'remove'; readonly sid: number; readonly session: number }
  | { readonly kind: 'weights'; readonly change: WeightChange }
  | { readonly kind: 'read-changes'; readonly member: number };

export const CONTROL_MAGIC = 0x48;
const KIND_ADD = 1;
const KIND_REMOVE = 2;
const KIND_WEIGHTS = 3;
const WEIGHTS_REASSIGN = 1;
const WEIGHTS_TRANSFER = 2;
const WEIGHTS_READ = 3;
const WEIGHTS_LEN = 7;
/** Members a weight change can name (bytes 3 and 4). */
export const MAX_WEIGHT_MEMBER = 0xff;
/** A remove op that names no session: the one the replicas hold. */
export const ANY_SESSION = 0xffffffff;
export const MAX_SEQUENCER_ID = 0xffff;

function encodeWeights(c: WeightChange): Uint8Array {
  const [sub, a, b, d] = c.kind === 'reassign' ? [WEIGHTS_REASSIGN, c.member, 0, c.delta] : [WEIGHTS_TRANSFER, c.from, c.to, c.amount];
  for (const m of [a, b]) if (!Number.isInteger(m) || m < 0 || m > MAX_WEIGHT_MEMBER) throw new RangeError(`member ${m} is not 0..${MAX_WEIGHT_MEMBER}`);
  if (!Number.isInteger(d) || d < -0x8000 || d > 0x7fff) throw new RangeError(`${c.kind === 'reassign' ? 'delta' : 'amount'} ${d} is not a whole number -32768..32767`);
  const out = new Uint8Array(WEIGHTS_LEN);
  out.set([CONTROL_MAGIC, KIND_WEIGHTS, sub, a, b]);
  new DataView(out.buffer).setInt16(5, d, false);
  return out;
}

export function encodeControlOp(op: ControlOp): Uint8Array {
  if (op.kind === 'weights') return encodeWeights(op.change);
  if (op.kind === 'read-changes') {
    if (!Number.isInteger(op.member) || op.member < 0 || op.member > MAX_WEIGHT_MEMBER) throw new RangeError(`member ${op.member} is not 0..${MAX_WEIGHT_MEMBER}`);
    return new Uint8Array([CONTROL_MAGIC, KIND_WEIGHTS, WEIGHTS_READ, op.member, 0, 0, 0]);
  }
  if (!Number.isInteger(op.sid) || op.sid < 0 || op.sid > MAX_SEQUENCER_ID) throw new RangeError(`sequencer id ${op.sid} is not 0..${MAX_SEQUENCER_ID}`);
  if (op.kind === 'add') return new Uint8Array([CONTROL_MAGIC, KIND_ADD, op.sid >> 8, op.sid & 0xff]);
  if (!Number.isInteger(op.session) || op.session < 0 || op.session > ANY_SESSION) throw new RangeError(`session ${op.session} is not 0..${ANY_SESSION}`);
  const b = new Uint8Array(8);
  b[0] = CONTROL_MAGIC;
  b[1] = KIND_REMOVE;
  b[2] = op.sid >> 8;
  b[3] = op.sid & 0xff;
  new DataView(b.buffer).setUint32(4, op.session, false);
  return b;
}

/** The op a payload encodes, or null when it is not one (malformed ops are no-ops). */
export function decodeControlOp(b: Uint8Array): ControlOp | null {
  if (b.length < 4 || b[0] !== CONTROL_MAGIC) return null;
  const sid = (b[2]! << 8) | b[3]!;
  if (b[1] === KIND_ADD && b.length === 4) return { kind: 'add', sid };
  if (b[1] === KIND_REMOVE && b.length === 8) return { kind: 'remove', sid, session: new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(4, false) };
  if (b[1] === KIND_WEIGHTS && b.length === WEIGHTS_LEN) {
    const d = new DataView(b.buffer, b.byteOffset, b.byteLength).getInt16(5, false);
    if (b[2] === WEIGHTS_REASSIGN && b[4] === 0) return { kind: 'weights', change: { kind: 'reassign', member: b[3]!, delta: d } };
    if (b[2] === WEIGHTS_TRANSFER) return { kind: 'weights', change: { kind: 'transfer', from: b[3]!, to: b[4]!, amount: d } };
    if (b[2] === WEIGHTS_READ && b[4] === 0 && d === 0) return { kind: 'read-changes', member: b[3]! };
  }
  return null;
}

/** The weight change or read_changes a "weights" op carries, or null for anything else. */
export function weightOp(b: Uint8Array): Extract<ControlOp, { kind: 'weights' | 'read-changes' }> | null {
  const op = decodeControlOp(b);
  return op?.kind === 'weights' || op?.kind === 'read-changes' ? op : null;
}

/** The sequencer an "add" op names, or null for anything else. */
export function addedSequencer(b: Uint8Array): number | null {
  const op = decodeControlOp(b);
  return op?.kind === 'add' ? op.sid : null;
}

/** The (sequencer, session) a "remove" op names, or null for anything else. */
export function removedSequencer(b: Uint8Array): { sid: number; session: number } | null {
  const op = decodeControlOp(b);
  return op?.kind === 'remove' ? { sid: op.sid, session: op.session } : null;
}

/** Whether a remove op naming `named` applies to a stream the replicas hold in `held`. */
export function removalApplies(named: number, held: number): boolean {
  return named === ANY_SESSION || named === held;
}

/** The sequencer an entry adds, if it is an "add" control op. */
export function addedBy(e: LogEntry): number | null {
  return e.control && !e.noop ? addedSequencer(e.op) : null;
}
