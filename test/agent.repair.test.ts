// The agent's repair service against the real sequencer program: the window
// is filled by BPF_PROG_TEST_RUN, replicas are UDP sockets on 127.0.0.x that
// send REPAIR_REQUESTs and read what comes back.
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { GroupConfig } from '../bpf/maps.ts';
import {
  decodeError,
  decodeRepairReply,
  encodeError,
  encodeRepairReply,
  encodeRepairRequest,
  ErrorCode,
  type ErrorCodeName,
  REPAIR_REQ_SIZE,
} from '../bpf/repair.ts';
import { Sequencer } from '../bpf/sequencer.ts';
import { decodeMessage, emptyHeader, encodeMessage, Flags, MsgType, readHeader } from '../bpf/wire.ts';
import { RepairService } from '../agent/repair.ts';
import { SlotWindow } from '../agent/window.ts';
import { describePrivileged } from './helpers/privileged.ts';
import { ack, bindTo, GROUP_ID, ReplicaSockets, resetGroup, SESSION, SETTLE_MS, sleep, stamp, waitFor } from './helpers/window-fixture.ts';

const W = 16;

describePrivileged('agent repair service (mmap window, UDP on loopback)', () => {
  let seq: Sequencer;
  let replicas: ReplicaSockets;
  let stranger: Socket;
  let strangerGot: Buffer[];
  let repair: RepairService;
  let group: GroupConfig;
  /** A configured group without members (no window, no repair). */
  const PLAIN_GROUP = 2;

  beforeAll(async () => {
    seq = Sequencer.load({ port: 7400, windowSlots: W, windows: 1 });
    replicas = await ReplicaSockets.bind(3);
    stranger = createSocket('udp4');
    strangerGot = [];
    stranger.on('message', (m) => strangerGot.push(m));
    await bindTo(stranger, '127.0.0.99', 0);
    group = {
      mcastAddr: '239.7.7.1',
      mcastPort: 7500,
      sequencerId: 3,
      session: SESSION,
      enabled: true,
      members: [0, 1, 2].map((rid) => ({ addr: ReplicaSockets.addr(rid), port: replicas.port })),
    };
    seq.setGroup(PLAIN_GROUP, { mcastAddr: '239.7.7.2', mcastPort: 7501, sequencerId: 3, session: SESSION, enabled: true });
    repair = await RepairService.start(seq, new SlotWindow(seq.slots, seq.windowSlots), { port: 0, address: '127.0.0.1' });
  });
  afterAll(async () => {
    await repair?.close();
    replicas?.close();
    stranger?.close();
    seq?.close();
  });
  beforeEach(() => {
    resetGroup(seq, GROUP_ID, group);
    replicas.clear();
    strangerGot.length = 0;
  });

  /** Sends from replica `rid`'s socket; resolves with what it got back (through the REPAIR_REPLY or ERROR). */
  async function ask(rid: number, msg: Uint8Array): Promise<Buffer[]> {
    const got = replicas.received[rid]!;
    const start = got.length;
    replicas.sockets[rid]!.send(msg, repair.port, '127.0.0.1');
    const final = (m: Buffer) => readHeader(m).type === MsgType.REPAIR_REPLY || readHeader(m).type === MsgType.ERROR;
    await waitFor(() => got.slice(start).some((r) => final(r.msg)), 'a REPAIR_REPLY or ERROR');
    await sleep(SETTLE_MS);
    for (const r of got.slice(start)) expect(r.from).toMatchObject({ address: '127.0.0.1', port: repair.port });
    return got.slice(start).map((r) => r.msg);
  }
  const request = (rid: number, first: bigint, count: number, over: { session?: number; groupId?: number; replicaId?: number } = {}) =>
    encodeRepairRequest({ groupId: over.groupId ?? GROUP_ID, session: over.session ?? SESSION, replicaId: over.replicaId ?? rid, first, count });

  function expectError(msgs: Buffer[], code: ErrorCodeName): string {
    expect(msgs).toHaveLength(1);
    const d = decodeMessage(msgs[0]!);
    if (!d.ok) throw d.error;
    expect(d.message.header.type).toBe(MsgType.ERROR);
    const e = decodeError(d.message.payload)!;
    expect(e.name).toBe(code);
    expect(e.code).toBe(ErrorCode[code]);
    return e.text;
  }

  it('re-sends every seq the window holds, flagged RETRANSMIT, then one REPAIR_REPLY naming the rest', async () => {
    const seqs = [1n, 2n, 3n].map((r) => stamp(seq, r));
    expect(seqs).toEqual([1n, 2n, 3n]);
    ack(seq, group, 2n, [0, 1, 2]); // acked or not, what the window holds is served
    const before = repair.counters();
    const got = await ask(2, request(2, 2n, 4)); // 2..5; 4 and 5 are not stamped yet
    const types = got.map((m) => readHeader(m).type);
    expect(types).toEqual([MsgType.SEQUENCED, MsgType.SEQUENCED, MsgType.REPAIR_REPLY]);
    for (const [i, n] of [2n, 3n].entries()) {
      const kept = Buffer.from(seq.slot(GROUP_ID, n)!.msg);
      kept.writeUInt16BE(Flags.RETRANSMIT, 6);
      expect(got[i]!.equals(kept)).toBe(true);
    }
    const d = decodeMessage(got[2]!);
    if (!d.ok) throw d.error;
    expect(d.message.header).toMatchObject({ groupId: GROUP_ID, session: SESSION, replicaId: 2, sequencerId: 3, seq: 2n });
    expect(decodeRepairReply(d.message.payload)).toEqual({ count: 4, resent: 2, missing: [4n, 5n] });
    const after = repair.counters();
    expect(after.requests - before.requests).toBe(1);
    expect(after.resent - before.resent).toBe(2);
    expect(after.missing - before.missing).toBe(2);
    // Only the requester is answered.
    expect(replicas.received[0]).toEqual([]);
    expect(replicas.received[1]).toEqual([]);
  });

  it('seqs the window overwrote are reported missing, not re-sent', async () => {
    for (let r = 1n; r <= BigInt(W); r++) {
      const n = stamp(seq, r);
      ack(seq, group, n, [0, 1, 2]); // every member has it: the slot may be reused
    }
    for (let r = 1n; r <= 3n; r++) stamp(seq, 100n + r); // seqs 17..19 take the slots of 1..3
    const got = await ask(0, request(0, 1n, 5));
    expect(got.map((m) => readHeader(m).seq)).toEqual([4n, 5n, 1n]);
    const d = decodeMessage(got[2]!);
    if (!d.ok) throw d.error;
    expect(decodeRepairReply(d.message.payload)).toEqual({ count: 5, resent: 2, missing: [1n, 2n, 3n] });
  });

  it('answers the largest request, 128 seqs, in full', async () => {
    for (let r = 1n; r <= 10n; r++) stamp(seq, r);
    const got = await ask(1, request(1, 1n, 128));
    expect(got).toHaveLength(11);
    const d = decodeMessage(got[10]!);
    if (!d.ok) throw d.error;
    const reply = decodeRepairReply(d.message.payload)!;
    expect(reply.resent).toBe(10);
    expect(reply.missing).toEqual(Array.from({ length: 118 }, (_, i) => BigInt(11 + i)));
  });

  const refusals: [string, ErrorCodeName, () => Uint8Array, number, RegExp][] = [
    ['an unknown group', 'UNKNOWN_GROUP', () => request(0, 1n, 1, { groupId: 9 }), 0, /group 9 is not configured/],
    ['a group id beyond the map', 'UNKNOWN_GROUP', () => request(0, 1n, 1, { groupId: 70000 }), 0, /group 70000/],
    ['a group without members', 'NOT_MEMBER', () => request(0, 1n, 1, { groupId: PLAIN_GROUP }), 0, /no members/],
    ['a replica id beyond the group', 'NOT_MEMBER', () => request(0, 1n, 1, { replicaId: 3 }), 0, /replicas 0..2, not 3/],
    ['another replica\'s id', 'NOT_MEMBER', () => request(0, 1n, 1, { replicaId: 1 }), 0, /replica 1 of group 1 is not at 127.0.0.11/],
    ['an old session', 'WRONG_SESSION', () => request(0, 1n, 1, { session: SESSION - 1 }), 0, /session 41, not 40/],
    ['count 0', 'RANGE_TOO_LARGE', () => request(0, 1n, 0), 0, /count 0 is not 1..128/],
    ['count 129', 'RANGE_TOO_LARGE', () => request(0, 1n, 129), 0, /count 129 is not 1..128/],
    ['a payload of 3 bytes', 'BAD_REQUEST', () => encodeMessage({ ...emptyHeader(), type: MsgType.REPAIR_REQUEST, groupId: GROUP_ID, session: SESSION, seq: 1n }, Buffer.alloc(3)), 0, new RegExp(`${REPAIR_REQ_SIZE} bytes`)],
    ['payload_len that disagrees with the datagram', 'BAD_REQUEST', () => { const m = request(0, 1n, 1); m.writeUInt32BE(8, 56); return m; }, 0, /payload_len 8/],
    ['seq 0', 'BAD_REQUEST', () => request(0, 0n, 1), 0, /seq 0/],
    ['another message type', 'BAD_REQUEST', () => encodeMessage({ ...emptyHeader(), type: MsgType.ACK, groupId: GROUP_ID, session: SESSION, seq: 1n }), 0, /not REPAIR_REQUEST/],
  ];
  it.each(refusals)('%s gets ERROR %s and is counted', async (_name, code, make, rid, text) => {
    stamp(seq, 1n);
    const before = repair.counters();
    const msgs = await ask(rid, make());
    expect(expectError(msgs, code)).toMatch(text);
    const after = repair.counters();
    expect(after.refused[code] - before.refused[code]).toBe(1);
    expect(after.resent).toBe(before.resent);
  });

  it('another port on a member\'s own address is refused (NOT_MEMBER): address and port, as for ACKs', async () => {
    stamp(seq, 1n);
    const other = createSocket('udp4');
    const got: Buffer[] = [];
    other.on('message', (m) => got.push(m));
    try {
      const port = await bindTo(other, ReplicaSockets.addr(0), 0);
      const before = repair.counters();
      other.send(request(0, 1n, 1), repair.port, '127.0.0.1');
      await waitFor(() => got.length >= 1, 'the ERROR');
      await sleep(SETTLE_MS);
      expect(got).toHaveLength(1);
      expect(expectError(got, 'NOT_MEMBER')).toMatch(new RegExp(`not at 127.0.0.11:${port}`));
      expect(repair.counters().refused.NOT_MEMBER - before.refused.NOT_MEMBER).toBe(1);
      expect(replicas.received.flat()).toEqual([]);
    } finally {
      other.close();
    }
  });

  it('a stranger naming a member is refused (NOT_MEMBER) and gets nothing re-sent', async () => {
    stamp(seq, 1n);
    const before = repair.counters();
    stranger.send(request(0, 1n, 1), repair.port, '127.0.0.1');
    await waitFor(() => strangerGot.length >= 1, 'the ERROR');
    await sleep(SETTLE_MS);
    expect(strangerGot).toHaveLength(1);
    expect(expectError(strangerGot, 'NOT_MEMBER')).toMatch(/not at 127.0.0.99/);
    expect(repair.counters().refused.NOT_MEMBER - before.refused.NOT_MEMBER).toBe(1);
    expect(replicas.received.flat()).toEqual([]);
  });

  it('datagrams that are not xseq, and answers (ERROR, REPAIR_REPLY), get no answer at all', async () => {
    const before = repair.counters();
    stranger.send(Buffer.from('hello, is this DNS?'), repair.port, '127.0.0.1');
    const badMagic = request(0, 1n, 1);
    badMagic.writeUInt32BE(0x12345678, 0);
    stranger.send(badMagic, repair.port, '127.0.0.1');
    stranger.send(encodeError({ groupId: GROUP_ID, session: SESSION, replicaId: 0 }, ErrorCode.BAD_REQUEST, 'ping-pong?'), repair.port, '127.0.0.1');
    stranger.send(encodeRepairReply({ groupId: GROUP_ID, session: SESSION, replicaId: 0, sequencerId: 3, first: 1n }, { count: 1, resent: 0, missing: [1n] }), repair.port, '127.0.0.1');
    await waitFor(() => repair.counters().ignored - before.ignored >= 4, 'all four counted');
    await sleep(SETTLE_MS);
    expect(strangerGot).toEqual([]);
    expect(repair.counters().requests).toBe(before.requests);
  });

  it('refuses to start on a port that is taken, naming the flag (EREPAIR_BIND)', async () => {
    const err = await RepairService.start(seq, new SlotWindow(seq.slots, seq.windowSlots), { port: repair.port, address: '127.0.0.1' }).then(
      () => null,
      (e: unknown) => e as Error & { code: string },
    );
    expect(err?.code).toBe('EREPAIR_BIND');
    expect(err?.message).toMatch(/EADDRINUSE/);
    expect(err?.message).toMatch(/--repair-port/);
  });
});
