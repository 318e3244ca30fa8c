// deploy/ and the Vagrantfile: the files are valid for the tools that read
// them (ruby, systemd-analyze, promtool, Grafana's JSON), they agree with
// each other and with the agent's metric names and config schema, and
// provision.sh really builds and installs the Debian package for a role,
// offline, into a staging root, twice
// without changing anything the second time. The agent unit's capability
// set is enough to load, attach and serve metrics, and less is not.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../agent/config.ts';
import { parseReplicaArgs } from '../examples/kv/replica-config.ts';
import { createMetricsRegistry } from '../agent/metrics.ts';
import { XSEQ_HIST_BUCKETS, zeroCounters } from '../bpf/maps.ts';
import { Topology } from '../netns/topology.ts';
import { allPanels, loadDashboard, metricNames, queries } from './helpers/dashboard.ts';
import { parseExposition } from './helpers/exposition.ts';
import { nsGet } from './helpers/ns-http.ts';
import { describePrivileged } from './helpers/privileged.ts';

const root = join(import.meta.dirname, '..');
const deploy = join(root, 'deploy');
const HARNESS = join(root, 'test', 'helpers', 'metrics-harness.ts');

function run(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, ...opts });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** The Vagrantfile evaluated against a recording stand-in for Vagrant's DSL. */
const VAGRANT_RECORDER = `
require 'json'
class Sink
  def method_missing(*_args, **_kw, &blk)
    blk.call(Sink.new) if blk
    self
  end
  def respond_to_missing?(*_args) true end
end
class VM
  attr_reader :data
  def initialize; @data = { 'networks' => [], 'provisions' => [], 'synced' => [], 'defines' => {} }; end
  def box=(v); @data['box'] = v; end
  def hostname=(v); @data['hostname'] = v; end
  def network(type, **o); @data['networks'] << { 'type' => type, 'ip' => o[:ip] }; end
  def provision(type, **o); @data['provisions'] << { 'type' => type, 'inline' => o[:inline], 'path' => o[:path] }; end
  def synced_folder(src, dst, **o); @data['synced'] << { 'src' => src, 'dst' => dst, 'type' => o[:type], 'exclude' => o[:rsync__exclude] }; end
  def provider(_name, &blk); blk.call(Sink.new) if blk; end
  def define(name, **o, &blk)
    c = Config.new
    blk.call(c)
    @data['defines'][name.to_s] = c.vm.data.merge('primary' => !!o[:primary])
  end
end
class Config
  attr_reader :vm
  def initialize; @vm = VM.new; end
end
module Vagrant
  def self.configure(_version)
    c = Config.new
    yield c
    puts JSON.generate(c.vm.data)
  end
end
load ARGV[0]
`;

interface VagrantVm {
  hostname: string;
  primary: boolean;
  networks: Array<{ type: string; ip: string }>;
  provisions: Array<{ type: string; inline: string | null; path: string | null }>;
}
interface VagrantModel {
  box: string;
  synced: Array<{ src: string; dst: string; type: string; exclude: string[] }>;
  defines: Record<string, VagrantVm>;
}

