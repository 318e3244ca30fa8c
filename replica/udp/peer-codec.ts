// The replica <-> replica slow path on the wire. Each message is one frame:
// the 64-byte xseq header of bpf/xseq.h (magic, version, type 9..21 as
// reserved there, group id, sender in replica_id, view in view/session,
// payload_len) and a compact big-endian payload. Unlike fast-path
// datagrams a frame may be far larger than XSEQ_MAX_PAYLOAD (a view change
// carries a checkpoint and a log): frames travel over a TCP stream
// (peer-link.ts), and payload_len is what delimits them there.
import { emptyHeader, encodeHeader, MsgType, readHeader, XSEQ_HDR_LEN, XSEQ_MAGIC, XSEQ_VERSION, type XseqHeader } from '../../bpf/wire.ts';
import type { Checkpoint, ClientRecord, LogEntry, LogState, PeerMsg, StreamKey, StreamPos } from '../messages.ts';
import type { ViewId } from '../view.ts';
import { CodecError, Reader, Writer } from './bytes.ts';

/** Largest frame payload accepted: bounds what one peer can make us buffer. */
export const MAX_PEER_PAYLOAD = 256 * 1024 * 1024;

const TYPE_OF: Record<PeerMsg['type'], number> = {
  GAP_FIND: MsgType.GAP_FIND,
  GAP_RECV: MsgType.GAP_RECV,
  GAP_DROP: MsgType.GAP_DROP,
  GAP_COMMIT: MsgType.GAP_COMMIT,
  GAP_COMMIT_REPLY: MsgType.GAP_COMMIT_REPLY,
  VIEW_CHANGE_REQUEST: MsgType.VIEW_CHANGE_REQUEST,
  VIEW_CHANGE: MsgType.VIEW_CHANGE,
  START_VIEW: MsgType.START_VIEW,
  STATE_REQUEST: MsgType.STATE_REQUEST,
  STATE_REPLY: MsgType.STATE_REPLY,
  SYNC_PREPARE: MsgType.SYNC_PREPARE,
  SYNC_REPLY: MsgType.SYNC_REPLY,
  SYNC_COMMIT: MsgType.SYNC_COMMIT,
};

export function isPeerType(t: number): boolean {
  return t >= MsgType.GAP_FIND && t <= MsgType.SYNC_COMMIT;
}

// ---- payload pieces ------------------------------------------------------------

function writeView(w: Writer, v: ViewId): void {
  w.u32(v.leaderNum);
  w.u32(v.session);
}
function readView(r: Reader): ViewId {
  return { leaderNum: r.u32(), session: r.u32() };
}

/** Fixed part of an entry: slot, session, seq, noop, client id, request id, op length. */
const ENTRY_MIN = 8 + 4 + 8 + 1 + 8 + 8 + 4;

// Hydra: an entry's flag byte has bit 1 set when a stream position
// (sequencer u16, session u32, seq u64, effective and raw clock f64, flags
// u8: bit 0 = the stream ends here) follows the op.
const HAS_SRC = 2;
const CONTROL = 4;

function writeStreamPos(w: Writer, p: StreamPos): void {
  w.u16(p.sid);
  w.u32(p.session);
  w.num(p.seq);
  w.f64(p.clock);
  w.f64(p.raw);
  w.u8(p.end ? 1 : 0);
}
function readStreamPos(r: Reader): StreamPos {
  const p: StreamPos = { sid: r.u16(), session: r.u32(), seq: r.num(), clock: r.f64(), raw: r.f64() };
  const flags = r.u8();
  if (flags > 1) throw new CodecError(`stream position flag byte ${flags} is not 0 or 1`);
  return flags ? { ...p, end: true } : p;
}

function writeEntry(w: Writer, e: LogEntry): void {
  w.num(e.slot);
  w.u32(e.session);
  w.num(e.seq);
  w.u8((e.noop ? 1 : 0) | (e.src ? HAS_SRC : 0) | (e.control ? CONTROL : 0));
  w.big(e.clientId);
  w.big(e.requestId);
  w.bytes(e.op);
  if (e.src) writeStreamPos(w, e.src);
}
function readEntry(r: Reader): LogEntry {
  const slot = r.num();
  const session = r.u32();
  const seq = r.num();
  const flags = r.u8();
  if (flags > (1 | HAS_SRC | CONTROL)) throw new CodecError(`entry flag byte ${flags} is not a combination of 1, ${HAS_SRC} and ${CONTROL}`);
  let e: LogEntry = { slot, session, seq, noop: (flags & 1) !== 0, clientId: r.big(), requestId: r.big(), op: r.bytes() };
  if (flags & HAS_SRC) e = { ...e, src: readStreamPos(r) };
  return flags & CONTROL ? { ...e, control: true } : e;
}

function writeStreamKey(w: Writer, k: StreamKey | undefined): void {
  if (!k) return;
  w.u16(k.sid);
  w.u32(k.session);
  w.num(k.seq);
}
function readStreamKey(r: Reader): { stream?: StreamKey } {
  return r.left > 0 ? { stream: { sid: r.u16(), session: r.u32(), seq: r.num() } } : {};
}

