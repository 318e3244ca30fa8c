import { describe, expect, it } from 'vitest';
import { decodeMessage, emptyHeader, encodeHeader, encodeMessage, Flags, MsgType, WireError, XSEQ_HDR_LEN, XSEQ_MAC_LEN, XSEQ_MAX_PAYLOAD } from '../bpf/wire.ts';

const valid = () =>
  encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId: 7, clientId: 42n, requestId: 9n }, Buffer.from('hello'));

describe('wire codec', () => {
  it('round-trips every field, payload included', () => {
    const h = { ...emptyHeader(), type: MsgType.ACK, flags: 3, groupId: 2 ** 32 - 1, sequencerId: 65535, replicaId: 2, session: 77, view: 5, seq: 2n ** 64n - 1n, clockNs: 123n, clientId: 1n, requestId: 2n };
    const r = decodeMessage(encodeMessage(h, Buffer.from('xyz')));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.message.header).toEqual({ ...h, payloadLen: 3 });
    expect(Buffer.from(r.message.payload).toString()).toBe('xyz');
  });

  const cases: [string, (b: Buffer) => Buffer, string][] = [
    ['short buffer', (b) => b.subarray(0, 10), 'EWIRE_TRUNCATED'],
    ['bad magic', (b) => (b.writeUInt32BE(0xdeadbeef, 0), b), 'EWIRE_BAD_MAGIC'],
    ['unsupported version', (b) => (b.writeUInt8(9, 4), b), 'EWIRE_BAD_VERSION'],
    ['type zero', (b) => (b.writeUInt8(0, 5), b), 'EWIRE_UNKNOWN_TYPE'],
    ['type past the enum', (b) => (b.writeUInt8(200, 5), b), 'EWIRE_UNKNOWN_TYPE'],
    ['payload_len larger than the bytes', (b) => (b.writeUInt32BE(6, 56), b), 'EWIRE_BAD_LENGTH'],
    ['payload_len smaller than the bytes', (b) => Buffer.concat([b, Buffer.from('!')]), 'EWIRE_BAD_LENGTH'],
    ['payload over the maximum', (b) => {
      const big = Buffer.alloc(XSEQ_HDR_LEN + XSEQ_MAX_PAYLOAD + 1);
      b.copy(big, 0, 0, XSEQ_HDR_LEN);
      big.writeUInt32BE(XSEQ_MAX_PAYLOAD + 1, 56);
      return big;
    }, 'EWIRE_BAD_LENGTH'],
  ];
  it.each(cases)('%s is a typed error', (_name, mangle, code) => {
    const r = decodeMessage(mangle(valid()));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toBeInstanceOf(WireError);
    expect(r.error.code).toBe(code);
  });

  it('never throws on random bytes (10,000 buffers); what it accepts re-encodes to the same bytes', () => {
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    let ok = 0;
    const codes = new Map<string, number>();
    for (let i = 0; i < 10_000; i++) {
      const b = Buffer.alloc(rnd() % 160);
      for (let j = 0; j < b.length; j++) b[j] = rnd();
      // Half of them start with a valid header so the later checks are
      // reached too, and half of those carry a payload_len that fits, so
      // that random headers get accepted.
      if (i % 2 === 0 && b.length >= XSEQ_HDR_LEN) {
        valid().copy(b, 0, 0, 6);
        // A MAC trailer (random flags set XSEQ_F_MAC half the time) is outside payload_len.
        const trailer = b.readUInt16BE(6) & Flags.MAC ? XSEQ_MAC_LEN : 0;
        if (i % 4 === 0 && b.length >= XSEQ_HDR_LEN + trailer) b.writeUInt32BE(b.length - XSEQ_HDR_LEN - trailer, 56);
      }
      const r = decodeMessage(b);
      if (r.ok) {
        ok++;
        // Accepted means every byte was understood: nothing dropped or
        // altered, but the reserved word (bytes 60..63), which the decoder
        // ignores and the encoder writes as zero.
        // The trailer is not the decoder's to keep: it is checked, by a key holder, before.
        const want = Buffer.from(b.subarray(0, b.length - (r.message.header.flags & Flags.MAC ? XSEQ_MAC_LEN : 0)));
        want.writeUInt32BE(0, 60);
        expect(Buffer.compare(encodeMessage(r.message.header, r.message.payload), want), `buffer ${i}`).toBe(0);
      } else {
        expect(r.error.code).toMatch(/^EWIRE_/);
        codes.set(r.error.code, (codes.get(r.error.code) ?? 0) + 1);
      }
    }
    // Both outcomes, and each refusal class, occur many times: the loop
    // reached every check, it did not only bounce off the first.
    expect(ok).toBeGreaterThan(1000);
    for (const code of ['EWIRE_TRUNCATED', 'EWIRE_BAD_MAGIC', 'EWIRE_BAD_LENGTH']) expect(codes.get(code) ?? 0, code).toBeGreaterThan(100);
  });

  it('refuses to encode a field that does not fit', () => {
    const out = new Uint8Array(XSEQ_HDR_LEN);
    expect(() => encodeHeader({ ...emptyHeader(), sequencerId: 70000 }, out)).toThrow(/sequencerId=70000 is not a u16/);
    expect(() => encodeHeader({ ...emptyHeader(), seq: -1n }, out)).toThrow(WireError);
    expect(() => encodeHeader(emptyHeader(), new Uint8Array(10))).toThrow(/need 64 bytes/);
  });
});
