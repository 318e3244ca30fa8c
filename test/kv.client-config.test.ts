// The KV client's sequencer configuration (examples/kv/client-config.ts) and
// the CLI end to end on loopback: two "sequencers", one an unreplicated KV
// server (it answers like the aggregator) and one a silent socket, so a
// request fails over; both silent, so the deadline error names the
// attempts. Every child process has a timeout.
import { execFile } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { clientKeyOf, groupKey } from '../bpf/mac.ts';
import { decodeMessage } from '../bpf/wire.ts';
import { KvClient } from '../examples/kv/client.ts';
import { clientConfig, mergeClientFlags, parseSequencer, readClientConfigFile } from '../examples/kv/client-config.ts';
import { parseReplicaArgs } from '../examples/kv/replica-config.ts';
import { KvStore } from '../examples/kv/store.ts';
import { GROUP_ID, HOST, loopbackGroup } from './helpers/loopback-group.ts';
import { spawn } from 'node:child_process';
import { fnv1a32 } from '../replica/key-hash.ts';

const ROOT = join(import.meta.dirname, '..');
const CLI = join(ROOT, 'examples', 'kv', 'cli.ts');
const EXAMPLE = join(ROOT, 'examples', 'kv', 'client.example.yaml');

describe('KV client configuration', () => {
  it('parses ID:ADDR[:PORT] and the single-sequencer ADDR[:PORT] form', () => {
    expect(parseSequencer('10.0.0.2')).toEqual({ id: 0, host: '10.0.0.2', port: 7400 });
    expect(parseSequencer('10.0.0.2:7500')).toEqual({ id: 0, host: '10.0.0.2', port: 7500 });
    expect(parseSequencer('3:10.0.0.4')).toEqual({ id: 3, host: '10.0.0.4', port: 7400 });
    expect(parseSequencer('3:10.0.0.4:7401')).toEqual({ id: 3, host: '10.0.0.4', port: 7401 });
    expect(() => parseSequencer('x:10.0.0.4:7401')).toThrow(/is not ID:ADDR\[:PORT\]/);
    expect(() => parseSequencer('70000:10.0.0.4')).toThrow(/id 0\.\.65535/);
    expect(() => parseSequencer('1:seq.example:7400')).toThrow(/is not IPV4:PORT/);
  });

  it('keys: clientKeyFile gives the client key; groupKeyFile gives the group key and its client key; not both; a loose file names its code', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xseq-kv-keys-'));
    try {
      const g = join(dir, 'g.key');
      const ck = join(dir, 'c.key');
      const hex = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
      const derived = clientKeyOf(groupKey(Buffer.from(hex, 'hex')));
      writeFileSync(g, hex, { mode: 0o600 });
      writeFileSync(ck, Buffer.from(derived.bytes).toString('hex'), { mode: 0o600 });
      const base = { sequencer: '10.0.0.2' };
      expect(clientConfig({ ...base, clientKeyFile: ck })).toMatchObject({ clientKey: { bytes: derived.bytes }, groupKey: null });
      const op = clientConfig({ ...base, groupKeyFile: g });
      expect(op.clientKey?.bytes).toEqual(derived.bytes);
      expect(Buffer.from(op.groupKey!.bytes).toString('hex')).toBe(hex);
      expect(() => clientConfig({ ...base, clientKeyFile: ck, groupKeyFile: g })).toThrow(/not both/);
      expect(() => clientConfig({ ...base, clientKeyFile: 'c.key' })).toThrow(/clientKeyFile: not an absolute path/);
      chmodSync(ck, 0o644);
      expect(() => clientConfig({ ...base, clientKeyFile: ck })).toThrow(/EKEY_PERMISSIONS/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the example file is valid', () => {
    expect(clientConfig(readClientConfigFile(EXAMPLE))).toEqual({
      groupId: 1,
      sequencers: [
        { id: 0, host: '10.0.0.2', port: 7400 },
        { id: 1, host: '10.0.0.3', port: 7400 },
      ],
      policy: 'round-robin',
      retryMs: 200,
      timeoutMs: 10_000,
      backoffMs: 1000,
      bind: null,
      directAcks: false,
      replicas: 0,
      clientKey: null,
      groupKey: null,
    });
  });

  it('flags win over the file; repeated --sequencer replaces its list', () => {
    const file = readClientConfigFile(EXAMPLE);
    const c = clientConfig(mergeClientFlags(file, { sequencer: ['5:10.0.0.9:7400', '6:10.0.0.10'], policy: 'key', retryMs: '50', group: '7' }));
    expect(c).toMatchObject({ groupId: 7, policy: 'key', retryMs: 50, sequencers: [{ id: 5 }, { id: 6, port: 7400 }] });
    expect(clientConfig(mergeClientFlags(file, { sequencer: ['10.0.0.1'] })).sequencers).toEqual([{ id: 0, host: '10.0.0.1', port: 7400 }]);
  });

  it('every mistake names its field', () => {
    const bad = (raw: Record<string, unknown>, re: RegExp) => expect(() => clientConfig(raw)).toThrow(re);
    bad({}, /^sequencers: required/);
    bad({ sequencers: ['0:10.0.0.1', '0:10.0.0.2'] }, /^sequencers: sequencer id 0 appears twice/);
    bad({ sequencer: '10.0.0.1', sequencers: ['1:10.0.0.2'] }, /^sequencers: give sequencer or sequencers, not both/);
    bad({ sequencers: ['0:10.0.0.1'], policy: 'random' }, /^policy: /);
    bad({ sequencers: ['0:10.0.0.1'], retryMs: '0' }, /^retryMs: /);
    bad({ sequencers: [{ id: 1, addr: 'host' }] }, /^sequencers\.0/);
    bad({ sequencers: ['0:10.0.0.1'], typo: 1 }, /typo/);
    bad({ sequencer: 'nope' }, /^sequencer: "nope" is not ID:ADDR/);
    bad({ sequencer: '10.0.0.1', directAcks: true }, /^replicas: directAcks needs the group size/);
    bad({ sequencer: '10.0.0.1', directAcks: true, replicas: 4 }, /^replicas: directAcks needs the group size, an odd number/);
  });

  it('--direct-acks --replicas N: the client counts ACKs itself', () => {
    expect(clientConfig(mergeClientFlags({}, { sequencer: ['10.0.0.1'], directAcks: true, replicas: '3' }))).toMatchObject({ directAcks: true, replicas: 3 });
  });

  it('the replica side: --acks-to client, default sequencer, anything else refused', () => {
    const base = ['--group', '1:239.7.7.1:7500', '--id', '0', '--member', '10.0.0.11:7600', '--peer', '0:10.0.0.11:7700', '--sequencer', '10.0.0.2'];
    expect(parseReplicaArgs(base)!.acksTo).toBe('sequencer');
    expect(parseReplicaArgs([...base, '--acks-to', 'client'])!.acksTo).toBe('client');
    expect(() => parseReplicaArgs([...base, '--acks-to', 'clients'])).toThrow(/^acksTo: "clients" is not sequencer or client/);
  });
});

// ---- the CLI on loopback -------------------------------------------------------

const tmp = mkdtempSync(join(tmpdir(), 'xseq-kvclient-'));
const cleanup: (() => unknown)[] = [];
afterAll(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
  rmSync(tmp, { recursive: true, force: true });
});

