// P1: the sequencer's cost per packet under BPF_PROG_TEST_RUN, against a bare
// MAC-swap XDP_TX program, measured side by side in interleaved rounds so
// every path sees the same machine noise. bench/xdp/seq_bench.bpf.c wraps
// the production stages (bpf/sequencer.h, bpf/aggregator.h); see its header
// for what each program restores between repetitions and why.
import { join } from 'node:path';
import { BpfObjectSpec, type BpfProgram } from '../bpf/libbpf/index.ts';
import { clientKeyOf, groupKey, seal } from '../bpf/mac.ts';
import { type GroupConfig, SLOT, u32Key } from '../bpf/maps.ts';
import { Sequencer } from '../bpf/sequencer.ts';
import { emptyHeader, encodeMessage, Flags, MsgType } from '../bpf/wire.ts';
import { buildFrame } from '../tools/frame.ts';
import { atMost, type BenchRow, type Goal } from './row.ts';

const XDP_DROP = 1;
const XDP_TX = 3;
const BUILD = join(import.meta.dirname, 'build');
const BENCH_FRAME_CAP = 256;
const BENCH_REQ_CAP = 1200;

export interface P1Options {
  repeat?: number;
  rounds?: number;
  log?: (s: string) => void;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const MEMBERS = [
  { addr: '10.77.0.11', port: 7600 },
  { addr: '10.77.0.12', port: 7601 },
  { addr: '10.77.0.13', port: 7602 },
];

function request(groupId: number, payload = 64): Buffer {
  return buildFrame({ payload: encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId, clientId: 1n, requestId: 1n }, Buffer.alloc(payload, 0x61)) });
}

/** The MAC rows' key (any 16 bytes: the cost does not depend on them). */
const KEY = groupKey(Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex'));

/** A keyed group's REQUEST as its client sends it: sealed with the client key. */
function sealedRequest(groupId: number, payload = 64): Buffer {
  const msg = encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId, clientId: 1n, requestId: 1n }, Buffer.alloc(payload, 0x61));
  return buildFrame({ payload: seal(msg, clientKeyOf(KEY)), udpChecksum: false });
}

/** A follower's ACK of seq 1 with `pad` bytes of payload (as the KV replicas pad them), sealed when `keyed`. */
function paddedAck(groupId: number, rid: number, pad: number, keyed: boolean): Buffer {
  const m = MEMBERS[rid]!;
  const msg = encodeMessage({ ...emptyHeader(), type: MsgType.ACK, groupId, replicaId: rid, session: 1, seq: 1n }, Buffer.alloc(pad));
  return buildFrame({ srcIp: m.addr, srcPort: m.port, payload: keyed ? seal(msg, KEY) : msg, udpChecksum: false });
}

/** Replica 0's FLUSH_SOLICIT to group 1. */
function solicit(): Buffer {
  const m = MEMBERS[0]!;
  return buildFrame({ srcIp: m.addr, srcPort: m.port, payload: encodeMessage({ ...emptyHeader(), type: MsgType.FLUSH_SOLICIT, groupId: 1, replicaId: 0, session: 1 }) });
}

function ack(rid: number, result?: Buffer): Buffer {
  const m = MEMBERS[rid]!;
  const msg = encodeMessage({ ...emptyHeader(), type: MsgType.ACK, flags: result ? Flags.RESULT : 0, groupId: 1, replicaId: rid, session: 1, seq: 1n }, result ?? Buffer.alloc(0));
  return buildFrame({ srcIp: m.addr, srcPort: m.port, payload: msg });
}

/**
 * The MAC rows: each keyed path against the same path without a key,
 * measured in the same rounds; the name says what the MAC adds.
 */
