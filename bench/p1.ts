// P1: the sequencer's cost per packet under BPF_PROG_TEST_RUN, against a bare
// MAC-swap XDP_TX program, measured side by side in interleaved rounds so
// both see the same machine noise. bench/xdp/seq_bench.bpf.c wraps the
// production stages (bpf/sequencer.h); see its header for why.
import { join } from 'node:path';
import { BpfObjectSpec } from '../bpf/libbpf/index.ts';
import { Sequencer } from '../bpf/sequencer.ts';
import { emptyHeader, encodeMessage, MsgType } from '../bpf/wire.ts';
import { buildFrame } from '../tools/frame.ts';
import type { BenchRow } from './row.ts';

const XDP_TX = 3;
const BUILD = join(import.meta.dirname, 'build');

export interface P1Options {
  repeat?: number;
  rounds?: number;
  log?: (s: string) => void;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export function runP1(opts: P1Options = {}): BenchRow[] {
  const repeat = opts.repeat ?? 1_000_000;
  const rounds = opts.rounds ?? 7;
  const log = opts.log ?? (() => {});
  const seq = Sequencer.load({ objectPath: join(BUILD, 'seq_bench.bpf.o') });
  const macObj = BpfObjectSpec.open(join(BUILD, 'macswap.bpf.o')).load();
  try {
    seq.setGroup(1, { mcastAddr: '239.7.7.1', mcastPort: 7500, sequencerId: 1, session: 1, enabled: true });
    const frame = buildFrame({ payload: encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId: 1, clientId: 1n, requestId: 1n }, Buffer.alloc(64, 0x61)) });
    const progs = {
      full: seq.program,
      stampOnly: seq.extraProgram('xseq_stamp_only'),
      macswap: macObj.program('xdp_macswap'),
    };
    const ns: Record<keyof typeof progs, number[]> = { full: [], stampOnly: [], macswap: [] };
    for (let r = 0; r < rounds; r++) {
      for (const [name, prog] of Object.entries(progs) as [keyof typeof progs, typeof seq.program][]) {
        const res = prog.testRun({ data: frame, repeat });
        if (res.retval !== XDP_TX) throw new Error(`P1: ${name} returned ${res.retval}, not XDP_TX: the bench is not measuring the path it names`);
        ns[name].push(res.durationNs);
      }
      log(`P1 round ${r + 1}/${rounds}: full ${ns.full.at(-1)} ns, stamp-only ${ns.stampOnly.at(-1)} ns, macswap ${ns.macswap.at(-1)} ns`);
    }
    // Every repetition must have taken a sequence number, or the timing
    // measured some shorter path.
    const stamped = seq.lastSeq(1);
    const want = BigInt(2 * rounds * repeat);
    if (stamped !== want) throw new Error(`P1: ${stamped} seqs stamped, expected ${want}`);
    const mac = median(ns.macswap);
    const row = (id: string, name: string, x: number): BenchRow => ({
      id,
      name,
      unit: 'ns/packet',
      xseq: x,
      baseline: mac,
      baselineName: 'bare MAC-swap XDP_TX',
      ratio: Number((x / mac).toFixed(2)),
      goal: id === 'P1' ? 'ratio <= 2.0' : 'report',
    });
    return [
      row('P1', `sequencer full path (parse, stamp, readdress, checksums), BPF_PROG_TEST_RUN x${repeat}, median of ${rounds}`, median(ns.full)),
      row('P1s', `sequencer stamp-only path (parse, seq, stamp), BPF_PROG_TEST_RUN x${repeat}, median of ${rounds}`, median(ns.stampOnly)),
    ];
  } finally {
    macObj.close();
    seq.close();
  }
}
