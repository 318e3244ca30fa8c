// One-sequencer failover pairs (agent/pair-session.ts): the active's and the
// standby's sessions never coincide, the standby's is above the active's
// whenever the active could die, an idle standby moves up and a serving one
// never does; the config (groups[].role, --role) and what planGroups gives a
// paired group. No kernel: the data path is a map in memory.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRunArgs, runConfig } from '../agent/args.ts';
import { ConfigError, parseConfig } from '../agent/config.ts';
import { planGroups } from '../agent/groups.ts';
import { PAIR_EPOCH_MS, pairSession, roleOfSession, StandbyRefresher } from '../agent/pair-session.ts';
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

describe('the idle standby', () => {
  function target(session: number, lastSeq = 0n) {
    const t = {
      cur: session as number | undefined,
      seq: lastSeq,
      moved: [] as number[],
      session: () => t.cur,
      lastSeq: () => t.seq,
      moveTo: (_id: number, s: number) => {
        t.moved.push(s);
        t.cur = s;
      },
    };
    return t;
  }

  it('moves up once a second while it has stamped nothing, and never once it has', () => {
    let now = sec(0);
    const t = target(pairSession('standby', now));
    const r = new StandbyRefresher([1], t, () => now);
    expect(r.tick()).toEqual([]);
    now = sec(0) + 900;
    expect(r.tick()).toEqual([]);
    now = sec(1) + 5;
    expect(r.tick()).toEqual([{ id: 1, session: 2_000_000_003 }]);
    // The active restarts at second 7: the standby's next tick is above it.
    now = sec(7) + 40;
    const active = pairSession('active', sec(7));
    r.tick();
    expect(t.cur).toBeGreaterThan(active);
    // Clients fail over: it stamps. Its session must stay (the replicas follow it now).
    t.seq = 3n;
    now = sec(20);
    expect(r.tick()).toEqual([]);
    expect(t.cur).toBe(2_000_000_015);
    // A group no longer on the data path is left alone.
    t.cur = undefined;
    t.seq = 0n;
    expect(r.tick()).toEqual([]);
    expect(r.moves).toBe(2);
  });
});

describe('paired groups: configuration and sessions', () => {
  const base = { interface: 'eth1', groups: [{ id: 1, multicast: '239.7.7.1:7500', sequencerId: 1, role: 'standby' }] };

  it('planGroups gives a paired group its session by the pair rule and records the role', () => {
    const store = SessionStore.open(join(dir, `s${n++}`));
    store.set(1, { session: 2_000_000_041, interface: 'eth1', dataPath: 'created', role: 'standby' });
    const map = { windowSlots: 1024, windows: 4, group: () => undefined, setGroup() {}, disableGroup() {}, resetSeq() {}, lastSeq: () => 0n };
    const [p] = planGroups(map, parseConfig(base, 'test'), store, false, new Map(), () => sec(10));
    // The clock says 2_000_000_021, but the store already handed out 41: the next odd above it.
    expect(p).toMatchObject({ id: 1, action: 'created', session: 2_000_000_043 });
    expect(store.get(1)).toMatchObject({ session: 2_000_000_043, role: 'standby' });
    const [q] = planGroups(map, parseConfig({ ...base, groups: [{ ...base.groups[0], role: 'active' }] }, 'test'), SessionStore.open(join(dir, `s${n++}`)), false, new Map(), () => sec(10));
    expect(q!.session).toBe(2_000_000_020);
  });

  it('--role GROUP:standby sets groups[].role; mistakes name the field and the flag', () => {
    const c = runConfig(parseRunArgs(['--iface', 'eth1', '--group', '1:239.7.7.1:7500', '--role', '1:standby'])!, { XSEQ_CONFIG: '' });
    expect(c.groups[0]!.role).toBe('standby');
    const bad = (args: string[]) => {
      try {
        runConfig(parseRunArgs(['--iface', 'eth1', '--group', '1:239.7.7.1:7500', ...args])!, { XSEQ_CONFIG: '' });
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
  });
});
