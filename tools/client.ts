/**
 * client: sends REQUESTs to the sequencer and waits for their answers,
 * closed-loop (--outstanding N in flight) or paced (--rate R per second),
 * for at most --count requests and --duration-ms of sending.
 *
 *   tsx tools/client.ts --seq-addr IP [--port 7400] [--group 1]
 *       [--client-id C] [--first-request-id 1] [--outstanding 8 | --rate R]
 *       [--count N] [--duration-ms MS] [--timeout-ms 1000] [--linger-ms 300]
 *       [--warmup-ms 0] [--max-ms 120000] [--start-at EPOCH_MS]
 *       [--payload-size 64] [--bind-addr IP]
 *       [--count-quorum N [--quorum Q] [--member RID:ADDR:PORT ...]]
 *       [--result-bytes MIN[:MAX]]
 *
 * Default mode: each request is answered by the sequencer's one REPLY
 * (type 4), matched by request id. The reply must carry the leader's result
 * (tools/test-replica.ts: `ok:<clientId>:<requestId>`); every reply per
 * request id is counted, so a second one shows up as a duplicate. With
 * --result-bytes the expected result is padded as the replicas were told
 * (sizedResult in tools/test-replica.ts).
 *
 * --count-quorum N is the baseline without in-kernel aggregation: the
 * request payload starts with this client's address (--bind-addr is then
 * required) and the replicas (test-replica --ack-to client) send their ACKs
 * here; a request is answered once --quorum distinct replicas (default a
 * majority of N) including the leader of the ACK's view acked, with the
 * leader's result. With --member, an ACK counts only from that replica's
 * ADDR:PORT, the check the kernel makes.
 *
 * A request the sequencer refused under backpressure comes back as an
 * ERROR BUSY (bpf/xseq.h): it took no seq, so it is re-sent with the same
 * request id after a pause (1 ms, doubling to 64 ms), and still gets
 * exactly one REPLY. A request not answered after --timeout-ms (counted
 * from its first send) gives its place in the window to a new one and is
 * never re-sent (without a BUSY it may have been stamped: a re-send would
 * be a second request with a new seq). Its answer still counts if it
 * comes (late), else it is missing. After the last send the client waits for the
 * outstanding answers and --linger-ms more for late ones and duplicates,
 * then prints one JSON line (ClientSummary) and exits.
 */
import { createSocket } from 'node:dgram';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { decodeError, ErrorCode } from '../bpf/repair.ts';
import { Flags, MsgType, XSEQ_HDR_LEN, XSEQ_MAGIC, XSEQ_VERSION } from '../bpf/wire.ts';
import { parseResultBytes, replyToPrefix, sizedResult } from './test-replica.ts';

export interface ClientSummary {
  mode: 'reply' | 'quorum';
  clientId: number;
  sent: number;
  /** Request ids answered at least once (late answers included). */
  replied: number;
  /** Answers beyond the first for a request id. */
  duplicates: number;
  /** Sent, never answered. */
  missing: number;
  /** ERROR BUSY answers (backpressure: not stamped), each followed by a
   * re-send with the same request id while the request was still open. */
  busy: number;
  resent: number;
  /** The first few of those request ids, for the failure message. */
  missingIds: number[];
  /** Answers after the request had timed out (also in `replied` and in
   * the latencies). */
  late: number;
  /** Answers whose result is not the leader's result for that request, or
   * that do not say they carry one. */
  wrongResult: number;
  /** Datagrams that are not an answer to one of our requests. */
  invalid: number;
  /** Quorum mode: ACKs rejected (replica id out of range, not the member's
   * address and port, a view older than one already seen for the request),
   * and ACKs for requests already answered or timed out. */
  strangerAcks: number;
  extraAcks: number;
  sendErrors: number;
  /** Latency of first answers to requests sent after the warmup,
   * microseconds. */
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
  meanUs: number;
  /** First answers per second between the end of the warmup and the end
   * of sending (--duration-ms runs), or the last answer (--count runs). */
  requestsPerSec: number;
  measured: number;
  elapsedMs: number;
  /** This process's CPU time (user + system) per answered request, both
   * counted after the warmup. */
  cpuUsPerRequest: number;
  /** The measured latencies as [lowest microseconds of bucket, count],
   * buckets 2 % wide: several clients' percentiles are taken from the sum
   * of their histograms. */
  latencyHist: Array<[number, number]>;
}

