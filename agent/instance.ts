// One agent per interface. Two agents on one data path would both re-send
// every unacked request and both rewrite the group map, so `run` holds a
// lock file, <stateDir>/run/<interface>.<netns>.json, with its pid and
// process start time (a pid alone may be reused after a crash). An
// interface is a name within a network namespace, hence the namespace's
// inode in the file name: agents on same-named interfaces of different
// namespaces (test topologies) do not exclude each other.
import { readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AgentError } from './errors.ts';

export interface AgentRecord {
  pid: number;
  /** /proc/<pid>/stat start time, clock ticks since boot. */
  start: string;
  interface: string;
  startedAt: string;
  pinDir: string;
}

/** Inode of the calling process's network namespace. */
export function netnsId(): number {
  return statSync('/proc/self/ns/net').ino;
}

function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and parens; the fields after the last ')' are fixed.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function lockPath(stateDir: string, iface: string): string {
  return join(stateDir, 'run', `${iface}.${netnsId()}.json`);
}

/** The live agent recorded for `iface` in this namespace, if any. */
export function runningAgent(stateDir: string, iface: string): AgentRecord | undefined {
  let rec: AgentRecord;
  try {
    rec = JSON.parse(readFileSync(lockPath(stateDir, iface), 'utf8')) as AgentRecord;
  } catch {
    return undefined;
  }
  return Number.isInteger(rec.pid) && procStart(rec.pid) === rec.start ? rec : undefined;
}

export class InstanceLock {
  private constructor(
    readonly path: string,
    readonly record: AgentRecord,
  ) {}

  /** Takes the lock, replacing one left by a dead agent; refuses while
   * another agent for the interface is alive. */
  static acquire(stateDir: string, iface: string, pinDir: string): InstanceLock {
    const path = lockPath(stateDir, iface);
    const record: AgentRecord = { pid: process.pid, start: procStart(process.pid) ?? '', interface: iface, startedAt: new Date().toISOString(), pinDir };
    try {
      mkdirSync(join(stateDir, 'run'), { recursive: true });
    } catch (e) {
      throw new AgentError('ESTATE', `cannot create ${join(stateDir, 'run')}: ${(e as Error).message} (set \`stateDir\` to a writable directory)`);
    }
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(path, JSON.stringify(record), { flag: 'wx' });
        return new InstanceLock(path, record);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new AgentError('ESTATE', `cannot write ${path}: ${(e as Error).message}`);
        }
      }
      const other = runningAgent(stateDir, iface);
      if (other && other.pid !== process.pid) {
        throw new AgentError(
          'EAGENT_RUNNING',
          `an agent (pid ${other.pid}, started ${other.startedAt}) already runs the data path of ${iface}; ` +
            `two would both retransmit and rewrite the groups. Stop it first (\`kill -TERM ${other.pid}\`, or ` +
            `\`systemctl stop xseq-agent\`), then start again: the new one adopts the pinned data path`,
          { pid: other.pid },
        );
      }
      // Left by an agent that died (kill -9, crash): ours to replace.
      rmSync(path, { force: true });
    }
    throw new AgentError('ESTATE', `cannot take ${path}: another agent is starting at the same time`);
  }

  release(): void {
    try {
      const rec = JSON.parse(readFileSync(this.path, 'utf8')) as AgentRecord;
      if (rec.pid === this.record.pid && rec.start === this.record.start) rmSync(this.path, { force: true });
    } catch {
      /* already gone */
    }
  }
}
