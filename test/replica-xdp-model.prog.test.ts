// The replica-side program against what the replica expects of it: seeded
// random SEQUENCED traffic (older, current and newer sessions, delivered
// duplicates, retransmissions near and far below delivered, skips ahead,
// other message types, malformed headers, untracked streams) while the
// replica's delivered seq and session move, checked after every step
// against user space's own decoder and the drop rules of xseq.h
// (test/helpers/replica-xdp-model.ts): the action, the frame, the stream's
// state, every gap event, and every counter at the end.
//
//   XSEQ_RXDIFF_SEED=12 npx vitest run test/replica-xdp-model.prog.test.ts    one seed, its steps printed
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { GapEvent } from '../bpf/replica-maps.ts';
import { ReplicaXdp } from '../replica/xdp/replica-xdp.ts';
import { describePrivileged } from './helpers/privileged.ts';
import { RxDisagreement, RX_PORT, runRxSeed } from './helpers/replica-xdp-model.ts';

function envInt(k: string, d: number): number {
  const v = process.env[k];
  if (v === undefined || v === '') return d;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${k}=${v} is not a non-negative integer`);
  return n;
}
const single = process.env.XSEQ_RXDIFF_SEED ? envInt('XSEQ_RXDIFF_SEED', 0) : null;
const SEEDS = single === null ? envInt('XSEQ_RXDIFF_SEEDS', 1000) : 1;
const FIRST = single ?? 1;
const STEPS = envInt('XSEQ_RXDIFF_STEPS', 60);

describePrivileged(`replica.bpf.o against the replica: ${SEEDS} seeds x ${STEPS} steps`, () => {
  let x: ReplicaXdp;
  const gaps: GapEvent[] = [];
  const verdicts: Record<string, number> = {};

  beforeAll(() => {
    x = ReplicaXdp.load({ port: RX_PORT });
    x.onGap((e) => gaps.push(e), { watch: false });
  });
  afterAll(() => {
    x?.close();
    console.log(`[replica-xdp-model] verdicts ${JSON.stringify(verdicts)}`);
  });

  it('same action, frame, stream state and gap events after every step; same counters after every sequence', { timeout: 180_000 }, () => {
    const failures: string[] = [];
    for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
      const trace: string[] | undefined = single !== null ? [] : undefined;
      try {
        for (const [k, v] of Object.entries(runRxSeed(seed, x, gaps, STEPS, trace))) verdicts[k] = (verdicts[k] ?? 0) + v;
      } catch (e) {
        if (!(e instanceof RxDisagreement)) throw e;
        if (trace) console.log(trace.join('\n'));
        failures.push(`${e.message}\n  replay: XSEQ_RXDIFF_SEED=${seed} npx vitest run test/replica-xdp-model.prog.test.ts`);
        if (failures.length >= 5) break;
      }
    }
    expect(failures, failures.join('\n')).toEqual([]);
  });

  if (SEEDS >= 500) {
    it('the seeds reach every verdict', () => {
      for (const v of ['track', 'pass_malformed', 'pass_other_type', 'pass_untracked', 'pass_newer_session', 'drop_stale_session', 'drop_duplicate', 'drop_retransmit_old', 'pass_retransmit', 'deliver', 'new-session']) {
        expect(verdicts[v] ?? 0, v).toBeGreaterThan(50);
      }
    });
  }
});
