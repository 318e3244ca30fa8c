// A joining sequencer on one replica, by hand: the configured ids are the
// initial members, a joining id turns the merge on without being one, its
// traffic waits until the add op is merged, and the leader ACKs the op with
// an empty result (the sender's certified answer) without the application
// seeing it.
import { describe, expect, it } from 'vitest';
import { encodeControlOp } from '../../replica/hydra.ts';
import type { AckMsg, SequencedMsg } from '../../replica/messages.ts';
import { Replica } from '../../replica/replica.ts';
import { HistoryApp } from '../../replica/sim/history-app.ts';
import type { ReplicaTransport, Scheduler } from '../../replica/transport.ts';

function single(o: { sequencers?: number[]; joiningSequencers?: number[]; config?: { maxBufferedMsgs: number } }) {
  const acks: AckMsg[] = [];
  const transport: ReplicaTransport = { sendToReplica: () => {}, sendAck: (m) => void acks.push(m), sendRepairRequest: () => {}, sendFlushSolicit: () => {} };
  let now = 0;
  const scheduler: Scheduler = { now: () => now, setTimer: (_d, _fn) => ({ cancel: () => {} }) };
  const app = new HistoryApp();
  const r = new Replica({ id: 0, n: 1, app, transport, scheduler, session: 1, ...o });
  return { r, acks, app, tick: (us: number) => (now += us) };
}

const seqd = (sid: number, seq: number, clock: number, op: Uint8Array, extra: Partial<SequencedMsg> = {}): SequencedMsg => ({
  type: 'SEQUENCED', session: 1, seq, clientId: BigInt(100 + sid), requestId: BigInt(seq), op, retransmit: false, sequencerId: sid, clock, ...extra,
});

describe('hydra: a joining sequencer', () => {
  it('counts toward turning the merge on, but is not an initial member', () => {
    expect(single({ sequencers: [0] }).r.hydra).toBeNull();
    const { r } = single({ sequencers: [0], joiningSequencers: [1] });
    expect(r.hydra).not.toBeNull();
    expect(r.hydra!.stream(0)).toBeDefined();
    expect(r.hydra!.stream(1)).toBeUndefined();
  });

  it('its traffic waits for the add op, sorts after it, and the op is ACKed with an empty result', () => {
    const { r, acks, app } = single({ sequencers: [0], joiningSequencers: [1] });
    const early = seqd(1, 1, 50, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 1]));
    r.receive(early);
    expect(r.hydra!.stats.unknownSequencer).toBe(1);
    expect(r.log.lastSlot).toBe(0);
    // The add op, through sequencer 0 (clock 100).
    r.receive({ ...seqd(0, 1, 100, encodeControlOp({ kind: 'add', sid: 1 })), control: true, clientId: 7n, requestId: 1n });
    expect(r.log.get(1)).toMatchObject({ control: true, clientId: 7n });
    expect(r.hydra!.stream(1)).toBeDefined();
    expect(acks).toHaveLength(1);
    expect(acks[0]).toMatchObject({ clientId: 7n, requestId: 1n, sequencerId: 0 });
    expect(acks[0]!.result).toEqual(new Uint8Array(0));
    expect(app.history).toEqual([]);
    // Sequencer 0's flush past the floor lets the held message through, after the op.
    r.receive({ type: 'FLUSH', sequencerId: 0, session: 1, seq: 1, clock: 1_000, final: false });
    expect(r.log.lastSlot).toBe(2);
    expect(r.log.get(2)).toMatchObject({ clientId: 101n, src: { sid: 1, seq: 1 } });
    expect(r.log.get(2)!.src!.clock).toBeGreaterThan(100);
    expect(app.history).toHaveLength(1);
  });

  it('its periodic flushes while it waits take one place in the bounded buffer, so its requests are not crowded out', () => {
    const { r } = single({ sequencers: [0], joiningSequencers: [1], config: { maxBufferedMsgs: 4 } });
    for (let i = 1; i <= 20; i++) r.receive({ type: 'FLUSH', sequencerId: 1, session: 1, seq: 0, clock: 10 * i, final: false });
    r.receive(seqd(1, 1, 300, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 1])));
    expect(r.hydra!.stats.unknownSequencer).toBe(21);
    r.receive({ ...seqd(0, 1, 400, encodeControlOp({ kind: 'add', sid: 1 })), control: true, clientId: 7n, requestId: 1n });
    r.receive({ type: 'FLUSH', sequencerId: 0, session: 1, seq: 1, clock: 1_000, final: false });
    expect(r.log.lastSlot).toBe(2);
    expect(r.log.get(2)).toMatchObject({ clientId: 101n, src: { sid: 1, seq: 1 } });
  });
});
