// The `xdp: off | on | auto` policy of a replica process: find the
// interface that holds the member address, load and attach the program,
// and either say clearly why not (auto) or fail with a stable code (on).
// The replica behaves the same without the program; it only does more of
// the discarding in user space.
import { networkInterfaces } from 'node:os';
import type { XdpMode } from '../../bpf/libbpf/index.ts';
import { ReplicaXdp, ReplicaXdpError, type ReplicaXdpErrorCode } from './replica-xdp.ts';

export type XdpSetting = 'off' | 'on' | 'auto';
export const XDP_SETTINGS: readonly XdpSetting[] = ['off', 'on', 'auto'];
export type XdpModeSetting = XdpMode | 'auto';
export const XDP_MODES: readonly XdpModeSetting[] = ['auto', 'native', 'generic'];

export interface ReplicaXdpConfig {
  setting: XdpSetting;
  /** Interface to attach to; default: the one holding the member address. */
  iface?: string | null;
  /** native, generic, or auto (native, else generic when the driver has none). */
  mode?: XdpModeSetting;
  retransmitKeep?: number;
  objectPath?: string;
}

export type XdpOutcome =
  | { attached: true; iface: string; mode: XdpMode; reason: string; progId: number; linkId: number }
  | { attached: false; setting: XdpSetting; reason: string; code?: ReplicaXdpErrorCode };

/** The interface whose IPv4 address is `addr` (this network namespace). */
export function interfaceOf(addr: string): string | null {
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (addrs?.some((a) => a.family === 'IPv4' && a.address === addr)) return name;
  }
  return null;
}

/**
 * Loads and attaches per the setting. 'off' never touches BPF. 'auto'
 * returns { xdp: null } with the reason when it cannot; 'on' throws
 * ReplicaXdpError instead.
 */
export function openReplicaXdp(
  cfg: ReplicaXdpConfig,
  where: { port: number; memberAddr: string; sequencers?: readonly { host: string; port: number }[] },
): { xdp: ReplicaXdp | null; outcome: XdpOutcome } {
  if (cfg.setting === 'off') return { xdp: null, outcome: { attached: false, setting: 'off', reason: 'xdp is off' } };
  let xdp: ReplicaXdp | null = null;
  try {
    const iface = cfg.iface ?? interfaceOf(where.memberAddr);
    if (!iface) {
      throw new ReplicaXdpError(
        'EXDP_NO_INTERFACE',
        `no interface in this network namespace holds the member address ${where.memberAddr}: set xdpIface (--xdp-iface)`,
      );
    }
    xdp = ReplicaXdp.load({ port: where.port, ...(where.sequencers ? { sequencers: where.sequencers } : {}), ...(cfg.retransmitKeep !== undefined ? { retransmitKeep: cfg.retransmitKeep } : {}), ...(cfg.objectPath ? { objectPath: cfg.objectPath } : {}) });
    const { mode, reason } = xdp.attach(iface, cfg.mode ?? 'auto');
    const a = xdp.attached!;
    return { xdp, outcome: { attached: true, iface, mode, reason, progId: a.progId, linkId: a.linkId } };
  } catch (e) {
    xdp?.close();
    const err = e instanceof ReplicaXdpError ? e : new ReplicaXdpError('EXDP_FAILED', (e as Error).message, { cause: e });
    if (cfg.setting === 'on') throw err;
    return { xdp: null, outcome: { attached: false, setting: 'auto', reason: err.message, code: err.code } };
  }
}
