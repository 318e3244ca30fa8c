// Proves the TypeScript codecs equal to bpf/xseq.h: test/contract/dump.c is
// compiled against the header and prints every size, offset and enum value,
// plus a header encoded by C; the TypeScript side must match byte for byte.
import { decodeWeightsReport, encodeWeightsReport, WEIGHTS_REPORT_SIZE } from '../bpf/weights-report.ts';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mac from '../bpf/mac.ts';
import * as maps from '../bpf/maps.ts';
import * as nv from '../bpf/nextval.ts';
import * as repair from '../bpf/repair.ts';
import * as rx from '../bpf/replica-maps.ts';
import * as wire from '../bpf/wire.ts';
import { num, type Row, tableUnder, unquote } from './helpers/markdown.ts';

type Fields = Record<string, [number, number]>;
interface Dump {
  hdr: { size: number; fields: Fields };
  group: { size: number; fields: Fields };
  group_seq: { size: number; fields: Fields };
  load_cfg: { size: number; fields: Fields };
  drop_event: { size: number; fields: Fields };
  member: { size: number; fields: Fields };
  slot: { size: number; fields: Fields };
  mac_key: { size: number; fields: Fields; map: string; rx_map: string };
  client_source: { size: number; fields: Fields; map: string; entries: number; solicit_map: string; solicit_gap_ns: number };
  weights: { size: number; fields: Fields };
  repair_req: { size: number; fields: Fields };
  weights_report: { size: number; fields: Fields };
  repair_reply: { size: number; fields: Fields };
  error: { size: number; fields: Fields };
  err: Record<string, number>;
  msg: Record<string, number>;
  ctr: Record<string, number>;
  const: Record<string, number>;
  names: Record<string, string>;
  sample: string;
  rx_ctr: Record<string, number>;
  rx_key: { size: number; fields: Fields };
  rx_ctl: { size: number; fields: Fields };
  rx_state: { size: number; fields: Fields };
  gap_event: { size: number; fields: Fields };
  rx_cfg: { size: number; fields: Fields };
  rx_source: { size: number; fields: Fields };
  rx_const: Record<string, number>;
  rx_names: Record<string, string>;
  nv_req: { size: number; fields: Fields };
  nv_reply: { size: number; fields: Fields };
  nv_seq: { size: number; fields: Fields };
  nv_name: { size: number; fields: Fields };
  nv_stats: { size: number; fields: Fields };
  nv_ctr: Record<string, number>;
  nv_status: Record<string, number>;
  nv_const: Record<string, number>;
  nv_names: Record<string, string>;
}

const root = join(import.meta.dirname, '..');
let dir: string;
let c: Dump;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'xseq-contract-'));
  const exe = join(dir, 'dump');
  execFileSync('cc', ['-Wall', '-Werror', '-I', join(root, 'bpf'), '-o', exe, join(root, 'test/contract/dump.c')]);
  c = JSON.parse(execFileSync(exe, { encoding: 'utf8' })) as Dump;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const width = { u8: 1, u16: 2, u32: 4, u64: 8 } as const;

