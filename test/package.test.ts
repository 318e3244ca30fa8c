// The Debian package (scripts/package-deb.sh): what it holds, that the
// extracted tree runs without TypeScript or tsx, and (root) that it
// installs on this machine, runs, and is removed without a trace.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describePrivileged } from './helpers/privileged.ts';

const root = join(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const commit = execFileSync('git', ['-C', root, 'rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8' }).trim();
const run = (cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) =>
  spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000, ...opts });

let dir: string;
let deb: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'xseq-deb-'));
  const r = run('bash', [join(root, 'scripts/package-deb.sh'), '--out', join(dir, 'dist')], { cwd: root });
  if (r.status !== 0) throw new Error(`package-deb.sh failed: ${r.stdout}${r.stderr}`);
  deb = r.stdout.trim().split('\n').at(-1)!;
}, 300_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function files(top: string): string[] {
  return readdirSync(top, { recursive: true, withFileTypes: true }).filter((e) => !e.isDirectory()).map((e) => relative(top, join(e.parentPath, e.name)));
}

describe('the Debian package', () => {
  it('is named and versioned from package.json, for this architecture, and depends on Node.js 20+ and libbpf', () => {
    const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
    expect(deb).toBe(join(dir, 'dist', `xseq_${pkg.version}_${arch}.deb`));
    const field = (f: string) => execFileSync('dpkg-deb', ['-f', deb, f], { encoding: 'utf8' }).trim();
    expect(field('Package')).toBe('xseq');
    expect(field('Version')).toBe(pkg.version);
    expect(field('Architecture')).toBe(arch);
    expect(field('Depends')).toBe('nodejs (>= 20), libbpf1');
    expect(field('Description')).toContain(`Build ${commit}.`);
  });

  it('holds the compiled agent, the BPF objects, the units, the config as a conffile, and no TypeScript or tsx', () => {
    const x = join(dir, 'x');
    execFileSync('dpkg-deb', ['-x', deb, x]);
    const all = files(x);
    for (const f of [
      'opt/xseq/agent/cli.js', 'opt/xseq/agent/bin/xseq-agent.js', 'opt/xseq/bpf/build/sequencer.bpf.o', 'opt/xseq/bpf/build/replica.bpf.o',
      'opt/xseq/examples/kv/replica.js', 'opt/xseq/examples/kv/cli.js', 'opt/xseq/build-info.json', 'opt/xseq/node_modules/koffi/package.json',
      'lib/systemd/system/xseq-agent.service', 'lib/systemd/system/xseq-replica@.service', 'etc/xseq/agent.yaml', 'usr/bin/xseq-agent',
      'usr/share/doc/xseq/docs/protocol.md', 'usr/share/doc/xseq/prometheus/alerts.yml', 'usr/share/doc/xseq/wireshark/xseq.lua',
    ]) {
      expect(all, f).toContain(f);
    }
    expect(all.filter((f) => !f.includes('node_modules/') && /\.ts$/.test(f))).toEqual([]);
    expect(readdirSync(join(x, 'opt/xseq/node_modules')).filter((d) => ['tsx', 'esbuild', 'typescript', 'vitest', '@esbuild'].includes(d))).toEqual([]);
    expect(readlinkSync(join(x, 'usr/bin/xseq-agent'))).toBe('../../opt/xseq/agent/bin/xseq-agent.js');
    const unit = readFileSync(join(x, 'lib/systemd/system/xseq-agent.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/xseq-agent run --config \/etc\/xseq\/agent\.yaml$/m);
    expect(readFileSync(join(x, 'etc/xseq/agent.yaml'), 'utf8')).toBe(readFileSync(join(root, 'deploy/agent.example.yaml'), 'utf8'));
    const ctl = join(dir, 'ctl');
    execFileSync('dpkg-deb', ['-e', deb, ctl]);
    expect(readFileSync(join(ctl, 'conffiles'), 'utf8')).toBe('/etc/xseq/agent.yaml\n');
  });

  it('runs extracted, from compiled JavaScript: --version names the build from build-info.json, status works', () => {
    const x = join(dir, 'x');
    const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin' };
    const v = run(join(x, 'usr/bin/xseq-agent'), ['--version'], { cwd: '/', env });
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout).toMatch(new RegExp(`^xseq-agent ${pkg.version.replace(/\./g, '\\.')} \\(commit ${commit}, bpf object [0-9a-f]{16}, node v`));
    for (const [script, name] of [['opt/xseq/examples/kv/replica.js', 'kv-replica'], ['opt/xseq/examples/kv/cli.js', 'kv-cli']] as const) {
      const r = run(process.execPath, [join(x, script), '--version'], { cwd: '/', env });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.startsWith(`${name} ${pkg.version} (commit ${commit},`)).toBe(true);
    }
    const s = run(join(x, 'usr/bin/xseq-agent'), ['status', '--all', '--bpffs', join(dir, 'bpffs'), '--state-dir', join(dir, 'state')], { cwd: '/', env });
    expect(s.status, s.stderr).toBe(0);
    expect(s.stdout).toMatch(/no data paths pinned/);
  });
});

describePrivileged('the Debian package on this machine', () => {
  const installed = () => run('dpkg-query', ['-W', '-f=${Status}', 'xseq']).stdout.includes('install ok installed');
  afterAll(() => {
    if (installed()) run('dpkg', ['--purge', 'xseq']);
  });

  it('installs, puts xseq-agent on PATH, passes systemd-analyze verify, and purges to nothing', () => {
    // Never over an xseq the machine already has.
    expect(installed(), 'an xseq package is already installed here').toBe(false);
    expect(existsSync('/opt/xseq'), '/opt/xseq exists: not installing over it').toBe(false);
    const i = run('dpkg', ['-i', deb]);
    expect(i.status, i.stdout + i.stderr).toBe(0);
    expect(installed()).toBe(true);

    const v = run('xseq-agent', ['--version'], { cwd: '/' });
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout).toContain(`xseq-agent ${pkg.version} (commit ${commit},`);
    const s = run('xseq-agent', ['status', '--all', '--bpffs', join(dir, 'bpffs'), '--state-dir', join(dir, 'state')], { cwd: '/' });
    expect(s.status, s.stderr).toBe(0);
    const verify = run('systemd-analyze', ['verify', '--man=no', '/lib/systemd/system/xseq-agent.service']);
    expect(`${verify.stdout}${verify.stderr}`).toBe('');

    const p = run('dpkg', ['--purge', 'xseq']);
    expect(p.status, p.stdout + p.stderr).toBe(0);
    expect(installed()).toBe(false);
    for (const f of ['/opt/xseq', '/usr/bin/xseq-agent', '/lib/systemd/system/xseq-agent.service', '/lib/systemd/system/xseq-replica@.service', '/etc/xseq/agent.yaml', '/usr/share/doc/xseq']) {
      expect(existsSync(f), f).toBe(false);
    }
  });
});
