// P5-peak-kernel: what the sequencer's NEXTVAL path costs per call under
// BPF_PROG_TEST_RUN (bench/xdp/nv_bench.bpf.c runs nextval.h's production
// code after restoring the request), against a bare MAC-swap XDP_TX, in
// interleaved rounds. 1e9 / ns is the dense values per second one CPU hands
// out: the sequencer's own capacity, without the veth/bridge path that
// bounds the end-to-end P5-peak row on this machine.
import { join } from 'node:path';
import { BpfObjectSpec } from '../bpf/libbpf/index.ts';
import { u32Key } from '../bpf/maps.ts';
import { encodeNextval, encodeNvRequestPayload } from '../bpf/nextval.ts';
import { XSEQ_HDR_LEN } from '../bpf/wire.ts';
import { Sequencer } from '../bpf/sequencer.ts';
import { SequenceTable } from '../bpf/sequences.ts';
import { buildFrame } from '../tools/frame.ts';
import { atLeast, type BenchRow } from './row.ts';

const XDP_TX = 3;
const BUILD = join(import.meta.dirname, 'build');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export function runP5k(o: { repeat: number; rounds: number; log: (s: string) => void }): BenchRow[] {
  const seq = Sequencer.load({ objectPath: join(BUILD, 'nv_bench.bpf.o') });
  const macObj = BpfObjectSpec.open(join(BUILD, 'macswap.bpf.o')).load();
  try {
    const t = new SequenceTable(seq.nvMaps);
    t.create(1, 'bench', { next: 1n, mark: 1n << 62n, increment: 1n, cache: 1 });
    seq.extraMap('nv_bench_req', { keySize: 4, valueSize: 40 }).update(u32Key(0), encodeNvRequestPayload({ name: 'bench', count: 1 }));
    const frame = buildFrame({ payload: encodeNextval({ name: 'bench', count: 1, clientId: 1n, requestId: 1n }) });
    if (frame.length < 42 + XSEQ_HDR_LEN + 40) throw new Error('P5k: frame too short');
    const paths = [
      { key: 'macswap', prog: macObj.program('xdp_macswap') },
      { key: 'nextval', prog: seq.program },
      { key: 'restore', prog: seq.extraProgram('xseq_nv_restore_only') },
    ];
    const ns: Record<string, number[]> = {};
    for (let r = 0; r < o.rounds; r++) {
      for (const p of paths) {
        const res = p.prog.testRun({ data: frame, repeat: o.repeat });
        if (res.retval !== XDP_TX) throw new Error(`P5k: ${p.key} returned ${res.retval}: not the path it names`);
        (ns[p.key] ??= []).push(res.durationNs);
      }
      o.log(`P5-peak-kernel round ${r + 1}/${o.rounds}: ${paths.map((p) => `${p.key} ${ns[p.key]!.at(-1)}`).join(', ')} ns`);
    }
    // Every repetition took exactly one value, or the timing measured a shorter path.
    const taken = t.read(1).next - 1n;
    if (taken !== BigInt(o.rounds * o.repeat)) throw new Error(`P5k: ${taken} values taken, expected ${o.rounds * o.repeat}`);
    const nv = median(ns['nextval']!);
    const mac = median(ns['macswap']!);
    return [
      {
        id: 'P5-peak-kernel',
        name: `dense values/s one CPU hands out: 1e9 / ns per NEXTVAL (parse, name lookup, one atomic add, reply; incl. ${median(ns['restore']!)} ns restore), BPF_PROG_TEST_RUN x${o.repeat}, median of ${o.rounds}`,
        unit: 'values/s',
        xseq: Math.round(1e9 / nv),
        baseline: Math.round(1e9 / mac),
        baselineName: 'bare MAC-swap XDP_TX (packets/s)',
        ratio: Number((mac / nv).toFixed(3)),
        goal: atLeast('xseq', 500_000),
      },
    ];
  } finally {
    macObj.close();
    seq.close();
  }
}
