// The metrics endpoint over a real attached sequencer, for the namespace
// tests until `xseq-agent run` serves it itself: loads the sequencer, sets
// one group, attaches, serves createMetricsRegistry() on --listen, prints
// {"event":"ready","address":...} and detaches on SIGTERM/SIGINT.
import { parseArgs } from 'node:util';
import { createMetricsRegistry, startMetricsServer, windowOccupancy } from '../../agent/metrics.ts';
import { SlotWindow } from '../../agent/window.ts';
import type { Member } from '../../bpf/maps.ts';
import { type AttachMode, Sequencer } from '../../bpf/sequencer.ts';

const { values: v } = parseArgs({
  options: {
    iface: { type: 'string' },
    mode: { type: 'string', default: 'generic' },
    listen: { type: 'string', default: '127.0.0.1:9464' },
    group: { type: 'string', default: '1' },
    mcast: { type: 'string', default: '239.7.7.1:7500' },
    session: { type: 'string', default: '1' },
    'sequencer-id': { type: 'string', default: '1' },
    /** Member addresses ADDR:PORT, comma-separated (none: no aggregation). */
    members: { type: 'string', default: '' },
    window: { type: 'string', default: '1024' },
  },
});
if (!v.iface) {
  console.error('usage: metrics-harness.ts --iface IF [--mode native|generic] [--listen IP:PORT] [--members A:P,A:P,...]');
  process.exit(2);
}

const groupId = Number(v.group);
const [mcastAddr, mcastPort] = v.mcast!.split(':');
const members: Member[] = v.members ? v.members.split(',').map((m) => ({ addr: m.split(':')[0]!, port: Number(m.split(':')[1]) })) : [];
const seq = Sequencer.load({ windowSlots: Number(v.window), windows: 1 });
seq.setGroup(groupId, { mcastAddr: mcastAddr!, mcastPort: Number(mcastPort), sequencerId: Number(v['sequencer-id']), session: Number(v.session), enabled: true, members });
const window = members.length ? new SlotWindow(seq.slots, seq.windowSlots) : undefined;
const link = seq.attach(v.iface, v.mode as AttachMode);

const registry = createMetricsRegistry({
  sequencerId: Number(v['sequencer-id']),
  groups: () => {
    const g = seq.group(groupId);
    if (!g) return [];
    const lastSeq = seq.lastSeq(groupId);
    return [{ id: groupId, session: g.session, lastSeq, ...(window ? { windowOccupancy: windowOccupancy(window, g, lastSeq) } : {}) }];
  },
  kernelCounters: () => seq.counters(),
  quorumHistogram: () => ({ buckets: seq.quorumHistogram(), sumNs: seq.quorumNanosSum() }),
});
const server = await startMetricsServer(v.listen!, registry, () => ({ ok: true, detail: { lastSeq: seq.lastSeq(groupId) } }));
console.log(JSON.stringify({ event: 'ready', address: server.address, pid: process.pid }));

await new Promise<void>((resolve) => {
  process.once('SIGTERM', resolve);
  process.once('SIGINT', resolve);
});
await server.close();
link.close();
seq.close();
console.log(JSON.stringify({ event: 'stopped' }));
