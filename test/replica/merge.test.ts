// The view change merge and view-id order, on hand-built logs.
import { describe, expect, it } from 'vitest';
import { noopEntry } from '../../replica/log.ts';
import { mergeViewChanges } from '../../replica/merge.ts';
import type { Checkpoint, LogEntry, ViewChangeMsg } from '../../replica/messages.ts';
import { viewCmp, viewJoin, viewLeq, type ViewId } from '../../replica/view.ts';

const cp = (slot: number): Checkpoint => ({ slot, session: 1, seq: slot, app: new Uint8Array([slot]), clients: [] });
const req = (slot: number, requestId = BigInt(slot)): LogEntry => ({ slot, session: 1, seq: slot, noop: false, clientId: 1n, requestId, op: new Uint8Array() });
const noop = (slot: number): LogEntry => noopEntry({ slot, session: 1, seq: slot });
const vc = (from: number, lastNormalView: ViewId, checkpoint: Checkpoint, entries: LogEntry[], committed = checkpoint.slot): ViewChangeMsg => ({
  type: 'VIEW_CHANGE',
  from,
  view: { leaderNum: 9, session: 1 },
  lastNormalView,
  state: { checkpoint, entries, committed },
});
const V0 = { leaderNum: 0, session: 1 };
const V1 = { leaderNum: 1, session: 1 };

describe('view change merge', () => {
  it('takes the longest log of the latest normal view, and a no-op wherever any of them has one', () => {
    const m = mergeViewChanges([vc(0, V1, cp(0), [req(1), req(2), req(3)]), vc(1, V1, cp(0), [req(1), noop(2)])]);
    expect(m.entries.map((e) => (e.noop ? 'n' : 'r'))).toEqual(['r', 'n', 'r']);
  });

  it('ignores logs from older normal views, however long', () => {
    const m = mergeViewChanges([vc(0, V0, cp(0), [req(1), req(2), req(3), req(4)]), vc(1, V1, cp(0), [req(1), noop(2)])]);
    expect(m.entries.length).toBe(2);
    expect(m.entries[1]!.noop).toBe(true);
  });

  it('starts from the newest checkpoint of the quorum and keeps the highest commit point', () => {
    const m = mergeViewChanges([vc(0, V1, cp(2), [req(3)], 2), vc(1, V0, cp(4), [], 4), vc(2, V1, cp(1), [req(2), req(3), req(4), req(5)], 1)]);
    expect(m.checkpoint.slot).toBe(4);
    expect(m.entries.map((e) => e.slot)).toEqual([5]);
    expect(m.committed).toBe(4);
  });

  it('an entry only one member of the quorum holds survives (the union, not the intersection)', () => {
    const m = mergeViewChanges([vc(0, V1, cp(0), [req(1)]), vc(1, V1, cp(0), [req(1), req(2, 77n)]), vc(2, V0, cp(0), [])]);
    expect(m.entries.map((e) => e.requestId)).toEqual([1n, 77n]);
  });
});

describe('view ids', () => {
  it('are ordered component-wise; the join takes the maximum of each', () => {
    const a = { leaderNum: 2, session: 1 };
    const b = { leaderNum: 1, session: 3 };
    expect(viewLeq(a, b) || viewLeq(b, a)).toBe(false);
    expect(viewJoin(a, b)).toEqual({ leaderNum: 2, session: 3 });
    expect(viewJoin(a, { leaderNum: 3, session: 1 })).toEqual({ leaderNum: 3, session: 1 });
    expect(viewCmp(V0, V1)).toBeLessThan(0);
    expect(viewCmp({ leaderNum: 5, session: 1 }, { leaderNum: 0, session: 2 })).toBeLessThan(0);
  });
});
