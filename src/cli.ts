import { StringDecoder } from 'node:string_decoder';
import { jsonText, printableLines } from './output/printable.js';
import { Command, CommanderError } from 'commander';
import { realHost, type ConfigHost } from './config/host.js';
import { ConfigError, ExitError, formatDiagnostic } from './diagnostics.js';
import { loadNodeset } from './nodeset/resolve.js';
import type { Nodeset } from './nodeset/types.js';
import { processIo, type Io } from './output/io.js';
import type { Runtime } from './runtime.js';

// Each command's module (and what it needs: ssh2, providers, the deploy code) loads only when
// that command runs, so a no-op `setup-node` or `plan` pays for nothing else at start-up.
const commands = {
  create: () => import('./commands/create-node.js'),
  nodes: () => import('./commands/nodes.js'),
  exec: () => import('./commands/exec.js'),
  plan: () => import('./commands/plan.js'),
  setup: () => import('./commands/setup-node.js'),
  status: () => import('./commands/status.js'),
  update: () => import('./commands/update.js'),
  maintenance: () => import('./commands/maintenance.js'),
  backup: () => import('./commands/backup.js'),
  catalog: () => import('./commands/catalog.js'),
  replace: () => import('./commands/replace-node.js'),
  image: () => import('./commands/image.js'),
  env: () => import('./commands/env.js'),
  run: () => import('./commands/run.js'),
  logs: () => import('./commands/logs.js'),
  history: () => import('./commands/history.js'),
  up: () => import('./commands/up.js'),
  historyView: () => import('./deploy/history.js'),
  app: () => import('./app/app-ini.js'),
};

export const VERSION = '0.1.0';

export interface MainOptions {
  io?: Io;
  /** Standard input, for KEY=- (tests). */
  stdin?: () => Promise<Buffer>;
  host?: ConfigHost;
  runtime?: Runtime;
}

/**
 * Commands take a nodeset file; like Silverlining, a name without `.conf` would be a single
 * host, which silver does not manage on its own: say so instead of guessing.
 */
function nodesetFile(arg: string): string {
  if (!arg.endsWith('.conf')) {
    throw new ExitError(
      `"${arg}" is not a nodeset file: silver works on nodesets (a file ending in .conf). For one server, write a nodeset with a single [appserver] (see nodesets/single.conf).`,
      2,
    );
  }
  return arg;
}

