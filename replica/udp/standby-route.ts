// A one-sequencer group with a standby (agent groups[].role): which of the
// two stamped a session, so the replica's ACKs and repair requests for that
// session go to the host that holds its window. Learned from the
// sequencer_id of SEQUENCED messages (the pair stamp different ids, the
// sessions never coincide: agent/pair-session.ts). A session not seen yet
// belongs to the active.
const KEEP = 8;

export class StandbyRoute {
  /** session -> stamped by the standby; insertion order is age. */
  private readonly owners = new Map<number, boolean>();

  constructor(readonly standbyId: number) {}

  note(session: number, sequencerId: number): void {
    const standby = sequencerId === this.standbyId;
    if (this.owners.get(session) === standby) return;
    this.owners.delete(session);
    this.owners.set(session, standby);
    // Only the newest few sessions can still be acked or repaired.
    if (this.owners.size > KEEP) this.owners.delete(this.owners.keys().next().value!);
  }

  isStandby(session: number): boolean {
    return this.owners.get(session) === true;
  }
}
