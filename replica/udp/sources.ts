// Who may speak for the sequencer on the group port (docs/trust-model.md).
//
// SEQUENCED and FLUSH move a replica: a new session starts a view change, a
// stamped request gets logged and executed. So the group socket, which is
// bound to any address (multicast and the agent's unicast re-sends both land
// there), accepts them only from a configured sequencer's exact address and
// UDP port: the XDP program sends them from the address the client sent to
// and the xseq port, and the agent's re-sends and generic-mode flushes leave
// from that same address and port.
//
// And a sequencer can move a replica's session only a bounded step ahead of
// the last session heard from it. A data path that is re-created takes the
// next session (agent/session.ts), so the real steps are 1; the bound only
// stops a single datagram (from an address that passed the source check)
// from carrying a replica to a session where nothing real can follow it.
// Sessions compare as serial numbers (replica/view.ts sessionCmp): the
// step past 0xffffffff is 1, so no session is a dead end.
import { sessionCmp } from '../view.ts';
import type { HostPort } from './addr.ts';

/**
 * How far ahead of the last session heard from a sequencer a new one may be
 * (sessions, serial arithmetic). The agent refuses to hand out a session
 * further than this past the last one that stamped anything
 * (agent/session.ts SESSION_STEP_MAX), so the two stay consistent.
 */
export const DEFAULT_SESSION_BOUND = 65_536;
/** Serial arithmetic orders only sessions less than 2^31 apart. */
export const MAX_SESSION_BOUND = 0x7fff_ffff;

export interface SourceCounters {
  /** SEQUENCED or FLUSH from an address:port that is no configured sequencer. */
  strangers: number;
  /** SEQUENCED or FLUSH of a session more than the bound ahead. */
  sessionJumps: number;
}

/** One configured sequencer, as the filter knows it. */
interface Known {
  readonly id: number;
  /** The last session heard from it; 0 until the first message (any session is then taken). */
  session: number;
}

export class SequencerSources {
  private readonly byAddr = new Map<string, Known>();
  readonly c: SourceCounters = { strangers: 0, sessionJumps: 0 };
  private lastAddr = '';
  private lastPort = -1;
  private lastKnown: Known | undefined;

  constructor(
    list: readonly { id: number; sequencer: HostPort }[],
    readonly bound: number = DEFAULT_SESSION_BOUND,
  ) {
    if (!Number.isInteger(bound) || bound < 1 || bound > MAX_SESSION_BOUND) throw new RangeError(`sessionBound ${bound} is not 1..${MAX_SESSION_BOUND}`);
    for (const q of list) this.byAddr.set(`${q.sequencer.host}:${q.sequencer.port}`, { id: q.id, session: 0 });
  }

  /**
   * Whether a SEQUENCED or FLUSH of `session` from address:port may reach
   * the replica; counts what it refuses. Older sessions pass (the replica
   * ignores them, and a late copy must not count as a jump).
   */
  admit(address: string, port: number, session: number): boolean {
    // Nearly every datagram comes from the one sequencer that sent the last:
    // skip building the key then (this runs once per SEQUENCED).
    let k: Known | undefined;
    if (address === this.lastAddr && port === this.lastPort) k = this.lastKnown;
    else {
      k = this.byAddr.get(`${address}:${port}`);
      if (k) {
        this.lastAddr = address;
        this.lastPort = port;
        this.lastKnown = k;
      }
    }
    if (!k) {
      this.c.strangers++;
      return false;
    }
    if (session === k.session) return true;
    if (k.session !== 0 && sessionCmp(session, k.session) > 0 && (session - k.session) >>> 0 > this.bound) {
      this.c.sessionJumps++;
      return false;
    }
    if (sessionCmp(session, k.session) > 0) k.session = session;
    return true;
  }

  /** The sequencer id configured at address:port, or undefined. */
  idOf(address: string, port: number): number | undefined {
    return this.byAddr.get(`${address}:${port}`)?.id;
  }
}
