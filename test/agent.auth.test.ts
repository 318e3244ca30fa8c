// Authentication on the agent side (agent/keys.ts): the config refuses bad
// key files naming the field and the flag; with a group key the kernel
// stamps MACs, the agent's re-sends and repair answers are sealed with the
// same key, a repair request without a valid MAC gets no answer at all,
// and a reload (SIGHUP) swaps the key in the kernel and in user space, or
// keeps the old one when the new file is bad.
import { createSocket, type Socket } from 'node:dgram';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runConfig } from '../agent/args.ts';
import { ConfigError, parseConfig } from '../agent/config.ts';
import { GroupKeys } from '../agent/keys.ts';
import { RepairService } from '../agent/repair.ts';
import { Retransmitter } from '../agent/retransmit.ts';
import { SlotWindow } from '../agent/window.ts';
import { checkMac, clientKeyOf, groupKey, seal } from '../bpf/mac.ts';
import type { GroupConfig } from '../bpf/maps.ts';
import { encodeRepairRequest } from '../bpf/repair.ts';
import { Sequencer } from '../bpf/sequencer.ts';
import { Flags, MsgType, readHeader } from '../bpf/wire.ts';
import { parseFrame } from '../tools/frame.ts';
import { describePrivileged } from './helpers/privileged.ts';
import { ack, bindTo, GROUP_ID, ReplicaSockets, requestFrame, resetGroup, SESSION, SETTLE_MS, sleep, stamp, waitFor } from './helpers/window-fixture.ts';

