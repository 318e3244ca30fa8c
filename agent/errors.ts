// Errors of the agent's lifecycle. Each has a stable code the CLI prints and
// scripts can match, and a message that names what was found and the exact
// command that fixes it; exit status 2 means "your input is wrong", 1
// "the system is not in a state I can work with".

export type AgentErrorCode =
  /** Pins for the interface exist but do not form a working data path. */
  | 'EPIN_STALE'
  /** The pinned data path cannot serve the configuration (port, window...). */
  | 'EPIN_CONFIG'
  /** An XDP program that is not this data path is attached to the interface. */
  | 'EXDP_FOREIGN'
  /** Another live agent manages this interface. */
  | 'EAGENT_RUNNING'
  /** The BPF filesystem is missing and could not be mounted. */
  | 'EBPFFS'
  /** sessions.json or the state directory cannot be read or written. */
  | 'ESTATE'
  /** The interface has no IPv4 address for the agent's flush solicits. */
  | 'EFLUSH_NO_ADDRESS'
  /** The sequencer program did not turn the agent's solicit into a FLUSH. */
  | 'EFLUSH_REFUSED'
  /** The generic-mode flush socket cannot bind the sequencer's address and port. */
  | 'EFLUSH_SOCKET'
  /** A sequence create/drop/setval that cannot be done (name or id taken,
   * unknown name, bad value); the message names the field. */
  | 'ESEQUENCE'
  /** A replicated sequence's mark reservation the group did not certify
   * (the group is not stamped here, or no quorum answered in time). */
  | 'EMARK_GROUP';

export class AgentError extends Error {
  override readonly name = 'AgentError';
  constructor(
    readonly code: AgentErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** Quotes an argument for a POSIX shell only when it needs it, so a
 * suggested command can be pasted as printed. */
export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function shellCommand(args: readonly string[]): string {
  return args.map(shellQuote).join(' ');
}
