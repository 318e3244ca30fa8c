// WEIGHTS (bpf/xseq.h struct xseq_weights_report): a replica's report of the
// group's committed weight table to a sequencer's agent. Big endian like the
// header; test/contract.test.ts proves the layout equal to the C struct.
import { XSEQ_MAX_REPLICAS } from './maps.ts';
import { emptyHeader, encodeMessage, MsgType } from './wire.ts';

export const WEIGHTS_REPORT_SIZE = 10 + XSEQ_MAX_REPLICAS + 2;

export interface WeightsReport {
  /** The table's version in the replicas' ledger (header.seq). */
  version: number;
  weights: number[];
  f: number;
  /** Changes the ledger applied, and committed as no-op changes, so far. */
  applied: number;
  refused: number;
}

export function encodeWeightsReport(a: { groupId: number; replicaId: number; session?: number }, r: WeightsReport): Buffer {
  if (r.weights.length > XSEQ_MAX_REPLICAS) throw new RangeError(`${r.weights.length} weights; at most ${XSEQ_MAX_REPLICAS}`);
  const p = Buffer.alloc(WEIGHTS_REPORT_SIZE);
  p.writeUInt32BE(r.applied >>> 0, 0);
  p.writeUInt32BE(r.refused >>> 0, 4);
  p.writeUInt8(r.weights.length, 8);
  p.writeUInt8(r.f, 9);
  r.weights.forEach((w, i) => p.writeUInt8(w, 10 + i));
  return encodeMessage({ ...emptyHeader(), type: MsgType.WEIGHTS, groupId: a.groupId, replicaId: a.replicaId, session: a.session ?? 0, seq: BigInt(r.version) }, p);
}

/** The report a WEIGHTS payload holds (version from header.seq), or null if malformed. */
export function decodeWeightsReport(version: bigint, payload: Uint8Array): WeightsReport | null {
  if (payload.length !== WEIGHTS_REPORT_SIZE || version < 1n || version > 0xffffffffn) return null;
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  const n = b.readUInt8(8);
  if (n < 1 || n > XSEQ_MAX_REPLICAS) return null;
  return { version: Number(version), applied: b.readUInt32BE(0), refused: b.readUInt32BE(4), f: b.readUInt8(9), weights: [...b.subarray(10, 10 + n)] };
}
