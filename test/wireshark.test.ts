// tools/wireshark/xseq.lua, run by real tshark on a pcap of frames built by
// tools/frame.ts from the wire codecs (bpf/wire.ts, bpf/repair.ts): every
// message type is named, and every header field, flag and payload field
// decodes to the value that was sent.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeError, encodeRepairReply, encodeRepairRequest, ErrorCode } from '../bpf/repair.ts';
import { emptyHeader, encodeMessage, Flags, MsgType, type XseqHeader } from '../bpf/wire.ts';
import { buildFrame } from '../tools/frame.ts';

const root = join(import.meta.dirname, '..');
const LUA = join(root, 'tools/wireshark/xseq.lua');

/** A classic pcap (LINKTYPE_ETHERNET) holding `frames`, one per second. */
function pcap(frames: Buffer[]): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(65535, 16);
  head.writeUInt32LE(1, 20);
  const recs = frames.map((f, i) => {
    const r = Buffer.alloc(16);
    r.writeUInt32LE(1_700_000_000 + i, 0);
    r.writeUInt32LE(f.length, 8);
    r.writeUInt32LE(f.length, 12);
    return Buffer.concat([r, f]);
  });
  return Buffer.concat([head, ...recs]);
}

const CLIENT = '10.77.0.50';
const SEQ = '10.77.0.1';
const MEMBER = '10.77.0.11';
const GROUP = '239.7.7.1';

interface Case {
  name: string;
  frame: Buffer;
  /** tshark field -> the value it must show. */
  want: Record<string, string>;
}

const header = (h: Partial<XseqHeader>): XseqHeader => ({ ...emptyHeader(), ...h });
const udp = (src: string, sport: number, dst: string, dport: number, msg: Buffer) => buildFrame({ srcIp: src, dstIp: dst, srcPort: sport, dstPort: dport, payload: msg });

const stamped = { groupId: 1, sequencerId: 3, session: 0x0a0b0c0d, seq: 0x0102030405060708n, clockNs: 1_765_000_000_123_456_789n, clientId: 0x1122334455667788n, requestId: 42n };

