// The weights control op as the replicas execute it (control-op.ts,
// executor.ts, weights-exec.ts): bytes both ways, applied at its log
// position through the ledger, at most once per request id, the proposer's
// answer, read_changes through the log, and the ledger riding in
// checkpoints (rollback, and the peer codec's state transfers).
import { describe, expect, it } from 'vitest';
import { decodeControlOp, encodeControlOp, weightOp } from '../../replica/control-op.ts';
import { Executor, STALE_MARK } from '../../replica/executor.ts';
import type { LogEntry } from '../../replica/messages.ts';
import { HistoryApp } from '../../replica/sim/history-app.ts';
import { checkPeerHeader, decodePeerPayload, encodePeerFrame } from '../../replica/udp/peer-codec.ts';
import { decodeChanges, decodeWeightResult, WeightState } from '../../replica/weights-exec.ts';
import type { WeightTable } from '../../replica/weights.ts';

const table: WeightTable = { version: 1, weights: [1, 1, 1, 1, 1], f: 1 };
let slot = 0;
const entry = (op: Uint8Array, requestId: bigint, control = true): LogEntry => ({ slot: ++slot, session: 1, seq: slot, noop: false, clientId: 0xc1n, requestId, op, ...(control ? { control: true } : {}) });

describe('the weights control op', () => {
  it('encodes and decodes reassign, transfer and read_changes; anything else is no op of this kind', () => {
    for (const op of [
      { kind: 'weights', change: { kind: 'reassign', member: 4, delta: -1 } },
      { kind: 'weights', change: { kind: 'transfer', from: 0, to: 3, amount: 2 } },
      { kind: 'read-changes', member: 2 },
    ] as const) {
      expect(decodeControlOp(encodeControlOp(op))).toEqual(op);
      expect(weightOp(encodeControlOp(op))).toEqual(op);
    }
    expect(weightOp(encodeControlOp({ kind: 'add', sid: 3 }))).toBeNull();
    expect(decodeControlOp(new Uint8Array([0x48, 3, 9, 0, 0, 0, 1]))).toBeNull(); // unknown sub-kind
    expect(decodeControlOp(new Uint8Array([0x48, 3, 1, 0, 0, 0]))).toBeNull(); // short
    expect(() => encodeControlOp({ kind: 'weights', change: { kind: 'reassign', member: 0, delta: 40000 } })).toThrow(/-32768\.\.32767/);
  });

  it('is applied at its position, once per request id; the proposer hears applied or refused and why', () => {
    slot = 0;
    const reported: number[] = [];
    const ws = new WeightState(table, (t) => reported.push(t.version));
    const app = new HistoryApp();
    const ex = new Executor(app, Executor.genesis(app), ws);
    const op = encodeControlOp({ kind: 'weights', change: { kind: 'reassign', member: 4, delta: -1 } });
    const first = ex.execute(entry(op, 1n));
    expect(first.kind).toBe('executed');
    expect(decodeWeightResult((first as { result: Uint8Array }).result)).toEqual({ applied: true, version: 2, weights: [1, 1, 1, 1, 0] });
    // A re-sent copy (same request id, a later seq): the cached answer, not a second change.
    const again = ex.execute(entry(op, 1n));
    expect(again.kind).toBe('duplicate');
    expect(ex.weightLedger!.table.version).toBe(2);
    expect(ex.execute(entry(op, 0n)).kind === 'stale' && STALE_MARK).toBe(STALE_MARK);
    // Another member at 0 would leave 1/1/1/0/0, where 2 of the 5 certify: refused, told why.
    const bad = ex.execute(entry(encodeControlOp({ kind: 'weights', change: { kind: 'reassign', member: 3, delta: -1 } }), 2n));
    const r = decodeWeightResult((bad as { result: Uint8Array }).result)!;
    expect(r.applied).toBe(false);
    expect(r.version).toBe(2);
    expect(r.refused).toMatch(/^quorum intersection: the 2 heaviest members/);
    // read_changes through the log.
    const rc = ex.execute(entry(encodeControlOp({ kind: 'read-changes', member: 4 }), 3n));
    expect(decodeChanges((rc as { result: Uint8Array }).result)).toEqual({ total: 1, changes: [{ version: 2, delta: -1, applied: true, kind: 'reassign' }] });
    // The app never saw any of it.
    expect(app.snapshot()).toEqual(new HistoryApp().snapshot());
    // Committed checkpoints report the table once per new decision.
    ex.keep(ex.snapshot({ slot: ex.executed, session: 1, seq: ex.executed }));
    expect(reported).toEqual([1, 2]);
  });

  it('without the control flag the bytes go to the application like any op', () => {
    slot = 0;
    const app = new HistoryApp();
    const ex = new Executor(app, Executor.genesis(app), new WeightState(table));
    const op = HistoryApp.op(7, 1);
    expect(ex.execute(entry(op, 1n, false)).kind).toBe('executed');
    expect(ex.weightLedger!.table.version).toBe(1);
  });

  it('the ledger rolls back with its checkpoint and travels in a state transfer', () => {
    slot = 0;
    const app = new HistoryApp();
    const twos: WeightTable = { version: 1, weights: [2, 2, 2, 2, 2], f: 1 };
    const ex = new Executor(app, Executor.genesis(app), new WeightState(twos));
    ex.execute(entry(encodeControlOp({ kind: 'weights', change: { kind: 'transfer', from: 0, to: 1, amount: 1 } }), 1n));
    const cp = ex.snapshot({ slot: ex.executed, session: 1, seq: ex.executed });
    ex.keep(cp);
    ex.execute(entry(encodeControlOp({ kind: 'weights', change: { kind: 'reassign', member: 0, delta: 1 } }), 2n));
    expect(ex.weightLedger!.table.weights).toEqual([2, 3, 2, 2, 2]);
    ex.restore(cp);
    expect(ex.weightLedger!.table).toEqual({ version: 2, weights: [1, 3, 2, 2, 2], f: 1 });
    const frame = encodePeerFrame({ type: 'STATE_REPLY', from: 1, nonce: 5, view: { leaderNum: 0, session: 1 }, state: { checkpoint: cp, entries: [], committed: cp.slot } }, 9);
    const h = checkPeerHeader(frame.subarray(0, 64), 9);
    const m = decodePeerPayload(h, frame.subarray(64));
    const got = m.type === 'STATE_REPLY' ? m.state!.checkpoint : null;
    const other = new Executor(new HistoryApp(), got!, new WeightState(twos));
    expect(other.weightLedger!.table).toEqual(ex.weightLedger!.table);
    expect(other.weightLedger!.readChanges(0)).toEqual(ex.weightLedger!.readChanges(0));
  });
});
