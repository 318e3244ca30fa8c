// Proves the TypeScript codecs equal to bpf/xseq.h: test/contract/dump.c is
// compiled against the header and prints every size, offset and enum value,
// plus a header encoded by C; the TypeScript side must match byte for byte.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as maps from '../bpf/maps.ts';
import * as wire from '../bpf/wire.ts';

type Fields = Record<string, [number, number]>;
interface Dump {
  hdr: { size: number; fields: Fields };
  group: { size: number; fields: Fields };
  group_seq: { size: number; fields: Fields };
  load_cfg: { size: number; fields: Fields };
  drop_event: { size: number; fields: Fields };
  msg: Record<string, number>;
  ctr: Record<string, number>;
  const: Record<string, number>;
  names: Record<string, string>;
  sample: string;
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
    });
    expect(c.names).toEqual({
      prog: maps.PROG_SEQUENCER,
      groups: maps.MapName.GROUPS,
      group_seq: maps.MapName.GROUP_SEQ,
      counters: maps.MapName.COUNTERS,
      events: maps.MapName.EVENTS,
      pin_root: maps.PIN_ROOT,
    });
  });

  it('struct xseq_group: encodeGroup puts each field at its C offset in its byte order', () => {
    expect(c.group.size).toBe(maps.GROUP_SIZE);
    const b = maps.encodeGroup({ mcastAddr: '239.1.2.3', mcastPort: 0x1d4c, sequencerId: 0x0102, session: 0x0a0b0c0d, enabled: true });
    const f = c.group.fields;
    const at = (name: string) => Buffer.from(b.subarray(f[name]![0], f[name]![0] + f[name]![1])).toString('hex');
    expect(at('mcast_addr')).toBe('ef010203'); // network order
    expect(at('mcast_port')).toBe('1d4c'); // network order
    expect(at('sequencer_id')).toBe('0201'); // host order (little endian)
    expect(at('session')).toBe('0d0c0b0a');
    expect(at('flags')).toBe('01000000');
    expect(maps.decodeGroup(b)).toEqual({ mcastAddr: '239.1.2.3', mcastPort: 0x1d4c, sequencerId: 0x0102, session: 0x0a0b0c0d, enabled: true });
  });

  it('struct xseq_group_seq, xseq_load_cfg and xseq_drop_event: sizes and offsets', () => {
    expect(c.group_seq.size).toBe(maps.GROUP_SEQ_SIZE);
    expect(c.group_seq.fields['seq']).toEqual([0, 8]);
    expect(maps.decodeGroupSeq(maps.encodeGroupSeq(0x0102030405060708n))).toBe(0x0102030405060708n);

    expect(c.load_cfg.size).toBe(maps.LOAD_CFG_SIZE);
    const cfg = maps.encodeLoadCfg({ port: 7400 });
    const [po] = c.load_cfg.fields['port']!;
    expect(Buffer.from(cfg.subarray(po, po + 2)).toString('hex')).toBe('1ce8');

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
});
