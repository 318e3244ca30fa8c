// Facts about the machine a bench run measured, kept with its numbers: a
// result without them cannot be compared with another. Read from the
// system, never assumed.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { cpus, hostname, loadavg, release } from 'node:os';

export interface HostFacts {
  hostname: string;
  cpuModel: string;
  cpus: number;
  kernel: string;
  /** /sys/devices/system/cpu/vulnerabilities: each vulnerability and its state. */
  mitigations: Record<string, string>;
  /** The kernel's clock source (tsc, kvm-clock, ...). */
  clocksource: string;
  /** Scheduler clock ticks per second (getconf CLK_TCK), the unit of /proc/<pid>/stat times. */
  clockTicks: number;
  /** Load averages (1, 5, 15 min) just before the run. */
  loadBefore: [number, number, number];
  node: string;
}

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

let ticks: number | undefined;

/** Clock ticks per second from the system (getconf CLK_TCK); /proc/<pid>/stat counts CPU time in them. */
export function clockTicks(): number {
  if (ticks !== undefined) return ticks;
  const out = execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim();
  const n = Number(out);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`getconf CLK_TCK printed "${out}", not a positive integer`);
  return (ticks = n);
}

export function hostFacts(): HostFacts {
  const dir = '/sys/devices/system/cpu/vulnerabilities';
  const mitigations: Record<string, string> = {};
  try {
    for (const f of readdirSync(dir).sort()) mitigations[f] = read(`${dir}/${f}`);
  } catch {
    // No such directory (not Linux, or an old kernel): left empty, which says so.
  }
  const l = loadavg();
  return {
    hostname: hostname(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    cpus: cpus().length,
    kernel: release(),
    mitigations,
    clocksource: read('/sys/devices/system/clocksource/clocksource0/current_clocksource'),
    clockTicks: clockTicks(),
    loadBefore: [l[0]!, l[1]!, l[2]!],
    node: process.version,
  };
}
