import type { Readable } from 'node:stream';
import { Session } from '../deploy/session.js';
import { ExitError } from '../diagnostics.js';
import type { Nodeset } from '../nodeset/types.js';
import { deployVerbs } from '../remote/commands/deploy.js';
import type { Runtime } from '../runtime.js';
import { quoteCommand } from '../ssh/quote.js';

/**
 * `silver run APP FILE [--node NAME] [-i] -- COMMAND...`: a one-off command (a migration, a
 * console) as the app's user, in its active instance's folder and with its environment — the
 * services' CONFIG_*, the app's settings — on the primary app server (or --node). Its output is
 * streamed as the app wrote it, its exit code is silver's; `-i` gives it a terminal.
 */
export interface RunOptions {
  node?: string;
  /** A terminal on the node (a console); the caller's own is put in raw mode meanwhile. */
  tty: boolean;
  /** What the command reads (null: nothing). */
  stdin: Readable | null;
  /** The caller's terminal size, for `tty`. */
  size?: { rows: number; cols: number; term: string };
  stdout(chunk: Buffer): void;
  stderr(chunk: Buffer): void;
}

export async function runInApp(ns: Nodeset, app: string, argv: readonly string[], rt: Runtime, opts: RunOptions): Promise<number> {
  if (!ns.locations.some((l) => l.app === app)) throw new ExitError(`app "${app}" is not in the locations of ${ns.file}`, 2);
  if (argv.length === 0) throw new ExitError(`nothing to run: silver run ${app} ${ns.file} -- COMMAND ...`, 2);
  if (opts.node && !ns.nodes.some((n) => n.name === opts.node && n.role === 'appserver')) throw new ExitError(`--node ${opts.node}: not an app server of nodeset ${ns.name}`, 2);
  const s = await Session.open(ns, rt, []);
  try {
    const node = opts.node ? s.appservers.find((n) => n.name === opts.node) : s.appservers[0];
    if (!node) throw new ExitError(`${opts.node ?? 'the primary app server'}: ${s.missing.find((m) => m.name === opts.node)?.error ?? 'cannot be reached'}`, 1);
    await s.checkHelpers([]);
    const target = s.targets.find((t) => t.name === node.name)!;
    // (the command goes on standard input first — it may hold a secret: never on the node's
    // command line, nor in its journal — and the run names what was kept)
    const id = (await s.remote.run(node.name, 'staging the command', deployVerbs.runStage(app), `${quoteCommand(argv)}\n`)).trim();
    if (!/^r\.[A-Za-z0-9]{10}$/.test(id)) throw new Error(`${node.name}: the node kept the command under no id it can run (${id.slice(0, 40)})`);
    const command = quoteCommand(deployVerbs.run(app, opts.tty ? 'tty' : 'pipe', id));
    const handle = rt.attach(target, command, { pty: opts.tty ? (opts.size ?? { rows: 24, cols: 80, term: 'xterm' }) : null, stdin: opts.stdin, onStdout: opts.stdout, onStderr: opts.stderr });
    const dispose = rt.onInterrupt(() => handle.stop());
    try {
      return await handle.done;
    } finally {
      dispose();
    }
  } finally {
    await s.close();
  }
}
