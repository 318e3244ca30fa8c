// Builds and parses Ethernet/IPv4/UDP frames for code that feeds the XDP
// programs directly (BPF_PROG_TEST_RUN) and check the bytes they emit.

export interface FrameSpec {
  srcMac?: string;
  dstMac?: string;
  etherType?: number;
  srcIp?: string;
  dstIp?: string;
  protocol?: number;
  ttl?: number;
  /** IPv4 options bytes (multiple of 4); makes ihl > 5. */
  ipOptions?: Uint8Array;
  /** Raw IPv4 frag_off field (flags + offset), host order. */
  fragOff?: number;
  srcPort?: number;
  dstPort?: number;
  /** Compute the UDP checksum (true) or send zero (false). */
  udpChecksum?: boolean;
  /** Override the UDP length field. */
  udpLen?: number;
  /** Override the IPv4 total length field. */
  ipTotalLen?: number;
  payload: Uint8Array;
}

export function mac(s: string): number[] {
  return s.split(':').map((h) => parseInt(h, 16));
}
export function ip4(s: string): number[] {
  return s.split('.').map(Number);
}

/** One's-complement sum of 16-bit big-endian words, unfolded. */
function sum16(b: Uint8Array, start: number, end: number, acc = 0): number {
  for (let i = start; i < end; i += 2) acc += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
  return acc;
}
function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return acc;
}

export function ipv4Checksum(frame: Uint8Array, ipOff = 14): number {
  const ihl = (frame[ipOff]! & 0x0f) * 4;
  const saved = [frame[ipOff + 10]!, frame[ipOff + 11]!];
  frame[ipOff + 10] = 0;
  frame[ipOff + 11] = 0;
  const c = ~fold(sum16(frame, ipOff, ipOff + ihl)) & 0xffff;
  frame[ipOff + 10] = saved[0]!;
  frame[ipOff + 11] = saved[1]!;
  return c;
}

/** The UDP checksum the frame should carry (pseudo header + UDP), computed from scratch. */
export function udpChecksum(frame: Uint8Array, ipOff = 14): number {
  const ihl = (frame[ipOff]! & 0x0f) * 4;
  const u = ipOff + ihl;
  const udpLen = (frame[u + 4]! << 8) | frame[u + 5]!;
  let acc = sum16(frame, ipOff + 12, ipOff + 20); // saddr, daddr
  acc += 17 + udpLen;
  const saved = [frame[u + 6]!, frame[u + 7]!];
  frame[u + 6] = 0;
  frame[u + 7] = 0;
  acc = sum16(frame, u, u + udpLen, acc);
  frame[u + 6] = saved[0]!;
  frame[u + 7] = saved[1]!;
  const c = ~fold(acc) & 0xffff;
  return c === 0 ? 0xffff : c;
}

export function buildFrame(s: FrameSpec): Buffer {
  const opts = s.ipOptions ?? new Uint8Array(0);
  const ihl = 20 + opts.length;
  const udpLen = 8 + s.payload.length;
  const f = Buffer.alloc(14 + ihl + udpLen);
  f.set(mac(s.dstMac ?? '02:00:00:00:00:02'), 0);
  f.set(mac(s.srcMac ?? '02:00:00:00:00:01'), 6);
  f.writeUInt16BE(s.etherType ?? 0x0800, 12);
  const ip = 14;
  f[ip] = 0x40 | (ihl / 4);
  f.writeUInt16BE(s.ipTotalLen ?? ihl + udpLen, ip + 2);
  f.writeUInt16BE(0x1234, ip + 4);
  f.writeUInt16BE(s.fragOff ?? 0x4000, ip + 6); // DF
  f[ip + 8] = s.ttl ?? 64;
  f[ip + 9] = s.protocol ?? 17;
  f.set(ip4(s.srcIp ?? '10.77.0.1'), ip + 12);
  f.set(ip4(s.dstIp ?? '10.77.0.2'), ip + 16);
  f.set(opts, ip + 20);
  const u = ip + ihl;
  f.writeUInt16BE(s.srcPort ?? 40000, u);
  f.writeUInt16BE(s.dstPort ?? 7400, u + 2);
  f.writeUInt16BE(s.udpLen ?? udpLen, u + 4);
  f.set(s.payload, u + 8);
  f.writeUInt16BE(ipv4Checksum(f), ip + 10);
  if (s.udpChecksum ?? true) f.writeUInt16BE(udpChecksum(f), u + 6);
  return f;
}

export interface ParsedFrame {
  dstMac: string;
  srcMac: string;
  srcIp: string;
  dstIp: string;
  ttl: number;
  srcPort: number;
  dstPort: number;
  ipCheck: number;
  udpCheck: number;
  /** UDP payload (the xseq message). */
  payload: Buffer;
}

const hex2 = (n: number) => n.toString(16).padStart(2, '0');
export function parseFrame(f: Uint8Array): ParsedFrame {
  const b = Buffer.from(f);
  const ihl = (b[14]! & 0x0f) * 4;
  const u = 14 + ihl;
  return {
    dstMac: [...b.subarray(0, 6)].map(hex2).join(':'),
    srcMac: [...b.subarray(6, 12)].map(hex2).join(':'),
    srcIp: [...b.subarray(26, 30)].join('.'),
    dstIp: [...b.subarray(30, 34)].join('.'),
    ttl: b[22]!,
    srcPort: b.readUInt16BE(u),
    dstPort: b.readUInt16BE(u + 2),
    ipCheck: b.readUInt16BE(24),
    udpCheck: b.readUInt16BE(u + 6),
    payload: b.subarray(u + 8, u + b.readUInt16BE(u + 4)),
  };
}
