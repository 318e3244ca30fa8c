// Is a sequencer alive? One per (replica, sequencer stream). The engine asks
// it whether to solicit a flush now and whether the sequencer counts as
// dead; it holds no timer itself (the engine's stream timer calls `due`
// at `nextAt`), so it runs the same under the simulation's clock and the
// real one.
//
// Alive means heard from: any FLUSH, SEQUENCED or answer to a solicit.
// While the stream holds the merge back (the engine says so with `blocking`),
// solicits go out after flushSolicitUs, then spaced 2x, 4x ... up to
// solicitBackoffMaxUs; hearing anything starts over (without putting off
// a solicit already due). A stream that blocks
// and has been silent for deadSequencerUs is `suspect`: the engine hands it
// to the leader for removal and stops soliciting it. A stream that blocks
// nothing is never suspected: an idle group has nothing to decide.
import type { ReplicaConfig } from './config.ts';

export type LivenessConfig = Pick<ReplicaConfig, 'flushSolicitUs' | 'solicitBackoffMaxUs' | 'deadSequencerUs'>;

export type LivenessVerdict =
  /** Nothing to do before `nextAt`. */
  | 'wait'
  /** Send one FLUSH_SOLICIT now. */
  | 'solicit'
  /** Silent past the timeout while blocking: start removal (reported once per silence). */
  | 'suspect';

export class SequencerLiveness {
  /** When it was last heard from (scheduler us); -Infinity: never. */
  lastHeard = -Infinity;
  /** Solicits sent since it was last heard from. */
  unanswered = 0;
  /** Since when it holds the merge back (null: it does not). */
  blockingSince: number | null = null;
  private interval: number;
  private nextSolicit = Infinity;
  private reported = false;

  constructor(
    private readonly cfg: LivenessConfig,
    /** When the stream became known (its silence is counted from here until it is heard). */
    private readonly since: number,
  ) {
    this.interval = cfg.flushSolicitUs;
  }

  heard(now: number): void {
    this.lastHeard = now;
    this.unanswered = 0;
    this.interval = this.cfg.flushSolicitUs;
    this.reported = false;
    // A solicit already due stays due: a live sequencer that keeps blocking
    // is solicited every flushSolicitUs (its next FLUSH moves the merge
    // sooner than its periodic one would), only a silent one backs off.
    if (this.blockingSince !== null) this.nextSolicit = Math.min(this.nextSolicit, now + this.interval);
  }

  /** The stream holds waiting messages back (true) or no longer does (false). */
  blocking(now: number, yes: boolean): void {
    if (yes && this.blockingSince === null) {
      this.blockingSince = now;
      this.nextSolicit = now + this.interval;
    } else if (!yes && this.blockingSince !== null) {
      this.blockingSince = null;
      this.nextSolicit = Infinity;
    }
  }

  /** Silent since: the last word, or when it became known. */
  silentSince(): number {
    return Math.max(this.lastHeard, this.since);
  }

  /** When `due` next has something to say (Infinity: not while it does not block). */
  nextAt(): number {
    if (this.blockingSince === null) return Infinity;
    return this.reported ? this.nextSolicit : Math.min(this.nextSolicit, this.silentSince() + this.cfg.deadSequencerUs);
  }

  due(now: number): LivenessVerdict {
    if (this.blockingSince === null) return 'wait';
    if (!this.reported && now - this.silentSince() >= this.cfg.deadSequencerUs) {
      this.reported = true;
      return 'suspect';
    }
    if (now < this.nextSolicit) return 'wait';
    this.unanswered++;
    this.nextSolicit = now + this.interval;
    this.interval = Math.min(this.interval * 2, this.cfg.solicitBackoffMaxUs);
    return 'solicit';
  }

  /** Suspected and not heard from since. */
  get suspected(): boolean {
    return this.reported;
  }
}