function cases(): Case[] {
  const out: Case[] = [];
  // REQUEST with a reply address (view = IPv4, replica_id = port) and CONTROL.
  const req = encodeMessage(header({ type: MsgType.REQUEST, flags: Flags.CONTROL, groupId: 7, clientId: 99n, requestId: 5n, view: 0x0a4d0032, replicaId: 40000 }), Buffer.from('put k v'));
  out.push({
    name: 'REQUEST',
    frame: udp(CLIENT, 40000, SEQ, 7400, req),
    want: {
      'xseq.magic': '0x58534551', 'xseq.version': '1', 'xseq.type': '1', 'xseq.flags': '0x0010', 'xseq.flags.control': '1', 'xseq.flags.retransmit': '0',
      'xseq.group_id': '7', 'xseq.client_id': '99', 'xseq.request_id': '5', 'xseq.payload_len': '7', 'xseq.reserved': '0x00000000',
      'xseq.reply_addr': CLIENT, 'xseq.reply_port': '40000', 'xseq.payload': Buffer.from('put k v').toString('hex'),
    },
  });
  // SEQUENCED to a group port (found by the heuristic), every stamp field.
  const sq = encodeMessage(header({ type: MsgType.SEQUENCED, flags: Flags.RETRANSMIT, ...stamped, replicaId: 0x2345, view: 0x456789ab }), Buffer.from('op'));
  out.push({
    name: 'SEQUENCED',
    frame: udp(SEQ, 7400, GROUP, 7500, sq),
    want: {
      'xseq.type': '2', 'xseq.flags.retransmit': '1', 'xseq.group_id': '1', 'xseq.sequencer_id': '3', 'xseq.replica_id': String(0x2345),
      'xseq.session': String(0x0a0b0c0d), 'xseq.view': String(0x456789ab), 'xseq.seq': String(0x0102030405060708n), 'xseq.clock_ns': String(stamped.clockNs),
      'xseq.client_id': String(stamped.clientId), 'xseq.request_id': '42', 'xseq.payload_len': '2', 'xseq.payload': '6f70',
    },
  });
  // The leader's ACK with its result.
  const ack = encodeMessage(header({ type: MsgType.ACK, flags: Flags.RESULT, groupId: 1, sequencerId: 3, session: 9, seq: 77n, view: 4, replicaId: 1 }), Buffer.from('ok'));
  out.push({ name: 'ACK', frame: udp(MEMBER, 7600, SEQ, 7400, ack), want: { 'xseq.type': '3', 'xseq.flags.result': '1', 'xseq.view': '4', 'xseq.replica_id': '1', 'xseq.seq': '77', 'xseq.result': '6f6b' } });
  const reply = encodeMessage(header({ type: MsgType.REPLY, flags: Flags.RESULT, groupId: 1, sequencerId: 3, session: 9, seq: 77n, view: 4, replicaId: 1, clientId: 99n, requestId: 5n }), Buffer.from('ok'));
  out.push({ name: 'REPLY', frame: udp(SEQ, 7400, CLIENT, 40000, reply), want: { 'xseq.type': '4', 'xseq.result': '6f6b', 'xseq.client_id': '99', 'xseq.request_id': '5', 'xseq.session': '9' } });
  const flush = encodeMessage(header({ type: MsgType.FLUSH, flags: Flags.FINAL, groupId: 1, sequencerId: 2, session: 9, seq: 1000n, clockNs: 123n }));
  out.push({ name: 'FLUSH', frame: udp(SEQ, 7400, GROUP, 7500, flush), want: { 'xseq.type': '5', 'xseq.flags.final': '1', 'xseq.sequencer_id': '2', 'xseq.seq': '1000', 'xseq.clock_ns': '123', 'xseq.payload_len': '0' } });
  const solicit = encodeMessage(header({ type: MsgType.FLUSH_SOLICIT, groupId: 1, sequencerId: 2, replicaId: 0xffff, session: 9 }));
  out.push({ name: 'FLUSH_SOLICIT', frame: udp(SEQ, 7400, SEQ, 7400, solicit), want: { 'xseq.type': '6', 'xseq.replica_id': '65535', 'xseq.agent_solicit': '1' } });
  out.push({
    name: 'REPAIR_REQUEST',
    frame: udp(MEMBER, 41000, SEQ, 7401, encodeRepairRequest({ groupId: 1, session: 9, replicaId: 2, first: 500n, count: 17 })),
    want: { 'xseq.type': '7', 'xseq.replica_id': '2', 'xseq.seq': '500', 'xseq.repair.count': '17' },
  });
  out.push({
    name: 'REPAIR_REPLY',
    frame: udp(SEQ, 7401, MEMBER, 41000, encodeRepairReply({ groupId: 1, session: 9, replicaId: 2, sequencerId: 3, first: 500n }, { count: 17, resent: 15, missing: [500n, 0x0102030405060708n] })),
    want: { 'xseq.type': '8', 'xseq.repair.count': '17', 'xseq.repair.n_resent': '15', 'xseq.repair.n_missing': '2', 'xseq.repair.pad': '0x00000000', 'xseq.repair.missing_seq': `500,${0x0102030405060708n}` },
  });
  out.push({
    name: 'ERROR',
    frame: udp(SEQ, 7401, MEMBER, 41000, encodeError({ groupId: 1, session: 8, replicaId: 2, seq: 500n }, ErrorCode.WRONG_SESSION, 'group 1 is in session 9, not 8')),
    want: { 'xseq.type': '22', 'xseq.error.code': '4', 'xseq.error.text_len': '30', 'xseq.error.text': 'group 1 is in session 9, not 8', 'xseq.session': '8' },
  });
  // The slow-path types: header fields and the type's name.
  for (let ty = 9; ty <= 21; ty++) {
    const noop = ty === MsgType.GAP_COMMIT;
    const m = encodeMessage(header({ type: ty, flags: noop ? Flags.NOOP : 0, groupId: 1, replicaId: 1, view: 3 }), Buffer.alloc(4, 0xee));
    out.push({
      name: Object.entries(MsgType).find(([, v]) => v === ty)![0],
      frame: udp(MEMBER, 7700, '10.77.0.12', 7700, m),
      want: { 'xseq.type': String(ty), 'xseq.view': '3', 'xseq.payload': 'eeeeeeee', 'xseq.flags.noop': noop ? '1' : '0' },
    });
  }
  return out;
}

