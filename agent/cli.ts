// xseq-agent entry point: dispatches subcommands and turns every error into
// one line with its stable code and a non-zero exit status.
import { MAIN_HELP, parseRunArgs, RUN_HELP, UsageError } from './args.ts';
import { runAgent } from './run.ts';

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case 'help':
    case '-h':
    case '--help':
      console.log(MAIN_HELP);
      return cmd === undefined ? 2 : 0;
    case 'run': {
      const cfg = parseRunArgs(rest);
      if (!cfg) {
        console.log(RUN_HELP);
        return 0;
      }
      await runAgent(cfg);
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${cmd}"; commands: run, help`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    const err = e as Error & { code?: string };
    console.error(`xseq-agent: ${err.code ?? 'EINTERNAL'}: ${err.message}`);
    if (!err.code) console.error(err.stack);
    const usage = err instanceof UsageError || err.code === 'ECONFIG_GROUP' || err.code === 'ECONFIG_PORT' || err.code === 'ECONFIG_WINDOW';
    process.exit(usage ? 2 : 1);
  },
);
