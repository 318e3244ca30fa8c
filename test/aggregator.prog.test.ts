// The ACK path of sequencer.bpf.o under BPF_PROG_TEST_RUN: which ACKs count,
// the one REPLY (exact bytes) that the quorum-completing ACK becomes, and
// what the window does when it wraps under each policy.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { COUNTER_NAMES, type Counters, type GroupConfig } from '../bpf/maps.ts';
import type { TestRunResult } from '../bpf/libbpf/testrun.ts';
import { Sequencer } from '../bpf/sequencer.ts';
import { emptyHeader, encodeMessage, Flags, MsgType, readHeader, type XseqHeader } from '../bpf/wire.ts';
import { encodeErrorPayload, ErrorCode } from '../bpf/repair.ts';
import { buildFrame, parseFrame } from '../tools/frame.ts';
import { describePrivileged } from './helpers/privileged.ts';

const XDP_DROP = 1;
const XDP_TX = 3;
const SEQ_MAC = '02:00:00:00:00:02';
const SEQ_IP = '10.77.0.2';
const CLIENT = { mac: '02:00:00:00:00:01', ip: '10.77.0.1', port: 40000 };
const MEMBERS = [
  { addr: '10.77.0.11', port: 7600 },
  { addr: '10.77.0.12', port: 7601 },
  { addr: '10.77.0.13', port: 7602 },
];
const GROUP: GroupConfig = { mcastAddr: '239.7.7.1', mcastPort: 7500, sequencerId: 3, session: 41, enabled: true, members: MEMBERS };

function requestFrame(requestId: bigint): Buffer {
  const msg = encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId: 1, clientId: 77n, requestId }, Buffer.from(`op-${requestId}`));
  return buildFrame({ srcMac: CLIENT.mac, dstMac: SEQ_MAC, srcIp: CLIENT.ip, dstIp: SEQ_IP, srcPort: CLIENT.port, dstPort: 7400, payload: msg });
}

interface AckOpts {
  view?: number;
  result?: string | Buffer;
  session?: number;
  from?: { addr: string; port: number };
  /** The leader's stale mark (XSEQ_F_STALE; result empty). */
  stale?: boolean;
}
function ackFrame(rid: number, seq: bigint, o: AckOpts = {}): Buffer {
  const h: Partial<XseqHeader> = { type: MsgType.ACK, groupId: 1, replicaId: rid, session: o.session ?? 41, view: o.view ?? 0, seq };
  const payload = o.result === undefined ? Buffer.alloc(0) : Buffer.from(o.result);
  if (o.result !== undefined) h.flags = Flags.RESULT | (o.stale ? Flags.STALE : 0);
  const from = o.from ?? MEMBERS[rid] ?? MEMBERS[0]!;
  return buildFrame({
    srcMac: `02:00:00:00:00:1${rid % 10}`, dstMac: SEQ_MAC, srcIp: from.addr, dstIp: SEQ_IP, srcPort: from.port, dstPort: 7400,
    payload: encodeMessage({ ...emptyHeader(), ...h }, payload),
  });
}

/**
 * test_run puts a frame in one page: 256 bytes of headroom, the data, and
 * the skb_shared_info tailroom (cache-line aligned, so the linear size is a
 * multiple of 64); more goes to fragments. A frame that fills the linear
 * part exactly cannot grow at the tail, as many cannot on veth in native
 * mode. Ethernet padding after the IP packet makes a follower's ACK that
 * long (the kernel parses by the IP length). Stamps requests, the leader
 * acks each with `result` and follower 1's padded ACK completes the
 * quorum, for each multiple of 64 down from a page, until `found` says the
 * frame could not grow at the tail; returns that one (the earlier ones'
 * slots are freed by acks from everyone).
 */
