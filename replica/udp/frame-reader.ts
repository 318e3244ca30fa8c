// Cuts a TCP byte stream into xseq frames (64-byte header, payload_len
// bytes of payload, then `trailer` bytes: a peer link's per-frame MAC when
// the group has a key, else none). A large frame (a checkpoint) arrives in
// many chunks: its payload buffer is allocated once, at its exact size, and
// filled in place, so reassembly is linear in its size.
import { XSEQ_HDR_LEN, type XseqHeader } from '../../bpf/wire.ts';

/** `raw` is the header's bytes (valid only during the call); `trailer` is empty without one. */
export type FrameHandler = (header: XseqHeader, payload: Uint8Array, raw: Uint8Array, trailer: Uint8Array) => void;

export class FrameReader {
  private readonly hdr = new Uint8Array(XSEQ_HDR_LEN);
  private hdrFill = 0;
  private header: XseqHeader | null = null;
  private body: Uint8Array | null = null;
  private bodyFill = 0;
  private readonly tail: Uint8Array;
  private tailFill = 0;

  /**
   * @param check validates a header as soon as it is complete (throws to
   *   reject the stream) and returns it decoded
   * @param onFrame gets every complete frame, in order
   * @param trailer bytes after each frame's payload (default 0)
   */
  constructor(
    private readonly check: (hdr: Uint8Array) => XseqHeader,
    private readonly onFrame: FrameHandler,
    trailer = 0,
  ) {
    this.tail = new Uint8Array(trailer);
  }

  /** Bytes of the frame being assembled (0 between frames). */
  get buffered(): number {
    return this.hdrFill + this.bodyFill + this.tailFill;
  }

  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (!this.header) {
        const n = Math.min(XSEQ_HDR_LEN - this.hdrFill, chunk.length - i);
        this.hdr.set(chunk.subarray(i, i + n), this.hdrFill);
        this.hdrFill += n;
        i += n;
        if (this.hdrFill < XSEQ_HDR_LEN) return;
        this.header = this.check(this.hdr);
        this.body = new Uint8Array(this.header.payloadLen);
        this.bodyFill = 0;
      }
      const body = this.body!;
      if (this.bodyFill < body.length) {
        const n = Math.min(body.length - this.bodyFill, chunk.length - i);
        body.set(chunk.subarray(i, i + n), this.bodyFill);
        this.bodyFill += n;
        i += n;
      }
      if (this.bodyFill < body.length) return;
      if (this.tailFill < this.tail.length) {
        const n = Math.min(this.tail.length - this.tailFill, chunk.length - i);
        this.tail.set(chunk.subarray(i, i + n), this.tailFill);
        this.tailFill += n;
        i += n;
        if (this.tailFill < this.tail.length) return;
      }
      const h = this.header;
      this.header = null;
      this.body = null;
      this.hdrFill = 0;
      this.bodyFill = 0;
      this.tailFill = 0;
      this.onFrame(h, body, this.hdr, this.tail);
    }
  }
}
