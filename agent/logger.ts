// The one logger of xseq's daemons (the agent and the KV replica): pino,
// one JSON object per line on stdout, with a string level ("level":"warn")
// and an ISO-8601 UTC time ("time":"2026-12-07T22:42:33.123Z") instead of
// pino's numbers, so people, jq and journald's consumers read it as is.
//
// Under systemd (stdout is the journal: $JOURNAL_STREAM names the device
// and inode of fd 1) every line is prefixed with its syslog priority, "<4>"
// for warn: journald strips the prefix and files the line at that
// priority, so `journalctl -p warning -u xseq-agent` works; what is stored
// is still the JSON. `format: 'pretty'` prints one readable line per entry
// for a terminal: time, level, message, then the fields as key=value.
import { fstatSync } from 'node:fs';
import pino, { type DestinationStream, type Logger } from 'pino';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug';
export type LogFormat = 'json' | 'pretty';
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];

/** sd-daemon(3) priorities of pino's levels. */
const PRIORITY: Record<string, number> = { fatal: 2, error: 3, warn: 4, info: 6, debug: 7, trace: 7 };

/** Whether fd 1 is the journal's stream (systemd.exec(5), $JOURNAL_STREAM). */
export function stdoutIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  const js = env['JOURNAL_STREAM'];
  if (!js) return false;
  try {
    const st = fstatSync(1);
    const [dev, ino] = js.split(':');
    return String(st.dev) === dev && String(st.ino) === ino;
  } catch {
    return false;
  }
}

const LEVEL_AT_START = /^\{"level":"(\w+)"/;

/** Renders one JSON line as `TIME LEVEL message key=value ...`. */
export function prettyLine(line: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { time, level, msg, ...rest } = o;
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${String(time)} ${String(level).toUpperCase().padEnd(5)} ${String(msg ?? '')}${fields ? `  ${fields}` : ''}\n`;
}

/** The line sink: adds journald priorities or renders pretty lines. */
function sink(format: LogFormat, journal: boolean, out: (s: string) => void): DestinationStream {
  return {
    write(line: string) {
      if (format === 'pretty') out(prettyLine(line));
      else if (journal) out(`<${PRIORITY[LEVEL_AT_START.exec(line)?.[1] ?? 'info'] ?? 6}>${line}`);
      else out(line);
    },
  };
}

export interface LoggerOptions {
  level: LogLevel;
  format?: LogFormat;
  /** Fields on every line (the agent's interface, the replica's id). */
  base?: Record<string, unknown>;
  /** Where lines go; default: stdout, synchronously (nothing lost on exit). */
  out?: (line: string) => void;
  /** Prefix journald priorities; default: when stdout is the journal. */
  journal?: boolean;
}

export function createLogger(o: LoggerOptions): Logger {
  const format = o.format ?? 'json';
  const journal = o.journal ?? (o.out ? false : stdoutIsJournal());
  const opts = {
    level: o.level,
    base: o.base ?? {},
    formatters: { level: (label: string) => ({ level: label }) },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  // pino's synchronous fd 1 (it retries EAGAIN): nothing lost on exit.
  const fd1 = o.out ? undefined : pino.destination({ sync: true });
  if (fd1 && format === 'json' && !journal) return pino(opts, fd1);
  return pino(opts, sink(format, journal, o.out ?? ((s) => fd1!.write(s))));
}