function fullFrameAck(run: (f: Buffer) => TestRunResult, stamp: (req: bigint) => bigint, result: Buffer, found: (r: TestRunResult) => boolean, before?: () => void) {
  for (let len = 4096 - 256; len >= 2048; len -= 64) {
    const n = stamp(BigInt(len));
    expect(run(ackFrame(0, n, { result })).retval).toBe(XDP_DROP);
    before?.();
    const ack = ackFrame(1, n);
    const r = run(Buffer.concat([ack, Buffer.alloc(len - ack.length)]));
    if (found(r)) return { n, r, len };
    expect(r.retval).toBe(XDP_TX);
    run(ackFrame(2, n));
  }
  throw new Error('no frame size that fills the linear part');
}

function withSequencer(policy: 'backpressure' | 'overwrite', body: (ctx: () => Sequencer) => void, maxResult = 32) {
  let seq: Sequencer;
  beforeAll(() => {
    seq = Sequencer.load({ port: 7400, windowSlots: 8, windows: 2, maxResult, policy });
  });
  afterAll(() => seq?.close());
  beforeEach(() => {
    // A fresh group each test: no seqs, an empty window.
    seq.disableGroup(1);
    seq.resetSeq(1);
    for (let i = 0; i < 16; i++) seq.slots.update(new Uint8Array(new Uint32Array([i]).buffer), new Uint8Array(seq.slots.valueSize));
    seq.setGroup(1, GROUP);
  });
  body(() => seq);
}