function vagrantModel(): VagrantModel {
  const dir = mkdtempSync(join(tmpdir(), 'xseq-vagrant-'));
  try {
    writeFileSync(join(dir, 'recorder.rb'), VAGRANT_RECORDER);
    const r = run('ruby', [join(dir, 'recorder.rb'), join(root, 'Vagrantfile')]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    return JSON.parse(r.stdout) as VagrantModel;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** provision.sh arguments of a VM's inline command, /vagrant being `checkout`. */
function provisionArgs(vm: VagrantVm, checkout = root): string[] {
  const inline = vm.provisions.find((p) => p.type === 'shell')?.inline ?? '';
  const words = inline.split(/\s+/).filter(Boolean);
  expect(words.slice(0, 2)).toEqual(['bash', '/vagrant/deploy/provision.sh']);
  return words.slice(2).map((w) => w.replace(/^\/vagrant\//, `${checkout}/`));
}

describe('the Vagrantfile', () => {
  it('is valid Ruby', () => {
    const r = run('ruby', ['-c', 'Vagrantfile'], { cwd: root });
    expect(r).toMatchObject({ status: 0, stdout: 'Syntax OK\n' });
  });

  it('defines a sequencer, three replicas and a client on one private network, each provisioned from the checkout', () => {
    const m = vagrantModel();
    expect(m.box).toBe('debian/bookworm64');
    expect(Object.keys(m.defines).sort()).toEqual(['client', 'replica0', 'replica1', 'replica2', 'sequencer']);
    expect(m.defines['sequencer']!.primary).toBe(true);
    const ips = Object.values(m.defines).map((vm) => {
      const nets = vm.networks.filter((n) => n.type === 'private_network');
      expect(nets).toHaveLength(1);
      return nets[0]!.ip;
    });
    expect(new Set(ips).size).toBe(5);
    expect(new Set(ips.map((ip) => ip.split('.').slice(0, 3).join('.'))).size).toBe(1);
    // The checkout reaches each VM without the host's node_modules or builds.
    expect(m.synced).toEqual([{ src: '.', dst: '/vagrant', type: 'rsync', exclude: expect.arrayContaining(['node_modules/', '.git/', 'bpf/build/']) }]);
    for (const [name, vm] of Object.entries(m.defines)) {
      const args = provisionArgs(vm);
      const role = args[args.indexOf('--role') + 1];
      expect(role, name).toBe(name.replace(/\d$/, ''));
      if (role === 'replica') expect(args[args.indexOf('--replica-id') + 1]).toBe(name.slice(-1));
      for (const a of args.filter((x) => x.startsWith('/'))) expect(existsSync(a), `${name}: ${a}`).toBe(true);
    }
  });

  it("the VMs' configs name the VMs' addresses, and the agent's passes the agent's schema", () => {
    const m = vagrantModel();
    const ip = (vm: string) => m.defines[vm]!.networks[0]!.ip;
    const agent = loadConfig({ file: join(deploy, 'vagrant', 'agent.yaml') });
    expect(agent.groups[0]!.members.map((x) => x.address)).toEqual([0, 1, 2].map((i) => `${ip(`replica${i}`)}:7600`));
    expect(agent.metrics.listen).toBe('127.0.0.1:9464');
    // kv.yaml as provision.sh renders it for each replica, read by the KV
    // replica's own parser (test/shipped-configs.test.ts checks the rest).
    for (const id of [0, 1, 2]) {
      const file = join(mkdtempSync(join(tmpdir(), 'xseq-kv-yaml-')), `kv-${id}.yaml`);
      writeFileSync(file, readFileSync(join(deploy, 'vagrant', 'kv.yaml'), 'utf8').replaceAll('@REPLICA_ID@', String(id)));
      try {
        const kv = parseReplicaArgs(['--config', file])!;
        expect(kv.id).toBe(id);
        expect(`${kv.group.host}:${kv.group.port}`).toBe(agent.groups[0]!.multicast);
        expect(kv.sequencer).toEqual({ host: ip('sequencer'), port: agent.port });
        expect(kv.repair).toEqual({ host: ip('sequencer'), port: agent.repair.port });
        expect(`${kv.member.host}:${kv.member.port}`).toBe(agent.groups[0]!.members[id]!.address);
        expect(kv.peers.map((p) => p.host)).toEqual([0, 1, 2].map((i) => ip(`replica${i}`)));
      } finally {
        rmSync(join(file, '..'), { recursive: true, force: true });
      }
    }
    // The example config the unit falls back to is valid too.
    expect(() => loadConfig({ file: join(deploy, 'agent.example.yaml') })).not.toThrow();
  });
});

describe('systemd units', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  /** The units with the installed command mapped to this checkout: verify
   * checks that every Exec command exists. */
  function stage(): string {
    dir = mkdtempSync(join(tmpdir(), 'xseq-units-'));
    for (const f of ['xseq-agent.service', 'xseq-replica@.service']) {
      const text = readFileSync(join(deploy, 'systemd', f), 'utf8').replaceAll('/usr/local/bin/xseq-agent ', `${root}/agent/bin/xseq-agent.js `);
      writeFileSync(join(dir, f), text);
    }
    return dir;
  }
  function verify(d: string, unit: string) {
    return run('systemd-analyze', ['verify', '--man=no', join(d, unit)], { cwd: d });
  }

  it('pass systemd-analyze verify with nothing to report', (ctx) => {
    if (!have('systemd-analyze')) {
      if (process.env.CI === 'true') throw new Error('systemd-analyze is missing: scripts/setup.sh installs the systemd package');
      console.warn('skipping systemd-analyze verify: systemd-analyze is not installed (apt-get install systemd)');
      ctx.skip();
    }
    const d = stage();
    for (const unit of ['xseq-agent.service', 'xseq-replica@0.service']) {
      const r = verify(d, unit);
      expect(`${r.stdout}${r.stderr}`, unit).toBe('');
      expect(r.status, unit).toBe(0);
    }
    // The same check on a broken copy reports it: the check can fail.
    writeFileSync(join(d, 'xseq-agent.service'), readFileSync(join(d, 'xseq-agent.service'), 'utf8').replace('Restart=always', 'Restart=sometimes'));
    expect(verify(d, 'xseq-agent.service').stderr).toMatch(/restart specifier/);
  });

  it('systemd-analyze security: the agent unit scores 4.5 or better, the replica unit 2.0 or better', (ctx) => {
    if (!have('systemd-analyze')) {
      if (process.env.CI === 'true') throw new Error('systemd-analyze is missing: scripts/setup.sh installs the systemd package');
      ctx.skip();
    }
    const d = stage();
    const score = (unit: string, threshold: string) => {
      const r = run('systemd-analyze', ['security', '--offline=true', '--no-pager', `--threshold=${threshold}`, join(d, unit)], { cwd: d });
      return { status: r.status, level: /Overall exposure level for \S+: ([\d.]+)/.exec(r.stdout)?.[1] };
    };
    const agent = score('xseq-agent.service', '45');
    expect(agent.status, `agent unit exposure ${agent.level}`).toBe(0);
    expect(Number(agent.level)).toBeLessThanOrEqual(4.5);
    const replica = score('xseq-replica@0.service', '20');
    expect(replica.status, `replica unit exposure ${replica.level}`).toBe(0);
    expect(Number(replica.level)).toBeLessThanOrEqual(2.0);
    // The check can fail: the shipped agent unit is above a stricter bar.
    expect(score('xseq-agent.service', '20').status).not.toBe(0);
  });

  it('the agent unit runs `xseq-agent run --config /etc/xseq/agent.yaml` as a restarting, capable service', () => {
    const unit = readFileSync(join(deploy, 'systemd', 'xseq-agent.service'), 'utf8');
    const keys = (k: string) => [...unit.matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1]);
    expect(keys('ExecStart')).toEqual(['/usr/local/bin/xseq-agent run --config /etc/xseq/agent.yaml']);
    expect(keys('Restart')).toEqual(['always']);
    expect(keys('After')).toEqual(['network-online.target']);
    expect(keys('Wants')).toEqual(['network-online.target']);
    expect(keys('CapabilityBoundingSet')[0]!.split(' ').sort()).toEqual(expect.arrayContaining(['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN']));
    expect(keys('ExecStartPre')).toEqual(["+/bin/sh -c 'mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf'"]);
    // A configuration error (exit 2) or a refusal (3) stops the unit; any
    // other failure restarts it, but a crash loop ends at the start limit.
    expect(keys('RestartPreventExitStatus')).toEqual(['2 3']);
    expect(keys('StartLimitIntervalSec')).toEqual(['5min']);
    expect(keys('StartLimitBurst')).toEqual(['10']);
    const replica = readFileSync(join(deploy, 'systemd', 'xseq-replica@.service'), 'utf8');
    expect(replica).toMatch(/^RestartPreventExitStatus=2$/m);
    expect(replica).toMatch(/^StartLimitIntervalSec=5min$/m);
    expect(replica).toMatch(/^ExecStart=\/usr\/bin\/node \/opt\/xseq\/examples\/kv\/replica\.js --config \/etc\/xseq\/kv-%i\.yaml$/m);
  });
});

describe('Prometheus and Grafana', () => {
  it('prometheus.yml passes promtool check config and scrapes the agent\'s default address', () => {
    const r = run('promtool', ['check', 'config', join(deploy, 'prometheus', 'prometheus.yml')]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const cfg = parseYaml(readFileSync(join(deploy, 'prometheus', 'prometheus.yml'), 'utf8')) as {
      scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
    };
    const agent = loadConfig({ file: join(deploy, 'agent.example.yaml') });
    const job = cfg.scrape_configs.find((j) => j.job_name === 'xseq-agent')!;
    expect(job.static_configs[0]!.targets).toEqual([agent.metrics.listen]);
  });

  it('the Grafana dashboard parses, has the panels, and queries only metrics /metrics has', async () => {
    const d = loadDashboard();
    expect(d.uid).toBe('xseq-sequencer');
    expect(d.schemaVersion).toBeGreaterThanOrEqual(36);
    const panels = allPanels(d);
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    const titles = panels.map((p) => p.title);
    for (const t of ['Request rate', 'Drops by reason', 'Replies and ACKs', 'Quorum latency', 'Retransmissions and repair', 'Window occupancy', 'Session', 'Last seq', 'Requests by sequencer', 'Flushes', 'Errors', 'Window fullness', 'Build']) {
      expect(titles).toContain(t);
    }
    for (const p of panels.filter((x) => x.type !== 'row')) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
    }
    const latency = panels.find((p) => p.title === 'Quorum latency')!.targets!.map((t) => t.expr);
    expect(latency.some((e) => e.startsWith('histogram_quantile(0.5,') && e.includes('xseq_quorum_latency_seconds_bucket'))).toBe(true);
    expect(latency.some((e) => e.startsWith('histogram_quantile(0.99,') && e.includes('xseq_quorum_latency_seconds_bucket'))).toBe(true);

    // /metrics of a registry over a source with every optional part.
    const c = zeroCounters();
    c.sequenced = 5n;
    const text = await createMetricsRegistry({
      sequencerId: 1,
      groups: () => [{ id: 1, session: 1, lastSeq: 5n, windowOccupancy: 2, windowCapacity: 1024, retransmitBacklog: 1, weights: [1, 1, 1], weightsVersion: 1, weightChanges: { ledgerVersion: 2, applied: 1, refused: 1, switches: 1 } }],
      kernelCounters: () => c,
      quorumHistogram: () => ({ buckets: Array.from({ length: XSEQ_HIST_BUCKETS }, () => 1n), sumNs: 1000n }),
      retransmitCounters: () => ({ retransmissions: 1 }),
      repairCounters: () => ({ requests: 1, refused: { NOT_MEMBER: 1 } }),
      flushCounters: () => ({ injected: 1 }),
    }).metrics();
    const exported = new Set(parseExposition(text).map((s) => s.name));
    const used = new Set<string>();
    for (const q of queries(d)) {
      const names = metricNames(q.expr);
      expect(names.length, `${q.where}: ${q.expr}`).toBeGreaterThan(0);
      for (const n of names) {
        expect(exported.has(n), `${q.where} reads ${n}, which /metrics does not have`).toBe(true);
        used.add(n);
      }
    }
    expect(used.size).toBeGreaterThanOrEqual(20);
    // And the other way round: every xseq family has a panel (a histogram
    // counts through its _bucket/_sum/_count).
    const family = (n: string) => n.replace(/_(bucket|sum|count)$/, '');
    const shown = new Set([...used].map(family));
    for (const n of exported) if (n.startsWith('xseq_')) expect(shown.has(family(n)), `no panel reads ${n}`).toBe(true);
  });
});

/**
 * A still copy of this checkout, as Vagrant's rsync makes one: the work
 * tree may be edited while the test runs, and a second provision run must
 * see the same source to change nothing. Its node_modules is this one's.
 */
function snapshot(dir: string): string {
  const src = join(dir, 'src');
  mkdirSync(src);
  const excludes = ['.git', 'node_modules', 'bpf/build', 'bench/build', '.vagrant'].map((e) => `--exclude=./${e}`);
  const r = spawnSync('bash', ['-c', 'tar -C "$1" "${@:3}" -cf - . | tar -C "$2" -xf -', 'bash', root, src, ...excludes], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  symlinkSync(join(root, 'node_modules'), join(src, 'node_modules'));
  return src;
}

/** Runs provision.sh (of `checkout`) in a network namespace of its own: no network at all. */
function provision(args: string[], checkout = root): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', ['--net', '--', 'bash', join(checkout, 'deploy', 'provision.sh'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, out });
    });
  });
}

