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
  /**
   * Hydra: the longest a solicited sequencer's solicits are spaced. A
   * sequencer that does not answer is solicited after flushSolicitUs, then
   * 2x, 4x ... that, up to this; hearing from it (FLUSH, SEQUENCED, a
   * solicit's answer) starts over at flushSolicitUs. Without it a replica
   * sent ~850 FLUSH_SOLICITs/s to a dead host's address.
   */
  solicitBackoffMaxUs: number;
  /**
   * The flush interval the group's agents run (their flushIntervalMs, in
   * us): what a live sequencer's silence is measured against.
   */
  flushIntervalUs: number;
  /**
   * A sequencer that holds back waiting messages and has sent nothing (no
   * FLUSH, no SEQUENCED, no answer to the solicits above) for this long is
   * suspected dead: the leader then has the replicas agree on its stream's
   * last seq and removes it (replica/README.md, "A sequencer that dies").
   * Default DEAD_SEQUENCER_FLUSHES flush intervals (see configWith). How to
   * choose it: longer than the longest stall of a live agent's flush timer
   * (a GC pause, a busy host) plus a round trip, or a live sequencer is
   * removed and must rejoin with a new session (no order is lost, but its
   * clients' requests wait for that); shorter is a shorter pause when a
   * host really dies (the pause is about this plus one view-change round).
   */
  deadSequencerUs: number;
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
  solicitBackoffMaxUs: 50_000,
  flushIntervalUs: 2_000,
  deadSequencerUs: 100_000,
};

/**
 * The default dead-sequencer timeout in flush intervals: 50 x 2 ms = 100
 * ms. A live agent flushes every interval; 50 missed in a row is a stall
 * far beyond a GC pause or a lost burst, and still leaves the whole
 * failover (detection + one agreement round) well under 500 ms.
 */
export const DEAD_SEQUENCER_FLUSHES = 50;

export function configWith(over: Partial<ReplicaConfig> | undefined): ReplicaConfig {
  const c = { ...DEFAULT_CONFIG, ...over };
  // Derived unless given: a group that flushes more slowly is given more time.
  if (over?.deadSequencerUs === undefined) c.deadSequencerUs = DEAD_SEQUENCER_FLUSHES * c.flushIntervalUs;
  for (const [k, v] of Object.entries(c)) {
    if (!Number.isFinite(v) || v <= 0) throw new RangeError(`replica config ${k}=${v} must be a positive number`);
  }
  if (c.solicitBackoffMaxUs < c.flushSolicitUs) throw new RangeError(`replica config solicitBackoffMaxUs=${c.solicitBackoffMaxUs} must be at least flushSolicitUs=${c.flushSolicitUs}`);
  if (c.deadSequencerUs <= c.flushIntervalUs) throw new RangeError(`replica config deadSequencerUs=${c.deadSequencerUs} must be more than flushIntervalUs=${c.flushIntervalUs} (a live sequencer is silent that long between flushes)`);
  return c;
}
