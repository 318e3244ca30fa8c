// The sequencer's window slots (struct xseq_slot in bpf/xseq.h) read through
// the mmap view of xseq_slots: no syscall per slot, so the retransmitter can
// scan a whole window every few milliseconds and the repair service can
// answer 128 seqs at once.
//
// The kernel writes a slot while we read it, without a lock. seq_keep()
// stores the slot's seq first, then stamp, session and the message (whose
// header carries seq and clock again). A reader therefore checks, after
// copying, that the slot still holds the seq it started with (an overwrite
// that began during the copy changed it) and that the copied header names
// the same seq and clock as the slot (a write already under way when the
// copy began has not reached the message yet).
import { endianness } from 'node:os';
import type { BpfMap } from '../bpf/libbpf/index.ts';
import { SLOT, XSEQ_ACKS_BITMAP, XSEQ_MSG_CAP } from '../bpf/maps.ts';
import { Flags, MsgType, XSEQ_HDR_LEN } from '../bpf/wire.ts';

// Slot fields are host order, so a Uint32Array (native order) reads them
// directly; only which half of a u64 comes first depends on the CPU.
const LE = endianness() === 'LE';
const LO = LE ? 0 : 1;
const HI = 1 - LO;
const TWO32 = 4294967296;

// u32 indexes within a slot.
const W_SEQ = SLOT.seq / 4;
const W_ACKS = SLOT.acks / 4; // + LO: the ack bitmap; + HI: the view
const W_STAMP = SLOT.stampNs / 4;
const W_SESSION = SLOT.session / 4;

/** A TAI instant split in u32 halves, that times are measured from. */
export interface Epoch {
  hi: number;
  lo: number;
}

export function epochOf(ns: bigint): Epoch {
  return { hi: Number(ns >> 32n), lo: Number(ns & 0xffffffffn) };
}

export class SlotWindow {
  /** Slots per group window (the sequencer's window_slots). */
  readonly windowSlots: number;
  readonly #mask: number;
  readonly #bytes: Uint8Array;
  readonly #words: Uint32Array;
  readonly #data: DataView;
  /** Bytes between slots: the kernel rounds array values up to 8. */
  readonly #stride: number;
  readonly #slots: number;

  constructor(map: BpfMap, windowSlots: number) {
    this.#bytes = map.mmap();
    this.#words = new Uint32Array(this.#bytes.buffer, this.#bytes.byteOffset, this.#bytes.byteLength >>> 2);
    this.#data = new DataView(this.#bytes.buffer, this.#bytes.byteOffset, this.#bytes.byteLength);
    this.#stride = Math.ceil(map.valueSize / 8) * 8;
    this.#slots = map.maxEntries;
    this.windowSlots = windowSlots;
    this.#mask = windowSlots - 1;
  }

  /** Index in xseq_slots of the slot that holds `seq` for a window at `base`. */
  slotOf(windowBase: number, seq: number): number {
    // seq & mask on a Number above 2^32 would truncate: take the low bits
    // of the low word only (windows are at most 2^20 slots).
    return windowBase + ((seq % TWO32) & this.#mask);
  }

  /** The seq a slot holds (0 = never used). Exact below 2^53. */
  seqAt(slot: number): number {
    const w = slot * (this.#stride >>> 2) + W_SEQ;
    return this.#words[w + HI]! * TWO32 + this.#words[w + LO]!;
  }

  /** Bitmap of the replicas that acked the slot's seq in its current view
   * (the low word also holds the seq's generation above the bitmap). */
  ackedAt(slot: number): number {
    return this.#words[slot * (this.#stride >>> 2) + W_ACKS + LO]! & XSEQ_ACKS_BITMAP;
  }

  /** The view the slot's acks were counted in. */
  viewAt(slot: number): number {
    return this.#words[slot * (this.#stride >>> 2) + W_ACKS + HI]!;
  }

  /**
   * TAI ns at stamping, minus `epoch` (see epochOf). Exact while the two are
   * within 2^53 ns (104 days) of each other, which a double holding the
   * whole stamp (~1.8e18) would not be: it rounds to 256 ns.
   */
  stampSince(slot: number, epoch: Epoch): number {
    const w = slot * (this.#stride >>> 2) + W_STAMP;
    return (this.#words[w + HI]! - epoch.hi) * TWO32 + (this.#words[w + LO]! - epoch.lo);
  }

  sessionAt(slot: number): number {
    return this.#words[slot * (this.#stride >>> 2) + W_SESSION]!;
  }

  /**
   * A copy of the stamped message the slot holds for (`seq`, `session`),
   * flagged XSEQ_F_RETRANSMIT, ready to send; null when the slot holds
   * another seq or session, or was being rewritten while we copied.
   */
  copyRetransmit(slot: number, seq: number, session: number): Buffer | null {
    if (slot < 0 || slot >= this.#slots) return null;
    if (this.seqAt(slot) !== seq || this.sessionAt(slot) !== session) return null;
    const base = slot * this.#stride;
    const msgLen = this.#data.getUint16(base + SLOT.msgLen, LE);
    if (msgLen < XSEQ_HDR_LEN || msgLen > XSEQ_MSG_CAP) return null;
    const out = Buffer.allocUnsafe(msgLen);
    out.set(this.#bytes.subarray(base + SLOT.msg, base + SLOT.msg + msgLen));
    const w = slot * (this.#stride >>> 2) + W_STAMP;
    const [stampHi, stampLo] = [this.#words[w + HI]!, this.#words[w + LO]!];
    if (this.seqAt(slot) !== seq) return null;
    // The header is network order: type at 5, seq at 24, clock at 32,
    // payload_len at 56.
    if (out[5] !== MsgType.SEQUENCED) return null;
    if (out.readUInt32BE(24) * TWO32 + out.readUInt32BE(28) !== seq) return null;
    if (out.readUInt32BE(32) !== stampHi || out.readUInt32BE(36) !== stampLo) return null;
    if (out.readUInt32BE(56) + XSEQ_HDR_LEN !== msgLen) return null;
    out.writeUInt16BE(out.readUInt16BE(6) | Flags.RETRANSMIT, 6);
    return out;
  }
}