/** Relative path -> mtime of every file under dir (node_modules aside). */
function mtimes(dir: string): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (rel: string): void => {
    const p = join(dir, rel);
    const st = lstatSync(p);
    if (st.isDirectory()) {
      if (rel.endsWith('node_modules')) return;
      for (const e of readdirSync(p)) walk(rel ? `${rel}/${e}` : e);
    } else {
      out.set(rel, st.mtimeMs);
    }
  };
  walk('');
  return out;
}

describePrivileged('provision.sh, offline, into a staging root, in a network namespace', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("installs the sequencer role of the Vagrantfile's sequencer VM, and a second run changes nothing", { timeout: 600_000 }, async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'xseq-provision-'));
    dirs.push(tmp);
    const src = snapshot(tmp);
    const R = join(tmp, 'root');
    const hostEtcXseq = existsSync('/etc/xseq');
    const args = [...provisionArgs(vagrantModel().defines['sequencer']!, src), '--root', R, '--no-systemctl', '--offline'];
    const first = await provision(args, src);
    expect(first.status, first.out).toBe(0);
    expect(first.out).toMatch(/not enabling xseq-agent\.service prometheus\.service \(--no-systemctl\)/);

    // The package was built from the checkout and extracted: compiled
    // JavaScript and the BPF objects, no TypeScript, no checkout copy.
    expect(first.out).toMatch(/building dist\/xseq_[^ ]+\.deb \(scripts\/package-deb\.sh\)/);
    expect(first.out).toMatch(/installed xseq_[^ ]+\.deb/);
    const opt = join(R, 'opt', 'xseq');
    for (const f of ['package.json', 'build-info.json', 'agent/metrics.js', 'agent/bin/xseq-agent.js', 'bpf/build/sequencer.bpf.o', 'node_modules/prom-client/package.json']) {
      expect(existsSync(join(opt, f)), f).toBe(true);
    }
    for (const f of ['.git', 'agent/metrics.ts', 'node_modules/tsx', 'Vagrantfile']) expect(existsSync(join(opt, f)), f).toBe(false);
    expect(statSync(join(opt, 'agent/bin/xseq-agent.js')).mode & 0o111).not.toBe(0);
    expect(readFileSync(join(R, 'lib/systemd/system/xseq-agent.service'), 'utf8')).toMatch(/^ExecStart=\/usr\/bin\/xseq-agent run --config \/etc\/xseq\/agent\.yaml$/m);
    expect(readlinkSync(join(R, 'usr/bin/xseq-agent'))).toBe('../../opt/xseq/agent/bin/xseq-agent.js');
    expect(existsSync(join(R, 'usr/local/bin/xseq-agent'))).toBe(false);
    expect(existsSync(join(R, 'etc/systemd/system/xseq-agent.service'))).toBe(false);
    expect(readFileSync(join(R, 'etc/xseq/agent.yaml'), 'utf8')).toBe(readFileSync(join(deploy, 'vagrant/agent.yaml'), 'utf8'));
    expect(readFileSync(join(R, 'etc/prometheus/prometheus.yml'), 'utf8')).toBe(readFileSync(join(deploy, 'prometheus/prometheus.yml'), 'utf8'));
    expect(readFileSync(join(R, 'etc/prometheus/alerts.yml'), 'utf8')).toBe(readFileSync(join(deploy, 'prometheus/alerts.yml'), 'utf8'));
    expect(existsSync(join(R, 'etc/systemd/system/multi-user.target.wants'))).toBe(false);
    // The host was not touched.
    expect(existsSync('/etc/xseq')).toBe(hostEtcXseq);
    // The installed copy runs on its own dependencies.
    const help = run(process.execPath, [join(opt, 'agent/bin/xseq-agent.js'), '--help'], { cwd: tmpdir() });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/xseq-agent/);
    // And its config loads with the installed schema.
    expect(() => loadConfig({ file: join(R, 'etc/xseq/agent.yaml') })).not.toThrow();

    const before = mtimes(R);
    const second = await provision(args, src);
    expect(second.status, second.out).toBe(0);
    expect(second.out).toMatch(/done: role sequencer, 0 change\(s\)/);
    expect(second.out).toMatch(/package xseq_[^ ]+\.deb already installed/);
    expect(mtimes(R)).toEqual(before);

    // Without --no-systemctl a staging root gets its units enabled offline.
    // In CI systemctl must be there (scripts/setup.sh installs systemd).
    if (!have('systemctl')) {
      if (process.env.CI === 'true') throw new Error('systemctl is missing: scripts/setup.sh installs the systemd package');
      console.warn('not checking the offline enable: systemctl is not installed (apt-get install systemd)');
    } else {
      const third = await provision(args.filter((a) => a !== '--no-systemctl'), src);
      expect(third.status, third.out).toBe(0);
      expect(readlinkSync(join(R, 'etc/systemd/system/multi-user.target.wants/xseq-agent.service'))).toMatch(/^(\/usr)?\/lib\/systemd\/system\/xseq-agent\.service$/);
      expect(third.out).toMatch(/not enabling prometheus\.service: it is not installed in /);
    }
  });

  it("installs a replica of the Vagrantfile from the package, with its own config, its unit the package's", { timeout: 600_000 }, async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'xseq-provision-'));
    dirs.push(tmp);
    const src = snapshot(tmp);
    const R = join(tmp, 'root');
    const r = await provision([...provisionArgs(vagrantModel().defines['replica1']!, src), '--root', R, '--no-systemctl', '--offline'], src);
    expect(r.status, r.out).toBe(0);
    expect(readFileSync(join(R, 'lib/systemd/system/xseq-replica@.service'), 'utf8')).toMatch(/^ExecStart=\/usr\/bin\/node \/opt\/xseq\/examples\/kv\/replica\.js --config \/etc\/xseq\/kv-%i\.yaml$/m);
    expect(existsSync(join(R, 'opt/xseq/examples/kv/replica.js'))).toBe(true);
    const kv = readFileSync(join(R, 'etc/xseq/kv-1.yaml'), 'utf8');
    expect(kv).not.toContain('@REPLICA_ID@');
    expect((parseYaml(kv) as { id: number }).id).toBe(1);
    // The sequencer's config is the package's example, untouched.
    expect(readFileSync(join(R, 'etc/xseq/agent.yaml'), 'utf8')).toBe(readFileSync(join(deploy, 'agent.example.yaml'), 'utf8'));
    expect(existsSync(join(R, 'etc/prometheus'))).toBe(false);
    expect(r.out).toMatch(/not enabling xseq-replica@1\.service \(--no-systemctl\)/);
  });

  it('refuses what it cannot do, with the reason', async () => {
    const R = mkdtempSync(join(tmpdir(), 'xseq-root-'));
    dirs.push(R);
    const noId = await provision(['--role', 'replica', '--root', R]);
    expect(noId.status).not.toBe(0);
    expect(noId.out).toMatch(/--role replica needs --replica-id 0\.\.7/);
    const badRole = await provision(['--role', 'switch', '--root', R]);
    expect(badRole.out).toMatch(/--role "switch" is not sequencer, replica or client/);
    // Offline from a checkout with no package and no node_modules to build one.
    const src = join(R, 'src');
    mkdirSync(src);
    cpSync(deploy, join(src, 'deploy'), { recursive: true });
    for (const f of ['package.json', 'package-lock.json']) cpSync(join(root, f), join(src, f));
    const stale = await new Promise<{ status: number | null; out: string }>((resolve) => {
      const c = spawn('unshare', ['--net', '--', 'bash', join(src, 'deploy', 'provision.sh'), '--role', 'client', '--root', join(R, 'dest'), '--offline'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.stderr.on('data', (d: Buffer) => (out += d.toString()));
      c.on('close', (status) => resolve({ status, out }));
    });
    expect(stale.status).not.toBe(0);
    expect(stale.out).toMatch(/--offline: .*node_modules is missing \(no tsc to build the package\)/);
  });
});

