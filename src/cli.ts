import { Command, CommanderError } from 'commander';
import { realHost, type ConfigHost } from './config/host.js';
import { ConfigError, ExitError, formatDiagnostic } from './diagnostics.js';
import { planJson, renderPlan } from './commands/plan.js';
import { loadNodeset } from './nodeset/resolve.js';
import { processIo, type Io } from './output/io.js';

export const VERSION = '0.1.0';

export interface MainOptions {
  io?: Io;
  host?: ConfigHost;
}

function build(io: Io, host: ConfigHost): Command {
  const program = new Command('silver')
    .description('Provision multi-server nodesets from one INI file and deploy web applications onto them.')
    .version(VERSION)
    .option('-v, --verbose', 'show stack traces and debugging detail')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride()
    .showHelpAfterError('(run silver --help for usage)');

  program
    .command('plan')
    .description('show the nodes, locations and balancer host names a nodeset file implies; changes nothing')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .option('--json', 'print JSON for scripts')
    .action((file: string, opts: { json?: boolean }) => {
      const ns = loadNodeset(file, host);
      io.out(opts.json ? JSON.stringify(planJson(ns), null, 2) : renderPlan(ns));
    });

  return program;
}

/** Runs silver with these arguments; resolves to the exit code. One catch, at the top. */
export async function main(argv: string[], options: MainOptions = {}): Promise<number> {
  const io = options.io ?? processIo;
  const host = options.host ?? realHost();
  const program = build(io, host);
  const verbose = argv.includes('-v') || argv.includes('--verbose');
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      return 2;
    }
    if (e instanceof ConfigError) {
      for (const d of e.diagnostics) io.err(formatDiagnostic(d));
      const files = new Set(e.diagnostics.map((d) => d.file));
      io.err(`silver: ${e.diagnostics.length} error${e.diagnostics.length === 1 ? '' : 's'} in ${[...files].join(', ')}`);
      if (verbose) io.err(e.stack ?? '');
      return 2;
    }
    if (e instanceof ExitError) {
      if (e.message) io.err(`silver: ${e.message}`);
      return e.exitCode;
    }
    const err = e as Error;
    io.err(`silver: internal error: ${err?.message ?? String(e)}${verbose ? '' : ' (run with --verbose for the stack trace)'}`);
    if (verbose) io.err(err?.stack ?? '');
    return 1;
  }
}
