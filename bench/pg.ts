// A throwaway PostgreSQL for the P5 rows: the Debian package's server
// (installed on first use if missing), initdb into a temporary directory,
// listening on 127.0.0.1 only at a free port, trust auth, removed at the
// end. Default durability settings (fsync, synchronous_commit on).
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Pg {
  port: number;
  dir: string;
  version: string;
  psql(sql: string): string;
  /** pgbench -M prepared with one SQL statement per transaction. */
  pgbench(o: { sql: string; clients: number; seconds?: number; transactions?: number; latencies?: boolean }): PgbenchResult;
  stop(): void;
}

export interface PgbenchResult {
  tps: number;
  transactions: number;
  /** Per-transaction latencies, ns, sorted (with latencies: true). */
  latNs: number[];
}

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const find = () => (existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)).map((v) => join(root, v, 'bin')).find((d) => existsSync(join(d, 'initdb'))) : undefined);
  let d = find();
  if (!d || !existsSync('/usr/bin/pgbench')) {
    // The bench alone needs PostgreSQL: install it on first use rather
    // than in scripts/setup.sh, which the tests share.
    const r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'postgresql', 'postgresql-contrib'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (r.status !== 0) throw new Error('PostgreSQL is not installed and `apt-get install postgresql` failed');
    d = find();
  }
  if (!d) throw new Error('no initdb under /usr/lib/postgresql/*/bin');
  return d;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

export async function startPg(): Promise<Pg> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), 'xseq-bench-pg-'));
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  chownSync(dir, uid, gid);
  const data = join(dir, 'data');
  const asPg = (cmd: string, args: string[]) => execFileSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { encoding: 'utf8', cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  asPg(join(bin, 'initdb'), ['-D', data, '--auth=trust', '-U', 'postgres', '--no-sync']);
  const port = await freePort();
  asPg(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-w', '-o', `-c listen_addresses=127.0.0.1 -p ${port} -c unix_socket_directories=${dir} -c max_connections=200`, 'start']);
  const version = execFileSync(join(bin, 'postgres'), ['--version'], { encoding: 'utf8' }).trim();
  const conn = ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres'];
  let n = 0;
  return {
    port,
    dir,
    version,
    psql: (sql) => execFileSync('psql', [...conn, '-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', '-c', sql, 'postgres'], { encoding: 'utf8' }),
    pgbench(o) {
      const script = join(dir, `s${n++}.sql`);
      writeFileSync(script, `${o.sql}\n`);
      const prefix = join(dir, `lat${n}`);
      const args = [...conn, '-n', '-M', 'prepared', '-f', script, '-c', String(o.clients), '-j', String(Math.min(o.clients, 4)), ...(o.transactions ? ['-t', String(o.transactions)] : ['-T', String(o.seconds ?? 3)]), ...(o.latencies ? ['-l', '--log-prefix', prefix] : []), 'postgres'];
      const out = execFileSync('pgbench', args, { encoding: 'utf8', cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1] ?? NaN);
      const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? NaN);
      const latNs: number[] = [];
      if (o.latencies) {
        for (const f of readdirSync(dir).filter((x) => x.startsWith(`lat${n}.`))) {
          for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
            const cols = line.split(' ');
            if (cols.length >= 3) latNs.push(Number(cols[2]) * 1000);
          }
        }
        latNs.sort((a, b) => a - b);
      }
      return { tps, transactions, latNs };
    },
    stop() {
      spawnSync('runuser', ['-u', 'postgres', '--', join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', 'stop'], { stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
