// At-most-once execution: the last request id each client had executed, and
// its result. A retry of that request is answered from here; anything older
// is stale (the client has moved on) and is ignored. The table is part of
// the replicated state, so it travels in every checkpoint.
import type { ClientRecord } from './messages.ts';

export type Admission =
  | { readonly kind: 'new' }
  | { readonly kind: 'duplicate'; readonly result: Uint8Array }
  | { readonly kind: 'stale' };

const NEW: Admission = { kind: 'new' };
const STALE: Admission = { kind: 'stale' };

export class ClientTable {
  private readonly last = new Map<bigint, ClientRecord>();

  static from(records: readonly ClientRecord[]): ClientTable {
    const t = new ClientTable();
    for (const r of records) t.last.set(r.clientId, r);
    return t;
  }

  admit(clientId: bigint, requestId: bigint): Admission {
    const r = this.last.get(clientId);
    if (!r || requestId > r.requestId) return NEW;
    return requestId === r.requestId ? { kind: 'duplicate', result: r.result } : STALE;
  }

  record(clientId: bigint, requestId: bigint, result: Uint8Array): void {
    this.last.set(clientId, { clientId, requestId, result });
  }

  records(): ClientRecord[] {
    return [...this.last.values()];
  }
}
