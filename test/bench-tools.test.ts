// The benchmark's instruments: if the counter, the load generator or a
// baseline sequencer were wrong, P2's numbers would be wrong with them.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { addLinkLoss } from '../netns/loss.ts';
import { Topology } from '../netns/topology.ts';
import { cMmsgSequencer, GROUP, nodeDgramSequencer, type BaselineStopped } from '../bench/sequencers.ts';
import { buildBenchTools, Counters, runLoadgen } from '../bench/tools.ts';
import { describePrivileged } from './helpers/privileged.ts';

/** A node script that sends raw xseq datagrams: each spec is
 * [type, groupId, seq, magic] to `dst`:`port` (multicast when dst is). */
function sender(srcIp: string, dst: string, port: number, packets: Array<[number, number, number, number]>): string {
  return `
const s = require('dgram').createSocket('udp4');
const pkts = ${JSON.stringify(packets)};
s.bind(0, '${srcIp}', async () => {
  s.setMulticastInterface('${srcIp}');
  for (const [type, group, seq, magic] of pkts) {
    const b = Buffer.alloc(64);
    b.writeUInt32BE(magic, 0); b[4] = 1; b[5] = type;
    b.writeUInt32BE(group, 8); b.writeBigUInt64BE(BigInt(seq), 24);
    await new Promise((r) => s.send(b, ${port}, '${dst}', r));
  }
  s.close();
});`;
}

const MAGIC = 0x58534551;
const REQUEST = 1;
const SEQUENCED = 2;

describePrivileged('bench tools', () => {
  let topo: Topology;
  let counters: Counters;

  beforeAll(async () => {
    buildBenchTools();
    topo = await Topology.create({ receivers: 2 });
    counters = Counters.attach(topo, topo.receivers, { mode: 'native', port: GROUP.port, groupId: GROUP.id });
  });

  afterAll(async () => {
    await topo?.destroy();
  });

  async function settled(): Promise<ReturnType<Counters['read']>> {
    let prev = counters.read();
    for (;;) {
      await sleep(100);
      const cur = counters.read(100);
      if (cur.every((c, i) => c.packets === prev[i]!.packets)) return cur;
      prev = cur;
    }
  }

  it('c-mmsg sequences densely to every receiver and drops what the XDP program drops', async () => {
    counters.reset();
    let stopped: BaselineStopped | undefined;
    const seq = await cMmsgSequencer({ onStopped: (s) => (stopped = s) })(topo, 'generic');
    const lg = runLoadgen(topo, 'cli', { count: 2000, rate: 20_000 });
    expect(lg.sent).toBe(2000);
    expect(lg.sendErrors).toBe(0);
    const stats = await settled();
    for (const s of stats) {
      expect(s).toMatchObject({ packets: 2000, distinct: 2000, duplicates: 0, minSeq: 1, maxSeq: 2000, missing: [] });
    }
    topo.exec('cli', process.execPath, [
      '-e',
      sender(topo.ip('cli'), topo.ip('seq'), 7400, [
        [REQUEST, GROUP.id, 0, 0x12345678], // bad magic
        [REQUEST, 99, 0, MAGIC], // unknown group
        [SEQUENCED, GROUP.id, 0, MAGIC], // a type the sequencer does not accept
      ]),
    ]);
    await sleep(200);
    await seq.stop();
    expect(stopped).toMatchObject({
      sequenced: 2000,
      lastSeq: 2000,
      drop_bad_magic: 1,
      drop_unknown_group: 1,
      drop_unexpected_type: 1,
    });
  });

  it('node-dgram sequences densely too', async () => {
    counters.reset();
    let stopped: BaselineStopped | undefined;
    const seq = await nodeDgramSequencer({ onStopped: (s) => (stopped = s) })(topo, 'generic');
    const lg = runLoadgen(topo, 'cli', { count: 1000, rate: 5000 });
    expect(lg.sent).toBe(1000);
    const stats = await settled();
    for (const s of stats) expect(s).toMatchObject({ distinct: 1000, duplicates: 0, minSeq: 1, maxSeq: 1000 });
    await seq.stop();
    expect(stopped).toMatchObject({ sequenced: 1000, rx: 1000 });
  });

  it('the counter reports duplicates, seq 0 and missing seqs', async () => {
    counters.reset();
    topo.exec('seq', process.execPath, [
      '-e',
      sender(topo.ip('seq'), GROUP.addr, GROUP.port, [
        [SEQUENCED, GROUP.id, 1, MAGIC],
        [SEQUENCED, GROUP.id, 2, MAGIC],
        [SEQUENCED, GROUP.id, 2, MAGIC],
        [SEQUENCED, GROUP.id, 5, MAGIC],
        [SEQUENCED, GROUP.id, 0, MAGIC],
        [SEQUENCED, 7, 3, MAGIC], // another group: passed, not counted
        [REQUEST, GROUP.id, 3, MAGIC], // not SEQUENCED: passed
      ]),
    ]);
    const stats = await settled();
    for (const s of stats) {
      expect(s).toMatchObject({ packets: 5, distinct: 3, duplicates: 1, zeroSeq: 1, minSeq: 1, maxSeq: 5, missing: [3, 4] });
      expect(s.passed).toBeGreaterThanOrEqual(2);
    }
  });

  it('loss on one receiver link shows as missing seqs there only', async () => {
    counters.reset();
    const seq = await cMmsgSequencer()(topo, 'generic');
    const loss = addLinkLoss(topo, 'r2', 20, { udpDport: GROUP.port });
    try {
      const lg = runLoadgen(topo, 'cli', { count: 4000, rate: 20_000 });
      const [r1, r2] = await settled();
      expect(r1!.distinct).toBe(lg.sent);
      // 20 % of 4000: 800 expected, sd 25; the bounds are 8 sd wide.
      expect(lg.sent - r2!.distinct).toBeGreaterThan(600);
      expect(lg.sent - r2!.distinct).toBeLessThan(1000);
      expect(loss.dropped()).toBe(lg.sent - r2!.distinct);
      expect(r2!.missing!.length).toBeGreaterThan(0);
    } finally {
      loss.remove();
      await seq.stop();
    }
  });
});