/** All of standard input (a secret given as KEY=-). */
async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function build(io: Io, host: ConfigHost, runtime: () => Promise<Runtime>, stdin?: () => Promise<Buffer>): Command {
  const load = (file: string): Nodeset => {
    const ns = loadNodeset(nodesetFile(file), host);
    if (ns.provider.implicit) io.err(`warning: ${file} has no [provider]: it means the local provider (LXC containers on this machine); write [provider] provider = local to say so`);
    return ns;
  };
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
    .action(async (file: string, opts: { json?: boolean }) => {
      const ns = load(file);
      const { planJson, renderPlan } = await commands.plan();
      io.out(opts.json ? jsonText(planJson(ns), 2) : renderPlan(ns));
      // (old baked images, told by their names: plan asks no provider)
      for (const w of (await import('./image/age.js')).namedImageWarnings(ns, Date.now())) io.err(w);
      for (const w of (await import('./nodeset/origins.js')).sharedOriginWarnings(ns)) io.err(w);
    });

  program
    .command('create-node')
    .description('create every node the nodeset implies that does not exist yet, and wait until each answers SSH')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .option('--json', 'print the report as JSON')
    .option('--concurrency <n>', 'nodes created at once', (v) => positiveInt(v, '--concurrency'), 8)
    .option('--timeout <seconds>', 'how long a node may take to answer SSH', (v) => positiveInt(v, '--timeout'), 120)
    .action(async (file: string, opts: { json?: boolean; concurrency: number; timeout: number }) => {
      const ns = load(file);
      const { createNodes, failedCount, renderCreateReport } = await commands.create();
      const report = await createNodes(ns, await runtime(), { concurrency: opts.concurrency, sshTimeoutMs: opts.timeout * 1000 });
      io.out(opts.json ? jsonText(report, 2) : renderCreateReport(report));
      if (failedCount(report) > 0) throw new ExitError('', 1);
    });

  program
    .command('setup-node')
    .description('layered setup of every node (base, wiring, its role), then every host knows every other')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .option('--json', 'print the report as JSON')
    .option('--dry-run', 'run only the checks and show what would change')
    .option('--concurrency <n>', 'full setups at once (the fast path probes four times as many)', (v) => positiveInt(v, '--concurrency'), 32)
    .option('--full', 'check everything on every node, even where nothing changed since the last run')
    .action(async (file: string, opts: { json?: boolean; dryRun?: boolean; concurrency: number; full?: boolean }) => {
      const ns = load(file);
      const { renderSetupReport, setupNodes } = await commands.setup();
      const report = await setupNodes(ns, await runtime(), { dryRun: opts.dryRun ?? false, concurrency: opts.concurrency, fast: opts.full ? 'full' : 'probe', signals: true });
      io.out(opts.json ? jsonText(report, 2) : renderSetupReport(report));
      if (report.interrupted) throw new ExitError(`interrupted (${report.interrupted}): run silver setup-node again`, 130);
      if (report.nodes.some((n) => n.status === 'failed')) throw new ExitError('', 1);
    });

  program
    .command('update')
    .description('deploy an app: its services, half-deploy to every app server, activate one at a time, roll back on failure')
    .argument('<app-dir>', 'the application directory (with app.ini)')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .option('--json', 'print the report as JSON')
    .option('--dry-run', 'show what the update would do (instance, static-only or not, migration, services, packages); change nothing')
    .option('--clear-cache', "the new instance starts with an empty cache folder (SILVER_CACHE) instead of the one kept across instances")
    .action(async (dir: string, file: string, opts: { json?: boolean; dryRun?: boolean; clearCache?: boolean }) => {
      const ns = load(file);
      const app = (await commands.app()).loadApp(dir, host);
      const { planUpdate, renderUpdatePlan, renderUpdateReport, update } = await commands.update();
      if (opts.dryRun) {
        const plan = await planUpdate(ns, app, await runtime());
        io.out(opts.json ? jsonText(plan, 2) : renderUpdatePlan(plan));
        return;
      }
      const report = await update(ns, app, await runtime(), { clearCache: opts.clearCache ?? false });
      io.out(opts.json ? jsonText(report, 2) : renderUpdateReport(report));
      if (report.interrupted) throw new ExitError('', 130);
      if (!report.ok) throw new ExitError('', 1);
    });

  program
    .command('up')
    .description('the whole path: create-node, setup-node, then update each app given, with one summary; stops at the first step that fails')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .argument('[app-dirs...]', 'application directories (with app.ini), deployed in this order')
    .option('--json', 'print one JSON report (create, setup, updates) at the end')
    .option('--clear-cache', 'each new instance starts with an empty cache folder')
    .option('--timeout <seconds>', 'how long a new node may take to answer SSH', (v) => positiveInt(v, '--timeout'), 120)
    .action(async (file: string, dirs: string[], opts: { json?: boolean; clearCache?: boolean; timeout: number }) => {
      const ns = load(file);
      // (every app.ini checked before any node is created)
      const { loadApp } = await commands.app();
      const apps = dirs.map((d) => loadApp(d, host));
      const { renderUpSummary, up } = await commands.up();
      const r = await up(ns, apps, await runtime(), {
        concurrency: 8,
        sshTimeoutMs: opts.timeout * 1000,
        clearCache: opts.clearCache ?? false,
        ...(opts.json ? {} : { onStep: (text: string) => io.out(text) }),
      });
      io.out(opts.json ? jsonText(r, 2) : renderUpSummary(r));
      if (r.interrupted) throw new ExitError('', 130);
      if (!r.ok) throw new ExitError('', 1);
    });

  program
    .command('status')
    .description("each node, and each app's active, previous and staged instances")
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .option('--json', 'print JSON for scripts')
    .action(async (file: string, opts: { json?: boolean }) => {
      const { renderStatus, status } = await commands.status();
      const r = await status(load(file), await runtime());
      io.out(opts.json ? jsonText(r, 2) : renderStatus(r));
    });

  program
    .command('rollback')
    .description('activate the previous instance of an app, one app server at a time')
    .argument('<app>', 'the app name')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .option('--json', 'print the report as JSON')
    .action(async (app: string, file: string, opts: { json?: boolean }) => {
      const { renderRollbackReport, rollback } = await commands.update();
      const r = await rollback(load(file), app, await runtime());
      io.out(opts.json ? jsonText(r, 2) : renderRollbackReport(r));
      if (r.interrupted) throw new ExitError('', 130);
      if (!r.ok) throw new ExitError('', 1);
    });

  program
    .command('maintenance')
    .description("the balancers' maintenance or read-only mode: on, off, status (every app, or --app APP; no restart, no dropped connection)")
    .argument('<action>', 'on, off or status')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .option('--read-only', 'on: GET, HEAD and OPTIONS pass, other methods get 503 (instead of a maintenance page for every request)')
    .option('--allow <cidr>', 'on: an address or network a maintenance lets through (repeatable; replaces the list)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--retry-after <seconds>', 'on: the Retry-After of the 503 (1..86400, default 30)', (v) => boundedInt(v, '--retry-after', 86400))
    .option('--message <text>', 'on: the text of the 503 page (default: "We are updating. Please try again in a moment.")')
    .option('--app <app>', 'on/off: only this app (all its locations); without it: every app')
    .option('--json', 'print the report as JSON')
    .action(async (action: string, file: string, opts: { readOnly?: boolean; allow: string[]; retryAfter?: number; message?: string; app?: string; json?: boolean }) => {
      const { checkOptions, maintenance, renderMaintenance } = await commands.maintenance();
      const options = { ...(opts.readOnly ? { readOnly: true } : {}), ...(opts.allow.length ? { allow: opts.allow } : {}), ...(opts.retryAfter !== undefined ? { retryAfter: opts.retryAfter } : {}), ...(opts.message !== undefined ? { message: opts.message } : {}), ...(opts.app !== undefined ? { app: opts.app } : {}) };
      const verb = checkOptions(action, options);
      const r = await maintenance(load(file), await runtime(), verb, options);
      io.out(opts.json ? jsonText(r, 2) : renderMaintenance(r));
      if (!r.ok) throw new ExitError('', 1);
    });

  program
    .command('backup')
    .description("dump each app's database on its service node (or --app APP) to ~/.silverlining/backups/NODESET/APP/STAMP/ with a manifest; --verify: restore a backup into a throw-away database and compare its rows with the manifest")
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .argument('[backup]', 'with --verify: a stamp (silver backups lists them), a backup folder, or latest (the default: the latest of each app)')
    .option('--app <app>', 'only this app')
    .option('--to <dir>', 'keep the backups in DIR/NODESET/APP/STAMP/ (with --verify: find them there)')
    .option('--keep <n>', 'afterwards keep only the newest N backups of each app backed up', (v) => positiveInt(v, '--keep'))
    .option('--verify', 'verify a backup instead of making one')
    .option('--pull', "fetch the dumps the service nodes' timers made (backup = in [service:NAME]) that are not kept here yet")
    .option('--json', 'print the report as JSON')
    .action(async (file: string, which: string | undefined, opts: { app?: string; to?: string; keep?: number; verify?: boolean; pull?: boolean; json?: boolean }) => {
      if (which !== undefined && !opts.verify) throw new ExitError(`"${which}": a backup is named only with --verify`, 2);
      if (opts.verify && opts.keep !== undefined) throw new ExitError('--keep: not with --verify', 2);
      if (opts.pull && (opts.verify || opts.keep !== undefined)) throw new ExitError('--pull: not with --verify or --keep', 2);
      const ns = load(file);
      const b = await commands.backup();
      if (opts.pull) {
        const r = await b.pullBackups(ns, await runtime(), { ...(opts.app !== undefined ? { app: opts.app } : {}), ...(opts.to !== undefined ? { to: opts.to } : {}) });
        io.out(opts.json ? jsonText(r, 2) : b.renderBackupReport(r));
        if (!r.ok) throw new ExitError('', 1);
        return;
      }
      if (opts.verify) {
        const r = await b.verifyBackups(ns, await runtime(), { ...(opts.app !== undefined ? { app: opts.app } : {}), ...(which !== undefined ? { backup: which } : {}), ...(opts.to !== undefined ? { from: opts.to } : {}) });
        io.out(opts.json ? jsonText(r, 2) : b.renderVerifyReport(r));
        if (!r.ok) throw new ExitError('', 1);
        return;
      }
      const r = await b.backup(ns, await runtime(), { ...(opts.app !== undefined ? { app: opts.app } : {}), ...(opts.to !== undefined ? { to: opts.to } : {}), ...(opts.keep !== undefined ? { keep: opts.keep } : {}) });
      io.out(opts.json ? jsonText(r, 2) : b.renderBackupReport(r));
      if (!r.ok) throw new ExitError('', 1);
    });

  program
    .command('backups')
    .description('list the backups of a nodeset kept on this machine: app, stamp, service, size, rows, verified or not')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .option('--app <app>', 'only this app')
    .option('--from <dir>', 'the backups kept in DIR (silver backup --to DIR)')
    .option('--json', 'print JSON for scripts')
    .action(async (file: string, opts: { app?: string; from?: string; json?: boolean }) => {
      const ns = load(file);
      const b = await commands.backup();
      const rt = await runtime();
      const list = b.listBackupsOf(ns, rt, { ...(opts.app !== undefined ? { app: opts.app } : {}), ...(opts.from !== undefined ? { from: opts.from } : {}) });
      io.out(opts.json ? jsonText(list, 2) : b.renderBackups(list, rt.now()));
    });

  program
    .command('restore')
    .description("replace an app's database with a backup (asks first): under the deploy lock, the app in maintenance on the balancers, the rows checked against the manifest")
    .argument('<app>', "the app name (of an app no longer in the locations: its database's name, as silver backups lists it)")
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .argument('<backup>', 'a stamp (silver backups lists them), a backup folder, or latest')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--from <dir>', 'the backups kept in DIR (silver backup --to DIR)')
    .option('--json', 'print the report as JSON')
    .action(async (app: string, file: string, which: string, opts: { yes?: boolean; from?: string; json?: boolean }) => {
      const ns = load(file);
      const b = await commands.backup();
      const r = await b.restore(ns, await runtime(), app, which, { yes: opts.yes ?? false, ...(opts.from !== undefined ? { from: opts.from } : {}) });
      io.out(opts.json ? jsonText(r, 2) : b.renderRestoreReport(r));
      if (r.interrupted) throw new ExitError('', 130);
      if (!r.ok) throw new ExitError('', 1);
    });

  program
    .command('unlock')
    .description('break a stale deploy lock of a nodeset on purpose (names the holder it removes)')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .option('--force', 'break a lock whose holder is still beating (running) too')
    .action(async (file: string, o: { force?: boolean }) => {
      const holders = await (await commands.update()).unlock(load(file), await runtime(), { force: o.force === true });
      io.out(holders.length > 0 ? `removed the deploy lock held by ${holders.join('; ')}` : 'the nodeset was not locked');
    });

  program
    .command('env')
    .description("an app's own settings (environment variables), the same on every app server: list (names and fingerprints), set KEY=VALUE|KEY=- (the value on standard input), unset KEY; a change rolls out as a new instance with health checks and rollback")
    .argument('<action>', 'list, set or unset')
    .argument('<app>', 'the app name')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .argument('[changes...]', 'set: KEY=VALUE or KEY=- ; unset: KEY')
    .option('--no-restart', 'stage the change on the app servers; the next update or env change rolls it out')
    .option('--json', 'print the report as JSON')
    .action(async (action: string, app: string, file: string, changes: string[], opts: { restart: boolean; json?: boolean }) => {
      const ns = load(file);
      const e = await commands.env();
      if (action === 'list') {
        if (changes.length > 0) throw new ExitError('silver env list takes no KEY', 2);
        const r = await e.envList(ns, app, await runtime());
        io.out(opts.json ? jsonText(r, 2) : e.renderEnvList(r));
        return;
      }
      const parsed = await e.parseChanges(action, changes, () => (stdin ?? readStdin)());
      const r = await e.envChange(ns, app, parsed, await runtime(), { restart: opts.restart });
      io.out(opts.json ? jsonText(r, 2) : e.renderEnvChange(r));
      if (r.interrupted) throw new ExitError('', 130);
      if (!r.ok) throw new ExitError('', 1);
    });

  program
    .command('run')
    .description("a one-off command as the app's user in its active instance's folder and environment (the primary app server, or --node); its exit code is silver's")
    .argument('<app>', 'the app name')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .argument('<command...>', 'the command and its arguments (after --)')
    .option('--node <name>', 'this app server instead of the primary')
    .option('-i, --interactive', 'a terminal for the command (a console, a shell)')
    .action(async (app: string, file: string, command: string[], opts: { node?: string; interactive?: boolean }) => {
      const ns = load(file);
      const { runInApp } = await commands.run();
      const tty = opts.interactive ?? false;
      const raw = tty && process.stdin.isTTY;
      if (raw) process.stdin.setRawMode(true);
      try {
        const code = await runInApp(ns, app, command, await runtime(), {
          ...(opts.node ? { node: opts.node } : {}),
          tty,
          // (a terminal is forwarded only to a terminal: without -i the command reads piped input, or nothing)
          stdin: tty || !process.stdin.isTTY ? process.stdin : null,
          size: { rows: process.stdout.rows || 24, cols: process.stdout.columns || 80, term: process.env['TERM'] || 'xterm' },
          // (without -i, on a terminal: the app's output shown printable, line breaks kept — an
          // escape sequence it prints must not rewrite the terminal or its clipboard)
          stdout: shown(process.stdout, tty),
          stderr: shown(process.stderr, tty),
        });
        if (code !== 0) throw new ExitError('', code);
      } finally {
        if (raw) process.stdin.setRawMode(false);
        // (what was not read of standard input keeps silver no longer)
        process.stdin.pause();
        process.stdin.unref?.();
      }
    });

  program
    .command('logs')
    .description("an app's log lines from every app server, merged in time order with node and instance (silver logs silver FILE: silver's own steps on every node); -f follows")
    .argument('<app>', 'the app name, or silver')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .option('-f, --follow', 'keep following every node (new instances too) until Ctrl-C')
    .option('--node <name>', 'only this node')
    .option('--since <time>', 'from this time (2026-12-02T10:00) or age (30s, 10m, 2h, 3d)')
    .option('-n, --lines <n>', 'the newest N lines (default 100)', (v) => positiveInt(v, '--lines'), 100)
    .option('--json', 'one JSON object a line: node, time (microseconds), source, priority, message')
    .action(async (app: string, file: string, opts: { follow?: boolean; node?: string; since?: string; lines: number; json?: boolean }) => {
      const ns = load(file);
      const l = await commands.logs();
      const rt = await runtime();
      await l.logs(ns, app, rt, {
        ...(opts.node ? { node: opts.node } : {}),
        since: opts.since ? l.parseSince(opts.since, rt.now()) : null,
        lines: opts.lines,
        follow: opts.follow ?? false,
        write: (line) => io.out(opts.json ? jsonText(line) : l.formatLogLine(line)),
      });
    });

  program
    .command('history')
    .description('every update, rollback, env change, maintenance switch, backup, restore and node replacement of the nodeset: when, who, what, how long, result')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .argument('[app]', 'only this app')
    .option('-n, --lines <n>', 'the newest N entries (default 1000)', (v) => positiveInt(v, '--lines'), 1000)
    .option('--json', 'print JSON for scripts')
    .action(async (file: string, app: string | undefined, opts: { lines: number; json?: boolean }) => {
      const ns = load(file);
      const entries = await (await commands.history()).history(ns, await runtime(), app, opts.lines);
      io.out(opts.json ? jsonText(entries, 2) : (await commands.historyView()).renderHistory(entries));
    });

  const providerOf = async (file: string | undefined, name: string | undefined) => {
    if (file && name) throw new ExitError('give either a nodeset file or --provider, not both', 2);
    if (name) return (await commands.catalog()).providerByName(name, host);
    if (file) return load(file).provider;
    throw new ExitError('give a nodeset file or --provider NAME', 2);
  };

  program
    .command('list-sizes')
    .description("the sizes (flavors) a provider offers: the nodeset's provider, or --provider NAME")
    .argument('[nodeset]', 'the nodeset file (.conf)')
    .option('--provider <name>', 'a [provider:NAME] of ~/.silverlining.conf, or a provider type')
    .option('--json', 'print JSON for scripts')
    .action(async (file: string | undefined, opts: { provider?: string; json?: boolean }) => {
      const provider = await (await runtime()).providerFor(await providerOf(file, opts.provider));
      const sizes = await provider.listSizes();
      const { renderSizes } = await commands.catalog();
      io.out(opts.json ? jsonText(sizes, 2) : renderSizes(sizes));
    });

  program
    .command('list-images')
    .description("the images a provider offers: the nodeset's provider, or --provider NAME")
    .argument('[nodeset]', 'the nodeset file (.conf)')
    .option('--provider <name>', 'a [provider:NAME] of ~/.silverlining.conf, or a provider type')
    .option('--json', 'print JSON for scripts')
    .action(async (file: string | undefined, opts: { provider?: string; json?: boolean }) => {
      const provider = await (await runtime()).providerFor(await providerOf(file, opts.provider));
      const images = await provider.listImages();
      io.out(opts.json ? jsonText(images, 2) : images.join('\n'));
    });

  program
    .command('exec')
    .description('run a command on the nodes of a nodeset (all, --node NAME or --role ROLE) and print each one\'s output and exit code')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .argument('<command...>', 'the command and its arguments (after --)')
    .option('--node <name...>', 'only these nodes')
    .option('--role <role>', 'only the nodes of this role (appserver, balancer, service:NAME)')
    .option('--json', 'print JSON for scripts')
    .action(async (file: string, command: string[], opts: { node?: string[]; role?: string; json?: boolean }) => {
      const ns = load(file);
      const { execOnNodes, renderExec } = await commands.exec();
      const outcomes = await execOnNodes(ns, await runtime(), command, { ...(opts.node ? { node: opts.node } : {}), ...(opts.role ? { role: opts.role } : {}) });
      io.out(opts.json ? jsonText(outcomes, 2) : renderExec(outcomes));
      if (outcomes.some((o) => o.code !== 0)) throw new ExitError('', 1);
    });

  program
    .command('disconnect')
    .description('end the connections kept open for a nodeset between commands (see SILVER_PERSIST)')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .action(async (file: string) => {
      const ns = load(file);
      const { disconnect } = await commands.exec();
      const n = await disconnect(ns, await runtime());
      io.out(n > 0 ? `nodeset ${ns.name}: closed the kept connections` : `nodeset ${ns.name}: no connections were kept`);
    });

  program
    .command('list-nodes')
    .description('list the nodes of a nodeset as the provider sees them (and the ones missing or orphaned)')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .option('--json', 'print JSON for scripts')
    .action(async (file: string, opts: { json?: boolean }) => {
      const ns = load(file);
      const { listNodes, renderNodeList } = await commands.nodes();
      const nodes = await listNodes(ns, await runtime());
      io.out(opts.json ? jsonText(nodes, 2) : renderNodeList(ns, nodes));
    });

  program
    .command('replace-node')
    .description('phoenix: destroy an app server or a balancer and build it again from the image, set up, rewired, its apps deployed, back in rotation (asks first)')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .requiredOption('--node <name>', 'the node to replace')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--force', `a service node: even without a backup verified by a restore in the last 7 days, and destroying databases no active instance uses (undumped)`)
    .option('--json', 'print the report as JSON')
    .action(async (file: string, opts: { node: string; yes?: boolean; force?: boolean; json?: boolean }) => {
      const ns = load(file);
      const { replaceNode, renderReplaceReport } = await commands.replace();
      const r = await replaceNode(ns, await runtime(), { node: opts.node, yes: opts.yes ?? false, ...(opts.force ? { force: true } : {}) });
      io.out(opts.json ? jsonText(r, 2) : renderReplaceReport(r));
      if (r.interrupted) throw new ExitError('', 130);
      if (!r.ok) throw new ExitError('', 1);
    });

  const image = program.command('image').description('provider images made from set-up nodes');
  image
    .command('bake')
    .description('a provider image from a set-up node of ROLE (appserver or balancer), stripped of host keys, keys, app environments, data and logs; image = NAME uses it')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .requiredOption('--role <role>', 'appserver or balancer')
    .option('--node <name>', 'this node of the role (default: the first)')
    .option('--json', 'print the report as JSON')
    .action(async (file: string, opts: { role: string; node?: string; json?: boolean }) => {
      const ns = load(file);
      const { bakeImage, renderBake } = await commands.image();
      const r = await bakeImage(ns, await runtime(), { role: opts.role, ...(opts.node ? { node: opts.node } : {}) });
      io.out(opts.json ? jsonText(r, 2) : renderBake(r));
    });

  program
    .command('delete-node')
    .description('delete the nodes of a nodeset (all, --node NAME, or --orphans), and what the provider set up for them')
    .argument('<nodeset>', 'the nodeset file (.conf)')
    .option('--node <name...>', 'only these nodes')
    .option('--orphans', 'only the nodes the file no longer implies')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(async (file: string, opts: { node?: string[]; orphans?: boolean; yes?: boolean }) => {
      if (opts.node && opts.orphans) throw new ExitError('use either --node or --orphans', 2);
      const ns = load(file);
      const r = await (await commands.nodes()).deleteNodes(ns, await runtime(), { nodes: opts.node ?? [], orphans: opts.orphans ?? false, yes: opts.yes ?? false, concurrency: 8 });
      // Connections kept to the nodes end with them.
      if (r.deleted.length > 0) await (await commands.exec()).disconnect(ns, await runtime());
      io.out(`nodeset ${ns.name}: deleted ${r.deleted.length}, failed ${r.failed.length}`);
      if (r.failed.length > 0) throw new ExitError('', 1);
    });

  return program;
}

function boundedInt(v: string, flag: string, max: number): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > max) throw new ExitError(`${flag} must be a whole number from 1 to ${max}, got "${v}"`, 2);
  return n;
}

function positiveInt(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new ExitError(`${flag} must be a whole number above 0, got "${v}"`, 2);
  return n;
}

/** Runs silver with these arguments; resolves to the exit code. One catch, at the top. */
export async function main(argv: string[], options: MainOptions = {}): Promise<number> {
  const io = options.io ?? processIo;
  const host = options.host ?? realHost();
  let rt = options.runtime;
  const program = build(io, host, async () => (rt ??= (await import('./runtime-default.js')).defaultRuntime(io, host)), options.stdin);
  // (only silver's own options: what follows `--` belongs to a remote command)
  const own = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  const verbose = own.includes('-v') || own.includes('--verbose');
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

/** A writer of a remote command's output to `stream`: as it came to a pipe or a console (-i), printable to a terminal. */
function shown(stream: NodeJS.WriteStream, raw: boolean): (b: Buffer) => void {
  if (raw || !stream.isTTY) return (b) => stream.write(b);
  const decoder = new StringDecoder('utf8');
  return (b) => stream.write(printableLines(decoder.write(b)));
}
