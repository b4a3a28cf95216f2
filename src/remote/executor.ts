import type { NodeExecutor } from '../ssh/keeper.js';
import type { ExecResult } from '../ssh/connect.js';
import { quoteCommand } from '../ssh/quote.js';
import { tail } from '../util/exec.js';
import { printable } from '../output/printable.js';

export type { NodeExecutor };

/** A remote command that exited non-zero: the node, what it was doing, the end of its stderr. */
export class RemoteError extends Error {
  constructor(
    readonly node: string,
    readonly what: string,
    output: string,
    readonly code: number | null = null,
  ) {
    // (a node's output is an app's to choose in part — a migration's, an update script's: shown
    // printable wherever the error goes, the terminal and the history included)
    super(`${node}: ${what}: ${printable(tail(output, 3)) || 'failed'}`);
    this.name = 'RemoteError';
  }
}

/** A helper's argv as root runs it: without its `sudo -n` (sudo would cost more than the helper). */
export function asRootArgv(argv: readonly string[]): readonly string[] {
  return argv[0] === 'sudo' && argv[1] === '-n' ? argv.slice(2) : argv;
}

/**
 * Remote commands as argv, quoted once here at the boundary, over the runtime's executor (the
 * SSH pool, kept connections, or a test's fake).
 */
export class Remote {
  /** `asRoot`: the nodes whose sessions are root's already (setup-node's): a helper's `sudo -n` is left out there. */
  constructor(
    readonly executor: NodeExecutor,
    private readonly asRoot: ReadonlySet<string> = new Set(),
  ) {}

  /** The exit code and output, whatever the exit code (throws only when the node cannot be reached). */
  exec(node: string, argv: readonly string[], stdin?: string | Buffer, timeoutMs?: number): Promise<ExecResult> {
    return this.executor.exec(node, quoteCommand(this.argvOn(node, argv)), stdin, timeoutMs);
  }

  /** The command as it runs on `node`: without `sudo -n` in a root session (sudo would cost more than the helper). */
  argvOn(node: string, argv: readonly string[]): readonly string[] {
    return this.asRoot.has(node) ? asRootArgv(argv) : argv;
  }

  /** The standard output; a non-zero exit is a RemoteError saying `what` failed. */
  async run(node: string, what: string, argv: readonly string[], stdin?: string | Buffer, timeoutMs?: number): Promise<string> {
    const r = await this.exec(node, argv, stdin, timeoutMs);
    if (r.code !== 0) throw new RemoteError(node, what, r.stderr || r.stdout, r.code);
    return r.stdout;
  }

  /** Like run, with each line of standard output handed to `onLine` as it arrives. */
  async stream(node: string, what: string, argv: readonly string[], onLine: (line: string) => void, timeoutMs?: number): Promise<string> {
    let buffer = '';
    const r = await this.executor.exec(node, quoteCommand(this.argvOn(node, argv)), undefined, timeoutMs, (chunk) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        onLine(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
      }
    });
    if (buffer) onLine(buffer);
    if (r.code !== 0) throw new RemoteError(node, what, r.stderr || r.stdout, r.code);
    return r.stdout;
  }

  close(): Promise<void> {
    return this.executor.close();
  }
}
