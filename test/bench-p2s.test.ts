// P2s's instruments: the XDP live-frames generator and the counter on the
// client's veth. If the generator did not put every frame on the wire, or
// the counter missed or double-counted some, P2s's numbers would be wrong.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Rig } from '../bench/p2s.ts';
import { buildBenchTools } from '../bench/tools.ts';
import { describePrivileged } from './helpers/privileged.ts';

describePrivileged('bench P2s instruments', () => {
  const rigs: Rig[] = [];

  beforeAll(() => {
    buildBenchTools();
  });

  afterAll(async () => {
    for (const r of rigs) await r.destroy();
  });

  async function rig(kind: Parameters<typeof Rig.create>[0]): Promise<Rig> {
    const r = await Rig.create(kind);
    rigs.push(r);
    return r;
  }

  // Its pacing (the rate achieved vs asked) is bench row T-pace
  // (bench/timers.ts): a speed, not a property of the frames.
  it('the generator delivers exactly N frames with ids 1..N', async () => {
    // The sink counts REQUESTs by request id at the sequencer's veth.
    const sink = await rig('sink');
    const { gen, stats } = await sink.step(20_000, 4000);
    expect(gen.sent).toBe(4000);
    expect(gen.interrupted).toBe(false);
    expect(stats).toMatchObject({ packets: 4000, distinct: 4000, duplicates: 0, minSeq: 1, maxSeq: 4000 });
  });

  it('frames stay REQUESTs after their pages went through the sequencer (xseq native)', async () => {
    // More frames than the generator's page pool holds: recycled pages
    // come back rewritten into SEQUENCED frames by the sequencer, and the
    // generator must write the whole REQUEST again, or xseq drops them.
    const x = await rig('xseq-native');
    for (const n of [3000, 3000]) {
      const { gen, stats } = await x.step(30_000, n);
      expect(gen.sent).toBe(n);
      expect(stats.distinct).toBe(n);
      expect(stats.duplicates).toBe(0);
      expect(stats.maxSeq - stats.minSeq + 1).toBe(n);
    }
  });

  it('the UDP checksum of every generated frame is valid (the kernel stack drops bad ones)', async () => {
    // The C baseline receives through the kernel's UDP stack, which checks
    // the checksum the generator updates per request id.
    const c = await rig('c-mmsg');
    const { gen, stats } = await c.step(10_000, 2000);
    expect(gen.sent).toBe(2000);
    expect(stats).toMatchObject({ distinct: 2000, duplicates: 0 });
    expect(stats.maxSeq - stats.minSeq + 1).toBe(2000);
    expect(c.dropsSinceLast()).toEqual({});
  });

  it('c-mmsg-busy: GSO sends of many datagrams deliver every request stamped once, with dense seqs', async () => {
    // The sequencer is stopped while the frames arrive, so its socket
    // queue holds them and each recvmmsg batch is full: its sends are GSO
    // runs of many datagrams (no timing involved), which the stack cuts
    // after the UDP layer. Each must still be one stamped request, none
    // doubled, and none lost but where the kernel counts it.
    const c = await rig('c-mmsg-busy');
    c.signalBaseline('SIGSTOP');
    const { gen } = await c.step(10_000, 2000);
    expect(gen.sent).toBe(2000);
    c.signalBaseline('SIGCONT');
    const stats = await c.settled(2000);
    const drops = c.dropsSinceLast();
    const stopped = await c.stopBaseline();
    const context = JSON.stringify({ stats, drops, stopped });
    // A GSO run of 64 datagrams lands on the client's veth ring at once; when
    // the counter's NAPI thread is kept off its CPU the ring overflows. The
    // kernel counts each such drop (seen in CI at 336 of 2000), so every
    // stamped request is either counted once or dropped at that counted
    // place, and no other drop happened.
    const { 'sequencer->client ring': ring = 0, ...other } = drops;
    expect(stats, context).toMatchObject({ distinct: stats.packets, duplicates: 0, zeroSeq: 0 });
    expect(stats.packets + ring, context).toBe(2000);
    expect(stats.maxSeq, context).toBeLessThanOrEqual(2000);
    expect(other, context).toEqual({});
    expect(stopped).toMatchObject({ sequenced: 2000, send_errors: 0 });
    // Full batches of 64: far fewer sends than datagrams.
    expect(stopped['gso_sends']).toBeGreaterThan(0);
    expect(stopped['gso_sends']).toBeLessThanOrEqual(2000 / 8);
  });
});
