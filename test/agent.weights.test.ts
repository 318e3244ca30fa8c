// The agent's side of weight reassignment (agent/weight-switch.ts): which
// replica reports switch the kernel table, and which are refused.
import { describe, expect, it } from 'vitest';
import type { GroupConfig } from '../bpf/maps.ts';
import { MIN_SWITCH_MS, type WeightMap, WeightSwitch } from '../agent/weight-switch.ts';
import { silentLog } from '../agent/log.ts';

/** The sequencer's group and weights maps, as Sequencer.setGroup keeps them (one version per new table). */
function fakeMap(weights: number[]): WeightMap & { writes: number; version: number } {
  let g: GroupConfig = { mcastAddr: '239.1.1.1', mcastPort: 7500, sequencerId: 1, session: 3, enabled: true, members: weights.map((_, i) => ({ addr: `10.0.0.${i + 1}`, port: 7600 })), quorum: 3, weightsVersion: 1, windowBase: 1024 };
  let table = { version: 1, weights: [...weights] };
  const m = {
    windowSlots: 1024,
    writes: 0,
    get version() {
      return table.version;
    },
    group: () => g,
    setGroup(_id: number, next: GroupConfig, window?: number) {
      if (next.quorum !== undefined) throw new Error('quorum beside weights');
      expect(window).toBe(1);
      expect(next.session).toBe(3);
      m.writes++;
      if (next.weights!.join() !== table.weights.join()) table = { version: table.version + 1, weights: [...next.weights!] };
      g = { ...next, weightsVersion: table.version, windowBase: (window ?? 0) * 1024 };
    },
    weightTable: () => table,
  };
  return m;
}

const spec = { id: 1, n: 5, f: 1, weighted: true, weights: [2, 2, 2, 2, 2] };
const rep = (version: number, weights: number[], applied = version - 1, refused = 0, f = 1) => ({ version, weights, f, applied, refused });

describe('WeightSwitch', () => {
  it('switches once f + 1 members report the same committed table, and reports the ledger state', () => {
    const map = fakeMap([2, 2, 2, 2, 2]);
    const now = 10_000;
    const ws = new WeightSwitch(map, [spec], silentLog, () => now);
    expect(ws.report(1, 0, rep(2, [2, 2, 2, 2, 0]))).toBe('counted');
    expect(map.version).toBe(1);
    // The same member again is still one vote.
    expect(ws.report(1, 0, rep(2, [2, 2, 2, 2, 0]))).toBe('counted');
    expect(ws.report(1, 3, rep(2, [2, 2, 2, 2, 0]))).toBe('switched');
    expect(map.weightTable(1)).toEqual({ version: 2, weights: [2, 2, 2, 2, 0] });
    expect(ws.status(1)).toEqual({ ledgerVersion: 2, applied: 1, refused: 0, switches: 1 });
    // A later refusal moves only the counts.
    ws.report(1, 1, rep(2, [2, 2, 2, 2, 0], 1, 1));
    ws.report(1, 2, rep(2, [2, 2, 2, 2, 0], 1, 1));
    expect(ws.status(1)).toEqual({ ledgerVersion: 2, applied: 1, refused: 1, switches: 1 });
    expect(map.writes).toBe(1);
    // An old report changes nothing.
    expect(ws.report(1, 4, rep(1, [2, 2, 2, 2, 2]))).toBe('old');
  });

  it('refuses tables it must not certify by, and reports that do not match its configuration', () => {
    const map = fakeMap([2, 2, 2, 2, 2]);
    const ws = new WeightSwitch(map, [spec, { id: 2, n: 3, f: 1, weighted: false, weights: [1, 1, 1] }], silentLog);
    expect(ws.report(1, 0, rep(2, [2, 2, 2, 1, 0]))).toBe('unsafe'); // 0 and 1 would hold 4 of 7
    expect(ws.report(1, 0, rep(2, [4, 1, 1, 1, 1]))).toBe('unsafe'); // integrity for f = 1
    expect(ws.report(1, 0, rep(2, [2, 2, 2, 2]))).toBe('mismatch');
    expect(ws.report(1, 0, rep(2, [2, 2, 2, 2, 0], 1, 0, 2))).toBe('mismatch');
    // A replica started without the operator's weights: its ledger starts from 1/1/1/1/1.
    expect(ws.report(1, 0, rep(1, [1, 1, 1, 1, 1]))).toBe('mismatch');
    expect(ws.report(2, 0, rep(2, [1, 1, 1]))).toBe('count_quorum');
    expect(ws.report(7, 0, rep(2, [1, 1, 1]))).toBe('unknown_group');
    expect(map.writes).toBe(0);
    expect(ws.counters().refused).toEqual({ unknown_group: 1, count_quorum: 1, mismatch: 3, unsafe: 2, old: 0 });
  });

  it(`spaces switches ${MIN_SWITCH_MS} ms apart; the newest waiting table wins`, async () => {
    const map = fakeMap([2, 2, 2, 2, 2]);
    let now = 50_000;
    const ws = new WeightSwitch(map, [spec], silentLog, () => now);
    ws.report(1, 0, rep(2, [2, 2, 2, 2, 0]));
    ws.report(1, 1, rep(2, [2, 2, 2, 2, 0]));
    expect(map.version).toBe(2);
    now += 10;
    for (const r of [0, 1]) ws.report(1, r, rep(3, [2, 2, 2, 2, 1]));
    for (const r of [0, 1]) ws.report(1, r, rep(4, [1, 2, 2, 2, 1]));
    expect(map.version).toBe(2);
    now += MIN_SWITCH_MS;
    await new Promise((r) => setTimeout(r, MIN_SWITCH_MS + 50));
    expect(map.weightTable(1)).toEqual({ version: 3, weights: [1, 2, 2, 2, 1] });
    expect(ws.status(1)).toMatchObject({ ledgerVersion: 4, switches: 2 });
    ws.stop();
  });
});