function writeEntries(w: Writer, es: readonly LogEntry[]): void {
  w.u32(es.length);
  for (const e of es) writeEntry(w, e);
}
function readEntries(r: Reader): LogEntry[] {
  const n = r.count(ENTRY_MIN);
  const out: LogEntry[] = new Array<LogEntry>(n);
  for (let i = 0; i < n; i++) out[i] = readEntry(r);
  return out;
}

function writeCheckpoint(w: Writer, c: Checkpoint): void {
  w.num(c.slot);
  w.u32(c.session);
  w.num(c.seq);
  w.bytes(c.app);
  w.u32(c.clients.length);
  for (const k of c.clients) {
    w.big(k.clientId);
    w.big(k.requestId);
    w.bytes(k.result);
  }
  // Hydra: each sequencer's stream position at the checkpoint (0 entries with one sequencer).
  const st = c.streams ?? [];
  w.u32(st.length);
  for (const p of st) writeStreamPos(w, p);
  // The weight ledger (absent: empty, the starting table).
  w.bytes(c.weights ?? new Uint8Array(0));
  // Sequence marks reserved through the group (sequence-marks.ts).
  const mk = c.marks ?? [];
  w.u32(mk.length);
  for (const [name, mark] of mk) {
    w.bytes(Buffer.from(name, 'utf8'));
    w.big(mark);
  }
}
function readCheckpoint(r: Reader): Checkpoint {
  const slot = r.num();
  const session = r.u32();
  const seq = r.num();
  const app = r.bytes();
  const n = r.count(8 + 8 + 4);
  const clients: ClientRecord[] = new Array<ClientRecord>(n);
  for (let i = 0; i < n; i++) clients[i] = { clientId: r.big(), requestId: r.big(), result: r.bytes() };
  const ns = r.count(2 + 4 + 8 + 8 + 8 + 1);
  const streams: StreamPos[] = new Array<StreamPos>(ns);
  for (let i = 0; i < ns; i++) streams[i] = readStreamPos(r);
  const weights = r.bytes();
  const nm = r.count(4 + 8);
  const marks: Array<readonly [string, bigint]> = new Array<readonly [string, bigint]>(nm);
  for (let i = 0; i < nm; i++) marks[i] = [Buffer.from(r.bytes()).toString('utf8'), r.big()] as const;
  return { slot, session, seq, app, clients, ...(ns ? { streams } : {}), ...(weights.length ? { weights } : {}), ...(nm ? { marks } : {}) };
}

function writeState(w: Writer, s: LogState): void {
  writeCheckpoint(w, s.checkpoint);
  writeEntries(w, s.entries);
  w.num(s.committed);
}
function readState(r: Reader): LogState {
  const checkpoint = readCheckpoint(r);
  const entries = readEntries(r);
  const committed = r.num();
  // The log contract (log.ts): contiguous after the checkpoint. A frame
  // breaking it would throw deep inside the replica instead of here.
  entries.forEach((e, i) => {
    if (e.slot !== checkpoint.slot + 1 + i) throw new CodecError(`state entry ${i} has slot ${e.slot}, want ${checkpoint.slot + 1 + i}`);
  });
  return { checkpoint, entries, committed };
}

/** Bytes a state will take, roughly: the first buffer size, so big states do not regrow many times. */
function stateSizeHint(s: LogState): number {
  let n = 64 + s.checkpoint.app.length + s.checkpoint.clients.length * 48;
  for (const e of s.entries) n += ENTRY_MIN + e.op.length;
  return n;
}

// ---- messages ----------------------------------------------------------------------

function writePayload(w: Writer, m: PeerMsg): void {
  switch (m.type) {
    case 'GAP_FIND':
    case 'GAP_DROP':
    case 'GAP_COMMIT_REPLY':
      w.num(m.slot);
      return writeStreamKey(w, m.stream);
    case 'GAP_RECV':
      return writeEntry(w, m.entry);
    case 'GAP_COMMIT':
      w.num(m.slot);
      w.u32(m.session);
      w.num(m.seq);
      writeStreamKey(w, m.stream);
      if (m.stream) w.f64(m.clock ?? -Infinity);
      return;
    case 'VIEW_CHANGE_REQUEST':
      return;
    case 'VIEW_CHANGE':
      writeView(w, m.lastNormalView);
      writeState(w, m.state);
      if (m.held?.length) writeEntries(w, m.held);
      return;
    case 'START_VIEW':
      return writeState(w, m.state);
    case 'STATE_REQUEST':
      w.num(m.nonce);
      return w.u8(m.view ? 1 : 0);
    case 'STATE_REPLY':
      w.num(m.nonce);
      w.u8(m.state ? 1 : 0);
      if (m.state) writeState(w, m.state);
      return;
    case 'SYNC_PREPARE':
      w.num(m.syncPoint);
      w.num(m.committed);
      return writeEntries(w, m.entries);
    case 'SYNC_REPLY':
    case 'SYNC_COMMIT':
      return w.num(m.syncPoint);
  }
}

