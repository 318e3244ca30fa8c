// One-sequencer failover pairs (agent/pair-session.ts, agent/standby.ts):
// the active's and the standby's sessions never coincide, the standby's is
// above the active's when it takes over, and it takes over only when the
// active's heartbeat stops; the config (groups[].role, --role) and what
// planGroups gives a paired group. No kernel: the data path is a map in memory.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRunArgs, runConfig } from '../agent/args.ts';
import { ConfigError, parseConfig } from '../agent/config.ts';
import { planGroups } from '../agent/groups.ts';
import { PAIR_EPOCH_MS, PAIR_STEP_MAX, pairSession, roleOfSession } from '../agent/pair-session.ts';
import { StandbyWatch } from '../agent/standby.ts';
import { emptyHeader, encodeMessage, MsgType } from '../bpf/wire.ts';
import { SessionStore } from '../agent/session.ts';

const dir = mkdtempSync(join(tmpdir(), 'xseq-pair-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const T0 = PAIR_EPOCH_MS + 1_000_000_000_000; // a second in 2056: 2 x 1e9
const sec = (k: number) => T0 + k * 1000;

describe('the pair rule', () => {
  it('active even, standby odd, from the clock, above the last one used', () => {
    expect(pairSession('active', sec(0))).toBe(2_000_000_000);
    expect(pairSession('standby', sec(0) + 999)).toBe(2_000_000_001);
    expect(roleOfSession(2_000_000_000)).toBe('active');
    expect(roleOfSession(2_000_000_001)).toBe('standby');
    // A clock that went back (or a restart in the same second): next of its parity above the last.
    expect(pairSession('active', sec(0), 2_000_000_000)).toBe(2_000_000_002);
    expect(pairSession('active', sec(0), 2_000_000_001)).toBe(2_000_000_002);
    expect(pairSession('standby', sec(0), 2_000_000_001)).toBe(2_000_000_003);
    expect(pairSession('standby', sec(0), 2_000_000_002)).toBe(2_000_000_003);
  });

  it('a host back after a long time steps by at most PAIR_STEP_MAX (the replicas\' session bound), keeping its parity', () => {
    const last = 2_000_000_000;
    const a = pairSession('active', sec(3600 * 24), last);
    expect(a - last).toBeLessThanOrEqual(PAIR_STEP_MAX);
    expect(a % 2).toBe(0);
    expect(a).toBeGreaterThan(last);
    const s = pairSession('standby', sec(3600 * 24), last);
    expect(s % 2).toBe(1);
    expect(s - last).toBeLessThanOrEqual(PAIR_STEP_MAX);
  });

  it('randomized: a standby refreshed since the active was created is above it, and no session is ever on both hosts', () => {
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const used = { active: new Set<number>(), standby: new Set<number>() };
    let lastA = 0;
    let lastS = 0;
    for (let i = 0; i < 2000; i++) {
      const created = T0 + Math.floor(rnd() * 1e7);
      const a = pairSession('active', created, lastA);
      lastA = Math.max(lastA, a);
      used.active.add(a);
      // The standby's refresh ran at some time at or after the active's creation.
      const refreshed = created + Math.floor(rnd() * 5000);
      const s = pairSession('standby', refreshed, lastS);
      lastS = Math.max(lastS, s);
      used.standby.add(s);
      expect(s).toBeGreaterThan(a);
    }
    for (const x of used.active) expect(used.standby.has(x)).toBe(false);
  });
});

describe('the standby watch', () => {
  const hb = (type: number, groupId: number, sequencerId: number) =>
    encodeMessage({ ...emptyHeader(), type, groupId, sequencerId, session: 2_000_000_000 }, new Uint8Array(0));
  const watched = [{ id: 1, addr: '239.7.7.1', port: 7500, sequencerId: 1, takeoverMs: 100 }];

  it("takes over once the active's flushes and stamps stop for takeoverMs, once; its own traffic, other groups and junk are no heartbeat", () => {
    const w = new StandbyWatch(watched, 0);
    // Clients knock all along (their requests reach the standby and are refused).
    let knocks = 0n;
    const knock = (t: number) => w.knocked((knocks += 1n), t);
    knock(0);
    const tick = (to: number) => {
      for (let t = to - 20; t < to; t += 5) w.due(t);
      knock(to);
      return w.due(to);
    };
    expect(tick(99)).toEqual([]);
    w.heard(hb(MsgType.FLUSH, 1, 0), 50);
    w.heard(hb(MsgType.SEQUENCED, 1, 0), 120);
    // The active's session, from its heartbeats: the standby's goes above it.
    expect(w.observedSession(1)).toBe(2_000_000_000);
    expect(tick(219)).toEqual([]);
    // Not heartbeats: its own id, another group, an ACK, not xseq at all.
    w.heard(hb(MsgType.FLUSH, 1, 1), 200);
    w.heard(hb(MsgType.FLUSH, 2, 0), 210);
    w.heard(hb(MsgType.ACK, 1, 0), 215);
    w.heard(new Uint8Array([1, 2, 3]), 216);
    expect(w.counters.heartbeats).toBe(2);
    expect(w.serving(1)).toBe(false);
    expect(tick(220)).toEqual([1]);
    expect(w.serving(1)).toBe(true);
    // Reported once; a heartbeat afterwards (the old active back) changes nothing.
    w.heard(hb(MsgType.FLUSH, 1, 0), 230);
    expect(tick(10_000)).toEqual([]);
    expect(w.counters.takeovers).toBe(1);
  });

  it('a silent active alone is not enough: only once clients knock on the standby too', () => {
    const w = new StandbyWatch(watched, 0);
    w.knocked(5n, 0);
    for (let t = 5; t <= 1000; t += 5) expect(w.due(t)).toEqual([]);
    // The same total again is no knock; one more is.
    w.knocked(5n, 1001);
    expect(w.due(1002)).toEqual([]);
    w.knocked(6n, 1003);
    expect(w.due(1004)).toEqual([1]);
  });

  it('a check that comes late (this process stalled, heartbeats may wait unread) decides nothing', () => {
    const w = new StandbyWatch(watched, 0);
    w.knocked(0n, 0);
    w.knocked(1n, 1);
    expect(w.due(10)).toEqual([]);
    // 200 ms without a check: a stall of ours, not necessarily of the active.
    expect(w.due(210)).toEqual([]);
    expect(w.counters.lateChecks).toBe(1);
    w.heard(hb(MsgType.FLUSH, 1, 0), 211);
    expect(w.due(215)).toEqual([]);
    // Late again: nothing, though the active has been quiet since 211...
    expect(w.due(315)).toEqual([]);
    expect(w.counters.lateChecks).toBe(2);
    // ...and the next check, with nothing heard meanwhile and a client knocking, takes over.
    expect(w.due(320)).toEqual([]);
    w.knocked(2n, 321);
    expect(w.due(322)).toEqual([1]);
  });

  it('a host whose every check is late still decides, on every second one', () => {
    const w = new StandbyWatch(watched, 0);
    w.knocked(0n, 0);
    expect(w.due(0)).toEqual([]);
    w.knocked(1n, 150);
    expect(w.due(150)).toEqual([]); // late: skipped
    w.knocked(2n, 200);
    expect(w.due(200)).toEqual([1]); // late again, but the loop has read its sockets since
  });

  it('an active never heard from gets one full timeout from the start', () => {
    const w = new StandbyWatch(watched, 1_000);
    w.knocked(0n, 1_000);
    w.knocked(1n, 1_050);
    expect(w.due(1_099)).toEqual([]);
    expect(w.due(1_100)).toEqual([1]);
    // The first check is never late: there was none before it.
  });
});

describe('paired groups: configuration and sessions', () => {
  const base = { interface: 'eth1', flushIntervalMs: 2, groups: [{ id: 1, multicast: '239.7.7.1:7500', sequencerId: 1, role: 'standby' }] };

  it('planGroups: the active takes its session by the pair rule; the standby waits off the data path', () => {
    const store = SessionStore.open(join(dir, `s${n++}`));
    store.set(1, { session: 2_000_000_041, interface: 'eth1', dataPath: 'created', role: 'standby' });
    const writes: number[] = [];
    const map = { windowSlots: 1024, windows: 4, group: () => undefined, setGroup: (id: number) => void writes.push(id), disableGroup() {}, resetSeq() {}, lastSeq: () => 0n };
    const [p] = planGroups(map, parseConfig(base, 'test'), store, false, new Map(), () => sec(10));
    expect(p).toMatchObject({ id: 1, action: 'standby' });
    expect(p!.write).toBeUndefined();
    expect(store.get(1)).toMatchObject({ session: 2_000_000_041, dataPath: 'standby', role: 'standby' });
    const active = SessionStore.open(join(dir, `s${n++}`));
    active.set(1, { session: 2_000_000_040, interface: 'eth1', dataPath: 'created', role: 'active' });
    const [q] = planGroups(map, parseConfig({ ...base, groups: [{ ...base.groups[0], role: 'active' }] }, 'test'), active, false, new Map(), () => sec(10));
    // The clock says 2_000_000_020, but this host already used 40: the next even above it.
    expect(q).toMatchObject({ action: 'created', session: 2_000_000_042 });
    expect(active.get(1)).toMatchObject({ session: 2_000_000_042, role: 'active' });
  });

  it('--role GROUP:standby sets groups[].role; mistakes name the field and the flag', () => {
    const c = runConfig(parseRunArgs(['--iface', 'eth1', '--group', '1:239.7.7.1:7500', '--flush-interval', '2', '--role', '1:standby'])!, { XSEQ_CONFIG: '' });
    expect(c.groups[0]!.role).toBe('standby');
    const bad = (args: string[]) => {
      try {
        runConfig(parseRunArgs(['--iface', 'eth1', '--group', '1:239.7.7.1:7500', '--flush-interval', '2', ...args])!, { XSEQ_CONFIG: '' });
      } catch (e) {
        return (e as Error).message;
      }
      throw new Error('accepted');
    };
    expect(bad(['--role', '1:primary'])).toMatch(/groups\[0\]\.role: must be one of "active", "standby" \(from --role 1:primary\)/);
    expect(bad(['--role', 'standby'])).toMatch(/--role must be GROUP:active or GROUP:standby/);
    expect(bad(['--role', '1:standby', '--drain', '1'])).toMatch(/groups\[0\]\.role: a standby pair is for a group with one sequencer/);
    expect(bad(['--role', '1:active', '--session', '5'])).toMatch(/session: cannot be forced while group 1 has a role/);
    expect(() => parseConfig({ ...base, groups: [{ ...base.groups[0], role: 'standby', draining: true }] }, 'test')).toThrow(ConfigError);
    const noFlush = (() => {
      try {
        runConfig(parseRunArgs(['--iface', 'eth1', '--group', '1:239.7.7.1:7500', '--role', '1:active'])!, { XSEQ_CONFIG: '' });
      } catch (e) {
        return (e as Error).message;
      }
      return 'accepted';
    })();
    expect(noFlush).toMatch(/flushIntervalMs: must be more than 0 for group 1 with a role: the active's flushes are the standby's heartbeat/);
    expect(() => parseConfig({ ...base, groups: [{ ...base.groups[0], takeoverMs: 4 }] }, 'test')).toThrow(/takeoverMs: must be more than 2 flush intervals/);
    expect(() => parseConfig({ ...base, groups: [{ ...base.groups[0], role: 'active', takeoverMs: 50 }] }, 'test')).toThrow(/takeoverMs: is for the standby of a pair/);
  });
});
