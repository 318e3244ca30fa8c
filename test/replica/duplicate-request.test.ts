// At-most-once: a retried request (same request id) that gets a second seq
// is answered from the client table, never executed again; a stale one is
// ignored.
import { describe, expect, it } from 'vitest';
import { ClientTable } from '../../replica/client-table.ts';
import { Executor } from '../../replica/executor.ts';
import type { LogEntry } from '../../replica/messages.ts';
import { HistoryApp } from '../../replica/sim/history-app.ts';
import { harness, quiesce } from './helpers.ts';

describe('duplicate client request', () => {
  it('a lost REPLY makes the client retry; the retry is sequenced again, executed once, answered with the same result', () => {
    const h = harness();
    const dropped = h.drop((s) => s.msg.type === 'REPLY' && s.msg.requestId === 2n);
    h.c.startWorkload(4);
    quiesce(h);
    expect(dropped()).toBe(1);
    const copies = h.checker.committedLog().filter((e) => !e.noop && e.requestId === 2n);
    expect(copies.length).toBe(2); // two seqs carry request 2
    expect(copies[0]!.seq).not.toBe(copies[1]!.seq);
    const replies = h.sent.filter((s) => s.msg.type === 'REPLY' && s.msg.requestId === 2n);
    expect(replies.length).toBe(2);
    expect(replies[1]!.msg.result).toEqual(replies[0]!.msg.result);
    for (const app of h.c.apps) expect(app.history.length).toBe(4); // the app throws on a second execution
  });

  it('duplicated packets: each seq is logged once and only re-ACKed, each request executed once', () => {
    // Every message arrives twice, REQUESTs too: those get two seqs each.
    const h = harness({ net: { loss: 0, dup: 1, minDelayUs: 20, maxDelayUs: 60 } });
    h.c.startWorkload(5);
    quiesce(h);
    expect(h.checker.committedLog().length).toBe(h.c.sequencer.stats.stamped);
    expect(h.c.sequencer.stats.stamped).toBeGreaterThan(5);
    const acks = h.count('ACK', (s) => s.from === 1);
    expect(acks).toBeGreaterThan(h.c.sequencer.stats.stamped); // the second copies were re-ACKed
    for (const app of h.c.apps) expect(app.history.length).toBe(5);
  });

  it('without aggregation the client counts f+1 ACKs incl. the leader, and duplicates too are answered', () => {
    const h = harness({ aggregated: false, clients: 2 });
    h.drop((s) => s.msg.type === 'ACK' && s.from === 0 && s.msg.requestId === 3n, 1);
    h.c.startWorkload(5);
    quiesce(h);
    expect(h.count('REPLY')).toBe(0);
    expect(h.c.certified.length).toBe(10);
    for (const app of h.c.apps) expect(app.history.length).toBe(10);
  });
});

describe('client table', () => {
  const entry = (slot: number, clientId: bigint, requestId: bigint): LogEntry => ({
    slot,
    session: 1,
    seq: slot,
    noop: false,
    clientId,
    requestId,
    op: HistoryApp.op(Number(clientId), Number(requestId)),
  });

  it('new, duplicate (with the cached result) and stale requests', () => {
    const t = new ClientTable();
    expect(t.admit(1n, 5n).kind).toBe('new');
    t.record(1n, 5n, new Uint8Array([9]));
    expect(t.admit(1n, 5n)).toEqual({ kind: 'duplicate', result: new Uint8Array([9]) });
    expect(t.admit(1n, 4n).kind).toBe('stale');
    expect(t.admit(1n, 6n).kind).toBe('new');
    expect(t.admit(2n, 1n).kind).toBe('new');
    expect(ClientTable.from(t.records()).admit(1n, 5n).kind).toBe('duplicate');
  });

  it('the executor runs each request id once and the table survives a checkpoint', () => {
    const app = new HistoryApp();
    const x = new Executor(app, Executor.genesis(app));
    const r1 = x.execute(entry(1, 1n, 1n));
    expect(r1.kind).toBe('executed');
    const again = x.execute(entry(2, 1n, 1n));
    expect(again).toEqual({ kind: 'duplicate', result: (r1 as { result: Uint8Array }).result });
    expect(x.execute(entry(3, 1n, 2n)).kind).toBe('executed');
    expect(x.execute(entry(4, 1n, 1n)).kind).toBe('stale');
    const cp = x.snapshot({ slot: 4, session: 1, seq: 4 });
    expect(x.execute(entry(5, 2n, 1n)).kind).toBe('executed');
    x.restore(cp);
    expect(x.executed).toBe(4);
    expect(app.history.length).toBe(2);
    expect(x.execute(entry(5, 1n, 2n)).kind).toBe('duplicate');
  });
});