/** Bucket width of ClientSummary.latencyHist: each is 2 % wider than the last. */
export const HIST_GROWTH = 1.02;
export function histBucket(us: number): number {
  return us < 1 ? 0 : Math.floor(Math.log(us) / Math.log(HIST_GROWTH));
}
export function histLowerUs(bucket: number): number {
  return Math.round(HIST_GROWTH ** bucket * 100) / 100;
}

/** The q-quantile (0..1) of summed histograms, in microseconds (a bucket's
 * lower edge: at most 2 % low). */
export function histQuantile(hists: Array<Array<[number, number]>>, q: number): number {
  const sum = new Map<number, number>();
  for (const h of hists) for (const [lo, n] of h) sum.set(lo, (sum.get(lo) ?? 0) + n);
  const buckets = [...sum].sort((a, b) => a[0] - b[0]);
  const total = buckets.reduce((a, [, n]) => a + n, 0);
  if (total === 0) return 0;
  const rank = Math.min(total - 1, Math.floor(q * total));
  let seen = 0;
  for (const [lo, n] of buckets) {
    seen += n;
    if (seen > rank) return lo;
  }
  return buckets[buckets.length - 1]![0];
}

interface Pending {
  sentAt: number;
  /** The REQUEST as sent, for a re-send after BUSY; and the BUSYs so far. */
  msg: Buffer;
  busy: number;
  /** Past --timeout-ms: no longer in the window, but still answerable. */
  timedOut: boolean;
  /** Quorum mode: bitmap of replicas that acked, and the leader's result. */
  acked: number;
  view: number;
  result: Buffer | undefined;
}

function popcount(x: number): number {
  let n = 0;
  for (; x; x &= x - 1) n++;
  return n;
}

