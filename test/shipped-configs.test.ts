// Every configuration file the repo ships parses with the real schema of
// the program that reads it, so an example or a deploy file cannot drift
// from its schema unnoticed: the agent's (agent/config.ts loadConfig) and
// the KV replica's (examples/kv/replica-config.ts parseReplicaArgs). A new
// YAML file under deploy/ or examples/ fails here until it is given one.
// And the replica unit's command (deploy/systemd/xseq-replica@.service)
// really starts a replica from a Vagrant replica's config, in a namespace
// that has that replica's address.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../agent/config.ts';
import { clientConfig, readClientConfigFile } from '../examples/kv/client-config.ts';
import { parseReplicaArgs } from '../examples/kv/replica-config.ts';
import { describePrivileged } from './helpers/privileged.ts';

const root = join(import.meta.dirname, '..');
const scratch = mkdtempSync(join(tmpdir(), 'xseq-shipped-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function yamlFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .sort();
}

/** A template as deploy/provision.sh installs it: @REPLICA_ID@ replaced. */
function rendered(file: string, id: number): string {
  const out = join(scratch, `${file.replaceAll('/', '_')}-${id}.yaml`);
  writeFileSync(out, readFileSync(join(root, file), 'utf8').replaceAll('@REPLICA_ID@', String(id)));
  return out;
}

/** What reads each shipped file. Templates are rendered for replicas 0..2 first. */
const SCHEMAS: Record<string, 'agent' | 'kv' | 'kv-template' | 'kv-client' | 'prometheus'> = {
  'deploy/agent.example.yaml': 'agent',
  'deploy/vagrant/agent.yaml': 'agent',
  'deploy/vagrant/kv.yaml': 'kv-template',
  'examples/kv/replica.example.yaml': 'kv',
  'examples/kv/client.example.yaml': 'kv-client',
  // promtool checks it (test/deploy.test.ts).
  'deploy/prometheus/prometheus.yml': 'prometheus',
  // promtool check rules and test rules (test/alerts.test.ts).
  'deploy/prometheus/alerts.yml': 'prometheus',
  'deploy/prometheus/alerts.test.yml': 'prometheus',
};

describe('shipped configuration files', () => {
  it('every YAML file under deploy/ and examples/ has a schema here', () => {
    expect([...yamlFiles('deploy'), ...yamlFiles('examples')].sort()).toEqual(Object.keys(SCHEMAS).sort());
  });

  it.each(Object.entries(SCHEMAS).filter(([, s]) => s === 'agent'))("%s passes the agent's schema", (file) => {
    const c = loadConfig({ file: join(root, file), env: {} });
    expect(c.groups.length).toBeGreaterThan(0);
  });

  it.each(Object.entries(SCHEMAS).filter(([, s]) => s === 'kv'))("%s passes the KV replica's schema", (file) => {
    const c = parseReplicaArgs(['--config', join(root, file)])!;
    expect(c.peers.length).toBe(3);
  });

  it.each(Object.entries(SCHEMAS).filter(([, s]) => s === 'kv-client'))("%s passes the KV client's schema", (file) => {
    const c = clientConfig(readClientConfigFile(join(root, file)));
    expect(c.sequencers.length).toBeGreaterThan(0);
  });

  it("deploy/vagrant/kv.yaml, rendered for replicas 0..2, passes the KV replica's schema and matches the Vagrant agent's group", () => {
    const agent = loadConfig({ file: join(root, 'deploy/vagrant/agent.yaml'), env: {} });
    const g = agent.groups[0]!;
    for (const id of [0, 1, 2]) {
      const c = parseReplicaArgs(['--config', rendered('deploy/vagrant/kv.yaml', id)])!;
      expect(c.id).toBe(id);
      expect(c.groupId).toBe(g.id);
      expect(`${c.group.host}:${c.group.port}`).toBe(g.multicast);
      // The kernel counts this replica's ACKs only from exactly this address.
      expect(`${c.member.host}:${c.member.port}`).toBe(g.members.find((m) => m.id === id)!.address);
      expect(c.sequencer.port).toBe(agent.port);
      expect(c.repair?.port).toBe(agent.repair.port);
      expect(c.sequencer.host).toBe(c.repair?.host);
      // The unit's StateDirectory, the one place a DynamicUser may write.
      expect(c.stateDir).toBe(`/var/lib/xseq-kv-${id}`);
    }
  });

  it('a misspelt field in a shipped file would fail: the check can fail', () => {
    const bad = join(scratch, 'bad-kv.yaml');
    writeFileSync(bad, readFileSync(join(root, 'examples/kv/replica.example.yaml'), 'utf8').replace('statsIntervalMs:', 'statsInterval:'));
    expect(() => parseReplicaArgs(['--config', bad])).toThrow(/^statsInterval: not a known setting/);
  });
});

describe('the replica unit\'s command', () => {
  const unit = readFileSync(join(root, 'deploy/systemd/xseq-replica@.service'), 'utf8');
  const exec = /^ExecStart=(.*)$/m.exec(unit)![1]!.split(/\s+/);

  it('is node running examples/kv/replica.js of the installed checkout with /etc/xseq/kv-ID.yaml', () => {
    expect(exec).toEqual(['/usr/bin/node', '/opt/xseq/examples/kv/replica.js', '--config', '/etc/xseq/kv-%i.yaml']);
    expect(unit).toMatch(/^ConditionPathExists=\/opt\/xseq\/examples\/kv\/replica\.js$/m);
  });

  it('runs from this checkout: --help, and a config mistake exits 2 (no restart loop: RestartPreventExitStatus=2)', () => {
    const script = exec[1]!.replace('/opt/xseq/', `${root}/`);
    const help = spawnSync(process.execPath, [script, '--help'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: .*examples\/kv\/replica\.ts/);
    const bad = spawnSync(process.execPath, [script, '--config', rendered('deploy/vagrant/kv.yaml', 0), '--id', '7'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^kv-replica: id: .*0\.\.2/);
    expect(unit).toMatch(/^RestartPreventExitStatus=2$/m);
  });
});

describePrivileged("the replica unit's command with a Vagrant replica's config", () => {
  const ns = `xscfg${process.pid}`;
  afterEach(() => {
    spawnSync('ip', ['netns', 'del', ns]);
  });

  it("starts, binds replica 0's address, and stops on SIGTERM", async () => {
    const ip = (...a: string[]) => {
      const r = spawnSync('ip', a, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`ip ${a.join(' ')}: ${r.stderr}`);
    };
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    // A veth pair inside the namespace: this kernel has no dummy devices.
    ip('-n', ns, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'eth1p');
    ip('-n', ns, 'link', 'set', 'eth1p', 'up');
    ip('-n', ns, 'link', 'set', 'eth1', 'up');
    ip('-n', ns, 'addr', 'add', '192.168.56.11/24', 'dev', 'eth1');
    const state = mkdtempSync(join(scratch, 'state-'));
    // Only the state paths move out of /var/lib: the rest is the file as shipped.
    const p = spawn('ip', ['netns', 'exec', ns, process.execPath, join(root, 'examples/kv/replica.js'), '--config', rendered('deploy/vagrant/kv.yaml', 0), '--state-dir', state, '--log-dump', join(state, 'log.json')], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => p.on('close', (c) => r(c)));
    try {
      const deadline = Date.now() + 60_000;
      while (!out.includes('"event":"listening"')) {
        if (Date.now() > deadline || p.exitCode !== null) throw new Error(`no listening line; stdout ${out} stderr ${err}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const l = JSON.parse(out.split('\n').find((x) => x.includes('"event":"listening"'))!) as Record<string, unknown>;
      expect(l).toMatchObject({ id: 0, n: 3, group: '1:239.7.7.1:7500', member: '192.168.56.11:7600', peer: '192.168.56.11:7700', recovering: false });
      // The agent's log format (agent/logger.ts), and the build it runs.
      expect(l).toMatchObject({ level: 'info', time: expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/), version: expect.any(String), commit: expect.any(String) });
    } finally {
      p.kill('SIGTERM');
    }
    expect(await exited, err).toBe(0);
    expect(out).toMatch(/"event":"stopped","signal":"SIGTERM"/);
  }, 90_000);
});
