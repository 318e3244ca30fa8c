// A replica process that starts with its memory gone recovers under a
// nonce no earlier incarnation used (replica.ts, ReplicaOptions.recoverNonce):
// 48 random bits make a repeat across restarts negligible, and it still
// travels exactly as a JavaScript number.
import { randomInt } from 'node:crypto';

export function randomRecoverNonce(): number {
  return randomInt(1, 2 ** 48);
}
