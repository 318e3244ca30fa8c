/**
 * Random packet loss with nftables, for kernels without netem (this one).
 *
 * Two places to drop, because XDP decides where a drop can still be seen:
 *
 *  - addLinkLoss: in the bridge namespace, on frames the bridge forwards to
 *    (or from) a host's port. This is the one to use for sequenced traffic:
 *    XDP_TX'd frames bypass the sending host's netfilter and qdisc, and a
 *    receiver's XDP program runs before its netdev ingress hook, but every
 *    frame crossing br0 passes the bridge forward hook.
 *  - addInterfaceLoss: a netdev-family ingress or egress hook on one device
 *    in one namespace, for traffic that the stack sends or receives there.
 *
 * The rule is `numgen random mod 10000 < P*100 drop`, so the rate resolves to
 * 0.01 %. Each call makes its own table, so several losses coexist and each
 * handle removes only its own.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Topology } from './topology.ts';

export interface LossHandle {
  readonly ns: string;
  readonly table: string;
  readonly family: 'bridge' | 'netdev';
  /** Frames this rule dropped so far (nft counter). */
  dropped(): number;
  /** Deletes the rule's table. Idempotent; tolerates a deleted namespace. */
  remove(): void;
}

export interface LossMatch {
  /** Only UDP to this destination port (e.g. 7500 for sequenced traffic). */
  udpDport?: number;
}

function nft(ns: string, args: string[], input?: string): string {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', ...args], { encoding: 'utf8', input, timeout: 30_000 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`nft ${args.join(' ')} in ${ns}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** The random-drop expression; nft rejects `< 10000` after `mod 10000`
 * (out of range), so 100 % is a plain drop. */
function randomExpr(percent: number): string {
  if (!Number.isFinite(percent) || percent < 0 || percent > 100) throw new RangeError('percent must be in 0..100');
  const t = Math.round(percent * 100);
  return t >= 10000 ? '' : `numgen random mod 10000 < ${t} `;
}

function matchExpr(m: LossMatch | undefined): string {
  if (m?.udpDport === undefined) return '';
  if (!Number.isInteger(m.udpDport) || m.udpDport < 1 || m.udpDport > 65535) throw new RangeError('bad udpDport');
  return `udp dport ${m.udpDport} `;
}

function handle(ns: string, family: 'bridge' | 'netdev', table: string): LossHandle {
  let removed = false;
  return {
    ns,
    table,
    family,
    dropped(): number {
      const out = nft(ns, ['-j', 'list', 'table', family, table]);
      const parsed = JSON.parse(out) as { nftables: Array<{ rule?: { expr: Array<{ counter?: { packets: number } }> } }> };
      let n = 0;
      for (const item of parsed.nftables) {
        for (const e of item.rule?.expr ?? []) if (e.counter) n += e.counter.packets;
      }
      return n;
    },
    remove(): void {
      if (removed) return;
      removed = true;
      spawnSync('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', family, table], { timeout: 30_000 });
    },
  };
}

function tableName(): string {
  return `xsloss_${randomBytes(3).toString('hex')}`;
}

/**
 * Drops `percent` % of the frames the bridge forwards to `role`'s port
 * (direction 'to', the default: loss on the link into that host) or receives
 * from it (direction 'from').
 */
export function addLinkLoss(
  topo: Topology,
  role: string,
  percent: number,
  opts: LossMatch & { direction?: 'to' | 'from' } = {},
): LossHandle {
  const ns = topo.ns('br');
  const port = topo.bridgePort(role);
  const table = tableName();
  const dir = (opts.direction ?? 'to') === 'to' ? 'oifname' : 'iifname';
  // The bridge family's forward hook sees frames after the forwarding
  // decision, once per egress port, so flooded multicast is dropped per
  // receiver independently, as a lossy link would.
  const ruleset = `table bridge ${table} {
  chain loss {
    type filter hook forward priority 0; policy accept;
    ${dir} "${port}" ${matchExpr(opts)}${randomExpr(percent)}counter drop
  }
}
`;
  nft(ns, ['-f', '-'], ruleset);
  return handle(ns, 'bridge', table);
}

/** Drops `percent` % of the frames on `ifname` in namespace `ns`, at the
 * netdev ingress hook (after XDP) or egress hook (before the qdisc). */
export function addInterfaceLoss(
  ns: string,
  ifname: string,
  percent: number,
  opts: LossMatch & { hook?: 'ingress' | 'egress' } = {},
): LossHandle {
  const table = tableName();
  const hook = opts.hook ?? 'ingress';
  const ruleset = `table netdev ${table} {
  chain loss {
    type filter hook ${hook} device "${ifname}" priority 0; policy accept;
    ${matchExpr(opts)}${randomExpr(percent)}counter drop
  }
}
`;
  nft(ns, ['-f', '-'], ruleset);
  return handle(ns, 'netdev', table);
}
