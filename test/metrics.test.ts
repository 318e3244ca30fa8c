// agent/metrics.ts: what Prometheus sees. Over a real sequencer driven by
// BPF_PROG_TEST_RUN (with a real retransmitter and repair service on
// loopback): promtool finds nothing wrong with the exposition, counters
// move by exactly what the kernel counted and continue across a restarted
// agent and a re-created data path, the quorum histogram is cumulative with
// the kernel's sum and count. The HTTP endpoint: /metrics, /healthz codes,
// a clear error for an address in use.
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Registry } from 'prom-client';
import { createMetricsRegistry, type MetricsSource, MetricsServerError, QUORUM_BUCKET_BOUNDS, startMetricsServer, windowOccupancy } from '../agent/metrics.ts';
import { metricsSource } from '../agent/metrics-source.ts';
import { RepairService } from '../agent/repair.ts';
import { Retransmitter } from '../agent/retransmit.ts';
import { SlotWindow } from '../agent/window.ts';
import { type GroupConfig, XSEQ_HIST_BUCKETS, zeroCounters } from '../bpf/maps.ts';
import { Sequencer } from '../bpf/sequencer.ts';
import { encodeRepairRequest } from '../bpf/repair.ts';
import { parseExposition, samples, type Sample, value } from './helpers/exposition.ts';
import { taiNowNs } from './helpers/clock.ts';
import { describePrivileged } from './helpers/privileged.ts';
import { ack, GROUP_ID, ReplicaSockets, resetGroup, SESSION, stamp, waitFor } from './helpers/window-fixture.ts';

const SEQ_ID = 3;
const PLAIN_GROUP = 2;
const W = 16;

async function scrape(reg: Registry): Promise<{ text: string; samples: Sample[] }> {
  const text = await reg.metrics();
  return { text, samples: parseExposition(text) };
}

/** promtool's findings on an exposition: '' when it is clean. */
function promtool(text: string): { status: number | null; findings: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw r.error;
  return { status: r.status, findings: `${r.stdout}${r.stderr}`.trim() };
}

describe('promtool, the judge of the exposition', () => {
  it("flags what prom-client's stock process metrics would have given it", () => {
    // Proves the check below can fail: a gauge named *_total is a finding.
    const r = promtool('# HELP nodejs_active_handles_total Total number of active handles.\n# TYPE nodejs_active_handles_total gauge\nnodejs_active_handles_total 3\n');
    expect(r.status).not.toBe(0);
    expect(r.findings).toMatch(/nodejs_active_handles_total.*_total/);
  });
});

