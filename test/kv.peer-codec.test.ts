// The replica slow path on the wire (replica/udp/peer-codec.ts,
// frame-reader.ts): every peer message survives encode -> stream -> decode
// exactly, however the stream is cut, including states far larger than a
// datagram; malformed frames are refused with CodecError before they can
// make us allocate or reach the replica.
import { describe, expect, it } from 'vitest';
import { MsgType, XSEQ_HDR_LEN } from '../bpf/wire.ts';
import type { LogEntry, LogState, PeerMsg } from '../replica/messages.ts';
import { CodecError } from '../replica/udp/bytes.ts';
import { FrameReader } from '../replica/udp/frame-reader.ts';
import { checkPeerHeader, decodePeerPayload, encodePeerFrame, MAX_PEER_PAYLOAD } from '../replica/udp/peer-codec.ts';

const GROUP = 7;
const view = { leaderNum: 3, session: 2 ** 32 - 2 };

function entry(slot: number, o: Partial<LogEntry> = {}): LogEntry {
  return { slot, session: 5, seq: 2 ** 40 + slot, noop: false, clientId: 2n ** 64n - 1n, requestId: BigInt(slot), op: new Uint8Array([slot & 0xff, 1, 2]), ...o };
}

function state(n: number, appBytes = 16): LogState {
  const app = new Uint8Array(appBytes).map((_, i) => i * 7);
  return {
    checkpoint: { slot: 100, session: 5, seq: 90, app, clients: [{ clientId: 9n, requestId: 4n, result: new Uint8Array([1]) }, { clientId: 1n, requestId: 0n, result: new Uint8Array(0) }] },
    entries: Array.from({ length: n }, (_, i) => entry(101 + i, i % 5 === 0 ? { noop: true, clientId: 0n, requestId: 0n, op: new Uint8Array(0) } : {})),
    committed: 100 + Math.floor(n / 2),
  };
}

// Hydra: entries with their stream position, checkpoints with each sequencer's, gap agreement keyed by (sequencer, session, seq).
const src = (sid: number, seq: number, noop = false) => ({ sid, session: 2 ** 32 - 1, seq, clock: noop ? -Infinity : 1.7e18 + seq * 256, raw: noop ? -Infinity : 1.7e18 });
const hydraState: LogState = {
  checkpoint: { slot: 10, session: 1, seq: 10, app: new Uint8Array([1]), clients: [], streams: [src(0, 4), src(65535, 2 ** 40)] },
  entries: [entry(11, { session: 1, seq: 11, src: src(0, 5) }), entry(12, { session: 1, seq: 12, noop: true, clientId: 0n, requestId: 0n, op: new Uint8Array(0), src: src(3, 1, true) })],
  committed: 11,
};
const key = { sid: 3, session: 9, seq: 2 ** 53 - 1 };

const SAMPLES: PeerMsg[] = [
  { type: 'GAP_FIND', from: 1, view, slot: 0, stream: key },
  { type: 'GAP_DROP', from: 0, view, slot: 0, stream: key },
  { type: 'GAP_COMMIT', from: 0, view, slot: 0, session: 9, seq: 5, stream: key, clock: 1.7e18 },
  { type: 'GAP_COMMIT_REPLY', from: 2, view, slot: 0, stream: key },
  { type: 'GAP_RECV', from: 0, view, entry: entry(0, { src: src(2, 7) }) },
  { type: 'START_VIEW', from: 0, view, state: hydraState },
  { type: 'VIEW_CHANGE', from: 1, view, lastNormalView: view, state: hydraState, held: [entry(0, { src: src(1, 9) }), entry(0, { src: src(2, 3) })] },
  { type: 'GAP_FIND', from: 1, view, slot: 2 ** 53 - 1 },
  { type: 'GAP_RECV', from: 0, view, entry: entry(44) },
  { type: 'GAP_RECV', from: 0, view, entry: entry(45, { noop: true, op: new Uint8Array(0) }) },
  { type: 'GAP_DROP', from: 0, view, slot: 12 },
  { type: 'GAP_COMMIT', from: 0, view, slot: 12, session: 3, seq: 77 },
  { type: 'GAP_COMMIT_REPLY', from: 2, view, slot: 12 },
  { type: 'VIEW_CHANGE_REQUEST', from: 2, view },
  { type: 'VIEW_CHANGE', from: 2, view, lastNormalView: { leaderNum: 1, session: 1 }, state: state(10) },
  { type: 'START_VIEW', from: 0, view, state: state(0) },
  { type: 'STATE_REQUEST', from: 1, nonce: 2 ** 48 - 1, view: null },
  { type: 'STATE_REQUEST', from: 1, nonce: 0, view },
  { type: 'STATE_REPLY', from: 0, nonce: 5, view, state: state(3) },
  { type: 'STATE_REPLY', from: 2, nonce: 5, view, state: null },
  { type: 'SYNC_PREPARE', from: 0, view, syncPoint: 130, committed: 120, entries: state(30).entries },
  { type: 'SYNC_PREPARE', from: 0, view, syncPoint: 130, committed: 130, entries: [] },
  { type: 'SYNC_REPLY', from: 1, view, syncPoint: 130 },
  { type: 'SYNC_COMMIT', from: 0, view, syncPoint: 130 },
];

/** Byte arrays compare by content; decoded ones are views into a frame. */
function plain(m: unknown): unknown {
  return JSON.parse(JSON.stringify(m, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? [...v] : v)));
}