const dir = mkdtempSync(join(tmpdir(), 'xseq-auth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const KEY_HEX = '00112233445566778899aabbccddeeff';
const KEY2_HEX = 'ffeeddccbbaa99887766554433221100';
function keyFile(name: string, body: string, mode = 0o600): string {
  const p = join(dir, name);
  writeFileSync(p, body);
  chmodSync(p, mode);
  return p;
}
const silent = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
function recorder() {
  const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const at = (level: string) => (obj: object, msg: string) => lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

describe('key files in the agent config', () => {
  const cfg = (keyFile: string) => ({ interface: 'eth1', groups: [{ id: 1, multicast: '239.7.7.1:7500', keyFile }] });
  it.each([
    ['missing', () => join(dir, 'none.key'), /groups\[0\]\.keyFile: key file .* does not exist.*\[EKEY_MISSING\]/],
    ['world-readable', () => keyFile('loose.key', KEY_HEX, 0o644), /groups\[0\]\.keyFile: .*mode 644.*chmod 600.*\[EKEY_PERMISSIONS\]/],
    ['the wrong size', () => keyFile('short.key', 'abcd'), /groups\[0\]\.keyFile: .*holds 4 bytes.*\[EKEY_SIZE\]/],
    ['a relative path', () => 'group.key', /groups\[0\]\.keyFile: must be an absolute path/],
  ])('%s: ECONFIG naming the field', (_name, path, re) => {
    let err: unknown;
    try {
      parseConfig(cfg(path()), 'test');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('ECONFIG');
    expect((err as ConfigError).message).toMatch(re);
  });

  it('--key-file GROUP:PATH sets groups[].keyFile, and a mistake in it names the flag', () => {
    const good = keyFile('good.key', KEY_HEX);
    const args = { scalars: [{ path: ['interface'], value: 'eth1' }], groups: ['1:239.7.7.1:7500'], members: [], quorums: [], drains: [], weights: [], tolerates: [], roles: [], replace: false, detachOnExit: false, argv: [] };
    expect(runConfig({ ...args, keyFiles: [`1:${good}`] }, { XSEQ_CONFIG: '' }).groups[0]!.keyFile).toBe(good);
    expect(() => runConfig({ ...args, keyFiles: [`1:${join(dir, 'nope.key')}`] }, { XSEQ_CONFIG: '' })).toThrow(/groups\[0\]\.keyFile: .*EKEY_MISSING.*\(from --key-file 1:/);
  });
});

describePrivileged('a keyed group on the agent side (real sequencer program, UDP on loopback)', () => {
  let seq: Sequencer;
  let replicas: ReplicaSockets;
  let out: Socket;
  let group: GroupConfig;
  let window: SlotWindow;
  let repair: RepairService;
  let keys: GroupKeys;
  let file: string;
  const key = groupKey(Buffer.from(KEY_HEX, 'hex'));
  const key2 = groupKey(Buffer.from(KEY2_HEX, 'hex'));

  beforeAll(async () => {
    seq = Sequencer.load({ port: 7400, windowSlots: 16, windows: 1 });
    replicas = await ReplicaSockets.bind(3);
    out = createSocket('udp4');
    await bindTo(out, '127.0.0.1', 0);
    group = {
      mcastAddr: '239.7.7.1',
      mcastPort: replicas.port,
      sequencerId: 3,
      session: SESSION,
      enabled: true,
      // The repair service checks address and port: the members' sockets' own.
      members: [0, 1, 2].map((rid) => ({ addr: ReplicaSockets.addr(rid), port: replicas.port })),
    };
    window = new SlotWindow(seq.slots, seq.windowSlots);
  });
  afterAll(async () => {
    await repair?.close();
    replicas?.close();
    out?.close();
    seq?.close();
  });
  beforeEach(async () => {
    resetGroup(seq, GROUP_ID, group);
    replicas.clear();
    file = keyFile('group1.key', KEY_HEX);
    keys = new GroupKeys([{ id: GROUP_ID, keyFile: file }], seq, silent);
    await repair?.close();
    repair = await RepairService.start(seq, window, { port: 0, address: '127.0.0.1', keys });
  });
  afterEach(() => seq.setKey(GROUP_ID, null));

  it('the kernel stamps with the key from the file', () => {
    expect(seq.hasKey(GROUP_ID)).toBe(true);
    const r = seq.program.testRun({ data: requestFrame(1n, GROUP_ID, clientKeyOf(key)) });
    expect(checkMac(parseFrame(r.data).payload, key)).toBe('ok');
  });

  it('re-sends are sealed with the key, RETRANSMIT in the MAC', async () => {
    const n = stamp(seq, 1n, GROUP_ID, clientKeyOf(key));
    ack(seq, group, n, [0]); // ACKs without a MAC: dropped, nobody acked
    expect(seq.counters().drop_bad_mac).toBeGreaterThan(0n);
    const rt = new Retransmitter(seq, window, out, { groups: [GROUP_ID], rtoMs: 1, retries: 3, now: () => seq.slot(GROUP_ID, n)!.stampNs + 10_000_000n, log: silent, keys });
    rt.tick();
    await waitFor(() => replicas.received.every((r) => r.length >= 1), 'a re-send to each member');
    rt.stop();
    for (const r of replicas.received.flat()) {
      expect(readHeader(r.msg).flags).toBe(Flags.RETRANSMIT | Flags.MAC);
      expect(checkMac(r.msg, key)).toBe('ok');
    }
  });

  /** Sends from replica `rid`; resolves once `done` holds (no fixed waits: a loaded machine is slow), then what came back. */
  async function ask(rid: number, msg: Uint8Array, done: (got: Buffer[]) => boolean): Promise<Buffer[]> {
    const got = replicas.received[rid]!;
    const start = got.length;
    replicas.sockets[rid]!.send(msg, repair.port, '127.0.0.1');
    await waitFor(() => done(got.slice(start).map((r) => r.msg)), 'the repair service to handle the request', 10_000);
    await sleep(SETTLE_MS);
    return got.slice(start).map((r) => r.msg);
  }
  const request = (rid: number) => encodeRepairRequest({ groupId: GROUP_ID, session: SESSION, replicaId: rid, first: 1n, count: 2 });

  it('a sealed repair request is answered, every answer sealed', async () => {
    stamp(seq, 1n, GROUP_ID, clientKeyOf(key));
    const got = await ask(0, seal(request(0), key), (g) => g.some((m) => readHeader(m).type === MsgType.REPAIR_REPLY));
    expect(got.map((m) => readHeader(m).type)).toEqual([MsgType.SEQUENCED, MsgType.REPAIR_REPLY]);
    for (const m of got) expect(checkMac(m, key)).toBe('ok');
    expect(repair.counters().unauthenticated).toBe(0);
  });

  it.each([
    ['no MAC', () => request(0)],
    ['the wrong key', () => seal(request(0), key2)],
    ['a flipped bit', () => {
      const b = seal(request(0), key);
      b[30]! ^= 1;
      return b;
    }],
  ])('a repair request with %s gets nothing back, not even an ERROR, and is counted', async (_name, make) => {
    stamp(seq, 1n, GROUP_ID, clientKeyOf(key));
    const before = repair.counters();
    expect(await ask(0, make(), () => repair.counters().unauthenticated > before.unauthenticated)).toEqual([]);
    expect(repair.counters().unauthenticated - before.unauthenticated).toBe(1);
    expect(repair.counters().resent).toBe(before.resent);
  });

  it('reload (SIGHUP): a new file swaps the key in the kernel and for the agent; a bad file keeps the old one', async () => {
    writeFileSync(file, KEY2_HEX);
    const log = recorder();
    const k = new GroupKeys([{ id: GROUP_ID, keyFile: file }], seq, log);
    writeFileSync(file, KEY_HEX);
    expect(k.reload()).toEqual({ reloaded: [GROUP_ID], failed: [] });
    expect(k.key(GROUP_ID)!.bytes).toEqual(key.bytes);
    expect(checkMac(parseFrame(seq.program.testRun({ data: requestFrame(2n, GROUP_ID, clientKeyOf(key)) }).data).payload, key)).toBe('ok');
    chmodSync(file, 0o644);
    expect(k.reload()).toEqual({ reloaded: [], failed: [GROUP_ID] });
    expect(log.lines.some((l) => l.level === 'error' && l.obj['code'] === 'EKEY_PERMISSIONS')).toBe(true);
    expect(k.key(GROUP_ID)!.bytes).toEqual(key.bytes);
    expect(checkMac(parseFrame(seq.program.testRun({ data: requestFrame(3n, GROUP_ID, clientKeyOf(key)) }).data).payload, key)).toBe('ok');
  });

  it('a group without a key file: a warning at start naming it, and the kernel stamps no MAC', () => {
    const log = recorder();
    new GroupKeys([{ id: GROUP_ID }], seq, log);
    expect(log.lines.filter((l) => l.level === 'warn' && l.obj['code'] === 'WNOKEY')).toHaveLength(1);
    expect(seq.hasKey(GROUP_ID)).toBe(false);
    expect(readHeader(parseFrame(seq.program.testRun({ data: requestFrame(4n) }).data).payload).flags).toBe(0);
  });
});