describe('the Wireshark dissector under tshark', () => {
  let dir: string;
  let all: Case[];
  let rows: Array<Record<string, string>>;
  let infos: string[];
  beforeAll(() => {
    const v = spawnSync('tshark', ['--version'], { encoding: 'utf8' });
    if (v.status !== 0) throw new Error('tshark is missing: scripts/setup.sh installs the Debian package tshark');
    dir = mkdtempSync(join(tmpdir(), 'xseq-wireshark-'));
    all = cases();
    writeFileSync(join(dir, 'xseq.pcap'), pcap(all.map((c) => c.frame)));
    const fields = [...new Set(all.flatMap((c) => Object.keys(c.want)))];
    const base = ['-n', '-r', join(dir, 'xseq.pcap'), '-X', `lua_script:${LUA}`];
    const r = spawnSync('tshark', [...base, '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=,', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`tshark failed: ${r.stderr}`);
    rows = r.stdout.trimEnd().split('\n').map((line) => Object.fromEntries(line.split('\t').map((v, i) => [fields[i]!, v])));
    const info = spawnSync('tshark', [...base, '-T', 'fields', '-e', '_ws.col.Protocol', '-e', '_ws.col.Info'], { encoding: 'utf8', timeout: 60_000 });
    infos = info.stdout.trimEnd().split('\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('decodes one xseq message per frame, all 22 types', () => {
    expect(rows).toHaveLength(all.length);
    expect(new Set(rows.map((r) => r['xseq.type'])).size).toBe(22);
  });

  it.each(cases().map((c, i) => [c.name, i] as const))('%s: every field shows the value sent', (_name, i) => {
    const c = all[i]!;
    const got = Object.fromEntries(Object.keys(c.want).map((k) => [k, rows[i]![k]]));
    expect(got).toEqual(c.want);
  });

  it('every field the dissector defines is checked by some case', () => {
    const defined = [...readFileSync(LUA, 'utf8').matchAll(/ProtoField\.\w+\("(xseq\.[\w.]+)"/g)].map((m) => m[1]!);
    const checked = new Set(all.flatMap((c) => Object.keys(c.want)));
    expect(defined.length).toBeGreaterThan(30);
    expect(defined.filter((d) => !checked.has(d))).toEqual([]);
  });

  it('the info column names the message, with its group and seq', () => {
    expect(infos).toHaveLength(all.length);
    all.forEach((c, i) => expect(infos[i], c.name).toMatch(new RegExp(`^XSEQ\\t${c.name} group=`)));
    expect(infos[all.findIndex((c) => c.name === 'ERROR')]).toMatch(/WRONG_SESSION/);
    expect(infos[all.findIndex((c) => c.name === 'SEQUENCED')]).toMatch(/\[RETRANSMIT\]/);
  });

  it('a datagram to a group port that is not xseq is left alone; a bad length is flagged', () => {
    const other = udp(CLIENT, 5000, GROUP, 7500, Buffer.from('hello, not xseq at all, but long enough to pass the length check of 64 bytes..'));
    const short = encodeMessage(header({ type: MsgType.REQUEST, groupId: 1 }), Buffer.from('abcd'));
    short.writeUInt32BE(9, 56); // payload_len says 9, 4 follow
    writeFileSync(join(dir, 'odd.pcap'), pcap([other, udp(CLIENT, 40000, SEQ, 7400, short)]));
    const r = spawnSync('tshark', ['-n', '-r', join(dir, 'odd.pcap'), '-X', `lua_script:${LUA}`, '-T', 'fields', '-e', '_ws.col.Protocol', '-e', '_ws.expert.message'], { encoding: 'utf8', timeout: 60_000 });
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^UDP\t/);
    expect(lines[1]).toMatch(/^XSEQ\t.*UDP length is not 8 \+ 64 \+ payload_len/);
  });
});
