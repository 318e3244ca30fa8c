// SipHash-2-4 and the MAC trailer in user space (bpf/siphash.ts, bpf/mac.ts),
// and the key file (bpf/key-file.ts). The kernel's copy is checked against
// this one in test/mac.prog.test.ts.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readKeyFile } from '../bpf/key-file.ts';
import { checkMac, groupKey, seal, sealInPlace } from '../bpf/mac.ts';
import { siphash24, sipKey } from '../bpf/siphash.ts';
import { decodeMessage, emptyHeader, encodeMessage, Flags, MsgType, XSEQ_HDR_LEN, XSEQ_MAC_LEN } from '../bpf/wire.ts';

// The SipHash paper's test vectors (appendix of "SipHash: a fast
// short-input PRF"): key 00 01 .. 0f, message 00 01 .. (n-1) for n = 0..63,
// output read as a little-endian u64.
const VECTORS = [
  0x726fdb47dd0e0e31n, 0x74f839c593dc67fdn, 0x0d6c8009d9a94f5an, 0x85676696d7fb7e2dn, 0xcf2794e0277187b7n, 0x18765564cd99a68dn,
  0xcbc9466e58fee3cen, 0xab0200f58b01d137n, 0x93f5f5799a932462n, 0x9e0082df0ba9e4b0n, 0x7a5dbbc594ddb9f3n, 0xf4b32f46226bada7n,
  0x751e8fbc860ee5fbn, 0x14ea5627c0843d90n, 0xf723ca908e7af2een, 0xa129ca6149be45e5n, 0x3f2acc7f57c29bdbn, 0x699ae9f52cbe4794n,
  0x4bc1b3f0968dd39cn, 0xbb6dc91da77961bdn, 0xbed65cf21aa2ee98n, 0xd0f2cbb02e3b67c7n, 0x93536795e3a33e88n, 0xa80c038ccd5ccec8n,
  0xb8ad50c6f649af94n, 0xbce192de8a85b8ean, 0x17d835b85bbb15f3n, 0x2f2e6163076bcfadn, 0xde4daaaca71dc9a5n, 0xa6a2506687956571n,
  0xad87a3535c49ef28n, 0x32d892fad841c342n, 0x7127512f72f27ccen, 0xa7f32346f95978e3n, 0x12e0b01abb051238n, 0x15e034d40fa197aen,
  0x314dffbe0815a3b4n, 0x027990f029623981n, 0xcadcd4e59ef40c4dn, 0x9abfd8766a33735cn, 0x0e3ea96b5304a7d0n, 0xad0c42d6fc585992n,
  0x187306c89bc215a9n, 0xd4a60abcf3792b95n, 0xf935451de4f21df2n, 0xa9538f0419755787n, 0xdb9acddff56ca510n, 0xd06c98cd5c0975ebn,
  0xe612a3cb9ecba951n, 0xc766e62cfcadaf96n, 0xee64435a9752fe72n, 0xa192d576b245165an, 0x0a8787bf8ecb74b2n, 0x81b3e73d20b49b6fn,
  0x7fa8220ba3b2ecean, 0x245731c13ca42499n, 0xb78dbfaf3a8d83bdn, 0xea1ad565322a1a0bn, 0x60e61c23a3795013n, 0x6606d7e446282b93n,
  0x6ca4ecb15c5f91e1n, 0x9f626da15c9625f3n, 0xe51b38608ef25f57n, 0x958a324ceb064572n,
];
const K = Uint8Array.from({ length: 16 }, (_, i) => i);

describe('SipHash-2-4', () => {
  it.each(VECTORS.map((v, n) => [n, v] as const))('the paper vector for a %i-byte message', (n, want) => {
    const msg = Uint8Array.from({ length: n }, (_, i) => i);
    expect(siphash24(sipKey(K), msg)).toBe(want);
  });

  it('long messages: every length up to 1472 differs from its neighbours, and the key matters', () => {
    const msg = Uint8Array.from({ length: 1472 }, (_, i) => (i * 7 + 3) & 0xff);
    const seen = new Set<bigint>();
    for (let n = 0; n <= msg.length; n += 37) seen.add(siphash24(sipKey(K), msg.subarray(0, n)));
    expect(seen.size).toBe(Math.floor(msg.length / 37) + 1);
    const other = Uint8Array.from(K);
    other[15] = other[15]! ^ 0x80;
    expect(siphash24(sipKey(other), msg)).not.toBe(siphash24(sipKey(K), msg));
  });
});

