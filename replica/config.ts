// Timeouts and bounds of a replica. Times are microseconds. The defaults suit
// a LAN with sub-millisecond delivery; the simulation scales them down.

export interface ReplicaConfig {
  /** A missing seq is a gap once a later one waited this long... */
  reorderWaitUs: number;
  /** ...or once this many later messages are buffered behind it. */
  reorderWindowMsgs: number;
  /** Wait for the agent's repair before asking again. */
  repairTimeoutUs: number;
  /** Repair attempts before the agent counts as unable to help. */
  repairTries: number;
  /** Follower: re-ask the leader (GAP_FIND) this often. */
  gapFindRetryUs: number;
  /** Leader: re-send GAP_COMMIT to silent followers this often. */
  gapCommitRetryUs: number;
  /** Leader: SYNC_PREPARE (checkpoint + heartbeat) period. */
  syncIntervalUs: number;
  /** Follower: no word from the leader this long starts a view change. */
  leaderTimeoutUs: number;
  /** View change: re-send VIEW_CHANGE this often... */
  viewChangeRetryUs: number;
  /** ...and after this many retries try the next leader. */
  viewChangeEscalateAfter: number;
  /** Recovery / catch-up: re-send STATE_REQUEST this often. */
  stateRetryUs: number;
  /** OUM messages held ahead of the log (reorder window + next session). */
  maxBufferedMsgs: number;
  /**
   * Hydra: a sequencer whose frontier holds back waiting messages this long
   * gets a FLUSH_SOLICIT (and again every this long while it still does).
   */
  flushSolicitUs: number;
}

export const DEFAULT_CONFIG: ReplicaConfig = {
  reorderWaitUs: 500,
  reorderWindowMsgs: 64,
  repairTimeoutUs: 2_000,
  repairTries: 3,
  gapFindRetryUs: 2_000,
  gapCommitRetryUs: 2_000,
  syncIntervalUs: 20_000,
  leaderTimeoutUs: 100_000,
  viewChangeRetryUs: 20_000,
  viewChangeEscalateAfter: 5,
  stateRetryUs: 20_000,
  maxBufferedMsgs: 8_192,
  flushSolicitUs: 1_000,
};

export function configWith(over: Partial<ReplicaConfig> | undefined): ReplicaConfig {
  const c = { ...DEFAULT_CONFIG, ...over };
  for (const [k, v] of Object.entries(c)) {
    if (!Number.isFinite(v) || v <= 0) throw new RangeError(`replica config ${k}=${v} must be a positive number`);
  }
  return c;
}
