// P1r: the replica-side XDP program's cost per packet under
// BPF_PROG_TEST_RUN (bpf/replica.bpf.c, loaded by replica/xdp/), against a
// program that passes everything, in interleaved rounds. Every repetition
// runs the same frame, so each path is a steady state: a duplicate dropped,
// a stale session dropped, a new seq passed (highest seen already at it:
// the CAS is not retried), and traffic to another port passed.
import { join } from 'node:path';
import { BpfObjectSpec } from '../bpf/libbpf/index.ts';
import { emptyHeader, encodeMessage, MsgType } from '../bpf/wire.ts';
import { ReplicaXdp } from '../replica/xdp/replica-xdp.ts';
import { buildFrame } from '../tools/frame.ts';
import type { BenchRow } from './row.ts';

const XDP_DROP = 1;
const XDP_PASS = 2;
const PORT = 7500;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function sequenced(session: number, seq: bigint, dstPort = PORT): Buffer {
  const msg = encodeMessage({ ...emptyHeader(), type: MsgType.SEQUENCED, groupId: 1, sequencerId: 1, session, seq, clientId: 1n, requestId: seq }, Buffer.alloc(64, 0x61));
  return buildFrame({ dstIp: '239.7.7.1', dstPort, payload: msg });
}

export function runP1r(opts: { repeat?: number; rounds?: number; log?: (s: string) => void } = {}): BenchRow[] {
  const repeat = opts.repeat ?? 1_000_000;
  const rounds = opts.rounds ?? 7;
  const log = opts.log ?? (() => {});
  const x = ReplicaXdp.load({ port: PORT });
  const passObj = BpfObjectSpec.open(join(import.meta.dirname, 'build', 'pass.bpf.o')).load();
  try {
    x.track({ groupId: 1, sequencerId: 1 }, { session: 5, delivered: 1000n, retransmitKeep: 1n << 20n });
    const paths = [
      { key: 'pass', prog: passObj.program('xseq_pass'), data: sequenced(5, 1001n), want: XDP_PASS },
      { key: 'duplicate', prog: x.program, data: sequenced(5, 10n), want: XDP_DROP },
      { key: 'stale', prog: x.program, data: sequenced(4, 10n), want: XDP_DROP },
      { key: 'fresh', prog: x.program, data: sequenced(5, 1001n), want: XDP_PASS },
      { key: 'otherPort', prog: x.program, data: sequenced(5, 1n, 9999), want: XDP_PASS },
    ];
    const ns: Record<string, number[]> = {};
    for (let r = 0; r < rounds; r++) {
      for (const p of paths) {
        const res = p.prog.testRun({ data: p.data, repeat });
        if (res.retval !== p.want) throw new Error(`P1r: ${p.key} returned ${res.retval}, not ${p.want}: the bench is not measuring the path it names`);
        (ns[p.key] ??= []).push(res.durationNs);
      }
      log(`P1r round ${r + 1}/${rounds}: ${paths.map((p) => `${p.key} ${ns[p.key]!.at(-1)}`).join(', ')} ns`);
    }
    const c = x.counters();
    const want = BigInt(rounds * repeat);
    if (c.drop_duplicate !== want || c.drop_stale_session !== want) throw new Error(`P1r: counters ${JSON.stringify({ dup: String(c.drop_duplicate), stale: String(c.drop_stale_session) })}, expected ${want} each`);
    const m = Object.fromEntries(Object.entries(ns).map(([k, v]) => [k, median(v)])) as Record<string, number>;
    const base = m['pass']!;
    const tail = `BPF_PROG_TEST_RUN x${repeat}, median of ${rounds}`;
    const row = (id: string, name: string, v: number): BenchRow => ({
      id, name, unit: 'ns/packet', xseq: v, baseline: base, baselineName: 'XDP_PASS-only program', ratio: Number((v / base).toFixed(2)), goal: null,
    });
    return [
      row('P1r', `replica XDP: duplicate of a delivered seq dropped, ${tail}`, m['duplicate']!),
      row('P1rs', `replica XDP: older session dropped, ${tail}`, m['stale']!),
      row('P1rp', `replica XDP: new seq tracked and passed, ${tail}`, m['fresh']!),
      row('P1ro', `replica XDP: UDP to another port passed, ${tail}`, m['otherPort']!),
    ];
  } finally {
    passObj.close();
    x.close();
  }
}
