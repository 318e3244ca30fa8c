// Sequence marks kept by the replica group (replica/sequence-marks.ts): the
// reserve control op's bytes, its certified result (the mark before it),
// and the table surviving what a replica group survives: a follower's crash
// and state transfer, the leader's crash and a view change, and the peer
// codec that carries checkpoints.
import { describe, expect, it } from 'vitest';
import { decodeControlOp, weightOp } from '../../replica/control-op.ts';
import { Executor } from '../../replica/executor.ts';
import type { Checkpoint, LogEntry } from '../../replica/messages.ts';
import { decodeMarkResult, decodeReserveOp, encodeReserveOp, MARK_MAX, SequenceMarks } from '../../replica/sequence-marks.ts';
import { decodePeerPayload, encodePeerFrame } from '../../replica/udp/peer-codec.ts';
import { readHeader, XSEQ_HDR_LEN } from '../../bpf/wire.ts';
import { harness, quiesce, settle } from './helpers.ts';

describe('the reserve op', () => {
  it('encodes magic, kind 4, the mark big-endian and the name', () => {
    const b = encodeReserveOp({ name: 'orders', mark: 0x0102030405060708n });
    expect(Buffer.from(b).toString('hex')).toBe('48040000' + '0102030405060708' + Buffer.from('orders').toString('hex'));
    expect(decodeReserveOp(b)).toEqual({ name: 'orders', mark: 0x0102030405060708n });
    // Not a Hydra or weights op: the intake and the weight ledger ignore it.
    expect(decodeControlOp(b)).toBeNull();
    expect(weightOp(b)).toBeNull();
  });

  it.each([
    ['no name', [0x48, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
    ['wrong magic', [0x47, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x61]],
    ['another kind (add)', [0x48, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x61]],
    ['another kind (weights)', [0x48, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x61]],
    ['non-zero pad', [0x48, 4, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x61]],
    ['a mark past 2^63-1', [0x48, 4, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x61]],
    ['a 33-byte name', [0x48, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, ...new Array<number>(33).fill(0x61)]],
  ])('%s is no reserve (a malformed control op changes nothing)', (_w, bytes) => {
    expect(decodeReserveOp(new Uint8Array(bytes))).toBeNull();
  });

  it('refuses what it cannot encode', () => {
    expect(() => encodeReserveOp({ name: '', mark: 1n })).toThrow(RangeError);
    expect(() => encodeReserveOp({ name: 'a', mark: MARK_MAX + 1n })).toThrow(RangeError);
  });

  it('the table keeps the maximum and answers the mark before each reserve', () => {
    const t = new SequenceMarks();
    expect(t.reserve({ name: 'a', mark: 100n })).toBe(0n);
    expect(t.reserve({ name: 'a', mark: 50n })).toBe(100n);
    expect(t.reserve({ name: 'a', mark: 0n })).toBe(100n);
    expect(t.reserve({ name: 'b', mark: 7n })).toBe(0n);
    expect(t.reserve({ name: 'a', mark: 300n })).toBe(100n);
    expect(t.entries()).toEqual([
      ['a', 300n],
      ['b', 7n],
    ]);
  });
});

describe('the executor', () => {
  const app = { execute: () => new Uint8Array([1]), snapshot: () => new Uint8Array(0), restore: () => undefined };
  const entry = (slot: number, op: Uint8Array, control = true): LogEntry => ({ slot, session: 1, seq: slot, noop: false, clientId: 9n, requestId: BigInt(slot), op, ...(control ? { control: true } : {}) });

  it('executes a reserve as a control op: result = the previous mark; the app never sees it; marks go into the checkpoint and back', () => {
    let appCalls = 0;
    const e = new Executor({ ...app, execute: () => (appCalls++, new Uint8Array([1])) }, Executor.genesis(app));
    const r1 = e.execute(entry(1, encodeReserveOp({ name: 'orders', mark: 1000n })));
    const r2 = e.execute(entry(2, encodeReserveOp({ name: 'orders', mark: 2000n })));
    expect(r1.kind === 'executed' && decodeMarkResult(r1.result)).toBe(0n);
    expect(r2.kind === 'executed' && decodeMarkResult(r2.result)).toBe(1000n);
    // Without the control flag it is an ordinary client op.
    e.execute(entry(3, encodeReserveOp({ name: 'orders', mark: 9999n }), false));
    expect(appCalls).toBe(1);
    const cp = e.snapshot({ slot: 3, session: 1, seq: 3 });
    expect(cp.marks).toEqual([['orders', 2000n]]);
    const other = new Executor(app, cp);
    const r = other.execute(entry(4, encodeReserveOp({ name: 'orders', mark: 0n })));
    expect(r.kind === 'executed' && decodeMarkResult(r.result)).toBe(2000n);
    // Rolling back to a checkpoint restores its marks, not the later ones.
    other.execute(entry(5, encodeReserveOp({ name: 'orders', mark: 5000n })));
    other.restore(cp);
    expect(other.snapshot({ slot: 3, session: 1, seq: 3 }).marks).toEqual([['orders', 2000n]]);
  });

  it('the peer codec carries the marks of a checkpoint (state transfer)', () => {
    const cp: Checkpoint = { slot: 5, session: 2, seq: 5, app: new Uint8Array([1, 2]), clients: [], marks: [['a', 1n], ['orders', (1n << 62n) + 3n]] };
    const frame = encodePeerFrame({ type: 'STATE_REPLY', from: 1, nonce: 7, view: { leaderNum: 0, session: 2 }, state: { checkpoint: cp, entries: [], committed: 5 } }, 3);
    const h = readHeader(frame);
    const back = decodePeerPayload(h, frame.subarray(XSEQ_HDR_LEN));
    expect(back.type === 'STATE_REPLY' && back.state?.checkpoint.marks).toEqual(cp.marks);
    const none = encodePeerFrame({ type: 'STATE_REPLY', from: 1, nonce: 7, view: { leaderNum: 0, session: 2 }, state: { checkpoint: { ...cp, marks: undefined }, entries: [], committed: 5 } }, 3);
    const b2 = decodePeerPayload(readHeader(none), none.subarray(XSEQ_HDR_LEN));
    expect(b2.type === 'STATE_REPLY' && b2.state?.checkpoint.marks).toBeUndefined();
  });
});

describe('a replica group keeps the marks', () => {
  /** Submits a reserve through client 0 and runs until it is certified; returns the previous mark. */
  function reserve(h: ReturnType<typeof harness>, name: string, mark: bigint): bigint {
    let got: bigint | null = null;
    h.c.clients[0]!.submit(encodeReserveOp({ name, mark }), (err, result) => {
      expect(err).toBeFalsy();
      got = decodeMarkResult(result!);
    }, { control: true });
    h.c.runUntil(() => got !== null, 200_000);
    expect(got).not.toBeNull();
    return got!;
  }

  it('through a follower crash with state transfer, and the leader crash with a view change: every certified reserve is below what the group answers', () => {
    const h = harness({ clients: 2 });
    h.c.startWorkload(10);
    settle(h);
    expect(reserve(h, 'orders', 1000n)).toBe(0n);
    expect(reserve(h, 'orders', 2000n)).toBe(1000n);
    // Replica 1, the next view's leader, loses its memory while the log
    // moves on far enough to be truncated past the reserves.
    h.c.crash(1);
    h.c.startWorkload(400);
    settle(h);
    h.c.restart(1);
    h.c.runUntil(() => h.c.replicas[1]!.status === 'normal', 100_000);
    quiesce(h);
    // The leader goes; replica 1 leads the next view and answers the
    // reserves from what state transfer (a checkpoint) gave it.
    h.c.crash(0);
    h.c.startWorkload(800);
    settle(h);
    expect(reserve(h, 'orders', 0n)).toBe(2000n);
    expect(reserve(h, 'orders', 1500n)).toBe(2000n);
    expect(reserve(h, 'orders', 3000n)).toBe(2000n);
    // The old leader comes back empty and recovers; all three agree.
    h.c.restart(0);
    h.c.runUntil(() => h.c.replicas[0]!.status === 'normal', 100_000);
    quiesce(h);
    expect(reserve(h, 'orders', 0n)).toBe(3000n);
  });
});