describe('the MAC trailer', () => {
  const key = groupKey(K);
  const msg = encodeMessage({ ...emptyHeader(), type: MsgType.SEQUENCED, groupId: 3, session: 9, seq: 42n, clientId: 7n, requestId: 8n }, Buffer.from('a payload of some bytes'));

  it('seal sets the flag, appends the MAC of header + payload, and the decoder ignores the trailer', () => {
    const s = seal(msg, key);
    expect(s.length).toBe(msg.length + XSEQ_MAC_LEN);
    expect(s.readUInt16BE(6) & Flags.MAC).toBe(Flags.MAC);
    const flagged = Buffer.from(msg);
    flagged.writeUInt16BE(Flags.MAC, 6);
    expect(s.subarray(msg.length).readBigUInt64LE(0)).toBe(siphash24(key.sip, flagged));
    expect(checkMac(s, key)).toBe('ok');
    const d = decodeMessage(s);
    expect(d.ok && Buffer.from(d.message.payload).toString()).toBe('a payload of some bytes');
  });

  it('sealInPlace equals seal', () => {
    const b = Buffer.alloc(msg.length + XSEQ_MAC_LEN);
    b.set(msg);
    sealInPlace(b, msg.length, key);
    expect(b).toEqual(seal(msg, key));
  });

  it('wrong key, every flipped bit, truncation, a length lie and no MAC are all refused', () => {
    const s = seal(msg, key);
    const other = Uint8Array.from(K);
    other[0] = other[0]! ^ 1;
    expect(checkMac(s, groupKey(other))).toBe('bad_mac');
    for (let bit = 0; bit < s.length * 8; bit++) {
      const f = Buffer.from(s);
      f[bit >> 3]! ^= 1 << (bit & 7);
      expect(checkMac(f, key), `bit ${bit}`).not.toBe('ok');
    }
    for (let n = 0; n < s.length; n++) expect(checkMac(s.subarray(0, n), key), `${n} bytes`).not.toBe('ok');
    const lie = Buffer.from(s);
    lie.writeUInt32BE(lie.readUInt32BE(56) + 1, 56);
    expect(checkMac(lie, key)).toBe('bad_length');
    expect(checkMac(msg, key)).toBe('no_mac');
    expect(checkMac(Buffer.concat([msg, Buffer.alloc(8)]), key)).toBe('no_mac');
  });

  it('a header-only message (FLUSH) seals and checks', () => {
    const f = encodeMessage({ ...emptyHeader(), type: MsgType.FLUSH, groupId: 1, seq: 5n });
    expect(f.length).toBe(XSEQ_HDR_LEN);
    expect(checkMac(seal(f, key), key)).toBe('ok');
  });
});

describe('the key file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xseq-key-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, body: string | Buffer, mode = 0o600) => {
    const p = join(dir, name);
    writeFileSync(p, body);
    chmodSync(p, mode);
    return p;
  };

  it('32 hex digits (with or without a newline) and 16 raw bytes are the same key', () => {
    const hex = Buffer.from(K).toString('hex');
    expect(readKeyFile(file('a', `${hex}\n`)).bytes).toEqual(K);
    expect(readKeyFile(file('b', hex)).bytes).toEqual(K);
    expect(readKeyFile(file('c', Buffer.from(K))).bytes).toEqual(K);
    expect(readKeyFile(file('g', hex, 0o640)).bytes).toEqual(K);
  });

  it.each([
    ['missing', () => join(dir, 'nope'), 'EKEY_MISSING'],
    ['a directory', () => dir, 'EKEY_UNREADABLE'],
    ['15 bytes', () => file('d', Buffer.alloc(15)), 'EKEY_SIZE'],
    ['31 hex digits', () => file('e', 'a'.repeat(31)), 'EKEY_SIZE'],
    ['33 hex digits', () => file('e2', 'a'.repeat(33)), 'EKEY_SIZE'],
    ['world-readable', () => file('f', 'a'.repeat(32), 0o644), 'EKEY_PERMISSIONS'],
    ['world-writable', () => file('h', 'a'.repeat(32), 0o602), 'EKEY_PERMISSIONS'],
  ])('%s: %s', (_name, path, code) => {
    expect(() => readKeyFile(path())).toThrow(expect.objectContaining({ code }));
  });
});