function macRows(m: Record<string, number>, tail: string): BenchRow[] {
  const r = (id: string, what: string, keyed: number, plain: number, plainName: string): BenchRow => ({
    id, name: `${what}: the MAC adds ${keyed - plain} ns, ${tail}`, unit: 'ns/packet', xseq: keyed, baseline: plain, baselineName: plainName, ratio: Number((keyed / plain).toFixed(2)), goal: null,
  });
  return [
    r('P1m', `keyed REQUEST -> SEQUENCED, 64 B (client-key MAC checked, group-key MAC stamped: two SipHash-2-4 passes; ${m['restoreMac64']} ns of per-run restore of the sealed frame subtracted)`, m['mac64']! - m['restoreMac64']!, m['full']!, 'the same path without a key (P1, client-id binding included)'),
    r('P1mk', `keyed REQUEST -> SEQUENCED, 1 KB (${m['restoreMac1k']} ns of restore subtracted)`, m['mac1k']! - m['restoreMac1k']!, m['full1k']!, 'the same path without a key, 1 KB'),
    r('P1v', "keyed ACK verification, follower's ACK with 64 B payload (duplicate, absorbed)", m['ackMac64']!, m['ack64']!, 'the same ACK without a key'),
    r('P1vk', "keyed ACK verification, follower's ACK with 1 KB payload (duplicate, absorbed)", m['ackMac1k']!, m['ack1k']!, 'the same ACK without a key, 1 KB'),
  ];
}