describe('bpf/xseq.h and the TypeScript codec agree', () => {
  it('struct xseq_hdr: same size, and every member at the same offset and width', () => {
    expect(c.hdr.size).toBe(wire.XSEQ_HDR_LEN);
    const ts = Object.fromEntries(wire.HEADER_LAYOUT.map((f) => [f.c, [f.offset, width[f.kind]]]));
    expect(ts).toEqual(c.hdr.fields);
  });

  it('a header encoded by C decodes to the same values, and TypeScript re-encodes the same bytes', () => {
    const bytes = Buffer.from(c.sample, 'hex');
    const h = wire.readHeader(bytes);
    const want: wire.XseqHeader = {
      version: wire.XSEQ_VERSION,
      type: wire.MsgType.SEQUENCED,
      flags: 0x0105,
      groupId: 0x0a0b0c0d,
      sequencerId: 0x1234,
      replicaId: 0x2345,
      session: 0x3456789a,
      view: 0x456789ab,
      seq: 0x0102030405060708n,
      clockNs: 0x1112131415161718n,
      clientId: 0x2122232425262728n,
      requestId: 0x3132333435363738n,
      payloadLen: 0x515,
    };
    expect(h).toEqual(want);
    const out = new Uint8Array(wire.XSEQ_HDR_LEN);
    wire.encodeHeader(want, out);
    expect(Buffer.from(out).toString('hex')).toBe(c.sample);
  });

  it('message types: every enum value, by name, and the end marker', () => {
    const ts: Record<string, number> = Object.fromEntries(Object.entries(wire.MsgType).map(([k, v]) => [`XSEQ_MSG_${k}`, v]));
    ts['XSEQ_MSG_TYPE_MAX'] = wire.MSG_TYPE_MAX;
    expect(ts).toEqual(c.msg);
  });

  it('counters: the names are the enum in order, and the count is XSEQ_CTR_MAX', () => {
    const ts = Object.fromEntries(maps.COUNTER_NAMES.map((n, i) => [`XSEQ_CTR_${n.toUpperCase()}`, i]));
    ts['XSEQ_CTR_MAX'] = maps.COUNTER_NAMES.length;
    expect(ts).toEqual(c.ctr);
  });

  it('constants and names', () => {
    expect(c.const).toEqual({
      XSEQ_MAGIC: wire.XSEQ_MAGIC,
      XSEQ_VERSION: wire.XSEQ_VERSION,
      XSEQ_DEFAULT_PORT: wire.XSEQ_DEFAULT_PORT,
      XSEQ_HDR_LEN: wire.XSEQ_HDR_LEN,
      XSEQ_MAX_PAYLOAD: wire.XSEQ_MAX_PAYLOAD,
      XSEQ_MAX_GROUPS: maps.XSEQ_MAX_GROUPS,
      XSEQ_GROUP_F_ENABLED: maps.XSEQ_GROUP_F_ENABLED,
      XSEQ_F_RETRANSMIT: wire.Flags.RETRANSMIT,
      XSEQ_F_NOOP: wire.Flags.NOOP,
      XSEQ_F_RESULT: wire.Flags.RESULT,
      XSEQ_EVENTS_BYTES: maps.XSEQ_EVENTS_BYTES,
      XSEQ_MAX_REPLICAS: maps.XSEQ_MAX_REPLICAS,
      XSEQ_RESULT_CAP: maps.XSEQ_RESULT_CAP,
      XSEQ_MSG_CAP: maps.XSEQ_MSG_CAP,
      XSEQ_HIST_BUCKETS: maps.XSEQ_HIST_BUCKETS,
      XSEQ_HIST_SUM: maps.XSEQ_HIST_SUM,
      XSEQ_CFG_F_OVERWRITE: maps.XSEQ_CFG_F_OVERWRITE,
      XSEQ_SLOT_F_REPLIED: maps.XSEQ_SLOT_F_REPLIED,
      XSEQ_REPAIR_MAX: repair.XSEQ_REPAIR_MAX,
      XSEQ_F_FINAL: wire.Flags.FINAL,
      XSEQ_F_CONTROL: wire.Flags.CONTROL,
      XSEQ_F_STALE: wire.Flags.STALE,
      XSEQ_SLOT_F_STALE: maps.XSEQ_SLOT_F_STALE,
      XSEQ_GROUP_F_DRAINING: maps.XSEQ_GROUP_F_DRAINING,
      XSEQ_REPLICA_AGENT: wire.XSEQ_REPLICA_AGENT,
      XSEQ_ACKS_BITMAP: maps.XSEQ_ACKS_BITMAP,
      XSEQ_ACKS_GEN_SHIFT: maps.XSEQ_ACKS_GEN_SHIFT,
      XSEQ_ACKS_GEN_MASK: maps.XSEQ_ACKS_GEN_MASK,
      XSEQ_F_MAC: wire.Flags.MAC,
      XSEQ_MAC_LEN: wire.XSEQ_MAC_LEN,
      XSEQ_KEY_LEN: mac.XSEQ_KEY_LEN,
      XSEQ_KEY_F_SET: mac.XSEQ_KEY_F_SET,
    });
    expect(c.names).toEqual({
      prog: maps.PROG_SEQUENCER,
      groups: maps.MapName.GROUPS,
      group_seq: maps.MapName.GROUP_SEQ,
      counters: maps.MapName.COUNTERS,
      events: maps.MapName.EVENTS,
      slots: maps.MapName.SLOTS,
      quorum_hist: maps.MapName.QUORUM_HIST,
      pin_root: maps.PIN_ROOT,
      released: maps.MapName.RELEASED,
      weights: maps.MapName.WEIGHTS,
    });
  });

  it('struct xseq_group: encodeGroup puts each field at its C offset in its byte order', () => {
    expect(c.group.size).toBe(maps.GROUP_SIZE);
    expect(c.member.size).toBe(8);
    const g = {
      mcastAddr: '239.1.2.3', mcastPort: 0x1d4c, sequencerId: 0x0102, session: 0x0a0b0c0d, enabled: true,
      members: [{ addr: '10.77.0.11', port: 0x1db0 }, { addr: '10.77.0.12', port: 0x1db1 }, { addr: '10.77.0.13', port: 0x1db2 }],
      quorum: 2, weightsVersion: 0x0506, windowBase: 0x01020304,
    };
    const b = maps.encodeGroup(g);
    const f = c.group.fields;
    const at = (name: string, extra = 0, len?: number) => Buffer.from(b.subarray(f[name]![0] + extra, f[name]![0] + extra + (len ?? f[name]![1]))).toString('hex');
    expect(at('mcast_addr')).toBe('ef010203'); // network order
    expect(at('mcast_port')).toBe('1d4c'); // network order
    expect(at('sequencer_id')).toBe('0201'); // host order (little endian)
    expect(at('session')).toBe('0d0c0b0a');
    expect(at('flags')).toBe('01000000');
    expect(at('n_members')).toBe('03');
    expect(at('quorum')).toBe('02');
    expect(at('weights_version')).toBe('0605'); // host order
    expect(at('window_base')).toBe('04030201');
    expect(f['members']![1]).toBe(maps.XSEQ_MAX_REPLICAS * c.member.size);
    const m = c.member.fields;
    expect(at('members', c.member.size * 2 + m['addr']![0], 4)).toBe('0a4d000d');
    expect(at('members', c.member.size * 2 + m['port']![0], 2)).toBe('1db2');
    expect(maps.decodeGroup(b)).toEqual(g);
    // A draining group (Hydra removal) keeps ENABLED and adds DRAINING.
    const d = maps.encodeGroup({ ...g, draining: true });
    expect(Buffer.from(d.subarray(f['flags']![0], f['flags']![0] + 4)).toString('hex')).toBe('03000000');
    expect(maps.decodeGroup(d)).toEqual({ ...g, draining: true });
  });

  it('struct xseq_slot: every offset the agent reads through mmap', () => {
    const f = c.slot.fields;
    expect(c.slot.size).toBe(maps.SLOT.size);
    expect({
      seq: f['seq']![0], acks: f['acks']![0], stampNs: f['stamp_ns']![0], session: f['session']![0], state: f['state']![0],
      clientAddr: f['client_addr']![0], clientPort: f['client_port']![0], clientMac: f['client_mac']![0], msgLen: f['msg_len']![0],
      resultLen: f['result_len']![0], resultView: f['result_view']![0], weightsVersion: f['weights_version']![0],
      result: f['result']![0], msg: f['msg']![0],
    }).toEqual({ ...maps.SLOT, size: undefined });
    expect(f['weights_version']![1]).toBe(4);
    expect(f['result']![1]).toBe(maps.XSEQ_RESULT_CAP);
    expect(f['msg']![1]).toBe(maps.XSEQ_MSG_CAP);
  });

  it('struct xseq_mac_key: k0 and k1 are the key halves read little-endian, host order; the map names', () => {
    expect(c.mac_key.size).toBe(mac.MAC_KEY_SIZE);
    expect(c.mac_key.fields).toEqual({ k0: [0, 8], k1: [8, 8], flags: [16, 4], c0: [24, 8], c1: [32, 8] });
    expect(c.mac_key.map).toBe(maps.MapName.MAC_KEYS);
    expect(c.mac_key.rx_map).toBe(rx.RxMapName.MAC_KEYS);
    const key = mac.groupKey(Uint8Array.from({ length: 16 }, (_, i) => i));
    const v = mac.encodeMacKey(key);
    const at = (name: string) => Buffer.from(v.subarray(c.mac_key.fields[name]![0], c.mac_key.fields[name]![0] + c.mac_key.fields[name]![1])).toString('hex');
    // Little-endian host: the u64 k0 = 0x0706050403020100 is stored as bytes 00..07.
    expect(at('k0')).toBe('0001020304050607');
    expect(at('k1')).toBe('08090a0b0c0d0e0f');
    expect(at('flags')).toBe('01000000');
    expect(Buffer.from(mac.encodeMacKey(null)).toString('hex')).toBe('00'.repeat(mac.MAC_KEY_SIZE));
    // c0, c1: the client key derived from the group key, in the same form.
    const ck = Buffer.from(mac.clientKeyOf(key).bytes).toString('hex');
    expect(at('c0') + at('c1')).toBe(ck);
    expect(ck).not.toBe(Buffer.from(key.bytes).toString('hex'));
  });

  it('struct xseq_client_source, the client-id binding map and the solicit gap', () => {
    expect(c.client_source.size).toBe(maps.CLIENT_SOURCE_SIZE);
    expect(c.client_source.fields).toEqual({ addr: [0, 4], port: [4, 2], pad: [6, 2] });
    expect(c.client_source.map).toBe(maps.MapName.CLIENT_SOURCES);
    expect(c.client_source.entries).toBe(maps.XSEQ_CLIENT_SOURCES);
    expect(c.client_source.solicit_map).toBe(maps.MapName.SOLICIT_LAST);
    expect(c.client_source.solicit_gap_ns).toBe(maps.XSEQ_SOLICIT_GAP_NS);
  });

  it('struct xseq_weights: version and one weight byte per replica id, at their C offsets', () => {
    expect(c.weights.size).toBe(maps.WEIGHTS_SIZE);
    expect(c.weights.fields['weight']).toEqual([8, maps.XSEQ_MAX_REPLICAS]);
    const b = maps.encodeWeights(0x01020304, [3, 1, 2]);
    const f = c.weights.fields;
    expect(Buffer.from(b.subarray(f['version']![0], f['version']![0] + 4)).toString('hex')).toBe('04030201'); // host order
    expect([...b.subarray(f['weight']![0], f['weight']![0] + 4)]).toEqual([3, 1, 2, 0]);
    expect(maps.decodeWeights(b)).toEqual({ version: 0x01020304, weights: [3, 1, 2, 0, 0, 0, 0, 0] });
    expect([...maps.weightsKey(5, 7)]).toEqual([...maps.u32Key(11)]);
  });

  it('struct xseq_weights_report: the WEIGHTS payload, bytes at the C offsets', () => {
    expect(c.weights_report.size).toBe(WEIGHTS_REPORT_SIZE);
    expect(c.weights_report.fields).toEqual({ applied: [0, 4], refused: [4, 4], n_members: [8, 1], f: [9, 1], weight: [10, maps.XSEQ_MAX_REPLICAS] });
    const m = encodeWeightsReport({ groupId: 3, replicaId: 2 }, { version: 7, weights: [2, 2, 1], f: 1, applied: 0x01020304, refused: 5 });
    const p = m.subarray(64);
    expect(m.readBigUInt64BE(24)).toBe(7n); // header.seq = version
    expect(p.subarray(0, 4).toString('hex')).toBe('01020304');
    expect([...p.subarray(c.weights_report.fields['weight']![0], c.weights_report.fields['weight']![0] + 3)]).toEqual([2, 2, 1]);
    expect(decodeWeightsReport(7n, p)).toEqual({ version: 7, weights: [2, 2, 1], f: 1, applied: 0x01020304, refused: 5 });
  });

  it('repair and error payloads, and the error codes', () => {
    expect(c.repair_req).toEqual({ size: 4, fields: { count: [0, 4] } });
    expect(c.repair_reply.size).toBe(repair.REPAIR_REPLY_SIZE);
    expect(c.repair_reply.fields).toEqual({ count: [0, 4], n_resent: [4, 4], n_missing: [8, 4] });
    expect(c.error).toEqual({ size: 4, fields: { code: [0, 2], text_len: [2, 2] } });
    const ts = Object.fromEntries(Object.entries(repair.ErrorCode).map(([k, v]) => [`XSEQ_ERR_${k}`, v]));
    expect(ts).toEqual(c.err);
  });

  it('struct xseq_group_seq, xseq_load_cfg and xseq_drop_event: sizes and offsets', () => {
    expect(c.group_seq.size).toBe(maps.GROUP_SEQ_SIZE);
    expect(c.group_seq.fields['seq']).toEqual([0, 8]);
    expect(maps.decodeGroupSeq(maps.encodeGroupSeq(0x0102030405060708n))).toBe(0x0102030405060708n);

    expect(c.load_cfg.size).toBe(maps.LOAD_CFG_SIZE);
    const cfg = maps.encodeLoadCfg({ port: 7400, windowSlots: 1024, maxResult: 200, policy: 'overwrite' });
    const lf = c.load_cfg.fields;
    const hex = (name: string) => Buffer.from(cfg.subarray(lf[name]![0], lf[name]![0] + lf[name]![1])).toString('hex');
    expect(hex('port')).toBe('1ce8');
    expect(hex('flags')).toBe('01000000');
    expect(hex('window_slots')).toBe('00040000');
    expect(hex('max_result')).toBe('c8000000');
    expect(hex('solicit_gap_ns')).toBe('50c30000'); // 50,000 ns: XSEQ_SOLICIT_GAP_NS by default

    expect(c.drop_event.size).toBe(maps.DROP_EVENT_SIZE);
    const ev = new Uint8Array(maps.DROP_EVENT_SIZE);
    const dv = new DataView(ev.buffer);
    const f = c.drop_event.fields;
    dv.setUint32(f['reason']![0], maps.CTR.drop_bad_magic, true);
    ev.set([10, 77, 0, 1], f['saddr']![0]);
    dv.setUint16(f['sport']![0], 40000, false);
    dv.setUint32(f['frame_len']![0], 99, true);
    expect(maps.decodeDropEvent(ev)).toEqual({ reason: 'drop_bad_magic', saddr: '10.77.0.1', sport: 40000, frameLen: 99 });
  });
  it('replica side: counters, names and constants of replica.bpf.c', () => {
    const ts = Object.fromEntries(rx.RX_COUNTER_NAMES.map((n, i) => [`XSEQ_RX_CTR_${n.toUpperCase()}`, i]));
    ts['XSEQ_RX_CTR_MAX'] = rx.RX_COUNTER_NAMES.length;
    expect(ts).toEqual(c.rx_ctr);
    expect(c.rx_names).toEqual({ prog: rx.PROG_REPLICA, ctl: rx.RxMapName.CTL, state: rx.RxMapName.STATE, counters: rx.RxMapName.COUNTERS, gaps: rx.RxMapName.GAPS, sources: rx.RxMapName.SOURCES });
    expect(c.rx_const).toEqual({ XSEQ_RX_STREAMS: rx.XSEQ_RX_STREAMS, XSEQ_RX_GAPS_BYTES: rx.XSEQ_RX_GAPS_BYTES, XSEQ_RX_SOURCES: rx.XSEQ_RX_SOURCES });
  });

  it('replica side: key, ctl, state, gap event and load config, field by field', () => {
    const hexAt = (b: Uint8Array, f: Fields, name: string) => Buffer.from(b.subarray(f[name]![0], f[name]![0] + f[name]![1])).toString('hex');

    expect(c.rx_key.size).toBe(rx.RX_KEY_SIZE);
    const key = rx.encodeRxKey({ groupId: 0x01020304, sequencerId: 0x0506 });
    expect(hexAt(key, c.rx_key.fields, 'group_id')).toBe('04030201');
    expect(hexAt(key, c.rx_key.fields, 'sequencer_id')).toBe('0605');
    expect(hexAt(key, c.rx_key.fields, 'pad')).toBe('0000');
    expect(rx.decodeRxKey(key)).toEqual({ groupId: 0x01020304, sequencerId: 0x0506 });

    expect(c.rx_ctl.size).toBe(rx.RX_CTL_SIZE);
    const ctl = { session: 0x0a0b0c0d, delivered: 0x1112131415161718n, retransmitKeep: 0x2122232425262728n };
    const cb = rx.encodeRxCtl(ctl);
    expect(hexAt(cb, c.rx_ctl.fields, 'session')).toBe('0d0c0b0a');
    expect(hexAt(cb, c.rx_ctl.fields, 'delivered')).toBe('1817161514131211');
    expect(hexAt(cb, c.rx_ctl.fields, 'retransmit_keep')).toBe('2827262524232221');
    expect(rx.decodeRxCtl(cb)).toEqual(ctl);

    expect(c.rx_state.size).toBe(rx.RX_STATE_SIZE);
    const f = c.rx_state.fields;
    expect({
      session: f['session']![0], highestSeen: f['highest_seen']![0], droppedStale: f['dropped_stale']![0], droppedDuplicate: f['dropped_duplicate']![0],
      passedRetransmit: f['passed_retransmit']![0], gapEvents: f['gap_events']![0], gapSeqs: f['gap_seqs']![0],
    }).toEqual(rx.RX_STATE);
    const st = new Uint8Array(rx.RX_STATE_SIZE);
    const sv = new DataView(st.buffer);
    sv.setUint32(f['session']![0], 7, true);
    sv.setBigUint64(f['highest_seen']![0], 99n, true);
    sv.setBigUint64(f['gap_seqs']![0], 5n, true);
    expect(rx.decodeRxState(st)).toMatchObject({ session: 7, highestSeen: 99n, gapSeqs: 5n, gapEvents: 0n });

    expect(c.gap_event.size).toBe(rx.GAP_EVENT_SIZE);
    const ev = { groupId: 0x01020304, sequencerId: 0x0506, session: 0x0a0b0c0d, from: 0x1112131415161718n, to: 0x2122232425262728n };
    const eb = rx.encodeGapEvent(ev);
    const g = c.gap_event.fields;
    expect(hexAt(eb, g, 'group_id')).toBe('04030201');
    expect(hexAt(eb, g, 'sequencer_id')).toBe('0605');
    expect(hexAt(eb, g, 'session')).toBe('0d0c0b0a');
    expect(hexAt(eb, g, 'from')).toBe('1817161514131211');
    expect(hexAt(eb, g, 'to')).toBe('2827262524232221');
    expect(rx.decodeGapEvent(eb)).toEqual(ev);

    expect(c.rx_cfg).toEqual({ size: rx.RX_CFG_SIZE, fields: { port: [0, 2], check_sources: [2, 1] } });
    expect(Buffer.from(rx.encodeRxCfg({ port: 7500 })).toString('hex')).toBe('1d4c0000');
    expect(Buffer.from(rx.encodeRxCfg({ port: 7500, checkSources: true })).toString('hex')).toBe('1d4c0100');
    expect(c.rx_source.size).toBe(rx.RX_SOURCE_SIZE);
    const src = rx.encodeRxSource({ host: '10.1.2.3', port: 0x1d4c });
    expect(hexAt(src, c.rx_source.fields, 'addr')).toBe('0a010203');
    expect(hexAt(src, c.rx_source.fields, 'port')).toBe('1d4c');
    expect(hexAt(src, c.rx_source.fields, 'pad')).toBe('0000');
  });

  it('sequences (NEXTVAL): request and reply payloads, map values, counters, statuses and names', () => {
    const off = (f: Fields) => Object.fromEntries(Object.entries(f).map(([k, v]) => [k, v[0]]));
    expect(c.nv_req.size).toBe(nv.NV_REQ_SIZE);
    expect(off(c.nv_req.fields)).toEqual(nv.NV_REQ);
    expect(c.nv_req.fields['name']![1]).toBe(nv.XSEQ_NV_NAME_MAX);
    expect(c.nv_reply.size).toBe(nv.NV_REPLY_SIZE);
    expect(off(c.nv_reply.fields)).toEqual({ first: nv.NV_REPLY.first, count: nv.NV_REPLY.count, increment: nv.NV_REPLY.increment, mark: nv.NV_REPLY.mark, seq_id: nv.NV_REPLY.seqId, status: nv.NV_REPLY.status, reserved: nv.NV_REPLY.reserved });
    // The reply overwrites the request in place: the frame keeps its length.
    expect(c.nv_reply.size).toBe(c.nv_req.size);
    expect(c.nv_seq.size).toBe(nv.NV_SEQ.size);
    expect(off(c.nv_seq.fields)).toEqual({ next: nv.NV_SEQ.next, mark: nv.NV_SEQ.mark, increment: nv.NV_SEQ.increment, cache: nv.NV_SEQ.cache, flags: nv.NV_SEQ.flags, group_id: nv.NV_SEQ.groupId });
    expect(c.nv_name).toEqual({ size: nv.XSEQ_NV_NAME_MAX, fields: { name: [0, nv.XSEQ_NV_NAME_MAX] } });
    expect(c.nv_stats.size).toBe(nv.NV_STATS.size);
    expect(off(c.nv_stats.fields)).toEqual({ calls: nv.NV_STATS.calls, values: nv.NV_STATS.values, refused: nv.NV_STATS.refused });
    const ctr = Object.fromEntries(nv.NV_COUNTER_NAMES.map((n, i) => [`XSEQ_NV_CTR_${n.toUpperCase()}`, i]));
    ctr['XSEQ_NV_CTR_MAX'] = nv.NV_COUNTER_NAMES.length;
    expect(ctr).toEqual(c.nv_ctr);
    expect(c.nv_status).toEqual({ XSEQ_NV_OK: nv.NvStatus.OK, XSEQ_NV_UNKNOWN: nv.NvStatus.UNKNOWN, XSEQ_NV_REFUSED: nv.NvStatus.REFUSED });
    expect(c.nv_const).toEqual({ XSEQ_NV_NAME_MAX: nv.XSEQ_NV_NAME_MAX, XSEQ_NV_MAX_SEQS: nv.XSEQ_NV_MAX_SEQS, XSEQ_NV_MAX_COUNT: nv.XSEQ_NV_MAX_COUNT, XSEQ_NV_F_ENABLED: nv.XSEQ_NV_F_ENABLED, XSEQ_NV_F_KEYED: nv.XSEQ_NV_F_KEYED });
    expect(c.nv_names).toEqual({ seqs: nv.NvMapName.SEQS, names: nv.NvMapName.NAMES, stats: nv.NvMapName.STATS, counters: nv.NvMapName.COUNTERS });

    // Byte order: payloads network order, field by field.
    const req = nv.encodeNvRequestPayload({ name: 'orders', count: 0x01020304 });
    expect(req.subarray(0, 8).toString('hex')).toBe('0102030400000000');
    expect(nv.decodeName(req.subarray(nv.NV_REQ.name))).toBe('orders');
    const rep = { first: 0x0102030405060708n, count: 0x11121314, increment: 0x21222324, mark: 0x3132333435363738n, seqId: 0x41424344, status: 2 };
    const rb = nv.encodeNvReplyPayload(rep);
    expect(rb.toString('hex')).toBe('0102030405060708' + '11121314' + '21222324' + '3132333435363738' + '41424344' + '0002' + '0000' + '0000000000000000');
    expect(nv.decodeNvReplyPayload(rb)).toEqual(rep);
    // Map values: host order (little endian on this machine's CPUs).
    const sv = { next: 0x0102030405060708n, mark: 0x1112131415161718n, increment: 3n, cache: 0x21222324, enabled: true };
    const sb = nv.encodeNvSeq(sv);
    expect(Buffer.from(sb.subarray(nv.NV_SEQ.cache, nv.NV_SEQ.cache + 8)).toString('hex')).toBe('2423222101000000');
    expect(nv.decodeNvSeq(sb)).toEqual(sv);
    const kv = { ...sv, keyedGroup: 0x31323334 };
    const kb = nv.encodeNvSeq(kv);
    expect(Buffer.from(kb.subarray(nv.NV_SEQ.flags, nv.NV_SEQ.flags + 8)).toString('hex')).toBe('0300000034333231');
    expect(nv.decodeNvSeq(kb)).toEqual(kv);
  });
});

