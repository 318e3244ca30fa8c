// xseq-agent entry point: dispatches subcommands and turns every error into
// "xseq-agent: CODE: message" on stderr and an exit status: 2 for a bad
// command line or configuration, 3 when run refuses what it found on the
// host (stale pins, a data path that cannot serve the configuration, a
// foreign XDP program: a restart cannot fix these, a person must), 1 for
// everything else.
import { parseDetachArgs, parseRunArgs, parseStatusArgs, runConfig, UsageError } from './args.ts';
import { ConfigError } from './config.ts';
import { AgentError, type AgentErrorCode } from './errors.ts';
import { detachDataPath } from './detach.ts';
import { parseArgs } from 'node:util';
import { KeyFileError, readKeyFile } from '../bpf/key-file.ts';
import { clientKeyOf } from '../bpf/mac.ts';
import { CLIENT_KEY_HELP, DETACH_HELP, MAIN_HELP, MONITOR_HELP, RUN_HELP, STATUS_HELP } from './help.ts';
import { parseMonitorArgs, runMonitor } from './monitor.ts';
import { runAgent } from './run.ts';
import { versionLine } from './version.ts';
import { gatherStatus, renderStatus, statusExitCode } from './status.ts';

/** What `run` found and will not touch without a person deciding. */
const REFUSALS: ReadonlySet<AgentErrorCode> = new Set(['EPIN_STALE', 'EPIN_CONFIG', 'EXDP_FOREIGN']);

/** JSON for reports holding bigints (seqs, counters). */
function json(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x), 2);
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case 'help':
    case '-h':
    case '--help':
      console.log(MAIN_HELP);
      return cmd === undefined ? 2 : 0;
    case '--version':
    case 'version':
      console.log(versionLine('xseq-agent'));
      return 0;
    case 'run': {
      const args = parseRunArgs(rest);
      if (!args) {
        console.log(RUN_HELP);
        return 0;
      }
      const { configFile, ...cfg } = runConfig(args);
      await runAgent(cfg, { replace: args.replace, detachOnExit: args.detachOnExit, argv: args.argv, ...(configFile ? { configFile } : {}) });
      return 0;
    }
    case 'status': {
      const args = parseStatusArgs(rest);
      if (!args) {
        console.log(STATUS_HELP);
        return 0;
      }
      const report = gatherStatus(args.locations, args.iface);
      console.log(args.json ? json(report) : renderStatus(report));
      return statusExitCode(report, args.iface !== undefined);
    }
    case 'monitor': {
      const args = parseMonitorArgs(rest);
      if (!args) {
        console.log(MONITOR_HELP);
        return 0;
      }
      return runMonitor(args);
    }
    case 'detach': {
      const args = parseDetachArgs(rest);
      if (!args) {
        console.log(DETACH_HELP);
        return 0;
      }
      console.log(detachDataPath(args.locations, args.iface, args.force).lines.join('\n'));
      return 0;
    }
    case 'client-key': {
      let v;
      try {
        v = parseArgs({ args: rest, options: { 'key-file': { type: 'string' }, help: { type: 'boolean', short: 'h' } } }).values;
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      if (v.help) {
        console.log(CLIENT_KEY_HELP);
        return 0;
      }
      if (!v['key-file']) throw new UsageError('client-key needs --key-file PATH (the group key file)');
      try {
        console.log(Buffer.from(clientKeyOf(readKeyFile(v['key-file'])).bytes).toString('hex'));
      } catch (e) {
        if (e instanceof KeyFileError) throw new ConfigError('--key-file', [{ path: '--key-file', message: `${e.message} [${e.code}]` }]);
        throw e;
      }
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${cmd}"; commands: run, status, detach, monitor, client-key, version, help`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    const err = e as Error & { code?: string };
    console.error(`xseq-agent: ${err.code ?? 'EINTERNAL'}: ${err.message}`);
    if (!err.code) console.error(err.stack);
    const usage = err instanceof UsageError || err instanceof ConfigError || err.code === 'ECONFIG_GROUP' || err.code === 'ECONFIG_PORT' || err.code === 'ECONFIG_WINDOW';
    const refused = err instanceof AgentError && REFUSALS.has(err.code);
    process.exit(usage ? 2 : refused ? 3 : 1);
  },
);
