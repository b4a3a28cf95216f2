import { execFile, spawn } from 'node:child_process';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Resolve with the exit code instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
  /** Ends the command (SIGTERM) when aborted; it then fails as any command that ended on a signal. */
  signal?: AbortSignal;
}

export class CommandFailed extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: RunResult,
  ) {
    super(`${argv.join(' ')} exited ${result.code}: ${tail(result.stderr || result.stdout)}`);
    this.name = 'CommandFailed';
  }
}

/** The last few lines of a command's output, for one-line error reports. */
export function tail(text: string, lines = 3): string {
  return text.trim().split('\n').slice(-lines).join(' | ');
}

/** Runs a local command given as argv (never through a shell). */
export function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('empty command');
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: options.timeoutMs ?? 0, env: options.env ?? process.env, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8', ...(options.signal ? { signal: options.signal } : {}) },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : (err as { code?: unknown }).code === 'ENOENT' ? 127 : 1) : 0;
        const result = { code, stdout, stderr: err && code === 127 ? `${cmd}: command not found` : stderr };
        if (code !== 0 && !options.allowFailure) reject(new CommandFailed(argv, result));
        else resolve(result);
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}

/** Starts a long-running local command detached from silver (a daemon that outlives it). */
export function spawnDetached(argv: readonly string[]): number {
  const [cmd, ...args] = argv;
  const child = spawn(cmd!, args, { detached: true, stdio: 'ignore' });
  child.unref();
  return child.pid ?? -1;
}
