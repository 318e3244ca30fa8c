// The agent's loopback retransmission against the real sequencer program:
// requests stamped and ACKs counted by BPF_PROG_TEST_RUN fill the window,
// the retransmitter reads it through mmap and re-sends by UDP to replica
// sockets on 127.0.0.x. Time is the kernel's TAI clock, pinned to chosen
// instants where a test asserts backoff.
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import type { GroupConfig } from '../bpf/maps.ts';
import { Sequencer } from '../bpf/sequencer.ts';
import { Flags, MsgType, readHeader } from '../bpf/wire.ts';
import { parseFrame } from '../tools/frame.ts';
import { taiNowNs } from '../agent/clock.ts';
import type { Log } from '../agent/log.ts';
import { Retransmitter, type RetransmitCounters } from '../agent/retransmit.ts';
import { SlotWindow } from '../agent/window.ts';
import { describePrivileged } from './helpers/privileged.ts';
import {
  ack,
  bindTo,
  GROUP_ID,
  ReplicaSockets,
  requestFrame,
  resetGroup,
  SESSION,
  SETTLE_MS,
  sleep,
  stamp,
  waitFor,
  XDP_TX,
} from './helpers/window-fixture.ts';

const RTO_MS = 20;
const MS = 1_000_000n;

interface Logged {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string;
}
function recorder(): Log & { lines: Logged[] } {
  const lines: Logged[] = [];
  const at = (level: Logged['level']) => (obj: object, msg: string) => lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

describePrivileged('agent retransmission (mmap window, UDP on loopback)', () => {
  let seq: Sequencer;
  let replicas: ReplicaSockets;
  let out: Socket;
  let group: GroupConfig;
  let window: SlotWindow;
  /** When set, the retransmitter's clock reads this instead of TAI now. */
  let pinned: bigint | undefined;
  let log: ReturnType<typeof recorder>;
  let rt: Retransmitter;

  const make = (retries = 5) =>
    new Retransmitter(seq, window, out, { groups: [GROUP_ID], rtoMs: RTO_MS, retries, now: () => pinned ?? taiNowNs(), log });
  const stampOf = (n: bigint) => seq.slot(GROUP_ID, n)!.stampNs;
  /** Runs one tick at `at` and waits until the datagrams it sent arrived. */
  const tickAt = async (at: bigint) => {
    pinned = at;
    const before = rt.counters().retransmissions;
    rt.tick();
    const sent = rt.counters().retransmissions - before;
    const had = replicas.received.reduce((a, r) => a + r.length, 0);
    await waitFor(() => replicas.received.reduce((a, r) => a + r.length, 0) >= had + sent, `${sent} retransmissions`);
    await sleep(SETTLE_MS);
    return sent;
  };
  const delta = (before: RetransmitCounters) => {
    const now = rt.counters();
    return { retransmissions: now.retransmissions - before.retransmissions, retransmittedSeqs: now.retransmittedSeqs - before.retransmittedSeqs, giveUps: now.giveUps - before.giveUps };
  };

  beforeAll(async () => {
    seq = Sequencer.load({ port: 7400, windowSlots: 16, windows: 2 });
    replicas = await ReplicaSockets.bind(3);
    out = createSocket('udp4');
    await bindTo(out, '127.0.0.1', 0);
    group = {
      mcastAddr: '239.7.7.1',
      mcastPort: replicas.port,
      sequencerId: 3,
      session: SESSION,
      enabled: true,
      members: [0, 1, 2].map((rid) => ({ addr: ReplicaSockets.addr(rid), port: 7600 + rid })),
    };
    window = new SlotWindow(seq.slots, seq.windowSlots);
  });
  afterAll(() => {
    rt?.stop();
    replicas?.close();
    out?.close();
    seq?.close();
  });
  beforeEach(() => {
    resetGroup(seq, GROUP_ID, group);
    replicas.clear();
    pinned = undefined;
    log = recorder();
    rt = make();
  });
  afterEach(() => rt.stop());

  it('re-sends each unacked seq, flagged RETRANSMIT, to exactly the members that did not ack it', async () => {
    const [s1, s2, s3, s4] = [stamp(seq, 1n), stamp(seq, 2n), stamp(seq, 3n), stamp(seq, 4n)];
    ack(seq, group, s1, [0, 1, 2]);
    ack(seq, group, s2, [0, 1]);
    ack(seq, group, s3, [0]);
    ack(seq, group, s4, [1, 2]);
    const first = stampOf(s1);
    const last = stampOf(s4);

    expect(await tickAt(first + BigInt(RTO_MS) * MS - 1n)).toBe(0); // nobody is due yet
    const before = rt.counters();
    expect(await tickAt(last + BigInt(RTO_MS) * MS)).toBe(4);
    expect(replicas.seqs()).toEqual([[s4], [s3], [s2, s3]]);
    expect(delta(before)).toEqual({ retransmissions: 4, retransmittedSeqs: 3, giveUps: 0 });

    // Each is the kernel's stamped copy byte for byte, but for the flag.
    for (const r of replicas.received.flat()) {
      const h = readHeader(r.msg);
      expect(h.flags).toBe(Flags.RETRANSMIT);
      const kept = Buffer.from(seq.slot(GROUP_ID, h.seq)!.msg);
      kept.writeUInt16BE(Flags.RETRANSMIT, 6);
      expect(r.msg.equals(kept)).toBe(true);
      expect(h).toMatchObject({ session: SESSION, sequencerId: 3, groupId: GROUP_ID });
    }
  });

  it('backs off RTO x 2^tries per seq, then gives up once: counted, logged once at debug, summed up at warn', async () => {
    rt = make(2);
    const n = stamp(seq, 10n);
    ack(seq, group, n, [0]);
    const rto = BigInt(RTO_MS) * MS;
    const t1 = stampOf(n) + rto;
    expect(await tickAt(t1 - 1n)).toBe(0);
    expect(await tickAt(t1)).toBe(2); // try 1, to replicas 1 and 2
    expect(await tickAt(t1 + 2n * rto - 1n)).toBe(0);
    const t2 = t1 + 2n * rto;
    expect(await tickAt(t2)).toBe(2); // try 2
    expect(await tickAt(t2 + 4n * rto - 1n)).toBe(0);
    expect(rt.counters().giveUps).toBe(0);
    expect(await tickAt(t2 + 4n * rto)).toBe(0); // the retry limit: give up
    expect(rt.counters()).toMatchObject({ retransmissions: 4, retransmittedSeqs: 1, giveUps: 1 });
    expect(replicas.seqs()).toEqual([[], [n, n], [n, n]]);

    // Given up stays given up, however long it stays unacked: no more
    // tries. But it lacks a quorum (replica 0 alone acked), so it would
    // hold its slot for good: it is probed once per probe interval (the
    // RTO ceiling, 1 s), to the members that lack it, until they ACK.
    const gaveUpAt = t2 + 4n * rto;
    for (let k = 1n; k <= 5n; k++) await tickAt(gaveUpAt + k * 100n * rto);
    expect(rt.counters()).toMatchObject({ retransmissions: 4, giveUps: 1, probes: 2 * 5 });
    expect(replicas.seqs()[0]).toEqual([]);
    ack(seq, group, n, [1]); // a quorum with the leader: no more probes
    for (let k = 6n; k <= 8n; k++) await tickAt(gaveUpAt + k * 100n * rto);
    expect(rt.counters()).toMatchObject({ retransmissions: 4, giveUps: 1, probes: 2 * 5 });
    const debug = log.lines.filter((l) => l.level === 'debug');
    expect(debug).toHaveLength(1);
    expect(debug[0]!.obj).toMatchObject({ event: 'retransmit_give_up', group: GROUP_ID, seq: String(n), missing: [1, 2] });
    const warn = log.lines.filter((l) => l.level === 'warn');
    expect(warn).toHaveLength(1);
    expect(warn[0]!.obj).toMatchObject({ event: 'retransmit_give_up', group: GROUP_ID, count: 1, seqs: [String(n)], retries: 2 });
  });

  it('an ACK that arrives between tries narrows the next try; the last ACK ends them', async () => {
    const n = stamp(seq, 20n);
    ack(seq, group, n, [0]);
    const rto = BigInt(RTO_MS) * MS;
    const t1 = stampOf(n) + rto;
    expect(await tickAt(t1)).toBe(2);
    ack(seq, group, n, [1]);
    expect(await tickAt(t1 + 2n * rto)).toBe(1);
    expect(replicas.seqs()).toEqual([[], [n], [n, n]]);
    ack(seq, group, n, [2]);
    expect(await tickAt(t1 + 6n * rto)).toBe(0);
    expect(await tickAt(t1 + 600n * rto)).toBe(0);
    expect(rt.counters()).toMatchObject({ retransmissions: 3, retransmittedSeqs: 1, giveUps: 0 });
  });

  const adaptive = () => {
    rt.stop();
    rt = new Retransmitter(seq, window, out, { groups: [GROUP_ID], rtoMs: RTO_MS, maxRtoMs: 1000, retries: 5, now: () => pinned ?? taiNowNs(), log });
  };

  it('adaptive RTO: fed stamp to every member, not to quorum; the slowest member is then not re-sent to early', async () => {
    adaptive();
    const slow = Array.from({ length: 8 }, (_, k) => stamp(seq, 50n + BigInt(k)));
    const t0 = stampOf(slow[7]!);
    for (const n of slow) ack(seq, group, n, [0, 1]); // a quorum with the leader at once
    await tickAt(t0 + 2n * MS);
    for (const n of slow) ack(seq, group, n, [2]); // the last member within the next 76 ms
    await tickAt(t0 + 78n * MS);
    // Eight samples of (2 + 78) / 2 = 40 ms less their stamp offsets; the
    // quorum's ~0 ms would have left the RTO at its 20 ms floor.
    const rto = rt.rtoMs();
    expect(rto).toBeGreaterThan(40);
    expect(rto).toBeLessThan(80);

    const n = stamp(seq, 60n);
    ack(seq, group, n, [0, 1]);
    const t1 = stampOf(n);
    const rtoNs = BigInt(Math.ceil(rto * 1e6));
    expect(await tickAt(t1 + 2n * BigInt(RTO_MS) * MS - MS)).toBe(0); // the fixed RTO would have re-sent by now
    expect(await tickAt(t1 + rtoNs)).toBe(1);
    expect(replicas.seqs()).toEqual([[], [], [n]]);
  });

  it("adaptive RTO, Karn: a seq that was re-sent gives no sample, however late its last ACK", async () => {
    adaptive();
    const n = stamp(seq, 70n);
    ack(seq, group, n, [0, 1]);
    const t0 = stampOf(n);
    expect(await tickAt(t0 + BigInt(RTO_MS) * MS)).toBe(1);
    ack(seq, group, n, [2]);
    await tickAt(t0 + 500n * MS);
    expect(rt.rtoMs()).toBe(RTO_MS);
  });

  it('adaptive RTO: re-sends the member answers with a duplicate ACK were spurious, so their seqs do give samples', async () => {
    adaptive();
    const slow = Array.from({ length: 8 }, (_, k) => stamp(seq, 80n + BigInt(k)));
    const t0 = stampOf(slow[7]!);
    for (const n of slow) ack(seq, group, n, [0, 1]);
    expect(await tickAt(t0 + BigInt(RTO_MS) * MS)).toBe(8); // to member 2, which is only slow
    for (const n of slow) ack(seq, group, n, [2, 2]); // the original's ACK, then the copy's: a duplicate
    await tickAt(t0 + 130n * MS);
    // Every re-send drew a duplicate: all eight count, at about (20 + 130) / 2 = 75 ms.
    expect(rt.rtoMs()).toBeGreaterThan(75);
    expect(rt.rtoMs()).toBeLessThan(120);
  });

  it('a burst of due seqs is spread over ticks by maxSendsPerTick, oldest first', async () => {
    rt = new Retransmitter(seq, window, out, { groups: [GROUP_ID], rtoMs: RTO_MS, retries: 5, maxSendsPerTick: 7, now: () => pinned ?? taiNowNs(), log });
    const seqs = Array.from({ length: 10 }, (_, i) => stamp(seq, BigInt(200 + i)));
    const at = stampOf(seqs[9]!) + 100n * MS;
    // The budget is checked per seq, and a seq goes to all its missing members.
    expect(await tickAt(at)).toBe(9);
    expect(rt.counters().deferred).toBe(7);
    expect(replicas.seqs()[0]).toEqual(seqs.slice(0, 3));
    expect(await tickAt(at)).toBe(9);
    expect(await tickAt(at)).toBe(9);
    expect(await tickAt(at)).toBe(3);
    expect(await tickAt(at)).toBe(0);
    expect(replicas.seqs()).toEqual([seqs, seqs, seqs]);
    expect(rt.counters()).toMatchObject({ retransmissions: 30, retransmittedSeqs: 10, deferred: 7 + 4 + 1 });
  });

  it('an idle group costs no scan: nothing sent, no slot read, until lastSeq moves', async () => {
    const n = stamp(seq, 30n);
    ack(seq, group, n, [0, 1, 2]);
    await tickAt(stampOf(n) + 1000n * MS);
    const settled = rt.counters();
    expect(settled.scans).toBe(1);
    for (let k = 2n; k < 50n; k++) rt.tick();
    await sleep(SETTLE_MS);
    const idle = rt.counters();
    expect(idle.scans).toBe(settled.scans);
    expect(idle.slotsScanned).toBe(settled.slotsScanned);
    expect(idle.idleTicks - settled.idleTicks).toBe(48);
    expect(idle.retransmissions).toBe(0);
    expect(replicas.seqs()).toEqual([[], [], []]);

    // Outstanding but not due yet: scanned once, then skipped until due.
    const m = stamp(seq, 31n);
    pinned = stampOf(m);
    rt.tick();
    rt.tick();
    rt.tick();
    expect(rt.counters().scans - idle.scans).toBe(1);
    expect(rt.counters().slotsScanned - idle.slotsScanned).toBe(1); // the floor passed n
  });

  it('a new session starts over from seq 1 with the new session\'s messages', async () => {
    const old = stamp(seq, 40n);
    stamp(seq, 41n);
    rt.tick();
    // The data path is re-created: new session, seqs from 1 again, and an
    // empty window (the old session's unacked slots would hold back
    // stamping under backpressure: their ACKs can no longer count).
    const next = { ...group, session: SESSION + 1 };
    resetGroup(seq, GROUP_ID, next);
    rt.refresh();
    const n = stamp(seq, 42n);
    expect(n).toBe(old);
    expect(await tickAt(stampOf(n) + 100n * MS)).toBe(3);
    expect(replicas.received.flat().map((r) => readHeader(r.msg))).toEqual(
      Array(3).fill(expect.objectContaining({ seq: n, session: SESSION + 1, requestId: 42n })),
    );
  });

  it('runs on its own timer against the kernel clock', async () => {
    rt = make();
    rt.start();
    const n = stamp(seq, 50n);
    ack(seq, group, n, [0, 2]);
    const t0 = Date.now();
    await waitFor(() => replicas.received[1]!.length >= 1, 'a retransmission to replica 1', 2000);
    // Not before the RTO (a millisecond of slack: Date.now() granularity).
    expect(Date.now() - t0).toBeGreaterThanOrEqual(RTO_MS - 1);
    ack(seq, group, n, [1]);
    await sleep(8 * RTO_MS);
    rt.stop();
    expect(replicas.seqs()[0]).toEqual([]);
    expect(replicas.seqs()[2]).toEqual([]);
    expect(replicas.seqs()[1]!.every((s) => s === n)).toBe(true);
  });

  it('a failing tick is logged at error and the timer goes on', async () => {
    let fail = 0;
    const flaky = {
      group: (id: number) => seq.group(id),
      lastSeq: (id: number) => {
        if (fail > 0) {
          fail--;
          throw Object.assign(new Error('lookup in map xseq_group_seq: EINTR'), { code: 'EBPF_SYSCALL' });
        }
        return seq.lastSeq(id);
      },
    };
    rt = new Retransmitter(flaky, window, out, { groups: [GROUP_ID], rtoMs: RTO_MS, retries: 5, idlePollMs: 5, log });
    fail = 2; // the next two ticks fail
    rt.start();
    const n = stamp(seq, 70n);
    await waitFor(() => replicas.received.every((r) => r.length >= 1), 'a retransmission to every replica after the failures');
    rt.stop();
    const errors = log.lines.filter((l) => l.level === 'error');
    expect(errors).toHaveLength(2);
    expect(errors[0]!.obj).toMatchObject({ code: 'EBPF_SYSCALL' });
    expect(replicas.seqs()).toEqual([[n], [n], [n]]);
  });

  it('idle on its own timer: no scans, no sends, little CPU', async () => {
    const n = stamp(seq, 60n);
    ack(seq, group, n, [0, 1, 2]);
    rt.start();
    await sleep(50);
    const before = rt.counters();
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    await sleep(1000);
    const cpu = process.cpuUsage(cpu0);
    const wallMs = performance.now() - wall0;
    rt.stop();
    const after = rt.counters();
    const ticks = after.idleTicks - before.idleTicks;
    console.log(
      `idle: ${ticks} ticks (poll ${rt.idlePollMs} ms) in ${wallMs.toFixed(0)} ms, process CPU ` +
        `${((cpu.user + cpu.system) / 1000).toFixed(1)} ms (${(((cpu.user + cpu.system) / 1000 / wallMs) * 100).toFixed(2)}%)`,
    );
    expect(after.scans).toBe(before.scans);
    expect(after.retransmissions).toBe(0);
    expect(ticks).toBeGreaterThan(5);
    expect(ticks).toBeLessThanOrEqual(1000 / rt.idlePollMs + 2);
  });
});

describePrivileged('agent retransmission: windows that move', () => {
  let seq: Sequencer;
  let replicas: ReplicaSockets;
  let out: Socket;
  let group: GroupConfig;

  beforeAll(async () => {
    seq = Sequencer.load({ port: 7400, windowSlots: 4, windows: 1, policy: 'overwrite' });
    replicas = await ReplicaSockets.bind(2);
    out = createSocket('udp4');
    await bindTo(out, '127.0.0.1', 0);
    group = {
      mcastAddr: '239.7.7.2',
      mcastPort: replicas.port,
      sequencerId: 3,
      session: SESSION,
      enabled: true,
      members: [0, 1].map((rid) => ({ addr: ReplicaSockets.addr(rid), port: 7700 + rid })),
    };
  });
  afterAll(() => {
    replicas?.close();
    out?.close();
    seq?.close();
  });

  it('seqs overwritten before they were acked are dropped, not re-sent (policy overwrite)', async () => {
    resetGroup(seq, GROUP_ID, group);
    const window = new SlotWindow(seq.slots, seq.windowSlots);
    let pinned = 0n;
    const rt = new Retransmitter(seq, window, out, { groups: [GROUP_ID], rtoMs: RTO_MS, retries: 3, now: () => pinned });
    const seqs = Array.from({ length: 6 }, (_, i) => stamp(seq, BigInt(100 + i)));
    expect(seq.counters().window_overwrite).toBeGreaterThanOrEqual(2n);
    ack(seq, group, seqs[4]!, [0]);
    pinned = taiNowNs() + 1000n * MS;
    rt.tick();
    await waitFor(() => replicas.received.flat().length >= 7, '7 retransmissions');
    await sleep(SETTLE_MS);
    // Window of 4 holds seqs 3..6: 1 and 2 are gone; 5 is only missing at replica 1.
    expect(replicas.seqs()).toEqual([[3n, 4n, 6n], [3n, 4n, 5n, 6n]]);
    expect(rt.counters()).toMatchObject({ retransmissions: 7, retransmittedSeqs: 4, giveUps: 0 });
  });
});

describePrivileged('agent retransmission: release under backpressure', () => {
  let seq: Sequencer;
  let replicas: ReplicaSockets;
  let out: Socket;
  let group: GroupConfig;
  const W = 4;

  beforeAll(async () => {
    seq = Sequencer.load({ port: 7400, windowSlots: W, windows: 1, policy: 'backpressure' });
    replicas = await ReplicaSockets.bind(3);
    out = createSocket('udp4');
    await bindTo(out, '127.0.0.1', 0);
    group = {
      mcastAddr: '239.7.7.3',
      mcastPort: replicas.port,
      sequencerId: 3,
      session: SESSION,
      enabled: true,
      members: [0, 1, 2].map((rid) => ({ addr: ReplicaSockets.addr(rid), port: 7800 + rid })),
    };
  });
  afterAll(() => {
    replicas?.close();
    out?.close();
    seq?.close();
  });
  beforeEach(() => {
    resetGroup(seq, GROUP_ID, group);
    replicas.clear();
  });

  /** Stamps a request, or null when backpressure drops it. */
  /** The seq stamped, or null when backpressure refused (answered ERROR BUSY). */
  const tryStamp = (req: bigint): bigint | null => {
    const r = seq.program.testRun({ data: requestFrame(req) });
    if (r.retval !== XDP_TX) return null;
    const h = readHeader(parseFrame(r.data).payload);
    return h.type === MsgType.SEQUENCED ? h.seq : null;
  };

  it('a member that never acks: seqs a quorum with the leader acked are released once retries run out, and the group goes on', () => {
    let at = taiNowNs();
    const rt = new Retransmitter(seq, new SlotWindow(seq.slots, seq.windowSlots), out, { groups: [GROUP_ID], rtoMs: RTO_MS, retries: 1, now: () => at });
    const before = seq.counters();
    let req = 1n;
    let stamped = 0n;
    // Five windows' worth: without release the group stops after W.
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < W; i++) {
        const n = tryStamp(req++);
        expect(n, `round ${round}: request ${i} admitted`).toBe(stamped + 1n);
        stamped = n!;
        ack(seq, group, n!, [0, 1]); // leader and one follower: REPLY; replica 2 is dead
      }
      expect(tryStamp(req), `round ${round}: the window is full`).toBeNull();
      // One re-send to replica 2, then the retry limit: released.
      at += 1000n * MS;
      rt.tick();
      expect(seq.released(GROUP_ID)).toBe(stamped - BigInt(W));
      at += 1000n * MS;
      rt.tick();
      expect(seq.released(GROUP_ID)).toBe(stamped);
    }
    const after = seq.counters();
    expect(after.sequenced - before.sequenced).toBe(BigInt(5 * W));
    expect(after.reply - before.reply).toBe(BigInt(5 * W));
    expect(after.drop_backpressure - before.drop_backpressure).toBe(5n);
    // A released slot is not an overwrite of something still awaited.
    expect(after.window_overwrite - before.window_overwrite).toBe(0n);
    expect(rt.counters()).toMatchObject({ giveUps: 5 * W, retransmissions: 5 * W });
  });

  it('a seq without the leader\'s ACK is not released when retries run out, until the leader acks it', () => {
    let at = taiNowNs();
    const rt = new Retransmitter(seq, new SlotWindow(seq.slots, seq.windowSlots), out, { groups: [GROUP_ID], rtoMs: RTO_MS, retries: 1, now: () => at });
    const seqs = [1n, 2n, 3n, 4n].map((r) => tryStamp(r)!);
    ack(seq, group, seqs[0]!, [0, 1]);
    ack(seq, group, seqs[1]!, [1, 2]); // followers only: no REPLY was due
    ack(seq, group, seqs[2]!, [0, 1]);
    ack(seq, group, seqs[3]!, [0, 2]);
    for (let i = 0; i < 3; i++) {
      at += 1000n * MS;
      rt.tick();
    }
    expect(rt.counters().giveUps).toBe(4);
    // Only the prefix below the uncertified seq is released.
    expect(seq.released(GROUP_ID)).toBe(seqs[0]);
    expect(tryStamp(5n)).toBe(5n); // took seq 1's slot
    expect(tryStamp(6n)).toBeNull(); // seq 2's slot is still held
    // The leader's late ACK certifies seq 2; the next look releases 2..4.
    ack(seq, group, seqs[1]!, [0]);
    at += 1000n * MS;
    rt.tick();
    expect(seq.released(GROUP_ID)).toBe(seqs[3]);
    expect(tryStamp(6n)).toBe(6n);
  });

  it('a new session starts with nothing released', () => {
    seq.setReleased(GROUP_ID, 3n);
    resetGroup(seq, GROUP_ID, group);
    expect(seq.released(GROUP_ID)).toBe(0n);
  });
});

