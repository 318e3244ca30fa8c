// The daemons' log format (agent/logger.ts): JSON lines with string levels
// and ISO-8601 times, journald priority prefixes when stdout is the
// journal, and a pretty form for terminals.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger, prettyLine } from '../agent/logger.ts';

const root = join(import.meta.dirname, '..');
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function capture(opts: Partial<Parameters<typeof createLogger>[0]>) {
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', out: (s) => lines.push(s), ...opts });
  return { log, lines };
}

describe('the daemon log format', () => {
  it('json: one object per line, level as a word, time as ISO-8601 UTC, base fields and the message', () => {
    const { log, lines } = capture({ base: { iface: 'eth0' } });
    log.warn({ event: 'x', n: 3 }, 'something odd');
    log.debug({}, 'detail');
    expect(lines).toHaveLength(2);
    const o = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(o).toMatchObject({ level: 'warn', iface: 'eth0', event: 'x', n: 3, msg: 'something odd' });
    expect(o['time']).toMatch(ISO);
    expect(Math.abs(Date.parse(o['time'] as string) - Date.now())).toBeLessThan(60_000);
    expect(lines[0]!.startsWith('{"level":"warn"')).toBe(true);
    expect(JSON.parse(lines[1]!)).toMatchObject({ level: 'debug', msg: 'detail' });
  });

  it('under the journal, each line starts with its syslog priority and the JSON follows unchanged', () => {
    const { log, lines } = capture({ journal: true });
    log.error({}, 'e');
    log.warn({}, 'w');
    log.info({}, 'i');
    log.debug({}, 'd');
    expect(lines.map((l) => l.slice(0, 3))).toEqual(['<3>', '<4>', '<6>', '<7>']);
    expect(JSON.parse(lines[1]!.slice(3))).toMatchObject({ level: 'warn', msg: 'w' });
  });

  it('the level filters', () => {
    const { log, lines } = capture({ level: 'warn' });
    log.info({}, 'no');
    log.warn({}, 'yes');
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['yes']);
  });

  it('pretty: time, level, message, then the fields', () => {
    const { log, lines } = capture({ format: 'pretty' });
    log.info({ event: 'ready', groups: { 1: { session: 2 } } }, 'attached');
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z INFO  attached {2}event=ready groups=\{"1":\{"session":2\}\}\n$/);
    expect(prettyLine('not json\n')).toBe('not json\n');
  });

  it('a process whose stdout is not the journal prints plain JSON even with JOURNAL_STREAM set', () => {
    const script = `import { createLogger } from ${JSON.stringify(join(root, 'agent/logger.ts'))}; createLogger({ level: 'info' }).info({ a: 1 }, 'hello');`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', cwd: root, env: { ...process.env, JOURNAL_STREAM: '1:2' }, timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ level: 'info', a: 1, msg: 'hello', time: expect.stringMatching(ISO) });
  });
});
