// Sessions and groups across data paths, without a kernel: the session
// store is durable and only moves up; a fresh data path gives every group a
// new session; an adopted one keeps each group's session, seq and window,
// rewrites only what changed, and stops groups no longer configured.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type GroupSpec, parseConfig } from '../agent/config.ts';
import { applyGroups, assignWindows, type GroupMap, planGroups } from '../agent/groups.ts';
import { incompatibilities } from '../agent/datapath.ts';
import { SESSION_STEP_MAX, SessionStore } from '../agent/session.ts';
import type { GroupConfig } from '../bpf/maps.ts';

const dir = mkdtempSync(join(tmpdir(), 'xseq-session-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const freshDir = () => join(dir, `s${n++}`);

/** The group and seq maps of a data path, in memory. */
class FakeMap implements GroupMap {
  readonly groups = new Map<number, GroupConfig>();
  readonly seqs = new Map<number, bigint>();
  readonly writes: number[] = [];
  constructor(
    readonly windowSlots = 1024,
    readonly windows = 4,
  ) {}
  group(id: number) {
    return this.groups.get(id);
  }
  setGroup(id: number, g: GroupConfig, window?: number) {
    this.writes.push(id);
    this.groups.set(id, { ...g, windowBase: g.members?.length ? (window ?? 0) * this.windowSlots : 0 });
  }
  disableGroup(id: number) {
    this.groups.delete(id);
  }
  resetSeq(id: number) {
    this.seqs.set(id, 0n);
  }
  lastSeq(id: number) {
    return this.seqs.get(id) ?? 0n;
  }
}

const member = (i: number) => ({ id: i, address: `10.0.0.${11 + i}:7600` });
function cfg(groups: Array<Partial<GroupSpec> & { id: number }>, extra: Record<string, unknown> = {}) {
  return parseConfig({ interface: 'eth1', groups: groups.map((g) => ({ multicast: `239.7.7.${g.id}:7500`, ...g })), ...extra }, 'test');
}

describe('the session store', () => {
  it('hands out one more than the last session, durably, and never goes back', () => {
    const d = freshDir();
    const s = SessionStore.open(d);
    expect(s.next(1)).toBe(1);
    expect(s.next(1, 7)).toBe(8); // a replaced data path had 7
    s.set(1, { session: 8, interface: 'eth1', dataPath: 'created' });
    s.save();
    expect(readdirSync(d)).toEqual(['sessions.json']); // no temp file left
    const again = SessionStore.open(d);
    expect(again.get(1)).toMatchObject({ session: 8, interface: 'eth1', dataPath: 'created' });
    expect(again.next(1)).toBe(9);
    expect(again.next(2)).toBe(1);
    expect(JSON.parse(readFileSync(join(d, 'sessions.json'), 'utf8'))).toMatchObject({ version: 1, groups: { '1': { session: 8 } } });
  });

  it('wraps past 0xffffffff to 1, never 0 (sessions are serial numbers to the replicas)', () => {
    const s = SessionStore.open(freshDir());
    s.set(1, { session: 0xffffffff, interface: 'eth1', dataPath: 'created', lastSeq: '12' });
    expect(s.next(1)).toBe(1);
    expect(s.next(1, 3)).toBe(4); // a pinned data path past the wrap counts as later
    expect(s.next(2, 0xfffffffe)).toBe(0xffffffff);
  });

  it('never hands out a session further past the last one that stamped than replicas step (ESTATE)', () => {
    const s = SessionStore.open(freshDir());
    s.set(1, { session: 10, interface: 'eth1', dataPath: 'created', lastSeq: '5' });
    expect(s.get(1)).toMatchObject({ stamped: 10 });
    // Data paths re-created without a single stamp keep the last stamped one.
    s.set(1, { session: 10 + SESSION_STEP_MAX - 1, interface: 'eth1', dataPath: 'created', lastSeq: '0' });
    expect(s.get(1)).toMatchObject({ stamped: 10 });
    expect(s.next(1)).toBe(10 + SESSION_STEP_MAX);
    s.set(1, { session: 10 + SESSION_STEP_MAX, interface: 'eth1', dataPath: 'created', lastSeq: '0' });
    expect(() => s.next(1)).toThrow(/ESTATE|past 10, the last one that stamped.*--session/);
    // Once it stamps, the step starts from there.
    s.set(1, { session: 10 + SESSION_STEP_MAX, interface: 'eth1', dataPath: 'adopted', lastSeq: '1' });
    expect(s.next(1)).toBe(11 + SESSION_STEP_MAX);
  });

  it('refuses a damaged file instead of guessing a session replicas may have seen', () => {
    const d = freshDir();
    SessionStore.open(d).save();
    writeFileSync(join(d, 'sessions.json'), '{"version":1,"groups":{"1":{"session":');
    expect(() => SessionStore.open(d)).toThrow(/ESTATE|is not valid JSON.*fix it by hand/);
    writeFileSync(join(d, 'sessions.json'), '{"version":1,"groups":{"1":{"session":-4}}}');
    expect(() => SessionStore.open(d)).toThrow(/group 1 has no valid session/);
    writeFileSync(join(d, 'sessions.json'), '[]');
    expect(() => SessionStore.open(d)).toThrow(/not an xseq sessions file/);
  });
});

describe('groups on a fresh and on an adopted data path', () => {
  it('a fresh data path: every group a new session, seq from 1, windows in configuration order', () => {
    const store = SessionStore.open(freshDir());
    store.set(1, { session: 4, interface: 'eth1', dataPath: 'adopted' });
    const map = new FakeMap();
    map.seqs.set(1, 99n); // left from nothing: a fresh map starts at 0 anyway
    const c = cfg([{ id: 3, members: [member(0)] }, { id: 1 }, { id: 2, members: [member(0), member(1), member(2)], quorum: 3 }]);
    const out = applyGroups(map, planGroups(map, c, store, false));
    expect(out).toEqual([
      { id: 3, action: 'created', session: 1, lastSeq: 0n, window: 0 },
      { id: 1, action: 'created', session: 5, lastSeq: 0n },
      { id: 2, action: 'created', session: 1, lastSeq: 0n, window: 1 },
    ]);
    expect(map.lastSeq(1)).toBe(0n);
    expect(map.group(2)).toMatchObject({ session: 1, quorum: 3, windowBase: 1024, members: [{ addr: '10.0.0.11', port: 7600 }, { addr: '10.0.0.12' }, { addr: '10.0.0.13' }] });
    expect(store.get(1)).toMatchObject({ session: 5, dataPath: 'created' });
  });

  it('an explicit session (--session) is used as given on a fresh data path', () => {
    const map = new FakeMap();
    const out = planGroups(map, cfg([{ id: 1 }], { session: 9 }), SessionStore.open(freshDir()), false);
    expect(out[0]).toMatchObject({ action: 'created', session: 9 });
  });

  it('adopted: sessions, seqs and windows stay; changes are written, unchanged groups are not; new groups start a session; removed ones stop', () => {
    const store = SessionStore.open(freshDir());
    const map = new FakeMap();
    const before = cfg([{ id: 1, members: [member(0)] }, { id: 2, members: [member(0)] }, { id: 7 }]);
    applyGroups(map, planGroups(map, before, store, false));
    store.set(5, { session: 2, interface: 'eth1', dataPath: 'created' });
    map.seqs.set(1, 500n);
    map.seqs.set(2, 40n);
    map.writes.length = 0;

    // Group 1 unchanged, group 2 gains members, 7 is gone, 5 is new; group 2
    // is listed first now but keeps window 1.
    const after = cfg([{ id: 2, members: [member(0), member(1), member(2)] }, { id: 1, members: [member(0)] }, { id: 5, members: [member(0)] }]);
    const out = applyGroups(map, planGroups(map, after, store, true));
    expect(out).toEqual([
      { id: 2, action: 'updated', session: 1, lastSeq: 40n, window: 1 },
      { id: 1, action: 'kept', session: 1, lastSeq: 500n, window: 0 },
      { id: 5, action: 'created', session: 3, lastSeq: 0n, window: 2 },
      { id: 7, action: 'disabled', session: 1, lastSeq: 0n },
    ]);
    expect(map.writes).toEqual([2, 5]); // group 1's bytes were left alone
    expect(map.lastSeq(1)).toBe(500n);
    expect(map.lastSeq(2)).toBe(40n);
    expect(map.group(7)).toBeUndefined();
    expect(store.get(1)).toMatchObject({ session: 1, dataPath: 'adopted', lastSeq: '500' });
  });

  it('windows: kept ones stay put, new ones take the lowest free', () => {
    const specs = cfg([{ id: 1, members: [member(0)] }, { id: 2, members: [member(0)] }, { id: 3 }, { id: 4, members: [member(0)] }]).groups;
    expect([...assignWindows(specs, new Map([[2, 0], [4, 3]]), 4)]).toEqual([
      [2, 0],
      [4, 3],
      [1, 1],
    ]);
  });

  it('what a pinned program cannot serve is named field by field', () => {
    const loaded = { port: 7400, windowSlots: 1024, windows: 4, maxResult: 256, policy: 'backpressure' as const };
    const same = cfg([{ id: 1 }]);
    expect(incompatibilities(loaded, 'generic', same, new Map([[1, { sequencerId: 1 }]]))).toEqual([]);
    const other = cfg([{ id: 1 }], { port: 7410, attachMode: 'native', sequencerId: 2, window: { slots: 64, windows: 2, policy: 'overwrite', maxResult: 0 } });
    expect(incompatibilities(loaded, 'generic', other, new Map([[1, { sequencerId: 1 }]]))).toEqual([
      'port: the pinned program has 7400, the configuration says 7410',
      'window.slots: the pinned program has 1024, the configuration says 64',
      'window.windows: the pinned program has 4, the configuration says 2',
      'window.policy: the pinned program has backpressure, the configuration says overwrite',
      'window.maxResult: the pinned program has 256, the configuration says 0',
      'attachMode: the data path is attached in generic mode, the configuration says native',
      'sequencerId: group 1 is stamped with sequencer id 1, the configuration says 2 (replicas order by it within a session)',
    ]);
  });

  it('Hydra: a group may carry its own sequencer id; draining is written to the map and cannot be undone in the session', () => {
    const store = SessionStore.open(freshDir());
    const map = new FakeMap();
    const c = cfg([{ id: 1, sequencerId: 4 }, { id: 2 }], { sequencerId: 2 });
    applyGroups(map, planGroups(map, c, store, false));
    expect(map.group(1)).toMatchObject({ sequencerId: 4 });
    expect(map.group(2)).toMatchObject({ sequencerId: 2 });
    const loaded = { port: 7400, windowSlots: 1024, windows: 4, maxResult: 256, policy: 'backpressure' as const };
    expect(incompatibilities(loaded, 'generic', c, map.groups)).toEqual([]);

    // Drain group 1 on the adopted data path: rewritten with the flag, same session.
    const drained = cfg([{ id: 1, sequencerId: 4, draining: true }, { id: 2 }], { sequencerId: 2 });
    map.writes.length = 0;
    const out = applyGroups(map, planGroups(map, drained, store, true));
    expect(out[0]).toMatchObject({ id: 1, action: 'updated', session: 1 });
    expect(map.writes).toEqual([1]);
    expect(map.group(1)).toMatchObject({ draining: true, sequencerId: 4, session: 1 });
    expect(incompatibilities(loaded, 'generic', drained, map.groups)).toEqual([]);
    // Un-draining, or another id for the group, is refused with the reason.
    expect(incompatibilities(loaded, 'generic', cfg([{ id: 1 }, { id: 2 }], { sequencerId: 4 }), map.groups)).toEqual([
      'groups[].draining: group 1 was drained (this sequencer sent its FINAL flush in session 1); it cannot stamp again in that session: keep draining: true, or re-create the data path (new session) and add the sequencer back',
      'sequencerId: group 2 is stamped with sequencer id 2, the configuration says 4 (replicas order by it within a session)',
    ]);
  });
});