describePrivileged("the agent unit's capability set, in a network namespace", () => {
  let topo: Topology | undefined;
  afterEach(async () => {
    await topo?.destroy();
    topo = undefined;
  });

  const CAP_NUMBERS: Record<string, number> = { CAP_NET_ADMIN: 12, CAP_SYS_ADMIN: 21, CAP_PERFMON: 38, CAP_BPF: 39 };

  /** setpriv arguments that give a root process only these capabilities,
   * as systemd's CapabilityBoundingSet does for a root service. */
  function capsOnly(caps: string[]): string[] {
    const list = ['-all', ...caps.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`)].join(',');
    return ['setpriv', `--bounding-set=${list}`, '--inh-caps=-all', '--'];
  }

  it('is enough to load and attach the sequencer and serve /metrics; without CAP_PERFMON and CAP_SYS_ADMIN the verifier refuses', { timeout: 180_000 }, async () => {
    const unit = readFileSync(join(deploy, 'systemd', 'xseq-agent.service'), 'utf8');
    const caps = /^CapabilityBoundingSet=(.*)$/m.exec(unit)![1]!.split(/\s+/);
    const t = (topo = await Topology.create({ receivers: 0, clients: 1, mode: 'generic' }));
    // Node itself, not the tsx CLI: no wrapper process between the
    // capabilities and the agent, and signals reach it directly.
    const args = [process.execPath, '--import', 'tsx', HARNESS, '--iface', t.ifname('seq'), '--mode', 'generic', '--listen', '127.0.0.1:9464'];

    expect(caps.every((c) => c in CAP_NUMBERS), caps.join(' ')).toBe(true);
    const [setpriv, ...weakCaps] = capsOnly(caps.filter((c) => c !== 'CAP_PERFMON' && c !== 'CAP_SYS_ADMIN'));
    const weak = t.spawn('seq', setpriv!, [...weakCaps, ...args], { cwd: root });
    const exit = await weak.exited;
    expect(exit.code).not.toBe(0);
    expect(weak.output().stderr).toMatch(/pointer comparison prohibited/);

    const agent = t.spawn('seq', setpriv!, [...capsOnly(caps).slice(1), ...args], { cwd: root });
    await agent.waitForLine(/"event":"ready"/, 60_000);
    expect(t.exec('seq', 'ip', ['link', 'show', 'dev', t.ifname('seq')])).toMatch(/xdpgeneric/);
    // The agent really ran with the unit's capabilities and no others.
    const capField = (status: string, field: string) => BigInt(`0x${new RegExp(`^${field}:\\s*(\\w+)$`, 'm').exec(status)![1]}`);
    const want = caps.reduce((m, c) => m | (1n << BigInt(CAP_NUMBERS[c]!)), 0n);
    const status = readFileSync(`/proc/${agent.pid}/status`, 'utf8');
    for (const field of ['CapBnd', 'CapEff']) expect(capField(status, field), field).toBe(want);
    const r = nsGet(t, 'seq', 'http://127.0.0.1:9464/metrics');
    expect(r.status).toBe(200);
    expect(r.body).toMatch(/^xseq_requests_sequenced_total\{sequencer="1"\} 0$/m);
    expect((await agent.stop('SIGTERM', 5000)).code).toBe(0);
  });
});