describePrivileged('agent retransmission: scan cost', () => {
  let seq: Sequencer;
  let out: Socket;
  let sink: Socket;

  beforeAll(async () => {
    // overwrite: the window keeps moving under load, as at full rate.
    seq = Sequencer.load({ port: 7400, windowSlots: 1024, windows: 1, policy: 'overwrite' });
    out = createSocket('udp4');
    await bindTo(out, '127.0.0.1', 0);
    sink = createSocket('udp4');
    await bindTo(sink, '127.0.0.21', 0);
  });
  afterAll(() => {
    out?.close();
    sink?.close();
    seq?.close();
  });

  // How fast the scan is, is bench row T-scan (bench/timers.ts); this test
  // checks what the scan does on a full, moving window.
  it('scans a full, moving window of 1,024 unacked slots: every slot read each tick, none sent before due, all sent once due', () => {
    const group: GroupConfig = {
      mcastAddr: '239.7.7.3',
      mcastPort: sink.address().port,
      sequencerId: 3,
      session: SESSION,
      enabled: true,
      members: [0, 1, 2].map((rid) => ({ addr: `127.0.0.${21 + rid}`, port: 7800 + rid })),
    };
    resetGroup(seq, GROUP_ID, group);
    for (let i = 0; i < 1024; i++) seq.program.testRun({ data: requestFrame(BigInt(i)) });
    expect(seq.lastSeq(GROUP_ID)).toBe(1024n);
    const window = new SlotWindow(seq.slots, seq.windowSlots);

    // Nothing is due (the clock stands before every stamp): each tick, one
    // more request moves lastSeq and the whole window is read, none sent.
    const early = taiNowNs() - 1000n * MS;
    const rt = new Retransmitter(seq, window, out, { groups: [GROUP_ID], rtoMs: RTO_MS, retries: 5, now: () => early });
    const frame = requestFrame(9n);
    let warm = rt.counters();
    for (let i = 0; i < 1500; i++) {
      if (i === 500) warm = rt.counters(); // after JIT warm-up
      seq.program.testRun({ data: frame });
      rt.tick();
    }
    const c = rt.counters();
    expect(c.retransmissions).toBe(0);
    expect(c.slotsScanned - warm.slotsScanned).toBe(1000 * 1024);

    // Everything due: the cost of copying and sending, per re-sent seq.
    const burst = new Retransmitter(seq, window, out, {
      groups: [GROUP_ID],
      rtoMs: RTO_MS,
      retries: 5,
      maxSendsPerTick: 4096,
      now: () => taiNowNs() + 1000n * MS,
    });
    burst.tick();
    const due = burst.counters();
    expect(due.retransmissions).toBe(1024 * 3);
  });
});
