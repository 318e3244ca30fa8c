// The KV replica's configuration (examples/kv/replica-config.ts): the
// example file is valid, flags override it, and every mistake names the
// field it is in.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, KV_PROTOCOL_DEFAULTS, parseReplicaArgs } from '../examples/kv/replica-config.ts';

const EXAMPLE = join(import.meta.dirname, '..', 'examples', 'kv', 'replica.example.yaml');
const FLAGS = ['--group', '1:239.7.7.1:7500', '--id', '2', '--member', '10.0.0.13:7602', '--peer', '0:10.0.0.11:7700', '--peer', '1:10.0.0.12:7700', '--peer', '2:10.0.0.13:7700', '--sequencer', '10.0.0.2'];

describe('KV replica configuration', () => {
  it('--key-file: the key is read at parse; a missing, loose or wrong-size file names the field and its code', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kv-key-'));
    try {
      const key = join(dir, 'group.key');
      writeFileSync(key, '00112233445566778899aabbccddeeff\n');
      chmodSync(key, 0o600);
      const c = parseReplicaArgs([...FLAGS, '--key-file', key])!;
      expect(c.keyFile).toBe(key);
      expect(Buffer.from(c.key!.bytes).toString('hex')).toBe('00112233445566778899aabbccddeeff');
      expect(parseReplicaArgs(FLAGS)!.key).toBeNull();
      expect(() => parseReplicaArgs([...FLAGS, '--key-file', join(dir, 'none')])).toThrow(/^keyFile: .*does not exist.*\[EKEY_MISSING\]/);
      chmodSync(key, 0o644);
      expect(() => parseReplicaArgs([...FLAGS, '--key-file', key])).toThrow(/^keyFile: .*chmod 600.*\[EKEY_PERMISSIONS\]/);
      writeFileSync(key, 'short');
      chmodSync(key, 0o600);
      expect(() => parseReplicaArgs([...FLAGS, '--key-file', key])).toThrow(/^keyFile: .*\[EKEY_SIZE\]/);
      expect(() => parseReplicaArgs([...FLAGS, '--key-file', 'group.key'])).toThrow(ConfigError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the example file is a complete, valid configuration', () => {
    const c = parseReplicaArgs(['--config', EXAMPLE])!;
    expect(c).toMatchObject({
      groupId: 1,
      group: { host: '239.7.7.1', port: 7500 },
      id: 0,
      member: { host: '10.0.0.11', port: 7600 },
      sequencer: { host: '10.0.0.2', port: 7400 },
      repair: { host: '10.0.0.2', port: 7401 },
      recover: false,
      stateDir: '/var/lib/xseq-kv-0',
      statsIntervalMs: 10_000,
      xdp: 'auto',
      xdpIface: null,
      xdpMode: 'auto',
      xdpRetransmitKeep: 1024,
    });
    expect(c.peers.map((p) => `${p.host}:${p.port}`)).toEqual(['10.0.0.11:7700', '10.0.0.12:7700', '10.0.0.13:7700']);
    expect(c.protocol).toEqual({ ...KV_PROTOCOL_DEFAULTS, leaderTimeoutUs: 500_000 });
  });

  it('reads YAML too, peers as a list or a mapping by id', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kv-config-'));
    try {
      const file = join(dir, 'kv-1.yaml');
      writeFileSync(
        file,
        ['group: 1:239.7.7.1:7500', 'id: 1', 'member: 10.0.0.12:7600', 'peers:', '  0: 10.0.0.11:7700', '  1: 10.0.0.12:7700', '  2: 10.0.0.13:7700', 'sequencer: 10.0.0.2', 'repair: none', 'recover: true', ''].join('\n'),
      );
      const c = parseReplicaArgs(['--config', file])!;
      expect(c).toMatchObject({ id: 1, repair: null, recover: true, sequencer: { host: '10.0.0.2', port: 7400 } });
      expect(c.peers.map((p) => p.host)).toEqual(['10.0.0.11', '10.0.0.12', '10.0.0.13']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('flags alone work, and flags win over the file', () => {
    const c = parseReplicaArgs(FLAGS)!;
    expect(c).toMatchObject({ id: 2, sequencer: { host: '10.0.0.2', port: 7400 }, repair: { host: '10.0.0.2', port: 7401 }, session: 0, stateDir: null, logDump: null, xdp: 'off', xdpMode: 'auto', xdpRetransmitKeep: null });
    expect(parseReplicaArgs(['--config', EXAMPLE, '--xdp', 'on', '--xdp-iface', 'eth1', '--xdp-mode', 'generic', '--xdp-retransmit-keep', '4096'])).toMatchObject({ xdp: 'on', xdpIface: 'eth1', xdpMode: 'generic', xdpRetransmitKeep: 4096 });
    const o = parseReplicaArgs(['--config', EXAMPLE, '--id', '1', '--member', '10.0.0.12:7601', '--repair', 'none', '--recover', '--protocol', '{"syncIntervalUs":5000}'])!;
    expect(o).toMatchObject({ id: 1, member: { host: '10.0.0.12', port: 7601 }, repair: null, recover: true });
    expect(o.protocol.syncIntervalUs).toBe(5000);
    // A bare port: the address is this replica's own entry in the peers.
    expect(parseReplicaArgs([...FLAGS, '--member', '7605'])!.member).toEqual({ host: parseReplicaArgs(FLAGS)!.peers[2]!.host, port: 7605 });
    expect(parseReplicaArgs(['--help'])).toBeNull();
  });

  it('Hydra: sequencers as a list by id; the old keys mean sequencer 0; one entry is the single-sequencer form', () => {
    const base = FLAGS.slice(0, FLAGS.indexOf('--sequencer'));
    const list = '[{"id":1,"addr":"10.0.0.3","port":7410,"repairPort":null},{"id":0,"addr":"10.0.0.2"}]';
    const c = parseReplicaArgs([...base, '--sequencers', list])!;
    expect(c.sequencers).toEqual([
      { id: 0, sequencer: { host: '10.0.0.2', port: 7400 }, repair: { host: '10.0.0.2', port: 7401 } },
      { id: 1, sequencer: { host: '10.0.0.3', port: 7410 }, repair: null },
    ]);
    expect(c).toMatchObject({ sequencer: { host: '10.0.0.2', port: 7400 }, repair: { host: '10.0.0.2', port: 7401 } });
    expect(parseReplicaArgs(FLAGS)!.sequencers).toEqual([{ id: 0, sequencer: { host: '10.0.0.2', port: 7400 }, repair: { host: '10.0.0.2', port: 7401 } }]);
    expect(parseReplicaArgs([...base, '--sequencers', '[{"id":0,"addr":"10.0.0.2"}]'])!.sequencers).toHaveLength(1);
    const dir = mkdtempSync(join(tmpdir(), 'kv-hydra-'));
    try {
      const f = join(dir, 'c.yaml');
      writeFileSync(f, 'sequencers:\n  - {id: 0, addr: 10.0.0.2, port: 7400, repairPort: 7401}\n  - {id: 1, addr: 10.0.0.3}\n');
      expect(parseReplicaArgs([...base, '--config', f])!.sequencers.map((q) => q.id)).toEqual([0, 1]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const bad = (args: string[], msg: RegExp) => expect(() => parseReplicaArgs([...base, ...args])).toThrow(msg);
    bad(['--sequencers', list, '--sequencer', '10.0.0.2'], /^sequencers: give either sequencers .* or sequencer\/repair/);
    bad(['--sequencers', '[]'], /^sequencers: expected a non-empty list/);
    bad(['--sequencers', '[{"id":0,"addr":"10.0.0.2"},{"id":0,"addr":"10.0.0.3"}]'], /^sequencers\[1\].id: sequencer 0 given twice/);
    bad(['--sequencers', '[{"id":0,"addr":"seq.example"}]'], /^sequencers\[0\].addr: seq.example is not an IPv4 address/);
    bad(['--sequencers', '[{"id":0,"addr":"10.0.0.2","repair":7401}]'], /^sequencers\[0\].repair: unknown/);
    bad([], /^sequencer: required \(or sequencers/);
  });

  it('Hydra: a joining sequencer is routable but marked, and at least one member is required', () => {
    const base = FLAGS.slice(0, FLAGS.indexOf('--sequencer'));
    const c = parseReplicaArgs([...base, '--sequencers', '[{"id":0,"addr":"10.0.0.2","joining":true},{"id":1,"addr":"10.0.0.3"},{"id":2,"addr":"10.0.0.4","joining":false}]'])!;
    expect(c.sequencers.map((q) => [q.id, q.joining ?? false])).toEqual([
      [0, true],
      [1, false],
      [2, false],
    ]);
    // The single-sequencer fields name a member, never the joining one.
    expect(c.sequencer).toEqual({ host: '10.0.0.3', port: 7400 });
    const bad = (args: string[], msg: RegExp) => expect(() => parseReplicaArgs([...base, ...args])).toThrow(msg);
    bad(['--sequencers', '[{"id":0,"addr":"10.0.0.2","joining":"yes"}]'], /^sequencers\[0\].joining: "yes" is not true or false/);
    bad(['--sequencers', '[{"id":2,"addr":"10.0.0.2","joining":true}]'], /^sequencers: every one is joining/);
  });

  it('names the field of every mistake', () => {
    const bad = (args: string[], msg: RegExp | typeof ConfigError) => expect(() => parseReplicaArgs(args)).toThrow(msg);
    const without = (flag: string) => {
      const i = FLAGS.indexOf(flag);
      return [...FLAGS.slice(0, i), ...FLAGS.slice(i + 2)];
    };
    bad(without('--member'), /^member: required/);
    bad([...FLAGS, '--group', '1:10.0.0.1:7500'], /^group: 10.0.0.1 is not an IPv4 multicast address/);
    bad([...FLAGS, '--id', '3'], /^id: .* 0\.\.2/);
    bad(['--group', '1:239.7.7.1:7500', '--id', '0', '--member', '10.0.0.11:7600', '--peer', '0:10.0.0.11:7700', '--peer', '1:10.0.0.12:7700', '--sequencer', '10.0.0.2'], /^peers: 2 replicas/);
    bad(['--group', '1:239.7.7.1:7500', '--id', '0', '--member', '10.0.0.11:7600', '--peer', '0:10.0.0.11:7700', '--peer', '2:10.0.0.12:7700', '--sequencer', '10.0.0.2'], /^peers: ids must be 0\.\.1/);
    bad([...FLAGS, '--peer', '2:10.0.0.14:7700'], /^peers: replica 2 given twice/);
    bad([...FLAGS, '--member', '10.0.0.13'], /^member: .*no port/);
    bad([...FLAGS, '--sequencer', 'seq.example:7400'], /^sequencer: /);
    bad([...FLAGS, '--protocol', '{"leaderTimeout":5}'], /^protocol.leaderTimeout: unknown/);
    bad([...FLAGS, '--protocol', '{"leaderTimeoutUs":-1}'], /^protocol.leaderTimeoutUs: -1 is not a positive number/);
    bad([...FLAGS, '--stats-interval', 'often'], /^statsIntervalMs: /);
    bad([...FLAGS, '--no-such-flag'], ConfigError);
    bad([...FLAGS, '--xdp', 'yes'], /^xdp: "yes" is not one of off, on, auto/);
    bad([...FLAGS, '--xdp-mode', 'offload'], /^xdpMode: "offload" is not one of auto, native, generic/);
    bad([...FLAGS, '--xdp-retransmit-keep', 'lots'], /^xdpRetransmitKeep: /);
    bad(['--config', '/nonexistent.json'], /^--config \/nonexistent.json: /);
    bad([...FLAGS, '--member', '0'], /^member: .*port "0" is not 1\.\.65535/);
    const dir = mkdtempSync(join(tmpdir(), 'kv-config-'));
    try {
      const file = join(dir, 'kv.yaml');
      writeFileSync(file, `${readFileSync(EXAMPLE, 'utf8')}\nstatsInterval: 1000\n`);
      bad(['--config', file], /^statsInterval: not a known setting .*known: group, id, member/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