describePrivileged('the ACK path under BPF_PROG_TEST_RUN', () => {
  describe('policy backpressure', () => {
    withSequencer('backpressure', (s) => {
      let before: Counters;
      beforeEach(() => {
        before = s().counters();
      });
      const delta = () => {
        const now = s().counters();
        const d: Record<string, number> = {};
        for (const n of COUNTER_NAMES) if (now[n] !== before[n]) d[n] = Number(now[n] - before[n]);
        return d;
      };
      const run = (f: Buffer) => s().program.testRun({ data: f });
      const stamp = (req: bigint) => {
        const r = run(requestFrame(req));
        expect(r.retval).toBe(XDP_TX);
        return readHeader(parseFrame(r.data).payload).seq;
      };

      it('acks r1, r0, r2: DROP, then REPLY with exactly the expected bytes, then DROP', () => {
        const n = stamp(5n);
        expect(run(ackFrame(1, n)).retval).toBe(XDP_DROP);
        const histBefore = s().quorumHistogram().reduce((a, b) => a + b, 0n);
        const reply = run(ackFrame(0, n, { result: 'res-1' }));
        expect(reply.retval).toBe(XDP_TX);
        const slot = s().slot(1, n)!;
        const want = buildFrame({
          srcMac: SEQ_MAC, dstMac: CLIENT.mac, srcIp: SEQ_IP, dstIp: CLIENT.ip, srcPort: 7400, dstPort: CLIENT.port, udpChecksum: false,
          payload: encodeMessage(
            { ...emptyHeader(), type: MsgType.REPLY, flags: Flags.RESULT, groupId: 1, sequencerId: 3, replicaId: 0, session: 41, view: 0, seq: n, clockNs: slot.stampNs, clientId: 77n, requestId: 5n },
            Buffer.from('res-1'),
          ),
        });
        expect(Buffer.from(reply.data).toString('hex')).toBe(want.toString('hex'));
        expect(run(ackFrame(2, n)).retval).toBe(XDP_DROP);
        expect(delta()).toEqual({ rx: 4, sequenced: 1, ack_rx: 3, ack_counted: 3, reply: 1, ack_late: 1 });
        expect(s().quorumHistogram().reduce((a, b) => a + b, 0n)).toBe(histBefore + 1n);
        expect(s().quorumNanosSum()).toBeGreaterThan(0n);
        expect(s().slot(1, n)).toMatchObject({ seq: n, acked: 0b111, view: 0, replied: true });
      });

      it("a leader's stale mark completes the slot: the REPLY says STALE and carries no result; a later real result clears the mark", () => {
        const n = stamp(6n);
        expect(run(ackFrame(0, n, { result: '', stale: true })).retval).toBe(XDP_DROP);
        const reply = run(ackFrame(1, n));
        expect(reply.retval).toBe(XDP_TX);
        const h = readHeader(parseFrame(reply.data).payload);
        expect(h).toMatchObject({ type: MsgType.REPLY, flags: Flags.STALE, requestId: 6n, payloadLen: 0 });
        run(ackFrame(2, n));
        expect(s().slot(1, n)).toMatchObject({ acked: 0b111, replied: true });
        // A later request: the leader's real result goes out as a result.
        const m = stamp(7n);
        expect(run(ackFrame(0, m, { result: 'real' })).retval).toBe(XDP_DROP);
        const r2 = run(ackFrame(1, m));
        expect(readHeader(parseFrame(r2.data).payload)).toMatchObject({ flags: Flags.RESULT, payloadLen: 4 });
      });

      it('follower-first: the leader result stored before quorum goes into the reply a follower completes', () => {
        const n = stamp(6n);
        expect(run(ackFrame(0, n, { result: 'leader-said-yes' })).retval).toBe(XDP_DROP);
        const r = run(ackFrame(2, n));
        expect(r.retval).toBe(XDP_TX);
        const p = parseFrame(r.data);
        expect(p.dstIp).toBe(CLIENT.ip);
        expect(readHeader(p.payload)).toMatchObject({ type: MsgType.REPLY, seq: n, replicaId: 0, requestId: 6n, payloadLen: 15 });
        expect(p.payload.subarray(64).toString()).toBe('leader-said-yes');
      });

      it('followers alone never make a quorum without the leader', () => {
        const n = stamp(7n);
        expect(run(ackFrame(1, n)).retval).toBe(XDP_DROP);
        expect(run(ackFrame(2, n)).retval).toBe(XDP_DROP);
        expect(delta()).toMatchObject({ ack_counted: 2 });
        expect(delta()['reply']).toBeUndefined();
      });

      it('a duplicate ack counts once', () => {
        const n = stamp(8n);
        run(ackFrame(1, n));
        run(ackFrame(1, n));
        expect(delta()).toMatchObject({ ack_rx: 2, ack_counted: 1, ack_duplicate: 1 });
        expect(s().slot(1, n)!.acked).toBe(0b10);
      });

      const strangers: [string, () => Buffer][] = [
        ['the right replica id from another address', () => ackFrame(1, 1n, { from: { addr: '10.77.0.99', port: 7601 } })],
        ['the right address from another port', () => ackFrame(1, 1n, { from: { addr: '10.77.0.12', port: 9999 } })],
        ['another member\'s address claiming replica 1', () => ackFrame(1, 1n, { from: MEMBERS[2]! })],
        ['a replica id past the members', () => ackFrame(5, 1n, { from: MEMBERS[0]! })],
      ];
      it.each(strangers)('%s is dropped as a stranger and never counts', (_name, make) => {
        stamp(9n);
        expect(run(make()).retval).toBe(XDP_DROP);
        expect(delta()).toMatchObject({ drop_ack_stranger: 1 });
        expect(s().slot(1, 1n)!.acked).toBe(0);
      });

      it('a wrong session is dropped and counted', () => {
        const n = stamp(10n);
        expect(run(ackFrame(0, n, { session: 40, result: 'x' })).retval).toBe(XDP_DROP);
        expect(delta()).toMatchObject({ drop_ack_session: 1 });
      });

      it('a seq the window does not hold is dropped', () => {
        stamp(11n);
        expect(run(ackFrame(0, 5n)).retval).toBe(XDP_DROP);
        expect(run(ackFrame(0, 1000n)).retval).toBe(XDP_DROP);
        expect(delta()).toMatchObject({ drop_ack_window: 2 });
      });

      it('a newer view resets the slot; a stale view is dropped; the new leader certifies', () => {
        const n = stamp(12n);
        run(ackFrame(0, n, { result: 'view0' })); // view 0, leader 0
        expect(run(ackFrame(1, n, { view: 1, result: 'view1' })).retval).toBe(XDP_DROP); // resets to view 1
        expect(s().slot(1, n)).toMatchObject({ view: 1, acked: 0b10 });
        expect(run(ackFrame(2, n, { view: 0 })).retval).toBe(XDP_DROP); // stale
        const r = run(ackFrame(2, n, { view: 1 }));
        expect(r.retval).toBe(XDP_TX);
        const p = parseFrame(r.data);
        expect(readHeader(p.payload)).toMatchObject({ type: MsgType.REPLY, view: 1, replicaId: 1 });
        expect(p.payload.subarray(64).toString()).toBe('view1');
        expect(delta()).toMatchObject({ ack_view_reset: 1, drop_ack_stale_view: 1, reply: 1 });
      });

      it('a view above 0 on fresh slots is no reset: ack_view_reset counts only acks it discards', () => {
        // A group running in view 3 from the start: every slot's first ACK
        // moves it from view 0, but there is nothing to reset.
        const seqs = [stamp(14n), stamp(15n), stamp(16n)];
        for (const n of seqs) expect(run(ackFrame(1, n, { view: 3 })).retval).toBe(XDP_DROP);
        expect(delta()).toMatchObject({ ack_counted: 3 });
        expect(delta().ack_view_reset).toBeUndefined();
        // A higher view over acks that are there: one reset per slot.
        run(ackFrame(2, seqs[0]!, { view: 4 }));
        run(ackFrame(2, seqs[1]!, { view: 4 }));
        expect(delta()).toMatchObject({ ack_counted: 5, ack_view_reset: 2 });
        expect(s().slot(1, seqs[0]!)).toMatchObject({ view: 4, acked: 0b100 });
      });

      it('a result over max_result is refused and counted, not truncated', () => {
        const n = stamp(13n);
        expect(run(ackFrame(0, n, { result: Buffer.alloc(33, 0x41) })).retval).toBe(XDP_DROP);
        expect(delta()).toMatchObject({ drop_result_too_big: 1 });
        expect(s().slot(1, n)!.acked).toBe(0);
        // Exactly max_result fits.
        run(ackFrame(0, n, { result: Buffer.alloc(32, 0x42) }));
        const r = run(ackFrame(1, n));
        expect(r.retval).toBe(XDP_TX);
        expect(parseFrame(r.data).payload.subarray(64)).toEqual(Buffer.alloc(32, 0x42));
      });

      it('a completing ACK whose frame has no tailroom grows in front: the same REPLY, counted', () => {
        const result = Buffer.alloc(32, 0x52);
        const { n, r, len } = fullFrameAck(run, stamp, result, () => s().counters().reply_headroom > before.reply_headroom, () => {
          before = s().counters();
        });
        expect(r.retval).toBe(XDP_TX);
        expect(r.data.length).toBe(len + 32);
        const slot = s().slot(1, n)!;
        const want = buildFrame({
          srcMac: SEQ_MAC, dstMac: CLIENT.mac, srcIp: SEQ_IP, dstIp: CLIENT.ip, srcPort: 7400, dstPort: CLIENT.port, udpChecksum: false,
          payload: encodeMessage(
            { ...emptyHeader(), type: MsgType.REPLY, flags: Flags.RESULT, groupId: 1, sequencerId: 3, replicaId: 0, session: 41, view: 0, seq: n, clockNs: slot.stampNs, clientId: 77n, requestId: BigInt(len) },
            result,
          ),
        });
        // The frame keeps the ACK's Ethernet padding after the IP packet.
        expect(Buffer.from(r.data.subarray(0, want.length)).toString('hex')).toBe(want.toString('hex'));
        expect(delta()).toMatchObject({ reply: 1, reply_headroom: 1 });
        expect(delta()['reply_grow_failed']).toBeUndefined();
      });

      it('an ACK never sets a bit in a slot already taken for seq + W (the acks word carries the generation)', () => {
        const n = stamp(15n);
        // Freeze the slot mid-takeover as another CPU leaves it between its
        // two stores: seq still n, acks already holding n + W's generation.
        const idx = new Uint8Array(new Uint32Array([8 + Number(n & 7n)]).buffer);
        const v = s().slots.lookup(idx)!;
        const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
        dv.setBigUint64(8, ((n + 8n) & 0xffffffn) << 8n, true);
        s().slots.update(idx, v);
        expect(run(ackFrame(1, n)).retval).toBe(XDP_DROP);
        expect(run(ackFrame(0, n, { result: 'x' })).retval).toBe(XDP_DROP);
        expect(delta()).toMatchObject({ drop_ack_window: 2 });
        expect(delta()['ack_counted']).toBeUndefined();
        expect(s().slot(1, n)!.acked).toBe(0);
        expect(new DataView(s().slots.lookup(idx)!.buffer).getBigUint64(8, true)).toBe(((n + 8n) & 0xffffffn) << 8n);
      });

      it('window wrap, backpressure: a request whose slot is unacked takes no seq and is answered ERROR BUSY, exact bytes', () => {
        for (let i = 1; i <= 8; i++) stamp(BigInt(100 + i));
        const busy = run(requestFrame(109n));
        expect(busy.retval).toBe(XDP_TX);
        const want = buildFrame({
          srcMac: SEQ_MAC, dstMac: CLIENT.mac, srcIp: SEQ_IP, dstIp: CLIENT.ip, srcPort: 7400, dstPort: CLIENT.port, udpChecksum: false,
          payload: encodeMessage(
            { ...emptyHeader(), type: MsgType.ERROR, groupId: 1, sequencerId: 3, session: 41, clientId: 77n, requestId: 109n },
            encodeErrorPayload(ErrorCode.BUSY, ''),
          ),
        });
        expect(Buffer.from(busy.data).toString('hex')).toBe(want.toString('hex'));
        // A request with a payload shorter than the error's grows into it.
        const short = encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId: 1, clientId: 77n, requestId: 110n }, Buffer.alloc(0));
        const grown = run(buildFrame({ srcMac: CLIENT.mac, dstMac: SEQ_MAC, srcIp: CLIENT.ip, dstIp: SEQ_IP, srcPort: CLIENT.port, dstPort: 7400, payload: short }));
        expect(grown.retval).toBe(XDP_TX);
        expect(readHeader(parseFrame(grown.data).payload)).toMatchObject({ type: MsgType.ERROR, requestId: 110n, payloadLen: 4 });
        expect(s().lastSeq(1)).toBe(8n);
        expect(delta()).toMatchObject({ sequenced: 8, drop_backpressure: 2, busy: 2 });
        // Every member acks seq 1: its slot frees and seq 9 lands there.
        for (const rid of [0, 1, 2]) run(ackFrame(rid, 1n));
        expect(stamp(111n)).toBe(9n);
        expect(s().slot(1, 9n)).toMatchObject({ seq: 9n, acked: 0, replied: false });
      });

      it('a new session on the same data path does not wait for the old session\'s unacked slots', () => {
        // Found by test/kernel-model.prog.test.ts: the group re-added with a
        // new session (agent/groups.ts: off, seq and release zeroed, on)
        // kept finding its first slot busy with an old seq nobody acks.
        for (let i = 1; i <= 8; i++) stamp(BigInt(200 + i));
        const busy = run(requestFrame(209n)); // refused: answered ERROR BUSY
        expect(busy.retval).toBe(XDP_TX);
        expect(readHeader(parseFrame(busy.data).payload).type).toBe(MsgType.ERROR);
        s().disableGroup(1);
        s().resetSeq(1);
        s().setGroup(1, { ...GROUP, session: 42 });
        expect(stamp(210n)).toBe(1n);
        expect(s().slot(1, 1n)).toMatchObject({ seq: 1n, session: 42, acked: 0 });
        expect(delta()).toMatchObject({ sequenced: 9, drop_backpressure: 1 });
        expect(delta()['window_overwrite']).toBeUndefined();
      });
    });
  });

  describe('policy backpressure, 256-byte results', () => {
    withSequencer(
      'backpressure',
      (s) => {
        it('a completing ACK that can grow neither at the tail nor in front: the leader\'s ack is undone as if lost, counted; the leader\'s re-ACK replies', () => {
          const run = (f: Buffer) => s().program.testRun({ data: f });
          const stamp = (req: bigint) => readHeader(parseFrame(run(requestFrame(req)).data).payload).seq;
          // 256 bytes is more than the headroom adjust_head may take (256
          // less the kernel's struct xdp_frame), and the tail is full.
          const result = Buffer.alloc(256, 0x52);
          let before = s().counters();
          let histBefore = 0n;
          const { n, r } = fullFrameAck(run, stamp, result, (x) => x.retval === XDP_DROP, () => {
            before = s().counters();
            histBefore = s().quorumHistogram().reduce((a, b) => a + b, 0n);
          });
          const delta = () => {
            const now = s().counters();
            const d: Record<string, number> = {};
            for (const k of COUNTER_NAMES) if (now[k] !== before[k]) d[k] = Number(now[k] - before[k]);
            return d;
          };
          expect(r.retval).toBe(XDP_DROP);
          expect(delta()).toEqual({ rx: 1, ack_rx: 1, ack_counted: 1, reply_grow_failed: 1 });
          // The leader's ack is forgotten, the follower's kept.
          expect(s().slot(1, n)).toMatchObject({ acked: 0b10, replied: false });
          expect(s().quorumHistogram().reduce((a, b) => a + b, 0n)).toBe(histBefore);
          // Nobody else can reply without the leader: the other follower's
          // ACK only counts.
          expect(run(ackFrame(2, n)).retval).toBe(XDP_DROP);
          // The leader's re-ACK (after the agent's re-send) carries the
          // result, needs no growth, and is the REPLY.
          const again = run(ackFrame(0, n, { result }));
          expect(again.retval).toBe(XDP_TX);
          expect(readHeader(parseFrame(again.data).payload)).toMatchObject({ type: MsgType.REPLY, seq: n, replicaId: 0, payloadLen: 256 });
          expect(parseFrame(again.data).payload.subarray(64)).toEqual(result);
          expect(delta()).toMatchObject({ ack_counted: 3, reply_grow_failed: 1, reply: 1 });
          expect(delta()['reply_headroom']).toBeUndefined();
          expect(s().slot(1, n)).toMatchObject({ acked: 0b111, replied: true });
          expect(s().quorumHistogram().reduce((a, b) => a + b, 0n)).toBe(histBefore + 1n);
        });
      },
      256,
    );
  });

  describe('policy overwrite', () => {
    withSequencer('overwrite', (s) => {
      it('window wrap, overwrite: the new seq takes the slot, counted, and late acks for the old seq no longer match', () => {
        const before = s().counters();
        for (let i = 1; i <= 9; i++) expect(s().program.testRun({ data: requestFrame(BigInt(i)) }).retval).toBe(XDP_TX);
        const after = s().counters();
        expect(after.window_overwrite - before.window_overwrite).toBe(1n);
        expect(s().slot(1, 9n)!.seq).toBe(9n);
        expect(s().program.testRun({ data: ackFrame(0, 1n) }).retval).toBe(XDP_DROP);
        expect(s().counters().drop_ack_window - after.drop_ack_window).toBe(1n);
      });
    });
  });
});
