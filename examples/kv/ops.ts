// KV operations and results as bytes. Ops ride in a REQUEST payload and in
// the replicated log; results ride in the leader's ACK and the aggregator's
// REPLY, which hold at most 256 bytes (XSEQ_RESULT_CAP): with keys up to
// 64 bytes and values up to 200, every result fits.
//
//   get  [1][klen][key]
//   put  [2][klen][key][vlen][value]
//   cas  [3][klen][key][has expected 0|1][elen][expected][vlen][value]
//        (expected absent: the key must not exist)
//
//   result [status][...]: OK [0] (put, cas that swapped), FOUND [1][vlen][value],
//   NOT_FOUND [2], MISMATCH [3][has current 0|1][clen][current], BAD_OP [4]

export const MAX_KEY = 64;
export const MAX_VALUE = 200;
/** The longest result: MISMATCH with a current value of MAX_VALUE bytes. */
export const MAX_RESULT = 3 + MAX_VALUE;

export const OpKind = { GET: 1, PUT: 2, CAS: 3 } as const;
export const Status = { OK: 0, FOUND: 1, NOT_FOUND: 2, MISMATCH: 3, BAD_OP: 4 } as const;

export type Op =
  | { readonly kind: 'get'; readonly key: Uint8Array }
  | { readonly kind: 'put'; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly kind: 'cas'; readonly key: Uint8Array; readonly expected: Uint8Array | null; readonly value: Uint8Array };

export type Result =
  | { readonly status: 'ok' }
  | { readonly status: 'found'; readonly value: Uint8Array }
  | { readonly status: 'not-found' }
  | { readonly status: 'mismatch'; readonly current: Uint8Array | null }
  | { readonly status: 'bad-op' };

export class KvError extends Error {
  override readonly name = 'KvError';
}

function checkKey(k: Uint8Array): void {
  if (k.length < 1 || k.length > MAX_KEY) throw new KvError(`key of ${k.length} bytes: keys are 1..${MAX_KEY} bytes`);
}
function checkValue(v: Uint8Array, what: string): void {
  if (v.length > MAX_VALUE) throw new KvError(`${what} of ${v.length} bytes: values are 0..${MAX_VALUE} bytes`);
}

export function encodeOp(op: Op): Uint8Array {
  checkKey(op.key);
  const k = op.key.length;
  let out: Uint8Array;
  switch (op.kind) {
    case 'get':
      out = new Uint8Array(2 + k);
      out[0] = OpKind.GET;
      break;
    case 'put':
      checkValue(op.value, 'value');
      out = new Uint8Array(2 + k + 1 + op.value.length);
      out[0] = OpKind.PUT;
      out[2 + k] = op.value.length;
      out.set(op.value, 3 + k);
      break;
    case 'cas': {
      const e = op.expected ?? new Uint8Array(0);
      checkValue(e, 'expected value');
      checkValue(op.value, 'value');
      out = new Uint8Array(2 + k + 2 + e.length + 1 + op.value.length);
      out[0] = OpKind.CAS;
      let p = 2 + k;
      out[p++] = op.expected ? 1 : 0;
      out[p++] = e.length;
      out.set(e, p);
      p += e.length;
      out[p++] = op.value.length;
      out.set(op.value, p);
      break;
    }
  }
  out[1] = k;
  out.set(op.key, 2);
  return out;
}

/** The op, or null for bytes that are not one (the store answers BAD_OP; it never throws). */
export function decodeOp(b: Uint8Array): Op | null {
  if (b.length < 2) return null;
  const kind = b[0];
  const klen = b[1]!;
  if (klen < 1 || klen > MAX_KEY || b.length < 2 + klen) return null;
  const key = b.subarray(2, 2 + klen);
  let p = 2 + klen;
  const take = (): Uint8Array | null => {
    if (p >= b.length) return null;
    const n = b[p]!;
    if (n > MAX_VALUE || p + 1 + n > b.length) return null;
    const v = b.subarray(p + 1, p + 1 + n);
    p += 1 + n;
    return v;
  };
  switch (kind) {
    case OpKind.GET:
      return p === b.length ? { kind: 'get', key } : null;
    case OpKind.PUT: {
      const value = take();
      return value && p === b.length ? { kind: 'put', key, value } : null;
    }
    case OpKind.CAS: {
      if (p >= b.length || b[p]! > 1) return null;
      const has = b[p++] === 1;
      const expected = take();
      const value = take();
      if (!expected || !value || p !== b.length || (!has && expected.length !== 0)) return null;
      return { kind: 'cas', key, expected: has ? expected : null, value };
    }
    default:
      return null;
  }
}

const OK = Uint8Array.of(Status.OK);
const NOT_FOUND = Uint8Array.of(Status.NOT_FOUND);
const BAD_OP = Uint8Array.of(Status.BAD_OP);

export function encodeResult(r: Result): Uint8Array {
  switch (r.status) {
    case 'ok':
      return OK;
    case 'not-found':
      return NOT_FOUND;
    case 'bad-op':
      return BAD_OP;
    case 'found': {
      const out = new Uint8Array(2 + r.value.length);
      out[0] = Status.FOUND;
      out[1] = r.value.length;
      out.set(r.value, 2);
      return out;
    }
    case 'mismatch': {
      const cur = r.current;
      const out = new Uint8Array(3 + (cur?.length ?? 0));
      out[0] = Status.MISMATCH;
      out[1] = cur ? 1 : 0;
      out[2] = cur?.length ?? 0;
      if (cur) out.set(cur, 3);
      return out;
    }
  }
}

export function decodeResult(b: Uint8Array): Result {
  const bad = (): never => {
    throw new KvError(`malformed result (${b.length} bytes: ${Buffer.from(b.subarray(0, 16)).toString('hex')})`);
  };
  switch (b[0]) {
    case Status.OK:
      return b.length === 1 ? { status: 'ok' } : bad();
    case Status.NOT_FOUND:
      return b.length === 1 ? { status: 'not-found' } : bad();
    case Status.BAD_OP:
      return b.length === 1 ? { status: 'bad-op' } : bad();
    case Status.FOUND:
      return b.length >= 2 && b.length === 2 + b[1]! ? { status: 'found', value: b.slice(2) } : bad();
    case Status.MISMATCH:
      if (b.length < 3 || b.length !== 3 + b[2]! || b[1]! > 1) return bad();
      return { status: 'mismatch', current: b[1] === 1 ? b.slice(3) : null };
    default:
      return bad();
  }
}