describePrivileged('metrics of a real sequencer (BPF_PROG_TEST_RUN)', () => {
  let seq: Sequencer;
  let replicas: ReplicaSockets;
  let group: GroupConfig;
  let window: SlotWindow;
  let retransmitter: Retransmitter;
  let rtSocket: ReturnType<typeof createSocket>;
  let repair: RepairService;
  /** What the source reads: swapped to a new Sequencer to re-create the data path. */
  let current: Sequencer;
  let nowOffsetNs = 0n;

  const source = (): MetricsSource => ({
    sequencerId: SEQ_ID,
    groups: () =>
      [GROUP_ID, PLAIN_GROUP].flatMap((id) => {
        const g = current.group(id);
        if (!g) return [];
        const lastSeq = current.lastSeq(id);
        return [{ id, session: g.session, lastSeq, ...(g.members?.length && current === seq ? { windowOccupancy: windowOccupancy(window, g, lastSeq) } : {}) }];
      }),
    kernelCounters: () => current.counters(),
    quorumHistogram: () => ({ buckets: current.quorumHistogram(), sumNs: current.quorumNanosSum() }),
    retransmitCounters: () => ({ ...retransmitter.counters() }),
    repairCounters: () => ({ ...repair.counters() }),
  });

  beforeAll(async () => {
    seq = current = Sequencer.load({ port: 7400, windowSlots: W, windows: 1 });
    replicas = await ReplicaSockets.bind(3);
    group = {
      mcastAddr: '239.7.7.1',
      mcastPort: replicas.port,
      sequencerId: SEQ_ID,
      session: SESSION,
      enabled: true,
      members: [0, 1, 2].map((rid) => ({ addr: ReplicaSockets.addr(rid), port: 7600 + rid })),
    };
    resetGroup(seq, GROUP_ID, group);
    seq.setGroup(PLAIN_GROUP, { mcastAddr: '239.7.7.2', mcastPort: 7501, sequencerId: SEQ_ID, session: 5, enabled: true });
    window = new SlotWindow(seq.slots, seq.windowSlots);
    rtSocket = createSocket('udp4');
    await new Promise<void>((r) => rtSocket.bind(0, '127.0.0.1', r));
    retransmitter = new Retransmitter(seq, window, rtSocket, { groups: [GROUP_ID], rtoMs: 20, retries: 3, now: () => taiNowNs() + nowOffsetNs });
    repair = await RepairService.start(seq, window, { port: 0, address: '127.0.0.1' });
  });
  afterAll(async () => {
    await repair?.close();
    rtSocket?.close();
    replicas?.close();
    if (current !== seq) current?.close();
    seq?.close();
  });

  it('promtool reports nothing on the exposition, every family present', async () => {
    // Traffic that touches every kind of metric: stamps, a quorum and
    // reply, a drop, a retransmission, a repair refusal.
    const n = stamp(seq, 1n);
    ack(seq, group, n, [0, 1]);
    stamp(seq, 2n, PLAIN_GROUP);
    stamp(seq, 3n);
    nowOffsetNs = 1_000_000_000n;
    retransmitter.tick();
    nowOffsetNs = 0n;
    const stranger = createSocket('udp4');
    await new Promise<void>((r) => stranger.send(encodeRepairRequest({ groupId: GROUP_ID, session: SESSION, replicaId: 0, first: 1n, count: 1 }), repair.port, '127.0.0.1', () => r()));
    await waitFor(() => repair.counters().refused.NOT_MEMBER === 1, 'the repair refusal');
    stranger.close();

    const { text, samples: all } = await scrape(createMetricsRegistry(source()));
    expect(promtool(text)).toEqual({ status: 0, findings: '' });
    for (const name of [
      'xseq_packets_received_total',
      'xseq_requests_sequenced_total',
      'xseq_group_requests_sequenced_total',
      'xseq_packets_dropped_total',
      'xseq_acks_total',
      'xseq_replies_total',
      'xseq_flushes_total',
      'xseq_flushes_final_total',
      'xseq_group_last_seq',
      'xseq_group_session',
      'xseq_window_occupied_slots',
      'xseq_quorum_latency_seconds_bucket',
      'xseq_retransmissions_total',
      'xseq_repair_refused_total',
      'process_cpu_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(samples(all, name).length, name).toBeGreaterThan(0);
    }
    expect(all.some((s) => /^nodejs_active_\w+_total$/.test(s.name))).toBe(false);
    expect(value(all, 'xseq_replies_total', { sequencer: String(SEQ_ID) })).toBe(1);
    expect(value(all, 'xseq_acks_total', { outcome: 'counted' })).toBe(2);
    // Seq 1 is acked by two of three members, seq 3 by none: both unsettled.
    expect(value(all, 'xseq_window_occupied_slots', { group: String(GROUP_ID) })).toBe(2);
    expect(value(all, 'xseq_retransmissions_total')).toBe(retransmitter.counters().retransmissions);
    expect(retransmitter.counters().retransmissions).toBe(4); // seq 1 to one member, seq 3 to three
    expect(value(all, 'xseq_repair_refused_total', { code: 'not_member' })).toBe(1);
    expect(value(all, 'xseq_repair_requests_total')).toBe(1);
    // Every drop reason is exported, zero or not, so dashboards see them all.
    expect(samples(all, 'xseq_packets_dropped_total').map((s) => s.labels['reason']).sort()).toEqual(
      ['ack_session', 'ack_stale_view', 'ack_stranger', 'ack_weights', 'ack_window', 'backpressure', 'bad_length', 'bad_mac', 'bad_magic', 'bad_version', 'client_mac', 'client_source', 'control_unauthorized', 'draining', 'fragment', 'ip_options', 'mac_room', 'no_window', 'result_too_big', 'solicit_rate', 'solicit_stranger', 'truncated', 'unexpected_type', 'unknown_group', 'unknown_type'],
    );
  });

  it("each member's weight and the weight table's version, from the kernel's table (the agent's own source)", async () => {
    try {
      seq.setGroup(GROUP_ID, { ...group, weights: [2, 1, 1] });
      const v = seq.weightTable(GROUP_ID)!.version;
      const { text, samples: all } = await scrape(createMetricsRegistry(metricsSource(seq, SEQ_ID, [GROUP_ID, PLAIN_GROUP], {})));
      expect(promtool(text)).toEqual({ status: 0, findings: '' });
      expect(samples(all, 'xseq_member_weight').map((x) => [x.labels['group'], x.labels['replica'], x.value])).toEqual([
        [String(GROUP_ID), '0', 2],
        [String(GROUP_ID), '1', 1],
        [String(GROUP_ID), '2', 1],
      ]);
      expect(value(all, 'xseq_group_weights_version', { group: String(GROUP_ID) })).toBe(v);
      // The plain group (no members) has neither.
      expect(samples(all, 'xseq_group_weights_version').map((x) => x.labels['group'])).toEqual([String(GROUP_ID)]);
    } finally {
      seq.setGroup(GROUP_ID, group);
    }
  });

  it('counters move by the delta, survive a restarted agent, and never go back when the data path is re-created', async () => {
    const agent1 = createMetricsRegistry(source());
    const sequenced = (all: Sample[]) => value(all, 'xseq_requests_sequenced_total');
    const group1 = (all: Sample[]) => value(all, 'xseq_group_requests_sequenced_total', { group: String(GROUP_ID) });
    const group2 = (all: Sample[]) => value(all, 'xseq_group_requests_sequenced_total', { group: String(PLAIN_GROUP) });

    // First scrape of an agent: the kernel's whole count.
    const k0 = seq.counters();
    let s = (await scrape(agent1)).samples;
    expect(sequenced(s)).toBe(Number(k0.sequenced));
    expect(value(s, 'xseq_packets_received_total')).toBe(Number(k0.rx));
    const g1 = Number(seq.lastSeq(GROUP_ID));
    const g2 = Number(seq.lastSeq(PLAIN_GROUP));
    expect(group1(s)).toBe(g1);

    for (let i = 0; i < 5; i++) stamp(seq, 100n + BigInt(i), PLAIN_GROUP);
    s = (await scrape(agent1)).samples;
    expect(sequenced(s)).toBe(Number(k0.sequenced) + 5);
    expect(group2(s)).toBe(g2 + 5);
    expect(group1(s)).toBe(g1);
    // A scrape with nothing new moves nothing.
    s = (await scrape(agent1)).samples;
    expect(sequenced(s)).toBe(Number(k0.sequenced) + 5);

    // The agent restarts: a new registry over the same kernel maps
    // continues from the kernel's values, not from zero.
    const agent2 = createMetricsRegistry(source());
    stamp(seq, 200n, PLAIN_GROUP);
    s = (await scrape(agent2)).samples;
    expect(sequenced(s)).toBe(Number(k0.sequenced) + 6);
    expect(group2(s)).toBe(g2 + 6);

    // A new session for a group starts at seq 1: the group counter adds
    // the new session's seqs instead of going back.
    seq.disableGroup(PLAIN_GROUP);
    seq.resetSeq(PLAIN_GROUP);
    seq.setGroup(PLAIN_GROUP, { mcastAddr: '239.7.7.2', mcastPort: 7501, sequencerId: SEQ_ID, session: 6, enabled: true });
    stamp(seq, 300n, PLAIN_GROUP);
    stamp(seq, 301n, PLAIN_GROUP);
    s = (await scrape(agent2)).samples;
    expect(value(s, 'xseq_group_session', { group: String(PLAIN_GROUP) })).toBe(6);
    expect(value(s, 'xseq_group_last_seq', { group: String(PLAIN_GROUP) })).toBe(2);
    expect(group2(s)).toBe(g2 + 8);
    expect(sequenced(s)).toBe(Number(k0.sequenced) + 8);

    // A group disabled for a scrape and enabled again in the same session
    // continues: its seqs are not counted twice.
    seq.disableGroup(PLAIN_GROUP);
    s = (await scrape(agent2)).samples;
    expect(samples(s, 'xseq_group_last_seq', { group: String(PLAIN_GROUP) })).toEqual([]);
    seq.setGroup(PLAIN_GROUP, { mcastAddr: '239.7.7.2', mcastPort: 7501, sequencerId: SEQ_ID, session: 6, enabled: true });
    stamp(seq, 302n, PLAIN_GROUP);
    s = (await scrape(agent2)).samples;
    expect(group2(s)).toBe(g2 + 9);
    expect(sequenced(s)).toBe(Number(k0.sequenced) + 9);

    // The data path is re-created (new maps, every kernel counter from
    // zero): the exported counters keep going up by the new path's counts.
    const before = sequenced(s);
    const rxBefore = value(s, 'xseq_packets_received_total');
    const fresh = Sequencer.load({ port: 7400, windowSlots: W, windows: 1 });
    fresh.setGroup(PLAIN_GROUP, { mcastAddr: '239.7.7.2', mcastPort: 7501, sequencerId: SEQ_ID, session: 7, enabled: true });
    for (let i = 0; i < 3; i++) stamp(fresh, 400n + BigInt(i), PLAIN_GROUP);
    current = fresh;
    try {
      s = (await scrape(agent2)).samples;
      expect(sequenced(s)).toBe(before + 3);
      expect(value(s, 'xseq_packets_received_total')).toBe(rxBefore + 3);
      expect(group2(s)).toBe(g2 + 12);
      // The new path has no group 1: its gauges are gone, its counter stays.
      expect(samples(s, 'xseq_group_last_seq', { group: String(GROUP_ID) })).toEqual([]);
      expect(group1(s)).toBe(g1);
    } finally {
      current = seq;
      fresh.close();
    }
  });

  it('the quorum histogram: kernel buckets as cumulative le buckets, with the kernel sum and count', async () => {
    // Quorums of varied latency: acks right away, and acks after a pause.
    for (let i = 0; i < 6; i++) {
      const n = stamp(seq, 500n + BigInt(i));
      if (i % 2) await new Promise((r) => setTimeout(r, 3));
      ack(seq, group, n, [0, 1, 2]);
    }
    const reg = createMetricsRegistry(source());
    const { samples: all } = await scrape(reg);
    const kernel = seq.quorumHistogram();
    const sumNs = seq.quorumNanosSum();
    expect(kernel).toHaveLength(XSEQ_HIST_BUCKETS);
    const total = kernel.reduce((a, b) => a + b, 0n);
    expect(total).toBeGreaterThanOrEqual(7n);

    const buckets = samples(all, 'xseq_quorum_latency_seconds_bucket');
    expect(buckets.map((b) => b.labels['le'])).toEqual([...QUORUM_BUCKET_BOUNDS.map(String), '+Inf']);
    // Kernel bucket i holds [2^i, 2^(i+1)) ns: le = 2^(i+1) ns counts buckets 0..i.
    let cumulative = 0n;
    QUORUM_BUCKET_BOUNDS.forEach((le, i) => {
      cumulative += kernel[i]!;
      expect(le).toBe(2 ** (i + 1) / 1e9);
      expect(buckets[i]!.value).toBe(Number(cumulative));
    });
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
    expect(buckets.at(-1)!.value).toBe(Number(total));
    expect(value(all, 'xseq_quorum_latency_seconds_count')).toBe(Number(total));
    expect(value(all, 'xseq_quorum_latency_seconds_sum')).toBeCloseTo(Number(sumNs) / 1e9, 12);
    // The paused quorums took over a millisecond: they are past le=1.048576ms.
    const le1ms = buckets.find((b) => b.labels['le'] === String(2 ** 20 / 1e9))!;
    expect(le1ms.value).toBeLessThanOrEqual(Number(total) - 3);

    // Three more quorums: the histogram moves by exactly three.
    for (let i = 0; i < 3; i++) ack(seq, group, stamp(seq, 600n + BigInt(i)), [0, 1]);
    const after = (await scrape(reg)).samples;
    expect(value(after, 'xseq_quorum_latency_seconds_count')).toBe(Number(total) + 3);
    expect(value(after, 'xseq_quorum_latency_seconds_sum')).toBeCloseTo(Number(seq.quorumNanosSum()) / 1e9, 12);
  });

  it("the sequencer label is the id that stamped (group overrides included); a pair's role and whether it serves are exported", async () => {
    // The agent-wide id (99) is not what the data path stamps: its groups carry SEQ_ID.
    // Group 1 is stamped here; a standby group (id 7) waits, not on the data path.
    const pairs = [
      { id: GROUP_ID, role: 'active' as const, sequencerId: SEQ_ID },
      { id: 7, role: 'standby' as const, sequencerId: 4 },
    ];
    const src = metricsSource(seq, 99, [GROUP_ID, PLAIN_GROUP], { window, retransmitter, repair, pairs });
    const { text, samples: all } = await scrape(createMetricsRegistry(src));
    expect(promtool(text)).toEqual({ status: 0, findings: '' });
    expect(all.filter((x) => x.name.startsWith('xseq_') && x.labels['sequencer'] === '99')).toEqual([]);
    expect(samples(all, 'xseq_replies_total').map((x) => x.labels['sequencer'])).toEqual([String(SEQ_ID)]);
    expect(samples(all, 'xseq_group_session').map((x) => x.labels['sequencer'])).toEqual([String(SEQ_ID), String(SEQ_ID)]);
    expect(samples(all, 'xseq_group_serving')).toEqual([
      { name: 'xseq_group_serving', labels: { sequencer: String(SEQ_ID), group: String(GROUP_ID), role: 'active' }, value: 1 },
      { name: 'xseq_group_serving', labels: { sequencer: '4', group: '7', role: 'standby' }, value: 0 },
    ]);
    // One group overridden to another id: per-group series name each, the data path's name both.
    const plain = seq.group(PLAIN_GROUP)!;
    seq.setGroup(PLAIN_GROUP, { ...plain, sequencerId: 7 });
    try {
      const mixed = (await scrape(createMetricsRegistry(src))).samples;
      expect(samples(mixed, 'xseq_group_last_seq').map((x) => [x.labels['group'], x.labels['sequencer']])).toEqual([
        [String(GROUP_ID), String(SEQ_ID)],
        [String(PLAIN_GROUP), '7'],
      ]);
      expect(samples(mixed, 'xseq_replies_total').map((x) => x.labels['sequencer'])).toEqual([`${SEQ_ID}+7`]);
      expect(samples(mixed, 'xseq_quorum_latency_seconds_count').map((x) => x.labels['sequencer'])).toEqual([`${SEQ_ID}+7`]);
    } finally {
      seq.setGroup(PLAIN_GROUP, plain);
    }
  });
});

describe('the metrics endpoint', () => {
  let c = zeroCounters();
  const src: MetricsSource = {
    sequencerId: 1,
    groups: () => [{ id: 1, session: 2, lastSeq: c.sequenced }],
    kernelCounters: () => c,
    quorumHistogram: () => ({ buckets: Array.from({ length: XSEQ_HIST_BUCKETS }, () => 0n), sumNs: 0n }),
  };
  let healthy: boolean | 'throws' = true;
  const health = () => {
    if (healthy === 'throws') throw new Error('cannot tell');
    return { ok: healthy, detail: { attached: healthy, lastSeq: c.sequenced } };
  };
  const servers: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
    c = zeroCounters();
    healthy = true;
  });

  it('serves /metrics and /healthz on loopback: 200 when healthy, 503 when not', async () => {
    const srv = await startMetricsServer('127.0.0.1:0', createMetricsRegistry(src), health);
    servers.push(srv);
    expect(srv.address).toMatch(/^127\.0\.0\.1:\d+$/);
    const base = `http://${srv.address}`;

    c.sequenced = 12n;
    c.rx = 12n;
    let r = await fetch(`${base}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(value(parseExposition(await r.text()), 'xseq_requests_sequenced_total')).toBe(12);

    r = await fetch(`${base}/healthz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ ok: true, attached: true, lastSeq: '12' });
    healthy = false;
    r = await fetch(`${base}/healthz`);
    expect(r.status).toBe(503);
    expect(await r.json()).toEqual({ ok: false, attached: false, lastSeq: '12' });
    healthy = 'throws';
    r = await fetch(`${base}/healthz`);
    expect(r.status).toBe(503);
    expect(await r.json()).toEqual({ ok: false, error: 'cannot tell' });

    expect((await fetch(`${base}/`)).status).toBe(404);
    r = await fetch(`${base}/metrics`, { method: 'POST' });
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('GET, HEAD');
  });

  it('a failing source answers 500 with the reason (Prometheus marks the target down)', async () => {
    const srv = await startMetricsServer(
      '127.0.0.1:0',
      createMetricsRegistry({ ...src, kernelCounters: () => { throw new Error('map lookup failed: EBADF'); } }),
      health,
    );
    servers.push(srv);
    const r = await fetch(`http://${srv.address}/metrics`);
    expect(r.status).toBe(500);
    expect(await r.text()).toMatch(/map lookup failed: EBADF/);
  });

  it('an address in use is a clear error naming it, and the port stays with its owner', async () => {
    const other = createServer();
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const port = (other.address() as { port: number }).port;
    try {
      const err = await startMetricsServer(`127.0.0.1:${port}`, createMetricsRegistry(src), health).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(MetricsServerError);
      expect(err).toMatchObject({ code: 'EMETRICS_LISTEN' });
      expect((err as Error).message).toBe(
        `cannot serve metrics on 127.0.0.1:${port}: the address is already in use (another xseq-agent or exporter?); set metrics.listen to another address, or "" to turn the endpoint off`,
      );
    } finally {
      await new Promise((r) => other.close(r));
    }
  });

  it('rejects a listen address that is not IP:PORT', async () => {
    for (const bad of ['localhost:9464', '9464', '127.0.0.1', '127.0.0.1:99999']) {
      await expect(startMetricsServer(bad, createMetricsRegistry(src), health), bad).rejects.toThrow(/is not IPV4:PORT or \[IPV6\]:PORT/);
    }
  });
});
