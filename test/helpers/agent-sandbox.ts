// A private place for an agent under test: its own bpffs instance and state
// directory, so pins and sessions never meet another test's (or the host's)
// and one umount releases every pinned object, even after a failed test.
//
// The bpffs is mounted under /tmp, not inside /sys/fs/bpf: `ip netns exec`
// (how namespace tests start the agent) remounts /sys, so a directory of
// the host's /sys/fs/bpf is invisible to the agent, and a bpffs the agent
// mounted there itself would vanish with its mount namespace, taking the
// data path with it. A mount made here, in the test's namespace, is seen
// by every `ip netns exec` child and outlives them.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface AgentSandbox {
  bpffs: string;
  stateDir: string;
  /** Environment for the agent: no config file from the host. */
  env: NodeJS.ProcessEnv;
  /** --bpffs and --state-dir flags for every xseq-agent command. */
  flags: string[];
  remove(): void;
}

export function agentSandbox(): AgentSandbox {
  const bpffs = mkdtempSync(join(tmpdir(), 'xseq-test-bpffs-'));
  const stateDir = mkdtempSync(join(tmpdir(), 'xseq-test-state-'));
  const m = spawnSync('mount', ['-t', 'bpf', 'bpf', bpffs], { encoding: 'utf8' });
  if (m.status !== 0) {
    rmSync(bpffs, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
    throw new Error(`mount -t bpf bpf ${bpffs}: ${m.stderr.trim()}`);
  }
  let removed = false;
  return {
    bpffs,
    stateDir,
    env: { ...process.env, XSEQ_CONFIG: '' },
    flags: ['--bpffs', bpffs, '--state-dir', stateDir],
    remove() {
      if (removed) return;
      removed = true;
      // Lazy: a process of a failed test may still have the mount open.
      spawnSync('umount', ['-l', bpffs]);
      rmSync(bpffs, { recursive: true, force: true });
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