export function runP1(opts: P1Options = {}): BenchRow[] {
  const repeat = opts.repeat ?? 1_000_000;
  const rounds = opts.rounds ?? 7;
  const log = opts.log ?? (() => {});
  // Overwrite: a million requests without ACKs must keep the slot-copy
  // path running instead of stopping at backpressure.
  // No solicit gap: a million solicits in a row measure the FLUSH path, not
  // the gap's refusal (the gap check itself still runs).
  const seq = Sequencer.load({ objectPath: join(BUILD, 'seq_bench.bpf.o'), windowSlots: 1024, windows: 3, policy: 'overwrite', solicitGapNs: 0 });
  const macObj = BpfObjectSpec.open(join(BUILD, 'macswap.bpf.o')).load();
  try {
    const base: GroupConfig = { mcastAddr: '239.7.7.1', mcastPort: 7500, sequencerId: 1, session: 1, enabled: true };
    seq.setGroup(1, { ...base, members: MEMBERS }, 0); // the ACK paths' group
    seq.setGroup(2, base); // plain sequencing, no window
    seq.setGroup(3, { ...base, members: MEMBERS }, 1); // sequencing with the slot copy
    // The MAC rows: group 4 plain and keyed; group 5 aggregating and keyed
    // (its seq 1 is the keyed ACKs' slot).
    seq.setGroup(4, base);
    seq.setKey(4, KEY);
    seq.setGroup(5, { ...base, members: MEMBERS }, 2);
    seq.setKey(5, KEY);
    if (seq.program.testRun({ data: sealedRequest(5) }).retval !== XDP_TX) throw new Error('P1: could not stamp the keyed ACK fixture');
    const reqs = seq.extraMap('bench_reqs', { keySize: 4, valueSize: 4 + BENCH_REQ_CAP });
    [sealedRequest(4), sealedRequest(4, 1024)].forEach((frame, key) => {
      const fixture = new Uint8Array(4 + BENCH_REQ_CAP);
      new DataView(fixture.buffer).setUint32(0, frame.length, true);
      fixture.set(frame, 4);
      reqs.update(u32Key(key), fixture);
    });

    // Group 1 seq 1 sits in slot 1 with the leader's result stored: a
    // follower's ACK then completes the quorum.
    if (seq.program.testRun({ data: request(1) }).retval !== XDP_TX) throw new Error('P1: could not stamp the ACK fixture');
    if (seq.extraProgram('xseq_ack_drop').testRun({ data: ack(0, Buffer.alloc(32, 0x72)) }).retval !== XDP_DROP) throw new Error('P1: leader ACK fixture not absorbed');
    const quorumAck = ack(1);
    const solicitFrame = solicit();
    const frames = seq.extraMap('bench_frames', { keySize: 4, valueSize: 4 + BENCH_FRAME_CAP });
    [quorumAck, solicitFrame].forEach((frame, key) => {
      const fixture = new Uint8Array(4 + BENCH_FRAME_CAP);
      new DataView(fixture.buffer).setUint32(0, frame.length, true);
      fixture.set(frame, 4);
      frames.update(u32Key(key), fixture);
    });

    // The same quorum ACK under a weight table (1/1/1: the same verdict):
    // the slot is switched between the count rule and the table before
    // each of the two paths, so both measure the same ACK side by side.
    seq.setGroup(1, { ...base, members: MEMBERS, weights: [1, 1, 1] }, 0);
    const table = seq.weightTable(1)!.version;
    const slotKey = u32Key(1);
    const stampedUnder = (version: number) => () => {
      const v = seq.slots.lookup(slotKey)!;
      new DataView(v.buffer, v.byteOffset, v.byteLength).setUint32(SLOT.weightsVersion, version, true);
      seq.slots.update(slotKey, v);
    };

    const paths: { key: string; prog: BpfProgram; data: Buffer; want: number; before?: () => void }[] = [
      { key: 'macswap', prog: macObj.program('xdp_macswap'), data: request(2), want: XDP_TX },
      { key: 'full', prog: seq.program, data: request(2), want: XDP_TX },
      { key: 'stampOnly', prog: seq.extraProgram('xseq_stamp_only'), data: request(2), want: XDP_TX },
      { key: 'window', prog: seq.program, data: request(3), want: XDP_TX },
      // ackDrop right after ackQuorum: it needs the slot as ackQuorum
      // leaves it (replied), which restoreAck undoes.
      { key: 'ackQuorum', prog: seq.extraProgram('xseq_ack_quorum'), data: quorumAck, want: XDP_TX, before: stampedUnder(0) },
      { key: 'ackQuorumWeighted', prog: seq.extraProgram('xseq_ack_quorum'), data: quorumAck, want: XDP_TX, before: stampedUnder(table) },
      { key: 'ackDrop', prog: seq.extraProgram('xseq_ack_drop'), data: ack(2), want: XDP_DROP },
      { key: 'ack64', prog: seq.extraProgram('xseq_ack_drop'), data: paddedAck(1, 2, 64, false), want: XDP_DROP },
      { key: 'ackMac64', prog: seq.extraProgram('xseq_ack_drop'), data: paddedAck(5, 2, 64, true), want: XDP_DROP },
      { key: 'ack1k', prog: seq.extraProgram('xseq_ack_drop'), data: paddedAck(1, 2, 1024, false), want: XDP_DROP },
      { key: 'ackMac1k', prog: seq.extraProgram('xseq_ack_drop'), data: paddedAck(5, 2, 1024, true), want: XDP_DROP },
      { key: 'restoreAck', prog: seq.extraProgram('xseq_restore_ack'), data: quorumAck, want: XDP_TX },
      // The MAC's cost, each beside the same path without a key: stamping a
      // 64 B and a 1 KB request (below), and a follower's duplicate ACK
      // with 64 B and 1 KB of padding (verified, then absorbed; here, while
      // group 1's slot is replied, before restoreAck resets it).
      { key: 'full1k', prog: seq.program, data: request(2, 1024), want: XDP_TX },
      { key: 'mac64', prog: seq.extraProgram('xseq_sequencer_mac'), data: sealedRequest(4), want: XDP_TX },
      { key: 'restoreMac64', prog: seq.extraProgram('xseq_restore_mac'), data: sealedRequest(4), want: XDP_TX },
      { key: 'mac1k', prog: seq.extraProgram('xseq_sequencer_mac'), data: sealedRequest(4, 1024), want: XDP_TX },
      { key: 'restoreMac1k', prog: seq.extraProgram('xseq_restore_mac'), data: sealedRequest(4, 1024), want: XDP_TX },
      { key: 'flush', prog: seq.extraProgram('xseq_flush'), data: solicitFrame, want: XDP_TX },
      { key: 'restoreFlush', prog: seq.extraProgram('xseq_restore_flush'), data: solicitFrame, want: XDP_TX },
    ];
    const ns: Record<string, number[]> = {};
    const repliesBefore = seq.counters().reply;
    const dupBefore = seq.counters().ack_duplicate;
    const flushesBefore = seq.counters().flush;
    for (let r = 0; r < rounds; r++) {
      for (const p of paths) {
        p.before?.();
        const res = p.prog.testRun({ data: p.data, repeat });
        if (res.retval !== p.want) throw new Error(`P1: ${p.key} returned ${res.retval}, not ${p.want}: the bench is not measuring the path it names`);
        (ns[p.key] ??= []).push(res.durationNs);
      }
      log(`P1 round ${r + 1}/${rounds}: ${paths.map((p) => `${p.key} ${ns[p.key]!.at(-1)}`).join(', ')} ns`);
    }
    // Every repetition must have done the work it names, or the timing
    // measured some shorter path.
    const want = BigInt(2 * rounds * repeat);
    if (seq.lastSeq(2) !== BigInt(3 * rounds * repeat)) throw new Error(`P1: ${seq.lastSeq(2)} seqs stamped for group 2, expected ${3 * rounds * repeat}`);
    if (seq.lastSeq(4) !== want) throw new Error(`P1: ${seq.lastSeq(4)} seqs stamped for keyed group 4, expected ${want}`);
    // Keyed ACKs were verified and then absorbed as duplicates, never refused.
    if (seq.counters().drop_bad_mac !== 0n) throw new Error(`P1: ${seq.counters().drop_bad_mac} ACKs failed their MAC`);
    const dups = seq.counters().ack_duplicate - dupBefore;
    if (dups < BigInt(4 * rounds * (repeat - 1))) throw new Error(`P1: only ${dups} duplicate ACKs absorbed by the four padded-ACK paths`);
    if (seq.lastSeq(3) !== BigInt(rounds * repeat)) throw new Error(`P1: group 3 stamped ${seq.lastSeq(3)}`);
    const replies = seq.counters().reply - repliesBefore;
    if (replies !== BigInt(2 * rounds * repeat)) throw new Error(`P1: ${replies} REPLYs from the quorum path, expected ${2 * rounds * repeat}`);
    const flushes = seq.counters().flush - flushesBefore;
    if (flushes !== BigInt(rounds * repeat)) throw new Error(`P1: ${flushes} FLUSHes from the flush path, expected ${rounds * repeat}`);

    const m = Object.fromEntries(Object.entries(ns).map(([k, v]) => [k, median(v)])) as Record<string, number>;
    const mac = m['macswap']!;
    const row = (id: string, name: string, x: number, goal: Goal | null = null): BenchRow => ({
      id, name, unit: 'ns/packet', xseq: x, baseline: mac, baselineName: 'bare MAC-swap XDP_TX', ratio: Number((x / mac).toFixed(2)), goal,
    });
    const tail = `BPF_PROG_TEST_RUN x${repeat}, median of ${rounds}`;
    return [
      row('P1', `sequencer full path (parse, stamp, readdress, checksums), ${tail}`, m['full']!, atMost('ratio', 2.0)),
      row('P1s', `sequencer stamp-only path (parse, seq, stamp), ${tail}`, m['stampOnly']!),
      row('P1w', `sequencer full path with the window slot copy (aggregating group), ${tail}`, m['window']!),
      row('P1q', `quorum-completing ACK -> REPLY, including ${m['restoreAck']} ns of per-run frame restore, ${tail}`, m['ackQuorum']!),
      row('P1qw', `quorum-completing ACK -> REPLY under a 1/1/1 weight table (P1q counts), including ${m['restoreAck']} ns of per-run frame restore, ${tail}`, m['ackQuorumWeighted']!),
      row('P1a', `ACK drop path (duplicate ACK absorbed in the kernel), ${tail}`, m['ackDrop']!),
      row('P1f', `member's FLUSH_SOLICIT -> FLUSH (clock, atomic seq read, readdress), including ${m['restoreFlush']} ns of per-run frame restore, ${tail}`, m['flush']!),
      ...macRows(m, tail),
    ];
  } finally {
    macObj.close();
    seq.close();
  }
}
