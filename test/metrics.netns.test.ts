// A real Prometheus (Debian's server) scraping the metrics of an attached
// sequencer that real clients' packets go through, every second, with the
// scrape configuration of deploy/prometheus/prometheus.yml: a query through
// Prometheus' HTTP API returns exactly the number of requests sent, never
// more, and every query of the Grafana dashboard is PromQL Prometheus
// accepts. Both processes run in the sequencer's namespace, on its loopback,
// where the agent's default metrics address is.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { Topology } from '../netns/topology.ts';
import { loadDashboard, queries, substituteVariables } from './helpers/dashboard.ts';
import { nsGet, nsGetMany, pollUntil, sleep } from './helpers/ns-http.ts';
import { describePrivileged } from './helpers/privileged.ts';

const root = join(import.meta.dirname, '..');
const TSX = join(root, 'node_modules', '.bin', 'tsx');
const HARNESS = join(root, 'test', 'helpers', 'metrics-harness.ts');
const PROM = 'http://127.0.0.1:9090';
/** Fits the window (1024 slots) with nobody acking: no backpressure drop. */
const REQUESTS = 500;
const SESSION = 3;
const SEQUENCER_ID = 4;

interface QueryResult {
  status: string;
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

describePrivileged('Prometheus scraping the metrics of a sequencer in a network namespace', () => {
  let topo: Topology | undefined;
  let dir: string | undefined;
  afterAll(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`a query through Prometheus returns exactly the ${REQUESTS} requests sent`, { timeout: 300_000 }, async () => {
    const t = (topo = await Topology.create({ receivers: 0, clients: 1, mode: 'generic' }));
    dir = mkdtempSync(join(tmpdir(), 'xseq-prometheus-'));

    const queryMany = (qs: string[]): QueryResult[] =>
      nsGetMany(t, 'seq', qs.map((q) => `${PROM}/api/v1/query?query=${encodeURIComponent(q)}`)).map((r) =>
        r.status === 0 ? { status: 'unreachable', error: r.body } : (JSON.parse(r.body) as QueryResult),
      );
    const query = (q: string): QueryResult => queryMany([q])[0]!;
    /** The single value of an instant query, or undefined while there is none. */
    const scalar = (q: string): number | undefined => {
      const r = query(q);
      const v = r.data?.result;
      return v && v.length === 1 ? Number(v[0]!.value[1]) : undefined;
    };
    const equals = (q: string, want: number) => () => (scalar(q) === want ? true : undefined);

    // The group has members (none of them acks), so the window fills.
    const members = ['10.77.0.11:7600', '10.77.0.12:7600', '10.77.0.13:7600'].join(',');
    // Node with tsx's loader rather than the tsx CLI, whose signal relay
    // gives up after 30 ms and reports 143 on a loaded machine.
    const harness = t.spawn('seq', process.execPath, [
      '--import', 'tsx', HARNESS, '--iface', t.ifname('seq'), '--mode', 'generic', '--listen', '127.0.0.1:9464',
      '--members', members, '--session', String(SESSION), '--sequencer-id', String(SEQUENCER_ID),
    ], { cwd: root });
    await harness.waitForLine(/"event":"ready"/, 60_000);

    // The deployed scrape configuration, at a one-second interval.
    const cfg = parseYaml(readFileSync(join(root, 'deploy', 'prometheus', 'prometheus.yml'), 'utf8')) as { global: Record<string, string> };
    cfg.global = { ...cfg.global, scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' };
    writeFileSync(join(dir, 'prometheus.yml'), stringifyYaml(cfg));
    // Its rule_files, as provision.sh installs them beside it.
    copyFileSync(join(root, 'deploy', 'prometheus', 'alerts.yml'), join(dir, 'alerts.yml'));
    const prom = t.spawn('seq', 'sh', [
      '-c', 'exec prometheus "$@" 2>&1', 'prometheus',
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      '--web.listen-address=127.0.0.1:9090',
    ]);
    await pollUntil('Prometheus to be ready', 90_000, () => (nsGet(t, 'seq', `${PROM}/-/ready`, 3000).status === 200 ? true : undefined), () => prom.output().stdout.slice(-2000));
    // The alerting rules loaded, every one evaluated without an error.
    await pollUntil('the alerting rules to be evaluated', 60_000, () => {
      const r = nsGet(t, 'seq', `${PROM}/api/v1/rules`, 3000);
      if (r.status !== 200) return undefined;
      const rules = (JSON.parse(r.body) as { data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> } }).data.groups.flatMap((g) => g.rules);
      return rules.length > 0 && rules.every((x) => x.health === 'ok') ? rules : undefined;
    }, () => nsGet(t, 'seq', `${PROM}/api/v1/rules`, 3000).body.slice(0, 2000));
    await pollUntil('the first scrape of the agent', 60_000, equals('up{job="xseq-agent"}', 1), () => JSON.stringify(query('up')));
    const grp = `{job="xseq-agent",sequencer="${SEQUENCER_ID}",group="1"}`;
    await pollUntil('the group series', 30_000, equals(`xseq_group_requests_sequenced_total${grp}`, 0));

    const sender = t.spawn('cli', TSX, [join(root, 'tools', 'sender.ts'), '--dst', t.ip('seq'), '--count', String(REQUESTS), '--rate', '2000', '--client-id', '1', '--max-ms', '60000']);
    expect(JSON.parse(await sender.waitForLine(/"sent"/, 90_000))).toMatchObject({ sent: REQUESTS });

    await pollUntil(`Prometheus to see ${REQUESTS} sequenced`, 60_000, equals(`xseq_group_requests_sequenced_total${grp}`, REQUESTS), () =>
      JSON.stringify(query(`xseq_group_requests_sequenced_total${grp}`).data?.result),
    );
    // A few scrapes later it is still exactly that, and it never was more.
    await sleep(3000);
    const sel = `{job="xseq-agent",sequencer="${SEQUENCER_ID}"}`;
    const expected: Array<[string, number]> = [
      [`xseq_group_requests_sequenced_total${grp}`, REQUESTS],
      [`max_over_time(xseq_group_requests_sequenced_total${grp}[10m])`, REQUESTS],
      [`xseq_requests_sequenced_total${sel}`, REQUESTS],
      [`xseq_packets_received_total${sel}`, REQUESTS],
      [`sum(xseq_packets_dropped_total${sel})`, 0],
      [`xseq_group_last_seq${grp}`, REQUESTS],
      [`xseq_group_session${grp}`, SESSION],
      [`xseq_window_occupied_slots${grp}`, REQUESTS],
      [`xseq_quorum_latency_seconds_count${sel}`, 0],
    ];
    const got = queryMany(expected.map(([q]) => q)).map((r) => (r.data?.result.length === 1 ? Number(r.data.result[0]!.value[1]) : r));
    expect(Object.fromEntries(expected.map(([q], i) => [q, got[i]]))).toEqual(Object.fromEntries(expected));

    // Every dashboard query, as Grafana sends it with "All" selected, is
    // accepted; the request rate panel sees the burst (a window that
    // reaches back past it: this machine may be slow).
    const d = loadDashboard();
    const qs = queries(d);
    const results = queryMany(qs.map((q) => substituteVariables(q.expr, '10m')));
    qs.forEach((q, i) => expect(results[i]!.status, `${q.where}: ${q.expr}: ${results[i]!.error}`).toBe('success'));
    const rate = results[qs.findIndex((q) => q.where === 'panel "Request rate" A')]!;
    expect(rate.data?.result.map((s) => s.metric['group'])).toEqual(['1']);
    expect(Number(rate.data!.result[0]!.value[1])).toBeGreaterThan(0);

    expect((await harness.stop('SIGTERM', 5000)).code).toBe(0);
  });
});
