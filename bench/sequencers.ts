/**
 * Starting the baseline sequencers in a topology's `seq` namespace, with
 * the same shape as the xseq starter the caller supplies to P2.
 */
import { join } from 'node:path';
import type { NsProcess, Topology, XdpMode } from '../netns/topology.ts';
import { BENCH_DIR, REPO_ROOT, bin } from './tools.ts';

export interface StartedSequencer {
  /** Stops the sequencer and waits for it to be gone (detached, for XDP). */
  stop(): Promise<void>;
}

/** Starts a sequencer on `topo`'s `seq` host serving UDP 7400 for group 1
 * (239.7.7.1:7500, session 1, sequencer id 1); resolves once it serves. */
export type StartSequencer = (topo: Topology, mode: XdpMode) => Promise<StartedSequencer>;

export const GROUP = { id: 1, addr: '239.7.7.1', port: 7500, session: 1, sequencerId: 1 } as const;
export const SEQ_PORT = 7400;

/** The counters a baseline prints when it stops. */
export interface BaselineStopped {
  event: 'stopped';
  lastSeq: number;
  rx: number;
  sequenced: number;
  send_errors: number;
  [k: string]: unknown;
}

export interface BaselineOptions {
  /** Pin the process to this CPU (taskset execs the command, so signals
   * still reach it directly). */
  cpu?: number;
  /** Receives the counters the process prints when it stops. */
  onStopped?: (s: BaselineStopped) => void;
}

async function startProcess(
  topo: Topology,
  cmd: string,
  args: string[],
  o: BaselineOptions = {},
): Promise<StartedSequencer> {
  const argv = o.cpu === undefined ? [cmd, ...args] : ['taskset', '-c', String(o.cpu), cmd, ...args];
  const proc: NsProcess = topo.spawn('seq', argv[0]!, argv.slice(1));
  await proc.waitForLine((l) => l.includes('"event":"ready"'), 20_000);
  return {
    async stop() {
      const exit = await proc.stop('SIGTERM', 5000);
      const line = proc
        .output()
        .stdout.split('\n')
        .find((l) => l.includes('"event":"stopped"'));
      if (line && o.onStopped) o.onStopped(JSON.parse(line) as BaselineStopped);
      if (exit.code !== 0 && exit.signal !== 'SIGTERM') {
        throw new Error(`${cmd} exited ${exit.signal ?? exit.code}: ${proc.output().stderr.trim()}`);
      }
    },
  };
}

function commonArgs(topo: Topology): string[] {
  return [
    '--port', String(SEQ_PORT),
    '--group-addr', GROUP.addr,
    '--group-port', String(GROUP.port),
    '--group-id', String(GROUP.id),
    '--session', String(GROUP.session),
    '--sequencer-id', String(GROUP.sequencerId),
    '--iface-addr', topo.ip('seq'),
  ];
}

/** The recvmmsg/sendmmsg C baseline. `mode` does not apply (no XDP). */
export function cMmsgSequencer(o: BaselineOptions = {}): StartSequencer {
  return (topo) => startProcess(topo, bin.udpSequencer, [...commonArgs(topo), '--batch', '64'], o);
}

/** The node:dgram baseline, run with tsx like the agent. */
export function nodeDgramSequencer(o: BaselineOptions = {}): StartSequencer {
  const tsx = join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
  const script = join(BENCH_DIR, 'baseline', 'node-sequencer.ts');
  return (topo) => startProcess(topo, tsx, [script, ...commonArgs(topo)], o);
}

/**
 * The XDP sequencer through the agent CLI, as the lead described it:
 * `tsx agent/cli.ts run --iface <if> --mode native|generic --port 7400
 * --group 1:239.7.7.1:7500 --session 1 --sequencer-id 1`, ready on a
 * {"event":"ready"} stdout line, detached on SIGTERM.
 */
export const agentXdpSequencer: StartSequencer = (topo, mode) => {
  const tsx = join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
  return startProcess(topo, tsx, [
    join(REPO_ROOT, 'agent', 'cli.ts'),
    'run',
    '--iface', topo.ifname('seq'),
    '--mode', mode,
    '--port', String(SEQ_PORT),
    '--group', `${GROUP.id}:${GROUP.addr}:${GROUP.port}`,
    '--session', String(GROUP.session),
    '--sequencer-id', String(GROUP.sequencerId),
  ]);
};