function decodeAll(stream: Uint8Array, cuts: (i: number) => number): PeerMsg[] {
  const out: PeerMsg[] = [];
  const r = new FrameReader(
    (h) => checkPeerHeader(h, GROUP),
    (h, p) => out.push(decodePeerPayload(h, p)),
  );
  for (let i = 0; i < stream.length; ) {
    const n = Math.max(1, Math.min(cuts(i), stream.length - i));
    r.push(stream.subarray(i, i + n));
    i += n;
  }
  expect(r.buffered).toBe(0);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe('slow-path codec', () => {
  it('every message type round-trips exactly, frames cut anywhere in the stream', () => {
    const stream = concat(SAMPLES.map((m) => encodePeerFrame(m, GROUP)));
    const want = SAMPLES.map(plain);
    expect(decodeAll(stream, () => stream.length).map(plain)).toEqual(want);
    expect(decodeAll(stream, () => 1).map(plain)).toEqual(want);
    let seed = 1;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 200;
    expect(decodeAll(stream, rnd).map(plain)).toEqual(want);
  });

  it('the frame is an xseq header with the reserved slow-path type, sender and view', () => {
    const f = encodePeerFrame({ type: 'SYNC_REPLY', from: 2, view, syncPoint: 9 }, GROUP);
    const h = checkPeerHeader(f.subarray(0, XSEQ_HDR_LEN), GROUP);
    expect(h).toMatchObject({ type: MsgType.SYNC_REPLY, groupId: GROUP, replicaId: 2, view: 3, session: view.session, payloadLen: f.length - XSEQ_HDR_LEN });
  });

  it('a checkpoint and log of megabytes travel as one frame', () => {
    const big: PeerMsg = { type: 'START_VIEW', from: 0, view, state: state(20_000, 3 << 20) };
    const f = encodePeerFrame(big, GROUP);
    expect(f.length).toBeGreaterThan(3 << 20);
    const [got] = decodeAll(f, () => 65536);
    const s = (got as Extract<PeerMsg, { type: 'START_VIEW' }>).state;
    expect(s.entries.length).toBe(20_000);
    expect(s.entries[19_999]!.slot).toBe(20_100);
    expect(Buffer.from(s.checkpoint.app).equals(Buffer.from((big as { state: LogState }).state.checkpoint.app))).toBe(true);
  });

  it('headers from the wrong group, of fast-path types, too long or not xseq are refused', () => {
    const f = encodePeerFrame({ type: 'SYNC_COMMIT', from: 0, view, syncPoint: 1 }, GROUP);
    const hdr = () => Buffer.from(f.subarray(0, XSEQ_HDR_LEN));
    expect(() => checkPeerHeader(hdr(), GROUP + 1)).toThrow(CodecError);
    const magic = hdr();
    magic[0] = 0;
    expect(() => checkPeerHeader(magic, GROUP)).toThrow(/magic/);
    const version = hdr();
    version[4] = 9;
    expect(() => checkPeerHeader(version, GROUP)).toThrow(/version/);
    for (const t of [MsgType.SEQUENCED, MsgType.ACK, MsgType.REPAIR_REPLY, MsgType.ERROR, 0, 200]) {
      const h = hdr();
      h[5] = t;
      expect(() => checkPeerHeader(h, GROUP)).toThrow(/not a replica slow-path message/);
    }
    const long = hdr();
    long.writeUInt32BE(MAX_PEER_PAYLOAD + 1, 56);
    expect(() => checkPeerHeader(long, GROUP)).toThrow(/over/);
  });

  it('payloads that are short, long, lie about counts or break the log contract are refused', () => {
    const decodeFrame = (f: Uint8Array) => decodePeerPayload(checkPeerHeader(f.subarray(0, XSEQ_HDR_LEN), GROUP), f.subarray(XSEQ_HDR_LEN));
    const sp = encodePeerFrame({ type: 'SYNC_PREPARE', from: 0, view, syncPoint: 5, committed: 4, entries: [entry(1)] }, GROUP);
    expect(() => decodeFrame(sp.subarray(0, sp.length - 1))).toThrow(CodecError);
    expect(() => decodeFrame(concat([sp, new Uint8Array([0])]))).toThrow(/left over/);
    // An entry count of 2^32-1 with a few bytes behind it must fail before allocating.
    const lying = Buffer.from(sp);
    lying.writeUInt32BE(0xffffffff, XSEQ_HDR_LEN + 16);
    expect(() => decodeFrame(lying)).toThrow(/cannot fit/);
    const gap: LogState = { ...state(2), entries: [entry(101), entry(103)] };
    expect(() => decodeFrame(encodePeerFrame({ type: 'START_VIEW', from: 0, view, state: gap }, GROUP))).toThrow(/slot 103, want 102/);
    const flag = Buffer.from(encodePeerFrame({ type: 'GAP_RECV', from: 0, view, entry: entry(3) }, GROUP));
    flag[XSEQ_HDR_LEN + 20] = 8; // bit 0 no-op, bit 1 a Hydra stream position, bit 2 a control op; 8 is nothing
    expect(() => decodeFrame(flag)).toThrow(/flag byte 8/);
  });

  it('slots, seqs and nonces past 2^53 cannot be written or read', () => {
    expect(() => encodePeerFrame({ type: 'GAP_FIND', from: 0, view, slot: 2 ** 53 }, GROUP)).toThrow(CodecError);
    const f = Buffer.from(encodePeerFrame({ type: 'GAP_FIND', from: 0, view, slot: 1 }, GROUP));
    f.writeUInt32BE(0x20_0000, XSEQ_HDR_LEN);
    expect(() => decodePeerPayload(checkPeerHeader(f.subarray(0, XSEQ_HDR_LEN), GROUP), f.subarray(XSEQ_HDR_LEN))).toThrow(/past 2\^53/);
  });
});
