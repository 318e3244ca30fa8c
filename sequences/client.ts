// The sequence client: nextval(name) and nextvalBlock(name, n) against the
// sequencer host, whose XDP program answers each NEXTVAL straight back.
//
// Values are never given to two callers: the kernel hands each block out in
// exactly one reply. A retry (after a timeout) is a NEW request with a new
// request id, so it takes fresh values; a late reply to the old attempt is
// ignored, and its values are simply never used (a gap, like PostgreSQL's
// after a rolled-back nextval). For a sequence with cache > 1 the client
// keeps the rest of each block and hands it out locally, the way a
// PostgreSQL backend uses its cached values: fast, unique, but no longer
// ordered across clients.
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { checkMac, seal, type GroupKey } from '../bpf/mac.ts';
import { decodeNextvalReply, encodeNextval, NvStatus, XSEQ_NV_MAX_COUNT } from '../bpf/nextval.ts';
import { XSEQ_DEFAULT_PORT, XSEQ_MAC_LEN } from '../bpf/wire.ts';

export type SequenceErrorCode = 'EUNKNOWN_SEQUENCE' | 'EREFUSED_AT_MARK' | 'ETIMEOUT' | 'ECLOSED' | 'EARGUMENT';

export class SequenceError extends Error {
  override readonly name: string = 'SequenceError';
  constructor(
    readonly code: SequenceErrorCode,
    message: string,
  ) {
    super(message);
  }
}
/** The sequencer knows no sequence of that name (never created, or dropped). */
export class UnknownSequenceError extends SequenceError {
  override readonly name = 'UnknownSequenceError';
  constructor(readonly sequence: string) {
    super('EUNKNOWN_SEQUENCE', `no sequence "${sequence}" on the sequencer (create it in the agent config or with \`xseq-nextval create\`)`);
  }
}
/** Every attempt was refused at the durable mark: the agent is not running
 * (or cannot write its state file), so no more values are durable. */
export class RefusedAtMarkError extends SequenceError {
  override readonly name = 'RefusedAtMarkError';
  constructor(
    readonly sequence: string,
    readonly mark: bigint,
  ) {
    super('EREFUSED_AT_MARK', `sequence "${sequence}" refused at its durable mark ${mark}: the agent is not raising it (is xseq-agent running, and its state directory writable?)`);
  }
}
/** No reply to any attempt. Values a lost reply carried are never reused. */
export class NextvalTimeoutError extends SequenceError {
  override readonly name = 'NextvalTimeoutError';
  constructor(
    readonly sequence: string,
    attempts: number,
    ms: number,
  ) {
    super('ETIMEOUT', `no reply for sequence "${sequence}" after ${attempts} attempts (${ms} ms each)`);
  }
}

export interface Block {
  first: bigint;
  count: number;
  increment: bigint;
}

export function blockValues(b: Block): bigint[] {
  return Array.from({ length: b.count }, (_, i) => b.first + BigInt(i) * b.increment);
}

export interface NextvalOptions {
  /** The sequencer host, "ADDR" or "ADDR:PORT" (default port 7400). */
  server: string;
  /**
   * The other host of an active/standby pair (groups[].role), for
   * replicated sequences: after an attempt times out or is refused at the
   * mark, the next one goes to the other host (the standby takes over once
   * the active is silent and clients knock on it).
   */
  standby?: string;
  /** Per attempt (default 200 ms). */
  timeoutMs?: number;
  /** Attempts per call, the first included (default 5). */
  attempts?: number;
  /** Local address to bind (default any). */
  bind?: string;
  /**
   * The group whose key authenticates this client (docs/authentication.md,
   * "NEXTVAL"): requests name it and carry a MAC under `key`, the group's
   * CLIENT key (bpf/mac.ts clientKeyOf, as for REQUESTs), and a reply
   * counts only with a valid MAC under it. Needed for sequences bound to a
   * keyed group; without a key nothing is sealed nor checked.
   */
  group?: number;
  key?: GroupKey;
}

interface Pending {
  resolve(b: Block): void;
  reject(e: Error): void;
}

interface Cached {
  next: bigint;
  left: number;
  increment: bigint;
}

function hostPort(server: string): [string, number] {
  return server.includes(':') ? [server.slice(0, server.lastIndexOf(':')), Number(server.slice(server.lastIndexOf(':') + 1))] : [server, XSEQ_DEFAULT_PORT];
}

async function connected(server: string, bind: string | undefined): Promise<Socket> {
  const [host, port] = hostPort(server);
  const sock = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind({ port: 0, ...(bind ? { address: bind } : {}) }, () => {
      sock.connect(port, host, () => {
        sock.off('error', reject);
        resolve();
      });
    });
  });
  return sock;
}

export class NextvalClient {
  /** One connected socket per host (the active, then the standby). */
  readonly #socks: Socket[];
  #cur = 0;
  readonly #clientId = randomBytes(8).readBigUInt64BE(0);
  #requestId = 0n;
  readonly #pending = new Map<bigint, Pending & { name: string }>();
  readonly #cache = new Map<string, Cached[]>();
  readonly #timeoutMs: number;
  readonly #attempts: number;
  readonly #group: number;
  readonly #key: GroupKey | undefined;
  #closed = false;
  /** Keyed: replies dropped for a missing or wrong MAC (forged, or sealed with another key). */
  unauthenticatedReplies = 0;
  /** Replies that came after their attempt was given up (their values are never used). */
  lateReplies = 0;
  /** Attempts retried after a timeout. */
  retries = 0;
  /** Requests sent (each takes at most one block; one not answered OK is a gap). */
  attempts = 0;

  /** Attempts sent to the other host of the pair after a timeout or refusal. */
  switches = 0;