// docs/PROTOCOL.md is what a stranger implements from: its tables must say
// what the header says, every value of the header and nothing else.
describe('docs/PROTOCOL.md and bpf/xseq.h agree', () => {
  const doc = join(root, 'docs/PROTOCOL.md');
  const byName = (rows: Row[], name: string, value: string) => Object.fromEntries(rows.map((r) => [unquote(r[name]!), num(r[value]!)]));

  it('the header table: every field at its offset and size', () => {
    const rows = tableUnder(doc, 'The header');
    expect(Object.fromEntries(rows.map((r) => [r['field'], [num(r['offset']!), num(r['size']!)]]))).toEqual(c.hdr.fields);
  });

  it('the message types: every type by value and C name, and the message name', () => {
    const rows = tableUnder(doc, 'Message types');
    const { XSEQ_MSG_TYPE_MAX: _max, ...types } = c.msg;
    expect(byName(rows, 'C name', 'value')).toEqual(types);
    for (const r of rows) expect(`XSEQ_MSG_${r['message']}`).toBe(unquote(r['C name']!));
  });

  it('the flags: every XSEQ_F_ bit', () => {
    const flags = Object.fromEntries(Object.entries(c.const).filter(([k]) => k.startsWith('XSEQ_F_')));
    expect(byName(tableUnder(doc, 'Flags'), 'C name', 'bit')).toEqual(flags);
  });

  it('the error codes, and the metric label each is exported under', () => {
    const rows = tableUnder(doc, 'Error codes');
    expect(byName(rows, 'C name', 'code')).toEqual(c.err);
    for (const r of rows) expect(unquote(r['metric `code` label']!)).toBe(unquote(r['C name']!).replace('XSEQ_ERR_', '').toLowerCase());
  });

  it('the payload structs: every field at its offset and size', () => {
    const rows = tableUnder(doc, 'Payloads');
    for (const s of ['repair_req', 'repair_reply', 'weights_report', 'error'] as const) {
      const mine = rows.filter((r) => r['struct'] === `xseq_${s}`);
      expect(Object.fromEntries(mine.map((r) => [r['field'], [num(r['offset']!), num(r['size']!)]]))).toEqual(c[s].fields);
    }
  });

  it('the sequencer counters: every one by index, C name and the name the agent exports', () => {
    const rows = tableUnder(doc, 'Sequencer counters');
    const { XSEQ_CTR_MAX: _max, ...ctrs } = c.ctr;
    expect(byName(rows, 'C name', 'index')).toEqual(ctrs);
    expect(rows.map((r) => r['counter'])).toEqual([...maps.COUNTER_NAMES]);
  });
});