function sizeHint(m: PeerMsg): number {
  switch (m.type) {
    case 'VIEW_CHANGE':
    case 'START_VIEW':
      return XSEQ_HDR_LEN + 16 + stateSizeHint(m.state);
    case 'STATE_REPLY':
      return XSEQ_HDR_LEN + 16 + (m.state ? stateSizeHint(m.state) : 0);
    case 'SYNC_PREPARE': {
      let n = XSEQ_HDR_LEN + 24;
      for (const e of m.entries) n += ENTRY_MIN + e.op.length;
      return n;
    }
    case 'GAP_RECV':
      return XSEQ_HDR_LEN + ENTRY_MIN + m.entry.op.length;
    default:
      return XSEQ_HDR_LEN + 32;
  }
}

/** One frame: xseq header + payload, ready to write to the stream. */
export function encodePeerFrame(m: PeerMsg, groupId: number): Uint8Array {
  const w = new Writer(sizeHint(m), XSEQ_HDR_LEN);
  writePayload(w, m);
  const out = w.finish();
  const view = m.view ?? { leaderNum: 0, session: 0 };
  encodeHeader(
    { ...emptyHeader(), type: TYPE_OF[m.type], groupId, replicaId: m.from, session: view.session, view: view.leaderNum, payloadLen: out.length - XSEQ_HDR_LEN },
    out,
    0,
  );
  return out;
}

/** Checks a frame header as read off the stream; the payload follows. */
export function checkPeerHeader(hdr: Uint8Array, groupId: number): XseqHeader {
  const v = new DataView(hdr.buffer, hdr.byteOffset, XSEQ_HDR_LEN);
  if (v.getUint32(0) !== XSEQ_MAGIC) throw new CodecError(`bad magic 0x${v.getUint32(0).toString(16)}`);
  const h = readHeader(hdr);
  if (h.version !== XSEQ_VERSION) throw new CodecError(`version ${h.version}, want ${XSEQ_VERSION}`);
  if (!isPeerType(h.type)) throw new CodecError(`type ${h.type} is not a replica slow-path message`);
  if (h.groupId !== groupId) throw new CodecError(`group ${h.groupId}, this is group ${groupId}`);
  if (h.payloadLen > MAX_PEER_PAYLOAD) throw new CodecError(`payload of ${h.payloadLen} bytes is over ${MAX_PEER_PAYLOAD}`);
  return h;
}

/** The message of a checked header and its payload. Throws CodecError on malformed bytes. */
export function decodePeerPayload(h: XseqHeader, payload: Uint8Array): PeerMsg {
  const r = new Reader(payload);
  const from = h.replicaId;
  const view: ViewId = { leaderNum: h.view, session: h.session };
  let m: PeerMsg;
  switch (h.type) {
    case MsgType.GAP_FIND:
      m = { type: 'GAP_FIND', from, view, slot: r.num(), ...readStreamKey(r) };
      break;
    case MsgType.GAP_DROP:
      m = { type: 'GAP_DROP', from, view, slot: r.num(), ...readStreamKey(r) };
      break;
    case MsgType.GAP_COMMIT_REPLY:
      m = { type: 'GAP_COMMIT_REPLY', from, view, slot: r.num(), ...readStreamKey(r) };
      break;
    case MsgType.GAP_RECV:
      m = { type: 'GAP_RECV', from, view, entry: readEntry(r) };
      break;
    case MsgType.GAP_COMMIT:
      m = { type: 'GAP_COMMIT', from, view, slot: r.num(), session: r.u32(), seq: r.num() };
      if (r.left > 0) m = { ...m, stream: readStreamKey(r).stream!, clock: r.f64() };
      break;
    case MsgType.VIEW_CHANGE_REQUEST:
      m = { type: 'VIEW_CHANGE_REQUEST', from, view };
      break;
    case MsgType.VIEW_CHANGE: {
      const lastNormalView = readView(r);
      const state = readState(r);
      m = r.left > 0 ? { type: 'VIEW_CHANGE', from, view, lastNormalView, state, held: readEntries(r) } : { type: 'VIEW_CHANGE', from, view, lastNormalView, state };
      break;
    }
    case MsgType.START_VIEW:
      m = { type: 'START_VIEW', from, view, state: readState(r) };
      break;
    case MsgType.STATE_REQUEST: {
      const nonce = r.num();
      m = { type: 'STATE_REQUEST', from, nonce, view: r.bool() ? view : null };
      break;
    }
    case MsgType.STATE_REPLY: {
      const nonce = r.num();
      m = { type: 'STATE_REPLY', from, nonce, view, state: r.bool() ? readState(r) : null };
      break;
    }
    case MsgType.SYNC_PREPARE: {
      const syncPoint = r.num();
      const committed = r.num();
      m = { type: 'SYNC_PREPARE', from, view, syncPoint, committed, entries: readEntries(r) };
      break;
    }
    case MsgType.SYNC_REPLY:
      m = { type: 'SYNC_REPLY', from, view, syncPoint: r.num() };
      break;
    case MsgType.SYNC_COMMIT:
      m = { type: 'SYNC_COMMIT', from, view, syncPoint: r.num() };
      break;
    default:
      throw new CodecError(`type ${h.type} is not a replica slow-path message`);
  }
  r.end();
  return m;
}