  private constructor(socks: Socket[], opts: NextvalOptions) {
    this.#socks = socks;
    this.#timeoutMs = opts.timeoutMs ?? 200;
    this.#attempts = opts.attempts ?? 5;
    this.#group = opts.group ?? 0;
    this.#key = opts.key;
    for (const sock of socks) {
      sock.on('message', (msg) => this.#onMessage(msg));
      // ICMP port unreachable (no data path on the host for a moment, e.g.
      // while `--replace` swaps it): a connected socket reports it as
      // ECONNREFUSED. The attempt is simply unanswered; the retry goes on.
      sock.on('error', () => this.socketErrors++);
    }
  }

  /** After an attempt that got no value: the next goes to the pair's other host. */
  #switch(): void {
    if (this.#socks.length < 2) return;
    this.#cur = (this.#cur + 1) % this.#socks.length;
    this.switches++;
  }

  /** Socket errors seen (ICMP unreachable while the sequencer had no data path). */
  socketErrors = 0;

  static async open(opts: NextvalOptions): Promise<NextvalClient> {
    const socks = [await connected(opts.server, opts.bind)];
    try {
      if (opts.standby) socks.push(await connected(opts.standby, opts.bind));
    } catch (e) {
      for (const x of socks) x.close();
      throw e;
    }
    return new NextvalClient(socks, opts);
  }

  #onMessage(msg: Buffer): void {
    // Keyed: a reply is believed only under the key. A forged one could
    // otherwise hand this caller a value someone else already has.
    if (this.#key) {
      if (checkMac(msg, this.#key) !== 'ok') {
        this.unauthenticatedReplies++;
        return;
      }
      msg = msg.subarray(0, msg.length - XSEQ_MAC_LEN);
    }
    const r = decodeNextvalReply(msg);
    if (!r || r.clientId !== this.#clientId) return;
    const p = this.#pending.get(r.requestId);
    if (!p) {
      this.lateReplies++;
      return;
    }
    this.#pending.delete(r.requestId);
    if (r.status === NvStatus.OK) p.resolve({ first: r.first, count: r.count, increment: BigInt(r.increment) });
    else if (r.status === NvStatus.UNKNOWN) p.reject(new UnknownSequenceError(p.name));
    else p.reject(new RefusedAtMarkError(p.name, r.mark));
  }

  /** One attempt: resolves with the block, rejects typed, or undefined on timeout. */
  #attempt(name: string, count: number): Promise<Block | undefined> {
    const id = ++this.#requestId;
    this.attempts++;
    return new Promise<Block | undefined>((resolve, reject) => {
      const timer = setTimeout(() => {
        // From now on a reply to this id is late: its values stay unused.
        this.#pending.delete(id);
        resolve(undefined);
      }, this.#timeoutMs);
      this.#pending.set(id, {
        name,
        resolve: (b) => {
          clearTimeout(timer);
          resolve(b);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      const m = encodeNextval({ name, count, clientId: this.#clientId, requestId: id, groupId: this.#group });
      this.#socks[this.#cur]!.send(this.#key ? seal(m, this.#key) : m, (err) => {
        if (err) {
          clearTimeout(timer);
          this.#pending.delete(id);
          reject(err);
        }
      });
    });
  }

  /** A block from the sequencer, retried on timeout and on refusal. */
  async #fetch(name: string, count: number): Promise<Block> {
    if (this.#closed) throw new SequenceError('ECLOSED', 'the client is closed');
    let refused: RefusedAtMarkError | undefined;
    for (let i = 0; i < this.#attempts; i++) {
      if (i > 0) this.retries++;
      try {
        const b = await this.#attempt(name, count);
        if (b) return b;
        refused = undefined;
        this.#switch();
      } catch (e) {
        if (!(e instanceof RefusedAtMarkError)) throw e;
        refused = e;
        this.#switch();
        // The agent may be raising the mark right now (or restarting).
        await new Promise((r) => setTimeout(r, Math.min(this.#timeoutMs, 10 * 2 ** i)));
      }
    }
    throw refused ?? new NextvalTimeoutError(name, this.#attempts, this.#timeoutMs);
  }

  /**
   * The next value. For a dense sequence (cache 1) one round trip, and the
   * values of all callers are ordered as the calls are (a call that
   * returned before another started has the smaller value). For cache > 1,
   * from the local block while it lasts.
   */
  async nextval(name: string): Promise<bigint> {
    const blocks = this.#cache.get(name);
    const c = blocks?.[0];
    if (c) {
      const v = c.next;
      c.next += c.increment;
      if (--c.left === 0) blocks!.shift();
      return v;
    }
    const b = await this.#fetch(name, 0);
    // Calls that missed together each fetched a block: keep every rest.
    if (b.count > 1) {
      const q = this.#cache.get(name) ?? [];
      q.push({ next: b.first + b.increment, left: b.count - 1, increment: b.increment });
      this.#cache.set(name, q);
    }
    return b.first;
  }

  /** n values in one call (1..1048576): first, first + increment, ... */
  async nextvalBlock(name: string, n: number): Promise<Block> {
    if (!Number.isInteger(n) || n < 1 || n > XSEQ_NV_MAX_COUNT) throw new SequenceError('EARGUMENT', `count ${n}: must be 1..${XSEQ_NV_MAX_COUNT}`);
    return this.#fetch(name, n);
  }

  /** Values cached locally for `name` (cache > 1), never handed out if the process ends. */
  cachedValues(name: string): number {
    return (this.#cache.get(name) ?? []).reduce((n, c) => n + c.left, 0);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#pending.values()) p.reject(new SequenceError('ECLOSED', 'the client was closed'));
    this.#pending.clear();
    for (const x of this.#socks) x.close();
  }
}
