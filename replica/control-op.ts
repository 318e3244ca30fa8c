// Group control ops (REQUEST with XSEQ_F_CONTROL, payload below; the
// application never sees them). "add s": delivered at merge key k, every
// replica adds sequencer s with floor clock k.clock + 1, so everything s
// stamps sorts after the op; until then s's messages wait (bounded).
import type { LogEntry } from './messages.ts';

export type ControlOp = { readonly kind: 'add'; readonly sid: number };
const CONTROL_MAGIC = 0x48; // 'H'

export function encodeControlOp(op: ControlOp): Uint8Array {
  return new Uint8Array([CONTROL_MAGIC, 1, op.sid >> 8, op.sid & 0xff]);
}

export function decodeControlOp(b: Uint8Array): ControlOp | null {
  if (b.length !== 4 || b[0] !== CONTROL_MAGIC || b[1] !== 1) return null;
  return { kind: 'add', sid: (b[2]! << 8) | b[3]! };
}

/** The sequencer an entry adds, if it is an "add" control op. */
export function addedBy(e: LogEntry): number | null {
  return e.control && !e.noop ? (decodeControlOp(e.op)?.sid ?? null) : null;
}