async function silentSequencer(): Promise<{ port: number; got: bigint[]; sock: Socket }> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const got: bigint[] = [];
  sock.on('message', (b) => {
    const d = decodeMessage(b);
    if (d.ok) got.push(d.message.header.requestId);
  });
  cleanup.push(() => new Promise<void>((r) => sock.close(() => r())));
  return { port: sock.address().port, got, sock };
}

/** A TS child process (node --import tsx), stopped by its own pid. */
function spawnTs(script: string, args: string[]) {
  const p = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  return {
    async waitFor(pred: (s: string) => boolean, ms: number): Promise<void> {
      const until = Date.now() + ms;
      while (!pred(out)) {
        if (Date.now() > until || p.exitCode !== null) throw new Error(`child did not get ready: ${out}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop(): Promise<void> {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
      await exited;
    },
  };
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

describe('KV CLI with several sequencers', () => {
  it('--help documents the sequencer list and the policy', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    for (const s of ['--sequencer ID:ADDR[:PORT]', '--policy round-robin|key', '--backoff-ms MS', '--config FILE', 'FNV-1a 32']) expect(r.stdout).toContain(s);
  });

  it('fails over from a silent sequencer to the unreplicated server; both silent gives ETIMEDOUT with the attempts', async () => {
    const silent = await silentSequencer();
    // A free port for the server: bind, read, release.
    const probe = await silentSequencer();
    const port = probe.port;
    await new Promise<void>((r) => probe.sock.close(() => r()));
    cleanup.pop();
    const server = spawnTs(join(ROOT, 'examples', 'kv', 'unreplicated.ts'), ['--listen', `127.0.0.1:${port}`, '--max-ms', '80000']);
    cleanup.push(() => server.stop());
    await server.waitFor((l) => l.includes('"listening"'), 30_000);

    const seqs = ['--sequencer', `0:127.0.0.1:${silent.port}`, '--sequencer', `1:127.0.0.1:${port}`];
    const put = await cli(['put', 'k', 'v1', ...seqs, '--retry-ms', '500', '--timeout-ms', '20000']);
    expect(put.stderr).toBe('');
    expect(put.code).toBe(0);
    expect(JSON.parse(put.stdout)).toMatchObject({ ok: true });
    // A fresh process starts round-robin at sequencer 0: one attempt there, then 1.
    expect(silent.got.length).toBe(1);
    // The key policy: 'key1' hashes to sequencer 1 and goes straight there; 'k' to the silent 0.
    expect([fnv1a32('key1') % 2, fnv1a32('k') % 2]).toEqual([1, 0]);
    const put2 = await cli(['put', 'key1', 'v2', ...seqs, '--policy', 'key', '--retry-ms', '500']);
    expect(JSON.parse(put2.stdout)).toMatchObject({ ok: true });
    expect(silent.got.length).toBe(1);
    const get = await cli(['get', 'k', ...seqs, '--policy', 'key', '--retry-ms', '500']);
    expect(JSON.parse(get.stdout)).toEqual({ key: 'k', found: true, value: 'v1' });
    expect(silent.got.length).toBe(2);

    const cfg = join(tmp, 'client.yaml');
    writeFileSync(cfg, `sequencers:\n  - "0:127.0.0.1:${silent.port}"\n  - { id: 4, addr: 127.0.0.1, port: ${silent.port} }\nretryMs: 100\ntimeoutMs: 700\n`);
    const dead = await cli(['get', 'k', '--config', cfg]);
    expect(dead.code).toBe(1);
    expect(dead.stderr).toMatch(/^kv: request 1 of client \d+ not certified within 700000 us \((\d+) attempts; sequencer 0: \d+, sequencer 4: \d+\)\n$/);
  }, 90_000);
});

describe('KV client with direct ACKs (aggregation off)', () => {
  it('put/get/cas through three real replicas that ACK the client itself', async () => {
    const closers: (() => unknown)[] = [];
    try {
      const g = await loopbackGroup(() => new KvStore(), closers);
      const kv = await KvClient.open({ sequencer: g.sequencer, groupId: GROUP_ID, bindAddress: HOST, directAcks: true, replicas: 3, retryMs: 300, timeoutMs: 10_000 });
      closers.push(() => kv.close());
      const cert = await kv.put('a', 'one');
      expect(cert).toMatchObject({ session: 1, seq: 1, leaderNum: 0 });
      expect(await kv.cas('a', 'one', 'two')).toEqual({ swapped: true, current: new Uint8Array(Buffer.from('two')) });
      expect(Buffer.from((await kv.get('a'))!).toString()).toBe('two');
      const k = kv.counters();
      expect(k.replies).toBe(0);
      expect(k.acks).toBeGreaterThanOrEqual(6);
      await expect(KvClient.open({ sequencer: g.sequencer, groupId: GROUP_ID, directAcks: true, replicas: 2 })).rejects.toThrow(/an odd number/);
    } finally {
      for (const f of closers.reverse()) await f();
    }
  }, 30_000);
});