function main(): void {
  const { values: v } = parseArgs({
    options: {
      'seq-addr': { type: 'string' },
      port: { type: 'string', default: '7400' },
      group: { type: 'string', default: '1' },
      'client-id': { type: 'string', default: '1' },
      'first-request-id': { type: 'string', default: '1' },
      outstanding: { type: 'string' },
      rate: { type: 'string' },
      count: { type: 'string', default: '0' },
      'duration-ms': { type: 'string', default: '0' },
      'timeout-ms': { type: 'string', default: '1000' },
      'linger-ms': { type: 'string', default: '300' },
      'warmup-ms': { type: 'string', default: '0' },
      'max-ms': { type: 'string', default: '120000' },
      'start-at': { type: 'string', default: '0' },
      'payload-size': { type: 'string', default: '64' },
      'bind-addr': { type: 'string' },
      'count-quorum': { type: 'string' },
      quorum: { type: 'string' },
      member: { type: 'string', multiple: true },
      'result-bytes': { type: 'string' },
    },
  });
  const usage =
    'usage: client.ts --seq-addr IP [--port 7400] [--group 1] [--client-id C] [--first-request-id 1] [--outstanding N | --rate R] ' +
    '[--count N] [--duration-ms MS] [--timeout-ms 1000] [--linger-ms 300] [--warmup-ms 0] [--max-ms 120000] [--start-at EPOCH_MS] [--payload-size 64] [--bind-addr IP] ' +
    '[--count-quorum N [--quorum Q] [--member RID:ADDR:PORT ...]] [--result-bytes MIN[:MAX]]';
  const fail = (msg: string): never => {
    console.error(`client: ${msg}\n${usage}`);
    process.exit(2);
  };
  const int = (name: string, s: string | undefined, min: number, max: number): number => {
    const n = Number(s);
    if (s === undefined || !/^\d+$/.test(s) || n < min || n > max) fail(`--${name} must be ${min}..${max}, got "${s}"`);
    return n;
  };
  if (!v['seq-addr']) fail('--seq-addr is required');
  if (v.outstanding !== undefined && v.rate !== undefined) fail('--outstanding and --rate exclude each other');
  const seqAddr = v['seq-addr']!;
  const port = int('port', v.port, 1, 65535);
  const groupId = int('group', v.group, 0, 0xffffffff);
  const clientIdNum = int('client-id', v['client-id'], 0, Number.MAX_SAFE_INTEGER);
  const clientId = BigInt(clientIdNum);
  const firstId = int('first-request-id', v['first-request-id'], 0, Number.MAX_SAFE_INTEGER);
  const paced = v.rate !== undefined;
  const rate = paced ? int('rate', v.rate, 1, 10_000_000) : 0;
  const window = paced ? Infinity : int('outstanding', v.outstanding ?? '8', 1, 100_000);
  const count = int('count', v.count, 0, Number.MAX_SAFE_INTEGER);
  const durationMs = int('duration-ms', v['duration-ms'], 0, 3_600_000);
  if (count === 0 && durationMs === 0) fail('give --count, --duration-ms or both');
  const timeoutMs = int('timeout-ms', v['timeout-ms'], 1, 600_000);
  const lingerMs = int('linger-ms', v['linger-ms'], 0, 600_000);
  const warmupMs = int('warmup-ms', v['warmup-ms'], 0, 3_600_000);
  const maxMs = int('max-ms', v['max-ms'], 1, 3_600_000);
  const startAt = int('start-at', v['start-at'], 0, Number.MAX_SAFE_INTEGER);
  const payloadSize = int('payload-size', v['payload-size'], 0, 1400);
  const resultBytes = v['result-bytes'] === undefined ? null : parseResultBytes(v['result-bytes']);
  if (v['result-bytes'] !== undefined && !resultBytes) fail(`--result-bytes must be MIN[:MAX] with MIN <= MAX <= 256, got "${v['result-bytes']}"`);
  const quorumMode = v['count-quorum'] !== undefined;
  const nReplicas = quorumMode ? int('count-quorum', v['count-quorum'], 1, 8) : 0;
  const quorum = quorumMode ? int('quorum', v.quorum ?? String(Math.floor(nReplicas / 2) + 1), 1, nReplicas) : 0;
  if (quorumMode && !v['bind-addr']) fail('--count-quorum needs --bind-addr: the replicas send their ACKs there');
  const members = new Map<number, { addr: string; port: number }>();
  for (const spec of v.member ?? []) {
    const m = /^(\d+):(\d{1,3}(?:\.\d{1,3}){3}):(\d+)$/.exec(spec);
    if (!m || Number(m[1]) >= nReplicas) fail(`--member must be RID:ADDR:PORT with RID < --count-quorum, got "${spec}"`);
    members.set(Number(m![1]), { addr: m![2]!, port: Number(m![3]) });
  }

  const sock = createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 4 << 20 });
  // Every request without an answer, timed out or not: a late REPLY, or a
  // quorum completed by late ACKs, still counts (as late).
  const unanswered = new Map<number, Pending>();
  /** Unanswered requests not timed out: the closed loop's window. */
  let inflight = 0;
  // Ids in send order, and how far the timeout sweep has got.
  const sendOrder: number[] = [];
  let sweepAt = 0;
  // Answers per request id, indexed by id - firstId: exactly-once is
  // checked over every request, not only those still unanswered.
  const answers: number[] = [];
  const latUs: number[] = [];
  const s = { sent: 0, busy: 0, resent: 0, duplicates: 0, late: 0, wrongResult: 0, invalid: 0, strangerAcks: 0, extraAcks: 0, sendErrors: 0 };
  let replied = 0;
  let nextId = firstId;
  let sending = true;
  let t0 = 0;
  let measureFrom = 0;
  let lastAnswerAt = 0;
  /** First answers inside the throughput interval. */
  let windowAnswers = 0;
  let sendEndAt = 0;
  let payloadHead = '';
  // CPU time is counted from the end of the warmup, so that starting the
  // process and compiling this file are not charged to the requests.
  let cpuFrom: NodeJS.CpuUsage | undefined;
  let measuredAtCpuFrom = 0;

  const expected = (id: number): Buffer => Buffer.from(sizedResult(clientId, BigInt(id), 'ok', resultBytes), 'latin1');
  const onSent = (err: Error | null): void => {
    if (err) s.sendErrors++;
  };

  function sendOne(): void {
    const id = nextId++;
    const tag = `${payloadHead}c${clientIdNum}-r${id}|`;
    const msg = Buffer.alloc(XSEQ_HDR_LEN + Math.max(payloadSize, tag.length), 0x2e);
    // The fill is for the payload: the header's unwritten fields (flags,
    // ids, reserved) must be zero, or flags carry bits such as XSEQ_F_MAC.
    msg.fill(0, 0, XSEQ_HDR_LEN);
    msg.writeUInt32BE(XSEQ_MAGIC, 0);
    msg[4] = XSEQ_VERSION;
    msg[5] = MsgType.REQUEST;
    msg.writeUInt32BE(groupId, 8);
    msg.writeBigUInt64BE(clientId, 40);
    msg.writeBigUInt64BE(BigInt(id), 48);
    msg.writeUInt32BE(msg.length - XSEQ_HDR_LEN, 56);
    msg.write(tag, XSEQ_HDR_LEN, 'latin1');
    unanswered.set(id, { sentAt: performance.now(), msg, busy: 0, timedOut: false, acked: 0, view: 0, result: undefined });
    inflight++;
    sendOrder.push(id);
    answers.push(0);
    s.sent++;
    sock.send(msg, port, seqAddr, onSent);
  }

  function more(): boolean {
    if (!sending) return false;
    if ((count > 0 && s.sent >= count) || (durationMs > 0 && performance.now() - t0 >= durationMs)) {
      sending = false;
      sendEndAt = performance.now();
      maybeFinish();
      return false;
    }
    return true;
  }

  function refill(): void {
    while (inflight < window && more()) sendOne();
  }

  function answered(id: number, result: Buffer | undefined, resultFlag: boolean): void {
    const idx = id - firstId;
    if (idx < 0 || idx >= answers.length) {
      s.invalid++;
      return;
    }
    const n = ++answers[idx]!;
    if (!resultFlag || !result || !result.equals(expected(id))) s.wrongResult++;
    if (n > 1) {
      s.duplicates++;
      return;
    }
    replied++;
    const now = performance.now();
    lastAnswerAt = now;
    // A timed run's throughput ends with its sending: the tail that only
    // drains the last window would understate a closed loop's rate.
    if (now >= measureFrom && (durationMs === 0 || sending)) windowAnswers++;
    const p = unanswered.get(id);
    if (p) {
      unanswered.delete(id);
      if (p.timedOut) s.late++;
      else inflight--;
      if (p.sentAt >= measureFrom) latUs.push((now - p.sentAt) * 1000);
    }
    if (!paced) refill();
    maybeFinish();
  }

  sock.on('message', (buf, rinfo) => {
    if (buf.length < XSEQ_HDR_LEN || buf.readUInt32BE(0) !== XSEQ_MAGIC || buf[4] !== XSEQ_VERSION || buf.readUInt32BE(56) !== buf.length - XSEQ_HDR_LEN) {
      s.invalid++;
      return;
    }
    const type = buf[5];
    if (buf.readBigUInt64BE(40) !== clientId || buf.readUInt32BE(8) !== groupId) {
      s.invalid++;
      return;
    }
    const id = Number(buf.readBigUInt64BE(48));
    const flags = buf.readUInt16BE(6);
    if (type === MsgType.ERROR) {
      const e = decodeError(buf.subarray(XSEQ_HDR_LEN));
      const p = unanswered.get(id);
      if (e?.code !== ErrorCode.BUSY || !p) {
        s.invalid++;
        return;
      }
      s.busy++;
      // Not stamped: the same request again once the window had time to free.
      const pause = Math.min(64, 2 ** Math.min(6, p.busy++));
      setTimeout(() => {
        if (!unanswered.has(id) || p.timedOut) return;
        s.resent++;
        sock.send(p.msg, port, seqAddr, onSent);
      }, pause);
      return;
    }
    if (!quorumMode) {
      if (type !== MsgType.REPLY) {
        s.invalid++;
        return;
      }
      answered(id, buf.subarray(XSEQ_HDR_LEN), (flags & Flags.RESULT) !== 0);
      return;
    }
    if (type !== MsgType.ACK) {
      s.invalid++;
      return;
    }
    const rid = buf.readUInt16BE(14);
    const m = members.get(rid);
    if (rid >= nReplicas || (m && (m.addr !== rinfo.address || m.port !== rinfo.port))) {
      s.strangerAcks++;
      return;
    }
    const p = unanswered.get(id);
    if (!p) {
      s.extraAcks++;
      return;
    }
    // The same rule as the kernel: a higher view starts the count over, a
    // lower one is stale, and the leader is the view's.
    const view = buf.readUInt32BE(20);
    if (view < p.view) {
      s.strangerAcks++;
      return;
    }
    if (view > p.view) {
      p.view = view;
      p.acked = 0;
      p.result = undefined;
    }
    const leader = view % nReplicas;
    if (rid === leader && flags & Flags.RESULT) p.result = Buffer.from(buf.subarray(XSEQ_HDR_LEN));
    p.acked |= 1 << rid;
    if (p.acked & (1 << leader) && popcount(p.acked) >= quorum) answered(id, p.result, p.result !== undefined);
  });

  function sweep(): void {
    const now = performance.now();
    for (; sweepAt < sendOrder.length; sweepAt++) {
      const p = unanswered.get(sendOrder[sweepAt]!);
      if (!p) continue;
      if (now - p.sentAt < timeoutMs) break;
      p.timedOut = true;
      inflight--;
    }
    if (!paced) refill();
    maybeFinish();
  }

  let finished = false;
  let lingerTimer: NodeJS.Timeout | undefined;
  function maybeFinish(): void {
    if (sending || inflight > 0 || lingerTimer) return;
    lingerTimer = setTimeout(finish, lingerMs);
  }

  function finish(): void {
    if (finished) return;
    finished = true;
    const cpu = process.cpuUsage(cpuFrom);
    const cpuRequests = latUs.length - measuredAtCpuFrom;
    const sorted = Float64Array.from(latUs).sort();
    const pct = (q: number): number => (sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!) : 0);
    const measuredMs = (durationMs > 0 ? sendEndAt : lastAnswerAt) - measureFrom;
    const missingIds: number[] = [];
    for (let i = 0; i < answers.length && missingIds.length < 20; i++) if (answers[i] === 0) missingIds.push(firstId + i);
    const hist = new Map<number, number>();
    for (const us of latUs) {
      const b = histBucket(us);
      hist.set(b, (hist.get(b) ?? 0) + 1);
    }
    const summary: ClientSummary = {
      mode: quorumMode ? 'quorum' : 'reply',
      clientId: clientIdNum,
      ...s,
      replied,
      missing: s.sent - replied,
      missingIds,
      p50Us: pct(0.5),
      p90Us: pct(0.9),
      p99Us: pct(0.99),
      maxUs: sorted.length ? Math.round(sorted[sorted.length - 1]!) : 0,
      meanUs: sorted.length ? Math.round(sorted.reduce((a, b) => a + b, 0) / sorted.length) : 0,
      requestsPerSec: measuredMs > 0 ? Math.round((windowAnswers * 1000) / measuredMs) : 0,
      measured: latUs.length,
      elapsedMs: Math.round(performance.now() - t0),
      cpuUsPerRequest: cpuFrom && cpuRequests > 0 ? Math.round((cpu.user + cpu.system) / cpuRequests) : 0,
      latencyHist: [...hist].sort((a, b) => a[0] - b[0]).map(([b, n]) => [histLowerUs(b), n]),
    };
    console.log(JSON.stringify(summary));
    sock.close();
    process.exit(0);
  }

  const begin = (): void => {
    t0 = performance.now();
    measureFrom = t0 + warmupMs;
    setTimeout(() => {
      cpuFrom = process.cpuUsage();
      measuredAtCpuFrom = latUs.length;
    }, warmupMs);
    setInterval(sweep, Math.max(5, Math.min(100, timeoutMs / 4)));
    if (paced) {
      // Whole batches on a 1 ms tick: timers are not finer than that, and
      // catching up on the schedule keeps the average rate exact.
      const tick = setInterval(() => {
        const due = Math.floor(((performance.now() - t0) * rate) / 1000) + 1;
        while (s.sent < due && more()) sendOne();
        if (!sending) clearInterval(tick);
      }, 1);
    } else {
      refill();
    }
  };
  sock.bind(0, v['bind-addr'], () => {
    if (quorumMode) payloadHead = replyToPrefix(v['bind-addr']!, sock.address().port);
    console.log(JSON.stringify({ event: 'bound', port: sock.address().port }));
    // Several clients started one by one measure the same interval when
    // they are told one wall-clock start.
    setTimeout(begin, Math.max(0, startAt - Date.now()));
  });
  // Bounded no matter what the sequencer does: a run that would outlast
  // --max-ms (a --count too large for the rate) reports what it has.
  setTimeout(finish, maxMs).unref();
  process.on('SIGTERM', finish);
  process.on('SIGINT', finish);
}

// Only when run as a program: the benchmark imports the histogram helpers.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
