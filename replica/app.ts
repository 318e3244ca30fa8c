// The application a replica group runs. It must be deterministic: the same
// ops from the same state give the same results and the same next state on
// every replica, or replicas diverge silently.
export interface Application {
  execute(op: Uint8Array): Uint8Array;
  /** The whole state; restore(snapshot()) must be a no-op. */
  snapshot(): Uint8Array;
  restore(s: Uint8Array): void;
}
