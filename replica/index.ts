// The replica library: a NOPaxos replica and client over an abstract
// transport. See README.md.
export type { Application } from './app.ts';
export {
  Client,
  ClientError,
  type AttemptCount,
  type Certificate,
  type ClientErrorCode,
  type ClientOptions,
  type Completion,
  type SequencerHealth,
  type SequencerPolicy,
  type SubmitOptions,
} from './client.ts';
export { fnv1a32, sequencerForKey } from './key-hash.ts';
export { configWith, DEAD_SEQUENCER_FLUSHES, DEFAULT_CONFIG, type ReplicaConfig } from './config.ts';
export { ANY_SESSION, decodeControlOp, encodeControlOp, type ControlOp } from './control-op.ts';
export { SequencerLiveness, type LivenessVerdict } from './sequencer-liveness.ts';
export { hydraMetrics, type HydraMetrics, type SequencerMetrics } from './hydra-metrics.ts';
export type * from './messages.ts';
export { Replica, type ReplicaOptions, type ReplicaStatus } from './replica.ts';
export { Timer, type ClientTransport, type ReplicaTransport, type Scheduler, type TimerHandle } from './transport.ts';
export { leaderOf, sessionCmp, viewCmp, viewEq, viewJoin, viewLeq, type ViewId } from './view.ts';
export * from './wire-map.ts';
export * from './udp/index.ts';
