// The README's demo (demo/run.ts) end to end with a small load: it exits 0,
// says the replicas' logs are identical and every acknowledged write read
// back, and leaves no namespace or bpffs mount behind; interrupted with
// SIGINT (Ctrl-C) mid-load it still removes everything and exits 130.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describePrivileged } from './helpers/privileged.ts';

const root = join(import.meta.dirname, '..');

interface Run {
  code: number | null;
  out: string;
}

/** Runs the demo; `interruptOn` sends it SIGINT when a line matches. */
function demo(args: string[], timeoutMs: number, interruptOn?: RegExp): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', join(root, 'demo', 'run.ts'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let sent = false;
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`the demo ran over ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const take = (d: Buffer) => {
      out += d.toString('utf8');
      if (interruptOn && !sent && interruptOn.test(out)) {
        sent = true;
        p.kill('SIGINT');
      }
    };
    p.stdout.on('data', take);
    p.stderr.on('data', take);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** The run's namespace prefix, from its first line. */
function prefixOf(out: string): string {
  const m = /\[demo\] namespaces (xs[0-9a-f]{4}-)\*/.exec(out);
  if (!m) throw new Error(`no namespace line in:\n${out}`);
  return m[1]!;
}

function leftovers(prefix: string, out: string): { namespaces: string[]; mounts: string[] } {
  const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith(prefix));
  // The demo's bpffs, which it names ("pins in DIR"); other KV clusters on
  // the machine (a test beside this one) have their own.
  const bpffs = /pins in (\S+)/.exec(out)?.[1];
  expect(bpffs, 'the demo names its bpffs').toMatch(/^\/tmp\/xseq-kv-[^ ]*\/bpffs$/);
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.split(' ')[1] === bpffs);
  return { namespaces: ns, mounts };
}

describePrivileged('the demo (demo/run.ts)', () => {
  it('runs the KV store end to end: exit 0, logs identical, every acknowledged write read back, nothing left behind', async () => {
    const r = await demo(['--ops', '600', '--duration', '20', '--clients', '2'], 120_000);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/^load: 600 ops done, 600 ok, 0 timed out, 0 errors, 0 stale reads$/m);
    expect(r.out).toMatch(/^logs identical: 3 replicas committed \d+ slots/m);
    expect(r.out).toMatch(/^read back: (\d+) keys written, \1 read back their last acknowledged write \(0 reads failed\)$/m);
    expect(r.out).toMatch(/^log check: of (\d+) acknowledged writes, \1 sit in the committed log/m);
    expect(r.out).toMatch(/^ {2}xseq_requests_sequenced_total\{sequencer="1"\} \d+$/m);
    expect(r.out).toMatch(/^ {2}quorum latency \(stamp to quorum, from the histogram\): \d+ requests, mean \d+ us/m);
    expect(r.out).toMatch(/^OK: 600 ops acknowledged, 0 keys without their last acknowledged write, 0 writes misplaced, 0 stale reads, logs identical$/m);
    // A replica status row each, all normal in one view.
    expect(r.out.match(/^[012] {8}normal {2}\d+\/\d+ /gm)).toHaveLength(3);
    const left = leftovers(prefixOf(r.out), r.out);
    expect(left.namespaces).toEqual([]);
    expect(left.mounts).toEqual([]);
  }, 150_000);

  it('Ctrl-C during the load removes every namespace and mount and exits 130', async () => {
    const r = await demo(['--duration', '60'], 120_000, /\[demo\] progress /);
    expect(r.code, r.out).toBe(130);
    expect(r.out).toMatch(/\[demo\] SIGINT: stopping/);
    expect(r.out).toMatch(/\[demo\] cleaned up: processes stopped, bpffs unmounted, namespaces removed/);
    const left = leftovers(prefixOf(r.out), r.out);
    expect(left.namespaces).toEqual([]);
    expect(left.mounts).toEqual([]);
  }, 150_000);
});

describe('the demo\'s command line', () => {
  it('--help says what it runs; a bad option exits 2', async () => {
    const help = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'demo', 'run.ts'), '--help'], { cwd: root, encoding: 'utf8' });
    expect(help.status).toBe(0);
    for (const o of ['--duration', '--ops', '--clients', '--loss', '--mode']) expect(help.stdout).toContain(o);
    expect(help.stdout).toMatch(/examples\/kv\/replica\.ts/);
    const bad = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'demo', 'run.ts'), '--loss', '90'], { cwd: root, encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--loss must be 0\.\.50/);
  }, 60_000);
});
